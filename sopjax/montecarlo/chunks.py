"""One Monte Carlo chunk as a pure function of the job and the chunk index.

:func:`score_chunk` is the task of the chunk plan (:mod:`sopjax.scaleout`): it draws
samples ``[chunk.start, chunk.stop)`` of the job's source (a sample depends only on
its global index), scores every strategy on them with one jitted call, reduces the
chunk on the device and returns the reductions as numpy. It runs unchanged in the
driver (in-process executor) or on a Dask worker; each process builds the job's
device arrays and jitted kernels once (:func:`sopjax.scaleout.worker_cached`).

Every chunk is padded to the same ``block`` rows (plus the forecast row, plus rows
that round the total up to a multiple of the local device count), so a process
compiles one program. With several local JAX devices the samples are split across
them (``jax.shard_map`` over the sample axis); the scores are gathered on the first
device before the reduction, so the aggregates equal a one-device run bit for bit.
"""

from __future__ import annotations

import dataclasses
import functools
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.scoring import EXACT_FIELDS, ScoringOptions, reduce_chunk, score_batch
from sopjax.powerflow import sample_mesh, to_device
from sopjax.scaleout import Chunk, worker_cached

__all__ = ["SAMPLE_FIELDS", "ChunkJob", "padded_draws", "per_sample_results", "score_chunk"]

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


@dataclasses.dataclass(frozen=True, eq=False)
class ChunkJob:
    """Everything a chunk needs, sent once to each worker (picklable, numpy leaves).

    Attributes:
        token: fingerprint of the run (the key of the per-worker cache).
        ctx: the scoring context (numpy pytree).
        arrays: the stacked strategy arrays (numpy pytree).
        source: the sample source (``draw(start, n)``, ``nominal()``).
        options: scoring kernel settings.
        exact: return per-sample scalars for exact quantiles.
        keep_samples: return (or, with ``store``, write) per-sample arrays.
        block: compiled chunk size (rows before the forecast row).
        dtype: ``"float64"`` or ``"float32"``.
        store: zarr store for per-sample arrays (:mod:`sopjax.montecarlo.sample_store`):
            written by region from where the chunk runs, never returned.
    """

    token: str
    ctx: Any
    arrays: Any
    source: Any
    options: ScoringOptions
    exact: bool
    keep_samples: bool
    block: int
    dtype: str
    store: str | None = None


def _score(ctx, arrays, p, q, pv, *, options):
    return score_batch(ctx, arrays, p, q, pv, options)


def _reduce(scores, valid, *, options):
    nominal = jax.tree_util.tree_map(lambda a: a[:, -1], scores)
    return reduce_chunk(scores, valid[None, :], options, shift=nominal), nominal


@functools.lru_cache(maxsize=16)
def _kernels(options: ScoringOptions, n_dev: int):
    """Jitted scoring (sharded over ``n_dev`` local devices when > 1) and reduction."""
    score = partial(_score, options=options)
    if n_dev > 1:
        from jax.sharding import PartitionSpec

        rep, smp = PartitionSpec(), PartitionSpec("sample")
        score = jax.shard_map(score, mesh=sample_mesh(n_dev), in_specs=(rep, rep, smp, smp, smp),
                              out_specs=PartitionSpec(None, "sample"), check_vma=False)
    return jax.jit(score), jax.jit(partial(_reduce, options=options))



def _prepare(job: ChunkJob) -> dict:
    dtype = jnp.dtype(job.dtype)
    npdt = np.dtype(job.dtype)
    n_dev = len(jax.local_devices())
    return {
        "ctx": to_device(job.ctx, dtype),
        "arrays": to_device(job.arrays, dtype),
        "nominal": tuple(np.asarray(a, npdt)[None] for a in job.source.nominal()),
        "n_dev": n_dev,
        "extra": (-(job.block + 1)) % n_dev,  # rows that make the batch divisible by the devices
    }


def score_chunk(job: ChunkJob, chunk: Chunk) -> dict:
    """Score samples ``[chunk.start, chunk.stop)`` of ``job`` (the task of the chunk plan).

    Returns:
        ``{"red": reductions, "exact": per-sample scalars or None, "ok": (strategy, m)
        validity, "samples": per-sample arrays or None, "nominal": scores at the forecast,
        "devices": local JAX devices the chunk was split over}``,
        all numpy. ``chunk.size == 0`` scores the forecast alone.
    """
    dev = worker_cached(("montecarlo", job.token, job.dtype), lambda: _prepare(job))
    m = chunk.size
    p, q, pv = padded_draws(job.source, chunk, dev["nominal"], job.block + dev["extra"])
    valid = np.concatenate([np.arange(job.block + dev["extra"]) < m, np.zeros(1, bool)])
    score, reduce = _kernels(job.options, dev["n_dev"])
    if dev["n_dev"] > 1:
        from jax.sharding import NamedSharding, PartitionSpec

        sh = NamedSharding(sample_mesh(dev["n_dev"]), PartitionSpec("sample"))
        p, q, pv = (jax.device_put(a, sh) for a in (p, q, pv))
        scores = jax.device_put(score(dev["ctx"], dev["arrays"], p, q, pv), jax.local_devices()[0])
    else:
        scores = score(dev["ctx"], dev["arrays"], p, q, pv)
    red, nominal = reduce(scores, valid)
    return {
        "red": jax.device_get(red),
        **per_sample_results(scores, chunk, exact=job.exact, keep_samples=job.keep_samples, store=job.store),
        "nominal": jax.device_get(nominal),
        "devices": dev["n_dev"],
    }


def padded_draws(source, chunk: Chunk, nominal: tuple, rows: int) -> tuple:
    """Samples ``[chunk.start, chunk.stop)`` of ``source``, padded with the forecast to ``rows`` rows,
    then the forecast row: ``(p, q, pv)`` numpy, ``(rows + 1, ...)``, in the dtype of ``nominal``
    (its arrays have a leading axis of 1). An empty chunk gives the forecast alone (padded)."""
    m = chunk.size
    if m > 0:
        drawn = tuple(np.asarray(a, b.dtype) for a, b in zip(source.draw(chunk.start, m), nominal))
    else:
        drawn = tuple(b[:0] for b in nominal)
    return tuple(np.concatenate([a, np.repeat(b, rows - m, axis=0), b]) for a, b in zip(drawn, nominal))


def per_sample_results(scores, chunk: Chunk, *, exact: bool, keep_samples: bool, store=None) -> dict:
    """The per-sample part of a chunk's result from its (row, block + 1) scores (numpy).

    Returns:
        ``{"exact": per-sample scalars (row, m) or None, "ok": (row, m) validity, "samples":
        per-sample arrays (row, m[, bus]) or None}``; with ``store`` the per-sample arrays are
        written into its region (:mod:`sopjax.montecarlo.sample_store`) and not returned.
    """
    m = chunk.size
    fields = set(EXACT_FIELDS) | {"converged"} | (set(SAMPLE_FIELDS) if keep_samples else set())
    host = jax.device_get({k: getattr(scores, k) for k in fields})
    host = {k: np.asarray(v)[:, :m] for k, v in host.items()}
    ok = host["converged"] & np.isfinite(host["recovery_ratio"]) & np.isfinite(host["vmin_pu"])
    smp = {k: host[k] for k in SAMPLE_FIELDS} if keep_samples and m > 0 else None
    if smp is not None and store is not None:
        from sopjax.montecarlo.sample_store import write_chunk

        write_chunk(store, chunk, smp)
        smp = None
    return {"exact": {k: host[k] for k in EXACT_FIELDS} if exact else None, "ok": ok, "samples": smp}

