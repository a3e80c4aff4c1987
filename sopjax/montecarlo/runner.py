"""Chunked, resumable Monte Carlo scoring of restoration strategies, in-process or on a Dask cluster.

:func:`run_montecarlo` scores every strategy on every sample in a fixed plan of
chunks of ``chunk_size`` samples (:mod:`sopjax.scaleout`): per chunk, one jitted
call scores strategies x samples (:func:`~sopjax.kernels.scoring.score_batch`) and a
second reduces the chunk on the device (:func:`~sopjax.kernels.scoring.reduce_chunk`);
see :mod:`sopjax.montecarlo.chunks`. Memory is bounded by the chunk, not by the
number of samples. Chunks run in this process (default) or as tasks on a Dask cluster
(``scheduler=``); the driver merges their reductions exactly (:mod:`sopjax.metrics`)
in chunk order, so the aggregates do not depend on where or in which order chunks
ran, checkpoints after every merged chunk and, at the end, assembles an
:class:`xarray.Dataset` (:mod:`sopjax.montecarlo.dataset`). JAX places the work on its
default device (a GPU when it sees one) and splits each chunk across all local devices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from sopjax.errors import SopjaxError
from sopjax.kernels.scoring import ScoringOptions
from sopjax.montecarlo.chunks import SAMPLE_FIELDS, ChunkJob, score_chunk
from sopjax.montecarlo.drive import merge_plan
from sopjax.montecarlo.state import RunState
from sopjax.network import Network
from sopjax.powerflow import METHODS
from sopjax.scaleout import make_executor
from sopjax.strategies import Strategy, StrategyBatch, compile_strategies, scoring_context

__all__ = ["MonteCarloSettings", "run_montecarlo", "default_chunk_size", "kernel_block", "SAMPLE_FIELDS"]

# strategy-samples per chunk when the user gives no chunk size (keeps the
# per-chunk working set at a few hundred MB on CPU for networks of ~100 buses)
_DEFAULT_WORK = 1 << 16


@dataclasses.dataclass(frozen=True)
class MonteCarloSettings:
    """Settings of a Monte Carlo run (everything but the network, strategies and samples).

    Attributes:
        n_samples: number of samples.
        chunk_size: samples per chunk (default: ~65 k strategy-samples per chunk).
        fault_open: 1-based branches isolated by the fault (defines the outage area).
        v_min_pu, v_max_pu: voltage limits of the compliance test.
        island_overload: ``"shed"`` (a Vf island whose SOP exceeds its capacity
            is lost) or ``"flag"`` (only counted).
        options: scoring kernel settings (power-flow method, overload policy, histograms).
        quantiles: probability levels reported for the quantile statistics.
        confidence: level of the "guaranteed" recovery (seed 002 uses 0.9921):
            the recovery ratio reached or exceeded with this probability.
        ci_level: level of the Monte Carlo confidence intervals.
        exact_limit: keep per-sample scalars for exact quantiles when
            strategies x samples <= this; above it quantiles come from histograms.
        keep_samples: also return per-sample arrays (strategy, sample[, bus]).
        dtype: ``"float64"`` or ``"float32"`` kernel arithmetic.
    """

    n_samples: int
    chunk_size: int | None = None
    fault_open: tuple[int, ...] = ()
    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    island_overload: str = "shed"
    options: ScoringOptions = ScoringOptions()
    quantiles: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
    confidence: float = 0.9921
    ci_level: float = 0.95
    exact_limit: int = 2_000_000
    keep_samples: bool = False
    dtype: str = "float64"

    def validate(self) -> None:
        if int(self.n_samples) < 1:
            raise SopjaxError(f"the number of samples must be >= 1, got {self.n_samples}")
        if self.chunk_size is not None and int(self.chunk_size) < 1:
            raise SopjaxError(f"chunk size must be >= 1, got {self.chunk_size}")
        for name in ("confidence", "ci_level"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise SopjaxError(f"{name} must lie in (0, 1), got {v}")
        bad = [q for q in self.quantiles if not 0 <= q <= 1]
        if bad:
            raise SopjaxError(f"quantile levels must lie in [0, 1], got {bad[0]}")
        if self.options.method not in METHODS:
            raise SopjaxError(f"unknown power-flow method {self.options.method!r}; choose from {sorted(METHODS)}")
        if self.island_overload not in ("shed", "flag"):
            raise SopjaxError(f"island_overload must be 'shed' or 'flag', got {self.island_overload!r}")
        if self.dtype not in ("float64", "float32"):
            raise SopjaxError(f"dtype must be float64 or float32, got {self.dtype!r}")
        if not (0 < self.v_min_pu <= self.v_max_pu):
            raise SopjaxError(f"voltage limits must satisfy 0 < v_min <= v_max, got {self.v_min_pu}, {self.v_max_pu}")


def kernel_block(chunk: int) -> int:
    """Compiled batch size for a chunk: ``chunk`` rounded up to ``m * 2**e`` with ``8 <= m < 16``.

    Chunks are padded to this size (padding rows are masked out), so nearby
    chunk sizes share one compiled program; the padding wastes < 12.5 %.
    """
    if chunk <= 8:
        return chunk
    e = chunk.bit_length() - 4
    m = -(-chunk // (1 << e))
    return m << e


def default_chunk_size(n_strategies: int, n_samples: int) -> int:
    """Samples per chunk so that a chunk holds ~65 k strategy-samples."""
    return int(max(1, min(n_samples, _DEFAULT_WORK // max(n_strategies, 1))))


def _fingerprint(net: Network, batch: StrategyBatch, source, settings: MonteCarloSettings) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(net):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(repr((net.name, net.base_mva, net.bus_ids, net.branch_numbers)).encode())
    for leaf in jax.tree_util.tree_leaves(batch.arrays):
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(str(a.dtype).encode() + a.tobytes())
    h.update(json.dumps(batch.names).encode())
    h.update(source.fingerprint().encode())
    s = dataclasses.replace(settings, chunk_size=None)  # chunking does not change results
    h.update(repr(s).encode())
    return h.hexdigest()


def _progress(total: int, initial: int, enabled: bool | None):
    from tqdm.auto import tqdm

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="sample", disable=not enabled, dynamic_ncols=True,
                desc="montecarlo")


def run_montecarlo(
    net: Network,
    strategies: Sequence[Strategy] | StrategyBatch,
    source,
    settings: MonteCarloSettings,
    *,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    attrs: dict[str, Any] | None = None,
    scheduler: Any = None,
    samples_out: str | Path | None = None,
):
    """Score strategies on ``settings.n_samples`` samples of ``source``; return an xarray Dataset.

    Args:
        net: the network.
        strategies: strategies (validated here) or an already compiled batch.
        source: a sample source (:mod:`sopjax.montecarlo.sources`); sent to the workers
            when ``scheduler`` is given, so it must pickle.
        settings: run settings.
        checkpoint: ``.npz`` path; written atomically after every merged chunk and
            resumed from when it exists (same configuration required). Chunks that
            finished ahead of their turn are kept in ``<checkpoint>.chunks/`` so a
            rerun skips them too. The caller deletes the checkpoint once the dataset
            is safely written (:func:`sopjax.montecarlo.io.write_dataset` does with ``checkpoint=``).
        progress: show a progress bar (default: when stderr is a terminal).
        on_chunk: called as ``on_chunk(chunk_index, samples_done)`` after each
            checkpointed chunk (monitoring; an exception here interrupts the run
            with the checkpoint intact).
        attrs: extra dataset attributes (e.g. the config text and seed).
        scheduler: where chunks run: ``None`` (this process), ``"local:N"``, a Dask
            scheduler address, a ``distributed.Client`` or an executor
            (:func:`sopjax.scaleout.make_executor`). The aggregates are the same.
        samples_out: a ``.zarr`` path: per-sample arrays (implies ``keep_samples``) are
            written there by region from wherever each chunk runs and are not put in
            the returned dataset, so the driver never holds them
            (:mod:`sopjax.montecarlo.sample_store`; read with ``xarray.open_zarr``).

    Returns:
        :class:`xarray.Dataset` (see :func:`sopjax.montecarlo.dataset.build_dataset`).

    Raises:
        SopjaxError: invalid settings or strategies (named), a checkpoint of another configuration.
        ConfigError: an unreachable scheduler or a worker with another sopjax version.
    """
    from sopjax.montecarlo.dataset import build_dataset

    settings.validate()
    if samples_out is not None and not settings.keep_samples:
        settings = dataclasses.replace(settings, keep_samples=True)
    batch = (
        strategies
        if isinstance(strategies, StrategyBatch)
        else compile_strategies(net, strategies, fault_open=settings.fault_open)
    )
    ctx = scoring_context(net, fault_open=settings.fault_open, v_min_pu=settings.v_min_pu,
                          v_max_pu=settings.v_max_pu, island_overload=settings.island_overload)
    n_s, n = len(batch), int(settings.n_samples)
    chunk = min(int(settings.chunk_size or default_chunk_size(n_s, n)), n)
    exact = n_s * n <= settings.exact_limit
    if settings.keep_samples and samples_out is None and n_s * n * net.n_bus > 200_000_000:
        raise SopjaxError(
            f"keep_samples would hold {n_s} x {n} x {net.n_bus} voltages; reduce samples or strategies, "
            "or stream them to a zarr store with samples_out= (aggregates need no per-sample storage)"
        )
    fp = _fingerprint(net, batch, source, settings)
    store = None
    if samples_out is not None:
        from sopjax.montecarlo.sample_store import create_store

        store = create_store(samples_out, fingerprint=fp, strategies=batch.names, bus_ids=net.bus_ids,
                             n_samples=n, chunk=chunk, kw_per_pu=net.base_mva * 1e3)
    shapes = (
        {k: (tuple(net.n_bus for _ in dims), dt) for k, (dims, dt) in SAMPLE_FIELDS.items()}
        if settings.keep_samples and store is None
        else None
    )
    state = RunState(n_s, n, exact=exact, sample_shapes=shapes)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        state.load(ckpt, fp)
    resumed_from = state.done

    job = ChunkJob(token=fp, ctx=jax.device_get(ctx), arrays=jax.device_get(batch.arrays), source=source,
                   options=settings.options, exact=exact, keep_samples=settings.keep_samples,
                   block=kernel_block(chunk), dtype=settings.dtype, store=store)
    seen = {"nominal": None, "devices": 0}

    def keep(result: dict) -> None:
        seen["nominal"], seen["devices"] = result["nominal"], max(seen["devices"], result["devices"])

    executor = make_executor(scheduler)
    t0 = time.perf_counter()
    bar = _progress(n, state.done, progress)
    try:
        merge_plan(executor, score_chunk, job, state, chunk=chunk, fingerprint=fp, checkpoint=ckpt, bar=bar,
                   on_chunk=on_chunk, on_result=keep)
    finally:
        bar.close()
        if executor is not scheduler:
            executor.close()
    nominal, devices = seen["nominal"], seen["devices"]
    elapsed = time.perf_counter() - t0

    info = {
        "chunk_size": chunk,
        "elapsed_s": elapsed,
        "resumed_from_sample": resumed_from,
        "quantile_method": "exact" if exact else "histogram",
        "fingerprint": fp,
        "device": str(jax.devices()[0].platform),
        "executor": executor.description,
        "devices_per_chunk": devices,
    }
    if store is not None:
        info["samples_store"] = str(store.path)
    return build_dataset(net, batch, ctx, state, nominal, settings, source, info, attrs or {})
