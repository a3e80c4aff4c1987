"""Reductions of one chunk of scores over its samples, on the device.

The Monte Carlo runner calls :func:`reduce_chunk` on each chunk of
:func:`~sopjax.kernels.scoring.layout.score_batch` output, so only
O(strategy x (bus + branch)) numbers leave the device per chunk. The host merges
the :class:`ChunkMoments` of successive chunks exactly
(:class:`sopjax.metrics.Moments`) and adds the histogram counts.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int

from sopjax.kernels.scoring.options import HistSpec, ScoringOptions
from sopjax.kernels.scoring.sample import SampleScore

__all__ = ["MOMENT_FIELDS", "MEAN_ONLY", "EXACT_FIELDS", "ChunkMoments", "chunk_moments", "histogram", "reduce_chunk"]


# field -> mask field (None: every valid sample counts)
MOMENT_FIELDS: dict[str, str | None] = {
    "recovery_ratio": None,
    "restored_pu": None,
    "outage_pu": None,
    "served_pu": None,
    "line_loss_pu": None,
    "sop_loss_pu": None,
    "vmin_pu": None,
    "vmax_pu": None,
    "vcpi_max": None,
    "voltage_violation": None,
    "branch_violation": None,
    "sop_violation": None,
    "island_lost": None,
    "any_violation": None,
    "iterations": None,
    "vm_pu": "energized",  # its count is the number of samples in which the bus is energized
    "served": None,
    "v_violation": None,
    "branch_loading": "branch_on",
    "branch_overload": None,
    "vcpi": "branch_on",
    "sop_loading": None,
    "sop_overload": None,
    "sop_utilization": None,
}

# fields whose mean is all that is reported (no min / max pass)
MEAN_ONLY = frozenset({"served"})

# scalar fields kept per sample when exact quantiles fit in memory, and their histograms
EXACT_FIELDS: dict[str, str] = {
    "recovery_ratio": "ratio_hist",
    "vcpi_max": "ratio_hist",
    "vmin_pu": "voltage_hist",
    "vmax_pu": "voltage_hist",
}


class ChunkMoments(NamedTuple):
    """Masked moments of one chunk over its sample axis (axis 1 of (strategy, sample, ...)).

    Device-side and not mergeable itself: the host turns each chunk into a
    :class:`sopjax.metrics.Moments` and merges those.
    """

    count: Array
    mean: Array
    m2: Array
    min: Array
    max: Array


def chunk_moments(
    x: Array, mask: Bool[Array, "strategy sample ..."], shift: Array | None = None, minmax: bool = True
) -> ChunkMoments:
    """Count, mean, sum of squared deviations, min and max of ``x`` where ``mask`` (over axis 1).

    One pass over the data: sums of ``d = x - shift`` and ``d**2`` give
    ``M2 = sum d^2 - (sum d)^2 / n``. ``shift`` (strategy, ...) should be close to
    the mean (the runner passes the forecast-row values) so that the subtraction
    does not cancel; booleans need no shift (``M2 = k - k^2/n`` exactly).
    ``minmax=False`` skips the min / max pass (they are returned as +-inf).
    """
    f64 = jnp.float64  # float32 when x64 is disabled
    if x.dtype == bool:
        n = jnp.sum(mask, axis=1, dtype=jnp.int32).astype(f64)
        safe = jnp.maximum(n, 1)
        k = jnp.sum(mask & x, axis=1, dtype=jnp.int32).astype(f64)
        return ChunkMoments(count=n, mean=k / safe, m2=k - k * k / safe,
                       min=jnp.where(n > 0, (k == n).astype(f64), jnp.inf),
                       max=jnp.where(n > 0, (k > 0).astype(f64), -jnp.inf))
    x = x.astype(f64)
    c = jnp.zeros(x.shape[:1] + x.shape[2:], f64) if shift is None else jnp.where(
        jnp.isfinite(shift), shift.astype(f64), 0.0)
    d = jnp.where(mask, x - jnp.expand_dims(c, 1), 0.0)
    # one variadic reduction: XLA:CPU runs separate sibling reductions of one input
    # as a slow multi-output loop (measured 5-10x slower than this single pass)
    ops = [mask.astype(f64), d, d * d]
    init = [0.0, 0.0, 0.0]
    if minmax:
        ops += [jnp.where(mask, x, jnp.inf), jnp.where(mask, x, -jnp.inf)]
        init += [jnp.inf, -jnp.inf]

    def combine(a, b):
        out = [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
        if minmax:
            out += [jnp.minimum(a[3], b[3]), jnp.maximum(a[4], b[4])]
        return tuple(out)

    red = jax.lax.reduce(tuple(ops), tuple(jnp.asarray(v, f64) for v in init), combine, (1,))
    n, s1, s2 = red[0], red[1], red[2]
    safe = jnp.maximum(n, 1)
    inf = jnp.asarray(jnp.inf, f64)
    mn, mx = (red[3], red[4]) if minmax else (jnp.full_like(s1, inf), jnp.full_like(s1, -inf))
    return ChunkMoments(count=n, mean=c + s1 / safe, m2=jnp.maximum(s2 - s1 * s1 / safe, 0.0), min=mn, max=mx)


def histogram(x: Array, mask: Array, spec: HistSpec) -> Int[Array, "strategy ... bins"]:
    """Counts of ``x`` (strategy, sample, ...) in ``spec``'s bins, summed over samples."""
    lo, hi, nb = spec.lo, spec.hi, spec.bins
    k = jnp.floor((x - lo) / (hi - lo) * nb).astype(jnp.int32)
    k = jnp.clip(k, 0, nb - 1) + 2
    k = jnp.where(x < lo, 0, jnp.where(x == lo, 1, jnp.where(x == hi, nb + 2, jnp.where(x > hi, nb + 3, k))))
    k = jnp.moveaxis(k, 1, -1)
    w = jnp.moveaxis(mask, 1, -1).astype(jnp.int32)
    rows = math.prod(k.shape[:-1])
    flat = (jnp.arange(rows, dtype=jnp.int32)[:, None] * spec.size + k.reshape(rows, -1)).reshape(-1)
    counts = jnp.bincount(flat, weights=w.reshape(-1), length=rows * spec.size)
    return counts.reshape(*k.shape[:-1], spec.size).astype(jnp.int64)


def reduce_chunk(
    scores: SampleScore, valid: Bool[Array, "strategy sample"], options: ScoringOptions,
    shift: SampleScore | None = None,
) -> dict[str, Any]:
    """Reductions of one chunk of scores (strategy, sample, ...) over its valid samples.

    ``shift``: per-strategy values (strategy, ...) near the means, e.g. the
    scores at the forecast, for the one-pass variance (:func:`chunk_moments`).

    Returns:
        ``{"moments": {field: ChunkMoments}, "hist": {...}, "n_valid", "n_failed"}``:
        moments of every :data:`MOMENT_FIELDS` entry, histograms of
        :data:`EXACT_FIELDS` and of per-bus voltage, and per-strategy counts
        of valid (converged, finite) and of failed samples among ``valid``.
    """
    ok = scores.converged & jnp.isfinite(scores.recovery_ratio) & jnp.isfinite(scores.vmin_pu)
    n_failed = jnp.sum(valid & ~ok, axis=1)
    valid = valid & ok
    out: dict[str, Any] = {"moments": {}, "hist": {}}
    for name, mask_name in MOMENT_FIELDS.items():
        x = getattr(scores, name)
        m = valid.reshape(valid.shape + (1,) * (x.ndim - 2))
        if mask_name is not None:
            m = m & getattr(scores, mask_name)
        else:
            m = jnp.broadcast_to(m, x.shape)
        out["moments"][name] = chunk_moments(x, m, None if shift is None else getattr(shift, name),
                                             minmax=name not in MEAN_ONLY)
    for name, spec_name in EXACT_FIELDS.items():
        out["hist"][name] = histogram(getattr(scores, name), valid, getattr(options, spec_name))
    out["hist"]["vm_pu"] = histogram(scores.vm_pu, valid[..., None] & scores.energized, options.voltage_hist)
    out["n_valid"] = jnp.sum(valid, axis=1)
    out["n_failed"] = n_failed
    return out
