"""Static settings of scoring (hashable: part of the jit cache key).

:class:`ScoringOptions` gathers three concerns in one key because one jitted
call applies them all: the power flow and compliance tolerances of
:mod:`~sopjax.kernels.scoring.sample`, the execution layout of
:mod:`~sopjax.kernels.scoring.layout` and the histograms of
:mod:`~sopjax.kernels.scoring.reduce` (:class:`HistSpec`).
"""

from __future__ import annotations

import dataclasses

__all__ = ["HistSpec", "ScoringOptions"]


@dataclasses.dataclass(frozen=True)
class HistSpec:
    """Fixed-bin histogram on ``[lo, hi]`` with atoms at ``lo`` and ``hi`` (static).

    Bin layout: ``[below lo, == lo, bins x (lo, hi) of width w, == hi, above hi]``.
    A quantile that falls inside ``(lo, hi)`` is exact to ``w``; the atoms hold
    point masses exactly (a recovery ratio of 0 or 1 is common).
    """

    lo: float
    hi: float
    bins: int

    @property
    def width(self) -> float:
        return (self.hi - self.lo) / self.bins

    @property
    def size(self) -> int:
        return self.bins + 4


@dataclasses.dataclass(frozen=True)
class ScoringOptions:
    """Static scoring settings (hashable; part of the jit cache key).

    Attributes:
        method: ``"sweep"`` (exact) or ``"lindistflow"``.
        tol, max_iter: sweep convergence settings.
        v_tol_pu: slack on the voltage limits against round-off (p.u.).
        cap_tol: relative slack on SOP capacities and branch ratings.
        ratio_hist: histogram of recovery ratio and VCPI max (on [0, 1]).
        voltage_hist: histogram of bus voltages, vmin and vmax (p.u.).
        strategy_axis: ``"map"`` (loop over strategies; best on CPU) or ``"vmap"``
            (one wide batch; best on GPU); see :func:`~sopjax.kernels.scoring.layout.score_batch`.
        sample_block: samples per vectorised block of the per-sample kernel inside a
            strategy (``None``: all samples of the chunk in one block).
        sweep_layout: with ``strategy_axis="map"`` and the exact sweep, ``"bus_major"``
            (default: :func:`sopjax.kernels.sweep_batch.sweep_batch`, the DistFlow
            recursion on blocks of samples stored bus-major, its own block size) or
            ``"per_sample"`` (``vmap`` of the per-sample current-injection kernel in
            blocks of ``sample_block``). Both solve to ``tol``.
    """

    method: str = "sweep"
    tol: float = 1e-8
    max_iter: int = 100
    v_tol_pu: float = 1e-6
    cap_tol: float = 1e-6
    ratio_hist: HistSpec = HistSpec(0.0, 1.0, 10_000)
    voltage_hist: HistSpec = HistSpec(0.8, 1.2, 800)
    strategy_axis: str = "map"
    sample_block: int | None = 64
    sweep_layout: str = "bus_major"
