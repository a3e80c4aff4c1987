"""Plans checked with the exact power flow (the Monte Carlo engine's scoring kernel).

:func:`exact_check` re-scores a plan at the forecast; :func:`diagnose_infeasible`
explains an infeasible model by the post-fault state of the area the fault did
not interrupt; :func:`strategies_from_plans` hands plans to the Monte Carlo engine.
Scoring is an application of a plan, not part of building the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sopjax.network import Network
from sopjax.problems.restoration.periods import forecast_pu, plan_periods
from sopjax.problems.restoration.results import RestorationPlan
from sopjax.problems.restoration.settings import RestorationSettings, with_limits
from sopjax.solvers.model import Model
from sopjax.strategies import Strategy, score_once

__all__ = ["diagnose_infeasible", "exact_check", "strategies_from_plans"]


def diagnose_infeasible(net: Network, settings: RestorationSettings) -> str | None:
    """Why a restoration model is infeasible, if the healthy area alone explains it (else None).

    With nothing restored (outage area de-energized, SOPs off), the exact power flow of every
    planning period is checked against the study's voltage limits at the buses the fault did
    not interrupt (their loads cannot be shed unless ``shed_outside``).
    """
    netl = with_limits(net, settings)
    netl = netl.replace(rate_pu=np.ones(net.n_branch))  # branch_loading = |S| (p.u.) for the current check
    opened = list(settings.faulted) + list(settings.keep_open)
    strat = Strategy.build(netl, "post-fault", open=opened)
    imax = None if settings.i_max_pu is None else np.broadcast_to(np.asarray(settings.i_max_pu, float),
                                                                    (net.n_branch,))
    data = plan_periods(net, settings)
    vmin = np.asarray(netl.v_min_pu, float)
    vmax = np.asarray(netl.v_max_pu, float)
    for k, label in enumerate(data["labels"]):
        sc = score_once(netl, strat, p_pv_pu=data["pv_p_pu"][k], p_load_pu=data["p_load_pu"][k],
                        q_load_pu=data["q_load_pu"][k], fault_open=opened,
                        v_min_pu=float(np.min(vmin)), v_max_pu=float(np.max(vmax)))
        vm = np.asarray(sc.vm_pu, float)
        on = np.array(sc.energized, bool)
        on[net.slack_bus] = False
        low = on & (vm < vmin - 1e-9)
        high = on & (vm > vmax + 1e-9)
        for bad, side, lim in ((low, "below v_min", vmin), (high, "above v_max", vmax)):
            if bad.any():
                b = int(np.flatnonzero(bad)[np.argmax(np.abs(vm - lim)[bad])])
                return (f"infeasible before any restoration: bus {net.bus_ids[b]} of the area the fault did not "
                        f"interrupt is at {vm[b]:.4f} p.u. ({label}), {side} = {lim[b]:g} p.u. (substation "
                        f"{float(net.v_slack_pu):g} p.u.); its load cannot be shed (shed_outside = false): "
                        "relax v_min_pu / v_max_pu or change the substation voltage")
        if imax is not None:
            on_br = np.asarray(sc.branch_on, bool)
            v_f = np.maximum(np.minimum(vm[np.asarray(net.f_bus)], vm[np.asarray(net.t_bus)]), 1e-6)
            cur = np.where(on_br, np.asarray(sc.branch_loading, float) / v_f, 0.0)
            over = np.flatnonzero(cur > imax * (1 + 1e-6))
            if over.size:
                k = int(over[np.argmax(cur[over] / imax[over])])
                return (f"infeasible before any restoration: branch {net.branch_label(k)} of the area the fault "
                        f"did not interrupt carries {cur[k]:.4g} p.u. of current ({label}), above i_max_pu = "
                        f"{imax[k]:g}; its loads cannot be shed (shed_outside = false): raise i_max_pu")
    return None


def exact_check(net: Network, plan: RestorationPlan, settings: RestorationSettings, *, model: Model | None = None,
                name: str = "plan") -> dict:
    """Re-check a plan with the exact sweep power flow at the forecast (the scoring kernel).

    Returns:
        dict with ``converged``, ``recovery_ratio``, ``restored_kw``, ``vmin_pu``, ``vmax_pu``,
        ``line_losses_kw``, ``sop_losses_kw``, ``voltage_violation``, ``sop_violation``,
        ``any_violation``, and the model-vs-exact differences ``dv_max_pu`` (largest voltage
        error at energized buses) and ``loss_error_kw``.
    """
    netl = with_limits(net, settings)
    strat = plan.strategy(netl, name)
    fc = forecast_pu(net, settings)
    vmin = settings.v_min_pu if settings.v_min_pu is not None else float(np.min(netl.v_min_pu))
    vmax = settings.v_max_pu if settings.v_max_pu is not None else float(np.max(netl.v_max_pu))
    sc = score_once(netl, strat, p_pv_pu=fc, fault_open=list(settings.faulted) + list(settings.keep_open),
                    v_min_pu=vmin, v_max_pu=vmax)
    kva = net.base_mva * 1e3
    return {
        "converged": bool(sc.converged),
        "recovery_ratio": float(sc.recovery_ratio),
        "restored_kw": float(sc.restored_pu) * kva,
        "vmin_pu": float(sc.vmin_pu),
        "vmax_pu": float(sc.vmax_pu),
        "line_losses_kw": float(sc.line_loss_pu) * kva,
        "sop_losses_kw": float(sc.sop_loss_pu) * kva,
        "voltage_violation": bool(sc.voltage_violation),
        "sop_violation": bool(sc.sop_violation),
        "any_violation": bool(sc.any_violation),
        "vm_pu": np.asarray(sc.vm_pu, float),
        "loss_error_kw": float(sc.line_loss_pu) * kva - plan.line_losses_kw,
        "dv_max_pu": _voltage_error(model, sc, plan),
    }


def _voltage_error(model: Model | None, sc, plan: RestorationPlan) -> float | None:
    if model is None:
        return None
    v = np.sqrt(np.maximum(model.value("v")[0], 0.0))
    on = plan.energized & np.asarray(sc.energized, bool)
    return float(np.max(np.abs(v[on] - np.asarray(sc.vm_pu)[on]))) if on.any() else 0.0


def strategies_from_plans(net: Network, plans: Sequence[tuple[str, RestorationPlan]], settings: RestorationSettings):
    """Strategies for several named plans on the study network (with the study's voltage limits)."""
    netl = with_limits(net, settings)
    return [p.strategy(netl, name) for name, p in plans]
