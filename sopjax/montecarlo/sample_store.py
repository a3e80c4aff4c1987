"""Per-sample Monte Carlo arrays streamed into one zarr store, written by region from the workers.

The driver creates the store (:func:`create_store`): one array per per-sample field,
``(strategy, sample)`` or ``(strategy, sample, bus)``, chunked along ``sample`` exactly
like the chunk plan, plus ``chunk_done`` (one int8 per plan chunk). Each chunk's task
writes its own region (:func:`write_chunk`) and then sets its done-marker, so
concurrent workers never touch the same zarr chunk and the driver never holds
per-sample data. Read it lazily with ``xarray.open_zarr(path)``.

Variable names and units follow the Monte Carlo dataset (``recovery_ratio_sample``,
``restored_kw_sample`` in kW, ``vm_sample`` in p.u., ...). A run over time
(:func:`~sopjax.montecarlo.run_timeseries`, ``n_periods``) adds a ``time`` dimension:
``(strategy, time, sample[, bus])``, one value per period of each sample's horizon.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from sopjax.errors import SopjaxError
from sopjax.montecarlo.chunks import SAMPLE_FIELDS
from sopjax.montecarlo.dataset import FIELD_META
from sopjax.montecarlo.state import CheckpointError
from sopjax.scaleout import Chunk

__all__ = ["SampleStore", "create_store", "write_chunk", "done_chunks"]


@dataclasses.dataclass(frozen=True)
class SampleStore:
    """Where and how a run writes per-sample arrays (sent to the workers with the job).

    Attributes:
        path: the ``.zarr`` directory.
        chunk: samples per plan chunk (= zarr chunk along ``sample``).
        kw_per_pu: factor from per-unit power to kW.
        n_periods: periods of a run over time (arrays ``(strategy, time, sample[, bus])``,
            written from the task's ``(strategy * time, m[, bus])`` rows), 0 for one period.
    """

    path: str
    chunk: int
    kw_per_pu: float
    n_periods: int = 0


def _var(field: str) -> tuple[str, float, str]:
    """(dataset name, scale flag 'kw' or None, units) of a per-sample field."""
    if field == "converged":
        return "converged_sample", None, "1"
    name, scale, units, _, _ = FIELD_META[field]
    return f"{name}_sample", scale, units


def create_store(path, *, fingerprint: str, strategies, bus_ids, n_samples: int, chunk: int,
                 kw_per_pu: float, n_periods: int = 0) -> SampleStore:
    """Create (or reopen, when resuming the same run) the store for ``n_samples`` samples.

    ``n_periods > 0`` (a run over time) adds a ``time`` dimension after ``strategy``.

    Raises:
        CheckpointError: the store exists and belongs to another run or chunk size.
        SopjaxError: ``path`` does not end in ``.zarr``.
    """
    import xarray as xr
    import zarr

    path = Path(path)
    if path.suffix.lower() != ".zarr":
        raise SopjaxError(f"per-sample output {path} must end in .zarr")
    n_chunks = -(-n_samples // chunk)
    if path.exists():
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
        if attrs.get("sopjax_fingerprint") != fingerprint or attrs.get("chunk_size") != chunk:
            raise CheckpointError(f"per-sample store {path} belongs to another run or chunk size; "
                                  "delete it or choose another path")
        return SampleStore(str(path), chunk, kw_per_pu, n_periods)
    n_s, n_bus = len(strategies), len(bus_ids)
    lead = (n_s, n_periods) if n_periods else (n_s,)
    lead_dims = ["strategy", "time"] if n_periods else ["strategy"]
    coords = xr.Dataset(coords={"strategy": np.asarray(list(strategies), dtype=str),
                                "bus": np.asarray(bus_ids),
                                **({"time": np.arange(n_periods)} if n_periods else {})})
    coords.attrs = {"sopjax_fingerprint": fingerprint, "chunk_size": chunk, "n_samples": n_samples,
                    "title": "sopjax Monte Carlo per-sample arrays"}
    coords.to_zarr(path, mode="w", consolidated=False, zarr_format=2)  # v2: consolidated metadata is standard
    g = zarr.open_group(str(path), mode="r+")
    for field, (dims, dtype) in SAMPLE_FIELDS.items():
        name, _, units = _var(field)
        shape = (*lead, n_samples) + ((n_bus,) if dims else ())
        # booleans as int8 (as in the netCDF output); no fill value on them, so xarray does not mask them
        floating = dtype == np.float64
        a = g.create_array(name, shape=shape, chunks=(*lead, chunk) + ((n_bus,) if dims else ()),
                           dtype=np.dtype(dtype if floating else np.int8),
                           fill_value=np.nan if floating else None)
        a.attrs.update({"units": units, "long_name": f"per-sample {field}",
                        "_ARRAY_DIMENSIONS": [*lead_dims, "sample", *dims]})
    done = g.create_array("chunk_done", shape=(n_chunks,), chunks=(1,), dtype=np.int8, fill_value=None)
    done.attrs.update({"units": "1", "long_name": "1 once the chunk's samples are written",
                       "_ARRAY_DIMENSIONS": ["chunk"]})
    zarr.consolidate_metadata(str(path))
    return SampleStore(str(path), chunk, kw_per_pu, n_periods)


def write_chunk(store: SampleStore, chunk: Chunk, samples: dict[str, np.ndarray]) -> None:
    """Write one chunk's per-sample arrays (row, m[, bus]) into its region, then mark it done.

    A row is a strategy, or with ``store.n_periods`` a (strategy, period) pair, row = s * time + t.
    """
    import zarr

    g = zarr.open_group(store.path, mode="r+", use_consolidated=False)
    region = (slice(None),) * (2 if store.n_periods else 1) + (slice(chunk.start, chunk.stop),)
    for field, values in samples.items():
        name, scale, _ = _var(field)
        v = np.asarray(values)
        if store.n_periods:
            v = v.reshape((-1, store.n_periods) + v.shape[1:])
        g[name][region] = v * store.kw_per_pu if scale == "kw" else v.astype(g[name].dtype)
    g["chunk_done"][chunk.start // store.chunk] = 1


def done_chunks(path) -> np.ndarray:
    """The done-markers of a store: (n_chunks,) bool."""
    import zarr

    group = zarr.open_group(str(path), mode="r", use_consolidated=False)
    return np.asarray(group["chunk_done"][:]).astype(bool)

