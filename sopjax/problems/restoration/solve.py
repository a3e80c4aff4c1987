"""Solving the restoration problem: the optional LinDistFlow load bound, the solve, the plan."""

from __future__ import annotations

import dataclasses
import time

from sopjax.network import Network
from sopjax.problems.restoration.build import build_restoration
from sopjax.problems.restoration.check import diagnose_infeasible
from sopjax.problems.restoration.results import RestorationPlan, extract_plan
from sopjax.problems.restoration.settings import RestorationSettings
from sopjax.solvers import formulations
from sopjax.solvers.backends.report import SolveInfo
from sopjax.solvers.backends.solve import InfeasibleError, solve_problem
from sopjax.solvers.model import Model

__all__ = ["restored_load_bound", "solve_restoration"]


def restored_load_bound(
    net: Network, settings: RestorationSettings, *, time_limit: float | None = None
) -> tuple[float, SolveInfo]:
    """A proven upper bound on the restored load of the SOC model (kW), from its LinDistFlow relaxation.

    The bound model (:func:`build_restoration` with ``bound_model=True``) has the
    same switches, pickups, SOP modes and radiality, LinDistFlow power flow with
    circumscribed SOP/rating polygons and only the lower voltage limits; it
    contains every SOC-feasible plan (see :mod:`sopjax.solvers.formulations.lindistflow`).
    It is a MILP, solved by HiGHS; the returned value is HiGHS's proven dual bound.

    Returns:
        (bound in kW, solve report).
    """
    m, prob = build_restoration(net, settings, bound_model=True)
    info = solve_problem(prob, solver="HIGHS", time_limit=time_limit, mip_gap=1e-6,
                         infeasible_hint="no plan meets the lower voltage limits even without losses")
    bound = max(info.bound, info.objective)
    # numerical safety: the cut must never exclude the true optimum
    return bound * (1 + 1e-7) + 1e-6, info


def solve_restoration(
    net: Network,
    settings: RestorationSettings,
    *,
    solver: str | None = None,
    time_limit: float | None = None,
    mip_gap: float | None = 1e-4,
    scip_params: dict | None = None,
    gap_threshold: float = 1e-3,
    verbose: bool = False,
) -> tuple[RestorationPlan, Model]:
    """Build, solve and extract a restoration plan.

    Args:
        net: the network with its PV and SOP tables.
        settings: the restoration settings.
        solver: ``None`` (SCIP for MISOCP, HiGHS for the LinDistFlow MILP) or a cvxpy solver name.
        time_limit: seconds.
        mip_gap: relative optimality gap (default 1e-4, Gurobi's default).
        scip_params: extra SCIP parameters.
        gap_threshold: relative SOC gap above which a branch is flagged.
        verbose: solver log.

    Returns:
        (plan, solved model).

    Raises:
        InfeasibleError: no plan meets the limits (e.g. healthy loads alone violate them).
    """
    t0 = time.perf_counter()
    bound_kw = None
    bound_info = None
    # the LinDistFlow bound only cuts a conic model (a LinDistFlow model is its own bound)
    if settings.options.load_bound_cut and formulations.get(settings.options.formulation).CONIC:
        bound_kw, bound_info = restored_load_bound(net, settings, time_limit=time_limit)
    m, prob = build_restoration(net, settings, load_bound_kw=bound_kw)
    m.meta["load_bound_kw"] = bound_kw
    m.meta["load_bound_info"] = bound_info
    try:
        info = solve_problem(
            prob, solver=solver, time_limit=time_limit, mip_gap=mip_gap, verbose=verbose, scip_params=scip_params,
            infeasible_hint="even with every interrupted load shed the limits cannot be met "
            "(check voltage limits, U_set and current limits)",
        )
    except InfeasibleError as e:
        why = diagnose_infeasible(net, settings)
        if why is None:
            raise
        raise InfeasibleError(why) from None
    total = time.perf_counter() - t0
    info = dataclasses.replace(info, total_s=total, build_s=total - info.solve_s)
    plan = extract_plan(m, m.net, settings, info, gap_threshold)
    return plan, m
