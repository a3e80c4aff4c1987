"""One chunk of a Monte Carlo run over time, as a pure function of the job and the chunk index.

:func:`series_chunk` is the task of :func:`~sopjax.montecarlo.run_timeseries`'s chunk plan
(:mod:`sopjax.scaleout`), the counterpart of :func:`sopjax.montecarlo.chunks.score_chunk`:
it draws the horizons of samples ``[chunk.start, chunk.stop)`` (a sample depends only on
its global index), scores every (strategy, period) row under its control policy, reduces
the chunk (per-period statistics, horizon quantities, paired gains, controller failures)
and returns the reductions as numpy. It runs unchanged in the driver or on a Dask worker;
each process builds the job's device arrays once (:func:`sopjax.scaleout.worker_cached`)
and keeps the jitted kernels (module-level caches). Every chunk is padded to the same
``block`` rows plus the forecast row, so a process compiles one program per row kind.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.scoring import (
    ScoringOptions,
    chunk_moments,
    histogram,
    reduce_chunk,
    score_strategy,
)
from sopjax.kernels.scoring.control import (
    ControlOptions,
    fixed_setpoints,
    repair_islands,
    score_local,
    score_setpoints,
    score_vf_search,
)
from sopjax.montecarlo.chunks import padded_draws, per_sample_results
from sopjax.montecarlo.redispatch import dispatch_rows, take_rows
from sopjax.powerflow import to_device
from sopjax.scaleout import Chunk, worker_cached

__all__ = ["ROW_KINDS", "SeriesJob", "series_chunk"]

#: the row kernels, in the order their rows are scored
ROW_KINDS = ("fixed", "local", "vf", "pq")


@dataclasses.dataclass(frozen=True, eq=False)
class SeriesJob:
    """Everything a chunk over time needs, sent once to each worker (picklable, numpy leaves).

    Attributes:
        token: fingerprint of the run (the key of the per-worker cache).
        net: the network (the ``optimal`` re-dispatch compiles its problem data from it).
        batch: the compiled (strategy, period) rows, row = s * time + t.
        ctx: the scoring context (numpy pytree).
        lim: per-row SOP limits (:class:`~sopjax.kernels.scoring.control.SOPLimits`).
        prio: (bus,) shedding priority.
        kinds: (row,) row kernel (one of :data:`ROW_KINDS`).
        t_of_row: (row,) period of each row.
        pairs_a, pairs_b: (pair,) controlled and fixed strategy of each paired comparison.
        source: the sample source (draws (sample, time, .)).
        options: scoring kernel settings; control: the control settings; island: the island policy.
        n_s, n_t: strategies and periods; period_h: hours per period.
        exact: return per-sample scalars for exact quantiles.
        keep_samples: return (or, with ``store``, write) per-sample arrays.
        block: compiled chunk size (rows before the forecast row); dtype: kernel arithmetic.
        store: zarr store for per-sample arrays, written from where the chunk runs.
    """

    token: str
    net: Any
    batch: Any
    ctx: Any
    lim: Any
    prio: np.ndarray
    kinds: np.ndarray
    t_of_row: np.ndarray
    pairs_a: np.ndarray
    pairs_b: np.ndarray
    source: Any
    options: ScoringOptions
    control: ControlOptions
    island: str
    n_s: int
    n_t: int
    period_h: float
    exact: bool
    keep_samples: bool
    block: int
    dtype: str
    store: Any = None


@functools.lru_cache(maxsize=32)
def _row_kernel(kind: str, options: ScoringOptions, control: ControlOptions, island: str):
    """Jitted scoring of rows (lax.map): ``f(ctx, st, t, lim, prio, p, q, pv[, sp])`` -> (scores, ok).

    ``p, q, pv`` are (time, sample, .); row r scores period ``t[r]``. ``ok`` (row, sample) is False
    where the controller failed (dispatch not converged: the fixed set-points were kept).
    ``island`` in ("resolve", "priority") repairs tripped Vf islands (:func:`repair_islands`).
    """

    def one(ctx, prio, p, q, pv, args):
        s, t, lim, sp = args
        pt, qt, pvt = p[t], q[t], pv[t]
        n = pt.shape[0]
        ok = jnp.ones((n,), bool)
        finish = None
        if island in ("resolve", "priority"):

            def finish(st, x, sc):
                return repair_islands(ctx, st, pt, qt, pvt, x, sc, prio, island, options)

        if kind == "vf":
            return score_vf_search(ctx, s, pt, qt, pvt, lim, options, control, finish)[0], ok
        if kind == "fixed":
            sc = score_strategy(ctx, s, pt, qt, pvt, options)
            sp = jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), fixed_setpoints(s))
        elif kind == "local":
            sc, sp = score_local(ctx, s, pt, qt, pvt, lim, options, control)
        else:
            sp, ok = sp
            sc = score_setpoints(ctx, s, pt, qt, pvt, sp, options)
        return (sc if finish is None else finish(s, sp, sc)), ok

    def f(ctx, st, t, lim, prio, p, q, pv, sp=None):
        return jax.lax.map(lambda args: one(ctx, prio, p, q, pv, args), (st, t, lim, sp))

    return jax.jit(f)


@functools.partial(jax.jit, static_argnames=("n_s", "n_t", "period_h", "spec"))
def _horizon_reduce(scores, valid, pairs_a, pairs_b, *, n_s: int, n_t: int, period_h: float, spec):
    """Per-sample horizon quantities of (row, sample) scores, their moments and the ratio histogram."""
    sh = lambda a: a.reshape((n_s, n_t) + a.shape[1:])
    ok = sh(scores.converged & jnp.isfinite(scores.recovery_ratio) & jnp.isfinite(scores.vmin_pu))
    ok = jnp.all(ok, axis=1) & valid[None, :]
    rest = jnp.sum(sh(scores.restored_pu), axis=1) * period_h
    outage = jnp.sum(sh(scores.outage_pu), axis=1) * period_h
    loss = jnp.sum(sh(scores.line_loss_pu + scores.sop_loss_pu), axis=1) * period_h
    ratio = jnp.where(outage > 0, rest / jnp.where(outage > 0, outage, 1.0), 1.0)
    viol = jnp.any(sh(scores.any_violation), axis=1)
    vals = {
        "hz_energy_ratio": ratio,
        "hz_restored_pu_h": rest,
        "hz_outage_pu_h": outage,
        "hz_ens_pu_h": outage - rest,
        "hz_loss_pu_h": loss,
        "hz_any_violation": viol,
    }
    nominal = {k: v[:, -1] for k, v in vals.items()}
    moments = {k: chunk_moments(v, ok, None if v.dtype == bool else nominal[k]) for k, v in vals.items()}
    pok = ok[pairs_a] & ok[pairs_b]
    gains = {
        "gain_energy_ratio": ratio[pairs_a] - ratio[pairs_b],
        "gain_loss_pu_h": loss[pairs_a] - loss[pairs_b],
        "gain_ens_pu_h": (outage - rest)[pairs_a] - (outage - rest)[pairs_b],
    }
    moments.update({k: chunk_moments(v, pok, v[:, -1]) for k, v in gains.items()})
    hist = {"hz_energy_ratio": histogram(ratio, ok, spec)}
    return moments, hist, nominal


@functools.lru_cache(maxsize=8)
def _reduce_kernel(options: ScoringOptions):
    return jax.jit(functools.partial(reduce_chunk, options=options))


def _control_moments(ok_ctl, valid_rows):
    return chunk_moments(~ok_ctl, valid_rows)


def _prepare(job: SeriesJob) -> dict:
    """Device arrays of a job (once per process): context, and per row kind its rows' arrays."""
    dtype = jnp.dtype(job.dtype)
    arrays = to_device(job.batch.arrays, dtype)
    lim = to_device(job.lim, dtype)
    groups = {k: np.flatnonzero(job.kinds == k) for k in ROW_KINDS}
    order = np.concatenate([groups[k] for k in ROW_KINDS])
    return {
        "ctx": to_device(job.ctx, dtype),
        "prio": jnp.asarray(job.prio, dtype),
        "rows": {k: (r, take_rows(arrays, r), jnp.asarray(job.t_of_row[r]), take_rows(lim, r))
                 for k, r in groups.items() if r.size},
        "inverse": np.argsort(order),
        "pairs": (jnp.asarray(job.pairs_a), jnp.asarray(job.pairs_b)),
        "nominal": tuple(np.asarray(a, np.dtype(job.dtype))[None] for a in job.source.nominal()),  # (1, time, .)
    }


def series_chunk(job: SeriesJob, chunk: Chunk) -> dict:
    """Score samples ``[chunk.start, chunk.stop)`` of ``job`` over the horizon (the task of the plan).

    Returns:
        ``{"red": reductions (per row, plus the horizon and gain moments, the horizon ratio
        histogram and ``control_failed``), "exact": per-sample scalars or None, "ok": (row, m)
        validity, "samples": per-sample arrays (row, m[, bus]) or None, "nominal": row scores
        at the forecast, "nominal_hz": horizon quantities at the forecast}``, all numpy.
        ``chunk.size == 0`` scores the forecast alone.
    """
    dev = worker_cached(("timeseries", job.token, job.dtype), lambda: _prepare(job))
    dtype = jnp.dtype(job.dtype)
    m = chunk.size
    p, q, pv = (jnp.asarray(np.swapaxes(a, 0, 1))  # (time, block + 1, .)
                for a in padded_draws(job.source, chunk, dev["nominal"], job.block))
    valid = jnp.asarray(np.concatenate([np.arange(job.block) < m, np.zeros(1, bool)]))
    parts, oks = [], []
    for kind, (rows, arrays, t, lim) in dev["rows"].items():
        kernel = _row_kernel(kind, job.options, job.control, job.island)
        args = (dev["ctx"], arrays, t, lim, dev["prio"], p, q, pv)
        if kind == "pq":
            sp = dispatch_rows(job.net, job.batch, rows, job.ctx, job.control, p, q, pv, job.t_of_row, dtype)
            sc, ok = kernel(*args, sp)
        else:
            sc, ok = kernel(*args)
        parts.append(sc)
        oks.append(ok)
    inverse = dev["inverse"]
    scores = jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs)[inverse], *parts)
    ok_ctl = jnp.concatenate(oks)[inverse]
    red = _reduce_kernel(job.options)(
        scores, valid[None, :], shift=jax.tree_util.tree_map(lambda a: a[:, -1], scores)
    )
    hz_m, hz_h, hz_nom = _horizon_reduce(
        scores, valid, *dev["pairs"], n_s=job.n_s, n_t=job.n_t, period_h=float(job.period_h),
        spec=job.options.ratio_hist,
    )
    red = dict(red)
    red["moments"] = {**red["moments"], **hz_m,
                      "control_failed": _control_moments(ok_ctl, valid[None, :] & scores.converged)}
    red["hist"] = {**red["hist"], **hz_h}
    return {
        "red": jax.device_get(red),
        **per_sample_results(scores, chunk, exact=job.exact, keep_samples=job.keep_samples, store=job.store),
        "nominal": jax.device_get(jax.tree_util.tree_map(lambda a: a[:, -1], scores)),
        "nominal_hz": jax.device_get(hz_nom),
    }
