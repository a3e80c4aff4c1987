"""The chunked zarr store of a dataset: create, write a chunk by region, resume, grow.

The store is created once with every variable at its full size (lazy dask arrays, so
only metadata is written), zarr-chunked along ``sample`` by ``spec.chunk_size``. A
chunk writes its region and then its ``done`` flags, so an interrupted run resumes by
skipping chunks whose flags are set, and any executor (:mod:`sopjax.scaleout`: this
process, or Dask workers with ``scheduler=``) may write chunks in any order; a task
returns only its sample count, so the driver never holds the data it writes. A store made with a smaller ``samples`` grows along
``sample`` when the same spec asks for more (appendable); any other difference in the
spec or the network is an error naming it.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from sopjax.datasets.generate import generate_chunk
from sopjax.datasets.layout import sample_vars
from sopjax.datasets.spec import SPLITS, DatasetError, DatasetSpec
from sopjax.network import Network
from sopjax.scaleout import Chunk, make_executor

__all__ = [
    "DatasetJob",
    "build_dataset",
    "chunks_done",
    "dataset_network",
    "network_fingerprint",
    "open_store",
    "static_dataset",
    "store_pool",
    "write_chunk",
    "write_chunk_task",
]

_DTYPES = {
    "split": np.int8,
    "config_id": np.int16,
    "fault_branch": np.int16,
    "iterations": np.int16,
    "branch_closed": bool,
    "converged": bool,
    "energized": bool,
    "dispatch_valid": bool,
    "dispatch_converged": bool,
    "variant": np.int8,
    "sop_mode": np.int8,
    "outage": bool,
    "island_lost": bool,
}


def network_fingerprint(net: Network) -> str:
    """SHA-256 of the network's arrays and sizes (16 hex digits): a store belongs to one network."""
    h = hashlib.sha256()
    for leaf in (
        net.f_bus,
        net.t_bus,
        net.r_pu,
        net.x_pu,
        net.p_load_pu,
        net.q_load_pu,
        net.pv.bus,
        net.pv.s_rated_pu,
        net.sop.bus_i,
        net.sop.bus_j,
        net.sop.loss_i,
        net.v_slack_pu,
    ):
        h.update(np.ascontiguousarray(np.asarray(leaf, float)).tobytes())
    return h.hexdigest()[:16]


def static_dataset(net: Network, pool: np.ndarray, held_out: int) -> xr.Dataset:
    """The feeder's static arrays (see :mod:`sopjax.datasets.layout`)."""
    n_cfg = pool.shape[0]
    return xr.Dataset(
        {
            "f_bus": ("branch", np.asarray(net.f_bus, np.int32)),
            "t_bus": ("branch", np.asarray(net.t_bus, np.int32)),
            "r_pu": ("branch", np.asarray(net.r_pu, float)),
            "x_pu": ("branch", np.asarray(net.x_pu, float)),
            "bus_id": ("bus", np.asarray(net.bus_ids, np.int32)),
            "branch_number": ("branch", np.asarray(net.branch_numbers, np.int32)),
            "is_slack": ("bus", np.arange(net.n_bus) == net.slack_bus),
            "sop_bus_i": ("sop", np.asarray(net.sop.bus_i, np.int32)),
            "sop_bus_j": ("sop", np.asarray(net.sop.bus_j, np.int32)),
            "sop_loss_i": ("sop", np.asarray(net.sop.loss_i, float)),
            "sop_loss_j": ("sop", np.asarray(net.sop.loss_j, float)),
            "pv_bus": ("pv", np.asarray(net.pv.bus, np.int32)),
            "config_closed": (("config", "branch"), pool),
            "config_held_out": ("config", np.arange(n_cfg) >= n_cfg - held_out),
        }
    )


def dataset_network(ds: xr.Dataset) -> Network:
    """A :class:`~sopjax.network.Network` of the dataset's feeder, from its static arrays.

    Enough for topologies and power flows of the stored samples (impedances, buses, the
    case's switch states as configuration 0, the substation voltage read from the labels of
    a written sample); its nominal loads are zero (samples carry their own).
    """
    from sopjax.network import make_network

    slack = int(np.flatnonzero(ds["is_slack"].values)[0])
    written = np.asarray(ds["done"].values, bool) if "done" in ds else np.ones(ds.sizes["sample"], bool)
    v_slack = float(ds["vm_pu"].values[np.flatnonzero(written)[0], slack]) if written.any() else 1.0
    bus_ids = np.asarray(ds["bus_id"].values)
    zeros = np.zeros(bus_ids.size)
    return make_network(
        bus_ids=bus_ids.tolist(),
        p_load_mw=zeros,
        q_load_mvar=zeros,
        branch_from=bus_ids[ds["f_bus"].values].tolist(),
        branch_to=bus_ids[ds["t_bus"].values].tolist(),
        r_pu=ds["r_pu"].values,
        x_pu=ds["x_pu"].values,
        slack_bus=int(bus_ids[slack]),
        base_kv=12.66,
        base_mva=float(ds.attrs["base_mva"]),
        v_slack_pu=v_slack,
        v_min_pu=0.5,
        v_max_pu=1.5,
        in_service=np.asarray(ds["config_closed"].values[0], bool),
        branch_numbers=ds["branch_number"].values.tolist(),
        name=str(ds.attrs["case"]),
    )


def _template(net: Network, spec: DatasetSpec, start: int, stop: int) -> xr.Dataset:
    import dask.array as da

    size = {"bus": net.n_bus, "branch": net.n_branch, "sop": net.sop.count, "pv": net.pv.count}
    n = stop - start
    vars_ = {}
    for k, dims in {**sample_vars(spec), "done": ()}.items():
        dt = np.dtype(_DTYPES.get(k, bool if k == "done" else np.float64))
        shape = (n, *(size[d] for d in dims))
        fill = False if dt == bool else (-1 if dt.kind == "i" else np.nan)
        vars_[k] = (("sample", *dims), da.full(shape, fill, dtype=dt, chunks=(spec.chunk_size, *shape[1:])))
    return xr.Dataset(vars_, coords={"sample": np.arange(start, stop)})


def _attrs(net: Network, spec: DatasetSpec, attrs: dict) -> dict:
    import sopjax

    return {
        "title": attrs.get("title", f"sopjax dataset: {net.name}"),
        "sopjax_version": sopjax.__version__,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(),
        "case": net.name,
        "base_mva": float(net.base_mva),
        "network_fingerprint": network_fingerprint(net),
        "spec": spec.to_json(),
        "seed": spec.seed,
        "chunk_size": spec.chunk_size,
        "split_names": json.dumps(list(SPLITS)),
        "sample_seed": "sample i draws from numpy.random.default_rng([seed, i]) and row i of the "
        "sopjax.sampling load design keyed by seed",
        "layout": "docs/surrogates.md#graph-layout",
        **{k: v for k, v in attrs.items() if k != "title"},
    }


def open_store(path: str | Path) -> xr.Dataset:
    """Open a dataset store lazily (raises a one-line :class:`DatasetError` if it is not one)."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"no dataset store at {p}")
    try:
        ds = xr.open_zarr(p, consolidated=False)
    except Exception as e:  # noqa: BLE001 - zarr/xarray raise many types for a non-store
        raise DatasetError(f"{p} is not a sopjax dataset store: {type(e).__name__}: {e}") from None
    if "spec" not in ds.attrs or "done" not in ds:
        raise DatasetError(f"{p} is not a sopjax dataset store (no 'spec' attribute or 'done' flags)")
    return ds


def chunks_done(path: str | Path, spec: DatasetSpec) -> np.ndarray:
    """Done flag per chunk of ``spec`` in the store at ``path`` (False where the store is shorter)."""
    done = np.asarray(open_store(path)["done"].values, bool)
    out = np.zeros(spec.n_chunks, bool)
    for c in range(spec.n_chunks):
        a, b = spec.chunk_range(c)
        out[c] = b <= done.size and bool(done[a:b].all())
    return out


def _prepare(path: Path, net: Network, spec: DatasetSpec, pool: np.ndarray, attrs: dict) -> None:
    if not path.exists():
        ds = xr.merge([_template(net, spec, 0, spec.samples), static_dataset(net, pool, spec.held_out)])
        ds.attrs = _attrs(net, spec, attrs)
        ds.to_zarr(path, mode="w", compute=False, consolidated=False)
        return
    old = open_store(path)
    if old.attrs["network_fingerprint"] != network_fingerprint(net):
        raise DatasetError(
            f"store {path} was made for another network ({old.attrs['case']}); "
            "use a new --out or the same [network]"
        )
    if old.attrs["spec"] != spec.to_json():
        a, b = json.loads(old.attrs["spec"]), json.loads(spec.to_json())
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        raise DatasetError(
            f"store {path} was made with another [dataset] spec (differs in {', '.join(diff)}); "
            "only 'samples' may change (to grow the store)"
        )
    n_old = old.sizes["sample"]
    if spec.samples > n_old:
        if n_old % spec.chunk_size:
            raise DatasetError(
                f"store {path} holds {n_old} samples, not a multiple of chunk_size "
                f"{spec.chunk_size}; it cannot grow"
            )
        more = _template(net, spec, n_old, spec.samples)
        more.attrs = dict(old.attrs)  # appending rewrites the group's attributes
        more.to_zarr(path, append_dim="sample", compute=False, consolidated=False)


def store_pool(path: str | Path) -> np.ndarray:
    """The configuration pool (config, branch) a store was created with (what every chunk must use)."""
    return np.asarray(open_store(path)["config_closed"].values, bool)


def write_chunk(net: Network, spec: DatasetSpec, pool: np.ndarray, path: str | Path, chunk: int) -> int:
    """Compute ``chunk`` and write it into the existing store ``path``: its region, then its done flags.

    The unit of work of any executor (the loop of :func:`build_dataset`, or Dask workers):
    idempotent, independent of the other chunks. Create the store first with
    ``build_dataset(..., stop_after=0)``; pass ``store_pool(path)`` as ``pool``.

    Returns:
        the number of samples written.
    """
    ds = generate_chunk(net, spec, pool, chunk)
    a, b = spec.chunk_range(chunk)
    ds.drop_vars("sample").to_zarr(path, region={"sample": slice(a, b)}, consolidated=False)
    flags = xr.Dataset({"done": ("sample", np.ones(b - a, bool))})
    flags.to_zarr(path, region={"sample": slice(a, b)}, consolidated=False)
    return b - a


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetJob:
    """What a chunk of :func:`build_dataset` needs, sent once to each worker (picklable).

    Attributes:
        net: the network; spec: the dataset spec; pool: the store's configuration pool
            (config, branch); path: the store (absolute: workers may run elsewhere, on a
            shared file system).
    """

    net: Network
    spec: DatasetSpec
    pool: np.ndarray
    path: str


def write_chunk_task(job: DatasetJob, chunk: Chunk) -> int:
    """The task of the chunk plan (:mod:`sopjax.scaleout`): :func:`write_chunk` of ``chunk.index``.

    Runs in this process or on a Dask worker (each process compiles the label kernels once:
    they are cached per process); returns the number of samples written, nothing else.
    """
    return write_chunk(job.net, job.spec, job.pool, job.path, chunk.index)


def build_dataset(
    net: Network,
    spec: DatasetSpec,
    out: str | Path,
    *,
    pool: np.ndarray | None = None,
    progress: bool | None = None,
    attrs: dict | None = None,
    stop_after: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    scheduler=None,
    stop_restoration: int | None = None,
) -> dict:
    """Generate (or resume, or grow) the dataset of ``spec`` into the zarr store ``out``.

    Args:
        net: the network (with the PV and SOPs of the study).
        spec: the dataset spec.
        out: ``DIR.zarr`` path; created, resumed (done chunks skipped) or grown.
        pool: the configuration pool (default: the store's, else
            :func:`~sopjax.datasets.variants.configuration_pool`).
        progress: tqdm progress bar (default: when stderr is a terminal).
        attrs: extra provenance attributes (e.g. ``title``, the config text).
        stop_after: write at most this many chunks, then return (interruption, for tests).
        on_chunk: called with each chunk index after it is written (in completion order,
            which on a cluster need not be the index order).
        scheduler: where the chunks run: ``None`` (this process), ``"local:N"``, a Dask
            scheduler address, a ``distributed.Client`` or an executor
            (:func:`sopjax.scaleout.make_executor`). Each task writes its own region of
            the store and its done flags (workers must see ``out``); the store is the same.
        stop_restoration: solve at most this many MISOCP restoration labels, then return
            (interruption, for tests). The labels are made in this process once every chunk is
            written (:mod:`sopjax.datasets.restoration`; only with ``spec.restoration_labels`` > 0).

    Returns:
        ``{"chunks_written", "chunks_skipped", "samples_written", "seconds", "samples_per_s",
        "executor", "restoration_solved", "restoration_seconds"}``; ``seconds`` and
        ``samples_per_s`` cover the chunks only.
    """
    from tqdm.auto import tqdm

    from sopjax.datasets.variants import configuration_pool

    path = Path(out)
    if pool is None:  # the store's own pool when resuming (it is a function of the seed anyway)
        pool = store_pool(path) if path.exists() else configuration_pool(
            net, spec.configurations, spec.seed, v_min_pu=spec.v_min_pu
        )
    _prepare(path, net, spec, pool, attrs or {})
    done = chunks_done(path, spec)
    todo = [c for c in range(spec.n_chunks) if not done[c]]
    if stop_after is not None:
        todo = todo[: max(int(stop_after), 0)]
    import sys

    bar = tqdm(
        total=spec.samples,
        initial=spec.samples - sum(np.diff(spec.chunk_range(c))[0] for c in todo) if todo else spec.samples,
        unit="sample",
        desc="dataset",
        disable=not sys.stderr.isatty() if progress is None else not progress,
    )
    job = DatasetJob(net, spec, np.asarray(pool, bool), str(path.resolve()))
    chunks = [Chunk(c, *spec.chunk_range(c)) for c in todo]
    t0, n = time.perf_counter(), 0
    executor = make_executor(scheduler)
    try:  # chunks finish in any order; each has written its region and flags when it arrives
        for c, written in executor.imap_unordered(write_chunk_task, job, chunks):
            n += written
            bar.update(c.size)
            if on_chunk is not None:
                on_chunk(c.index)
    finally:
        bar.close()
        if executor is not scheduler:
            executor.close()
    dt = time.perf_counter() - t0
    solved, t1 = 0, time.perf_counter()
    if spec.restoration_labels and chunks_done(path, spec).all():
        from sopjax.datasets.restoration import write_restoration

        bar = tqdm(total=spec.restoration_labels, unit="MISOCP", desc="restoration labels",
                   disable=not sys.stderr.isatty() if progress is None else not progress)  # fmt: skip
        try:
            solved = write_restoration(net, spec, path, stop_after=stop_restoration, progress=bar)
        finally:
            bar.close()
    return {
        "chunks_written": len(todo),
        "chunks_skipped": int(done.sum()),
        "samples_written": n,
        "seconds": dt,
        "samples_per_s": n / dt if dt > 0 else float("nan"),
        "executor": executor.description,
        "restoration_solved": solved,
        "restoration_seconds": time.perf_counter() - t1,
    }
