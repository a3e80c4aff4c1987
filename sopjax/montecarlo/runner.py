"""Chunked, resumable Monte Carlo scoring of restoration strategies.

:func:`run_montecarlo` scores every strategy on every sample in chunks of
``chunk_size`` samples: per chunk, one jitted call scores strategies x samples
(:func:`~sopjax.kernels.scoring.score_batch`) and a second reduces the chunk on
the device (:func:`~sopjax.kernels.scoring.reduce_chunk`), so memory is bounded
by the chunk, not by the number of samples. The host merges reductions exactly
(:mod:`sopjax.metrics`), checkpoints after every chunk and, at the end,
assembles an :class:`xarray.Dataset` (:mod:`sopjax.montecarlo.dataset`).
JAX places the work on its default device, i.e. on a GPU when it sees one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.errors import SopjaxError
from sopjax.kernels.scoring import EXACT_FIELDS, ScoringOptions, reduce_chunk, score_batch
from sopjax.montecarlo.state import RunState
from sopjax.network import Network
from sopjax.powerflow import METHODS
from sopjax.strategies import Strategy, StrategyBatch, compile_strategies, scoring_context

__all__ = ["MonteCarloSettings", "run_montecarlo", "default_chunk_size", "kernel_block", "SAMPLE_FIELDS"]

# per-sample fields kept with keep_samples=True: name -> (trailing dims, dtype)
SAMPLE_FIELDS = {
    "recovery_ratio": ((), np.float64),
    "restored_pu": ((), np.float64),
    "line_loss_pu": ((), np.float64),
    "sop_loss_pu": ((), np.float64),
    "vmin_pu": ((), np.float64),
    "vmax_pu": ((), np.float64),
    "vcpi_max": ((), np.float64),
    "any_violation": ((), np.bool_),
    "converged": ((), np.bool_),
    "vm_pu": (("bus",), np.float64),
}

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


def _score_and_split(ctx, arrays, p, q, pv, *, options):
    scores = score_batch(ctx, arrays, p, q, pv, options)
    nominal = jax.tree_util.tree_map(lambda a: a[:, -1], scores)
    return scores, nominal


@functools.lru_cache(maxsize=16)
def _kernels(options: ScoringOptions):
    """Jitted scoring and reduction for ``options`` (cached: one compile per chunk shape).

    Scoring returns the per-sample scores (kept on the device) and the last
    sample row, the nominal forecast. What a run keeps (exact-quantile values,
    per-sample arrays) is sliced on the host, so every run of one chunk shape
    shares the two compiled programs.
    """
    score = jax.jit(partial(_score_and_split, options=options))
    reduce = jax.jit(partial(reduce_chunk, options=options))
    return score, reduce


def _chunk_step(options, keep_samples: bool, exact: bool, ctx, arrays, p, q, pv, valid):
    """Score one chunk whose last sample row is the nominal forecast (excluded from the reductions)."""
    score, reduce = _kernels(options)
    scores, nominal = score(ctx, arrays, p, q, pv)
    red = reduce(scores, valid[None, :], shift=nominal)
    fields = set(EXACT_FIELDS) | {"converged"} | (set(SAMPLE_FIELDS) if keep_samples else set())
    host = jax.device_get({k: getattr(scores, k) for k in fields})
    host = {k: np.asarray(v)[:, :-1] for k, v in host.items()}
    ok = valid[None, :-1] & host["converged"] & np.isfinite(host["recovery_ratio"]) & np.isfinite(host["vmin_pu"])
    ex = {k: host[k] for k in EXACT_FIELDS} if exact else None
    smp = {k: host[k] for k in SAMPLE_FIELDS} if keep_samples else None
    return jax.device_get(red), ex, ok, smp, jax.device_get(nominal)


def _to_device(tree, dtype):
    def cast(a):
        a = np.asarray(a)
        return jnp.asarray(a, dtype) if np.issubdtype(a.dtype, np.floating) else jnp.asarray(a)

    return jax.tree_util.tree_map(cast, tree)


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
):
    """Score strategies on ``settings.n_samples`` samples of ``source``; return an xarray Dataset.

    Args:
        net: the network.
        strategies: strategies (validated here) or an already compiled batch.
        source: a sample source (:mod:`sopjax.montecarlo.sources`).
        settings: run settings.
        checkpoint: ``.npz`` path; written atomically after every chunk and
            resumed from when it exists (same configuration required). The
            caller deletes it once the dataset is safely written
            (:func:`sopjax.montecarlo.io.write_dataset` does with ``checkpoint=``).
        progress: show a progress bar (default: when stderr is a terminal).
        on_chunk: called as ``on_chunk(chunk_index, samples_done)`` after each
            checkpointed chunk (monitoring; an exception here interrupts the run
            with the checkpoint intact).
        attrs: extra dataset attributes (e.g. the config text and seed).

    Returns:
        :class:`xarray.Dataset` (see :func:`sopjax.montecarlo.dataset.build_dataset`).

    Raises:
        SopjaxError: invalid settings or strategies (named), a checkpoint of another configuration.
    """
    from sopjax.montecarlo.dataset import build_dataset

    settings.validate()
    batch = (
        strategies
        if isinstance(strategies, StrategyBatch)
        else compile_strategies(net, strategies, fault_open=settings.fault_open)
    )
    ctx = scoring_context(net, fault_open=settings.fault_open, v_min_pu=settings.v_min_pu,
                          v_max_pu=settings.v_max_pu, island_overload=settings.island_overload)
    n_s, n = len(batch), int(settings.n_samples)
    chunk = int(settings.chunk_size or default_chunk_size(n_s, n))
    chunk = min(chunk, n)
    block = kernel_block(chunk)
    exact = n_s * n <= settings.exact_limit
    if settings.keep_samples and n_s * n * net.n_bus > 200_000_000:
        raise SopjaxError(
            f"keep_samples would hold {n_s} x {n} x {net.n_bus} voltages; reduce samples or strategies "
            "(aggregates need no per-sample storage)"
        )
    dtype = jnp.dtype(settings.dtype)
    fp = _fingerprint(net, batch, source, settings)
    shapes = (
        {k: (tuple(net.n_bus for _ in dims), dt) for k, (dims, dt) in SAMPLE_FIELDS.items()}
        if settings.keep_samples
        else None
    )
    state = RunState(n_s, n, exact=exact, sample_shapes=shapes)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    resumed_from = 0
    if ckpt is not None and ckpt.exists():
        state.load(ckpt, fp)
        resumed_from = state.done

    ctx_d = _to_device(ctx, dtype)
    arrays_d = _to_device(batch.arrays, dtype)
    fn = partial(_chunk_step, settings.options, settings.keep_samples, exact)
    npdt = np.dtype(settings.dtype)
    nom = tuple(np.asarray(a, npdt)[None] for a in source.nominal())
    nominal = None
    t0 = time.perf_counter()
    bar = _progress(n, state.done, progress)
    try:
        k = state.done // chunk
        while state.done < n or nominal is None:
            start = state.done
            m = min(chunk, n - start)
            if m > 0:
                drawn = tuple(np.asarray(a, npdt) for a in source.draw(start, m))
            else:  # resumed a finished run: score the forecast alone
                drawn = tuple(a[:0] for a in nom)
            # pad to the compiled block size and append the forecast row
            pad = block - m
            p, q, pv = (np.concatenate([a, np.repeat(b, pad, axis=0), b]) for a, b in zip(drawn, nom))
            valid = np.concatenate([np.arange(block) < m, np.zeros(1, bool)])
            red, ex, ok, smp, nomi = fn(ctx_d, arrays_d, p, q, pv, valid)
            nominal = nomi
            if m == 0:
                break
            state.merge_chunk(red, start, m, ex, ok, smp)
            if ckpt is not None:
                state.save(ckpt, fp)
            bar.update(m)
            if on_chunk is not None:
                on_chunk(k, state.done)
            k += 1
    finally:
        bar.close()
    elapsed = time.perf_counter() - t0

    info = {
        "chunk_size": chunk,
        "elapsed_s": elapsed,
        "resumed_from_sample": resumed_from,
        "quantile_method": "exact" if exact else "histogram",
        "fingerprint": fp,
        "device": str(jax.devices()[0].platform),
    }
    return build_dataset(net, batch, ctx, state, nominal, settings, source, info, attrs or {})
