"""Greedy load pickup at the forecast: shed outage-area loads until the strategy is feasible.

A switching/SOP plan alone often cannot carry the whole outage area (seed 002,
Table 5: a tie switch alone restores 40.6 %). :func:`greedy_pickup` gives a
hand-written strategy a sensible pickup mask: at the nominal forecast it
repeatedly sheds the picked-up outage-area bus with the lowest voltage in a
component that violates a limit (voltage below ``v_min + margin``, a Vf-mode
SOP above ``(1 - capacity_margin)`` of its capacity, or a power flow that
does not converge), then tries to
reconnect the shed buses one at a time, largest load first. It is a
heuristic, not an optimiser (see ``sopjax.solvers`` for the MISOCP); the
resulting strategy is fixed before the Monte Carlo run, so uncertainty can
push it out of limits (seed 002's Table 2 effect).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import partial

import jax
import numpy as np

from sopjax.kernels.scoring import ScoringOptions, score_sample
from sopjax.network import Network
from sopjax.strategies.batch import compile_strategies, scoring_context
from sopjax.strategies.strategy import Strategy, StrategyError

__all__ = ["greedy_pickup", "score_once"]


@partial(jax.jit, static_argnames=("options",))
def _score_one(ctx, arrays, pickup, p, q, pv, options):
    return score_sample(ctx, dataclasses.replace(arrays, pickup=pickup), p, q, pv, options)


def score_once(
    net: Network,
    strategy: Strategy,
    *,
    p_pv_pu: Sequence[float] | np.ndarray,
    fault_open: Sequence[int] = (),
    p_load_pu: np.ndarray | None = None,
    q_load_pu: np.ndarray | None = None,
    v_min_pu: float = 0.95,
    v_max_pu: float = 1.05,
    island_overload: str = "shed",
    options: ScoringOptions = ScoringOptions(),
):
    """Score one strategy on one sample (default: nominal loads) and return numpy arrays.

    A convenience for checks and planning loops; it shares one compiled kernel
    per network size with :func:`greedy_pickup`.

    Returns:
        :class:`~sopjax.kernels.scoring.SampleScore` of numpy values.
    """
    batch = compile_strategies(net, [strategy], fault_open=fault_open)
    arrays = jax.tree_util.tree_map(lambda a: a[0], batch.arrays)
    ctx = scoring_context(net, fault_open=fault_open, v_min_pu=v_min_pu, v_max_pu=v_max_pu,
                          island_overload=island_overload)
    p = np.asarray(net.p_load_pu, float) if p_load_pu is None else np.asarray(p_load_pu, float)
    q = np.asarray(net.q_load_pu, float) if q_load_pu is None else np.asarray(q_load_pu, float)
    sc = _score_one(ctx, arrays, arrays.pickup, p, q, np.asarray(p_pv_pu, float), options)
    return jax.tree_util.tree_map(np.asarray, sc)


def greedy_pickup(
    net: Network,
    strategy: Strategy,
    *,
    p_pv_pu: Sequence[float] | np.ndarray,
    fault_open: Sequence[int],
    p_load_pu: np.ndarray | None = None,
    q_load_pu: np.ndarray | None = None,
    v_min_pu: float = 0.95,
    v_max_pu: float = 1.05,
    margin_pu: float = 0.0,
    capacity_margin: float = 0.0,
    options: ScoringOptions = ScoringOptions(),
) -> Strategy:
    """Shed outage-area loads of ``strategy`` until it is feasible at the forecast.

    Args:
        net: the network.
        strategy: the strategy; its current pickup is the starting point and only
            picked-up outage-area buses are shed.
        p_pv_pu: PV forecast per unit, (pv,).
        fault_open: 1-based branches isolated by the fault (defines the outage area).
        p_load_pu, q_load_pu: loads to plan for, (bus,); default the nominal loads.
        v_min_pu, v_max_pu: voltage limits.
        margin_pu: extra margin above ``v_min_pu`` required at the forecast
            (a robustness knob; 0 reproduces a deterministic plan).
        capacity_margin: fraction of each Vf-mode SOP's capacity kept free at
            the forecast (0.1: plan the island for at most 90 % loading).
        options: scoring settings (power-flow method, SOP overload policy).

    Returns:
        The strategy with the new pickup (``info["pickup"]`` records the method
        and the shed buses).

    Raises:
        StrategyError: if even shedding every outage-area load leaves it infeasible.
    """
    batch = compile_strategies(net, [strategy], fault_open=fault_open)
    arrays = jax.tree_util.tree_map(lambda a: a[0], batch.arrays)
    ctx = scoring_context(net, fault_open=fault_open, v_min_pu=v_min_pu + margin_pu, v_max_pu=v_max_pu)
    p = np.asarray(net.p_load_pu, float) if p_load_pu is None else np.asarray(p_load_pu, float)
    q = np.asarray(net.q_load_pu, float) if q_load_pu is None else np.asarray(q_load_pu, float)
    pv = np.asarray(p_pv_pu, float)
    if pv.shape != (net.pv.count,):
        raise StrategyError(f"p_pv_pu needs one value per PV unit ({net.pv.count}), got shape {pv.shape}")
    outage = np.asarray(ctx.outage)
    root = np.asarray(batch.topologies[0].root)
    a_bus = np.asarray(arrays.sop_a_bus)
    is_vf = np.asarray(arrays.sop_is_vf)
    original = np.asarray(strategy.pickup, float)
    if not (0 <= margin_pu < 1) or not (0 <= capacity_margin < 1):
        raise StrategyError(
            f"strategy {strategy.name!r}: margins must lie in [0, 1), got margin_pu={margin_pu}, "
            f"capacity_margin={capacity_margin}"
        )
    cap_limit = 1.0 - capacity_margin

    def evaluate(pk):
        sc = _score_one(ctx, arrays, pk, p, q, pv, options)
        sc = jax.tree_util.tree_map(np.asarray, sc)
        vm = sc.vm_pu
        energized = np.asarray(batch.topologies[0].energized)
        bad_roots = set(root[sc.v_violation & (vm < np.asarray(ctx.v_min_pu))].tolist())
        over = np.any(sc.sop_loading > cap_limit * (1 + options.cap_tol), axis=-1) & is_vf
        bad_roots |= {int(a_bus[k]) for k in np.flatnonzero(over)}
        if not bool(sc.converged):
            bad_roots |= set(root[energized].tolist())
        feasible = (bool(sc.converged) and not np.any(sc.v_violation) and not np.any(sc.sop_overload)
                    and not np.any(over))
        return feasible, bad_roots, vm

    pk = original.copy()
    shed: list[int] = []
    for _ in range(net.n_bus + 1):
        feasible, bad_roots, vm = evaluate(pk)
        if feasible:
            break
        cand = np.flatnonzero(outage & (pk > 0) & np.isin(root, list(bad_roots)))
        if cand.size == 0:
            break
        b = int(cand[np.argmin(vm[cand])])
        pk[b] = 0.0
        shed.append(b)
    feasible, _, _ = evaluate(pk)
    if not feasible:
        raise StrategyError(
            f"strategy {strategy.name!r}: no pickup of the outage area meets the limits at the forecast "
            "(an over-voltage, or a violation outside the outage area that shedding cannot fix)"
        )
    for b in sorted(shed, key=lambda b: -p[b]):  # reconnect what fits, largest load first
        trial = pk.copy()
        trial[b] = original[b]
        if evaluate(trial)[0]:
            pk = trial
    shed_ids = [net.bus_ids[b] for b in np.flatnonzero(pk < original)]
    return strategy.with_pickup(
        pk, pickup={"method": "greedy at forecast", "margin_pu": margin_pu, "capacity_margin": capacity_margin,
                    "shed": shed_ids}
    )
