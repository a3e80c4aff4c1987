"""Solver selection and solve reports (status, time, gap) for cvxpy models.

Defaults: SCIP (pyscipopt) for mixed-integer conic models (MISOCP), HiGHS for
MILPs, Clarabel for continuous conic models. Gurobi, MOSEK, CPLEX or any other
cvxpy solver are used only when named by the user and installed.

SCIP is called through :mod:`sopjax.solvers.backends.scip` (one-pass model
build, cones as quadratic constraints without auxiliary variables) with :data:`SCIP_DEFAULTS`: on these
reconfiguration models SCIP spent most of its time in root-node OBBT, in the
``mpec`` and ``rens`` heuristics and in the aggregation (c-MIR) separator
without improving the search; switching them off cut the IEEE 33
reconfiguration from ~24 s to ~4 s of CPU time. When a problem hands SCIP a
warm start (reconfiguration: the branch-exchange topology) that SCIP accepts,
:data:`SCIP_WARM_STARTED` is applied on top: no primal heuristics (the
incumbent is already optimal or nearly so; the search only proves the bound)
and a shorter strong-branching look-ahead. Measured per problem with
``benchmarks/restoration_bench.py`` (which reports SCIP's own defaults too)
and the parameter scans described in ``docs/restoration.md``.
"""

from __future__ import annotations

import math
import time

import cvxpy as cp
import numpy as np

from sopjax.errors import SopjaxError
from sopjax.solvers.backends.report import SolveInfo
from sopjax.solvers.backends.scip import solve_scip

__all__ = ["SolveInfo", "SolverError", "InfeasibleError", "choose_solver", "solve_problem", "SCIP_DEFAULTS",
           "SCIP_WARM_STARTED"]

# SCIP parameters used unless the caller overrides them (scip_params={...}).
SCIP_DEFAULTS: dict = {
    "propagating/obbt/freq": -1,
    "heuristics/mpec/freq": -1,
    "heuristics/rens/freq": -1,
    "separating/aggregation/freq": -1,
}

# on top of SCIP_DEFAULTS when SCIP accepted a warm start ("*" patterns: scip.expand_params)
SCIP_WARM_STARTED: dict = {
    "heuristics/*/freq": -1,
    "branching/relpscost/maxlookahead": 3,
}


class SolverError(SopjaxError):
    """The solver failed or returned no solution."""


class InfeasibleError(SolverError):
    """The optimisation model has no feasible point."""


def _installed() -> set[str]:
    return set(cp.installed_solvers())


def choose_solver(problem: cp.Problem, solver: str | None = None) -> str:
    """The cvxpy solver name for ``problem``: the user's choice if installed, else the default.

    Raises:
        SopjaxError: if a named solver is not installed or cannot handle the model.
    """
    mixed = problem.is_mixed_integer()
    conic = any(isinstance(c, (cp.constraints.SOC,)) for c in problem.constraints)
    if solver in (None, "", "auto"):
        if mixed:
            return "SCIP" if conic else "HIGHS"
        return "CLARABEL" if conic else "HIGHS"
    name = solver.upper()
    if name not in _installed():
        raise SopjaxError(
            f"solver {solver!r} is not installed; installed: {', '.join(sorted(_installed()))}"
        )
    if name == "HIGHS" and conic:
        raise SopjaxError("HiGHS cannot solve second-order-cone models: use the LinDistFlow formulation or SCIP")
    return name


_STATUS = {
    cp.OPTIMAL: "optimal",
    cp.OPTIMAL_INACCURATE: "time_limit",
    cp.INFEASIBLE: "infeasible",
    cp.INFEASIBLE_INACCURATE: "infeasible",
    cp.UNBOUNDED: "error",
    cp.UNBOUNDED_INACCURATE: "error",
    cp.USER_LIMIT: "time_limit",
}


def _options(name: str, time_limit: float | None, mip_gap: float | None, threads: int | None) -> dict:
    opts: dict = {}
    if name == "SCIP":
        params: dict = {}
        if time_limit is not None:
            params["limits/time"] = float(time_limit)
        if mip_gap is not None:
            params["limits/gap"] = float(mip_gap)
        if threads is not None:
            params["parallel/maxnthreads"] = int(threads)
        opts["scip_params"] = params
    elif name == "HIGHS":
        if time_limit is not None:
            opts["time_limit"] = float(time_limit)
        if mip_gap is not None:
            opts["mip_rel_gap"] = float(mip_gap)
        if threads is not None:
            opts["threads"] = int(threads)
    elif name == "GUROBI":
        if time_limit is not None:
            opts["TimeLimit"] = float(time_limit)
        if mip_gap is not None:
            opts["MIPGap"] = float(mip_gap)
        if threads is not None:
            opts["Threads"] = int(threads)
    elif name == "MOSEK":
        mp = {}
        if time_limit is not None:
            mp["MSK_DPAR_OPTIMIZER_MAX_TIME"] = float(time_limit)
        if mip_gap is not None:
            mp["MSK_DPAR_MIO_TOL_REL_GAP"] = float(mip_gap)
        opts["mosek_params"] = mp
    return opts


def _bound_and_nodes(name: str, problem: cp.Problem, objective: float) -> tuple[float, int]:
    stats = problem.solver_stats
    extra = getattr(stats, "extra_stats", None)
    if name == "SCIP" and isinstance(extra, dict) and "model" in extra:
        model = extra["model"]
        try:
            bound = float(model.getDualbound())
            nodes = int(model.getNNodes())
        except Exception:  # pragma: no cover - depends on SCIP stage
            return objective, 0
        return bound, nodes
    if name == "HIGHS" and extra is not None:
        try:
            info = extra.getInfo() if hasattr(extra, "getInfo") else extra
            dual = float(getattr(info, "mip_dual_bound"))
            internal = float(getattr(info, "objective_function_value"))
            nodes = int(getattr(info, "mip_node_count", 0))
            if not (math.isfinite(dual) and math.isfinite(internal)):
                return objective, max(nodes, 0)
            # HiGHS minimises c.x; cvxpy negates maximisations and adds a constant offset
            delta = dual - internal
            maximize = isinstance(problem.objective, cp.Maximize)
            return (objective - delta if maximize else objective + delta), max(nodes, 0)
        except Exception:  # pragma: no cover
            return objective, 0
    if name == "GUROBI" and extra is not None:
        try:
            return float(extra.ObjBound), int(extra.NodeCount)
        except Exception:  # pragma: no cover
            return objective, 0
    return objective, 0


def solve_problem(
    problem: cp.Problem,
    *,
    solver: str | None = None,
    time_limit: float | None = None,
    mip_gap: float | None = None,
    threads: int | None = None,
    verbose: bool = False,
    raise_on_infeasible: bool = True,
    infeasible_hint: str = "",
    scip_params: dict | None = None,
    warm_start: dict | None = None,
    branch_priority: dict | None = None,
) -> SolveInfo:
    """Solve a cvxpy problem with the chosen solver and report status, times and gap.

    Args:
        problem: the cvxpy problem.
        solver: ``None``/``"auto"`` (SCIP for MISOCP, HiGHS for MILP/LP, Clarabel for SOCP)
            or a cvxpy solver name.
        time_limit: seconds (None = no limit).
        mip_gap: relative gap tolerance (None = solver default).
        threads: solver threads (None = solver default).
        verbose: print the solver log.
        raise_on_infeasible: raise :class:`InfeasibleError` instead of returning.
        infeasible_hint: appended to the infeasibility message (what to relax).
        scip_params: SCIP parameters on top of :data:`SCIP_DEFAULTS` (``{}`` keeps them;
            pass e.g. ``{"propagating/obbt/freq": 0, ...}`` to restore SCIP's own defaults).
        warm_start: ``{cvxpy Variable: value}``, a first solution for SCIP (integer variables
            suffice; :func:`sopjax.solvers.backends.scip.solve_scip`). Ignored by other solvers.
        branch_priority: ``{cvxpy Variable: int}`` SCIP branching priorities. Ignored by other solvers.

    Raises:
        InfeasibleError, SolverError: with the solver status.
    """
    if time_limit is not None and not (time_limit > 0):
        raise SopjaxError(f"time_limit must be positive, got {time_limit}")
    if mip_gap is not None and not (0 <= mip_gap < 1):
        raise SopjaxError(f"mip_gap must be in [0, 1), got {mip_gap}")
    name = choose_solver(problem, solver)
    t0 = time.perf_counter()
    if name == "SCIP":
        return _solve_scip(problem, time_limit, mip_gap, threads, verbose, raise_on_infeasible,
                           infeasible_hint, scip_params, t0, warm_start, branch_priority)
    try:
        problem.solve(solver=name, verbose=verbose, **_options(name, time_limit, mip_gap, threads))
    except cp.error.SolverError as e:
        raise SolverError(f"{name} failed: {e}") from None
    total = time.perf_counter() - t0
    status = _STATUS.get(problem.status, "error")
    stats = problem.solver_stats
    solve_s = float(stats.solve_time) if stats is not None and stats.solve_time is not None else total
    if status == "infeasible":
        if raise_on_infeasible:
            raise InfeasibleError(f"the model is infeasible ({name}){': ' + infeasible_hint if infeasible_hint else ''}")
        return SolveInfo("infeasible", name, float("nan"), float("nan"), float("nan"), total - solve_s, solve_s, total)
    if problem.value is None or not np.isfinite(problem.value):
        raise SolverError(f"{name} returned no solution (status {problem.status})")
    obj = float(problem.value)
    bound, nodes = _bound_and_nodes(name, problem, obj)
    gap = abs(obj - bound) / max(abs(obj), 1e-9)
    if not problem.is_mixed_integer():
        bound, gap = obj, 0.0
    return SolveInfo(status, name, obj, bound, gap, max(total - solve_s, 0.0), solve_s, total, nodes)


def _solve_scip(problem, time_limit, mip_gap, threads, verbose, raise_on_infeasible, hint, scip_params, t0,
                warm_start=None, branch_priority=None):
    params = dict(SCIP_DEFAULTS)
    params.update(_options("SCIP", time_limit, mip_gap, threads)["scip_params"])
    params.update(scip_params or {})
    try:
        out = solve_scip(problem, params=params, verbose=verbose, warm_start=warm_start,
                         branch_priority=branch_priority,
                         params_if_warm={**SCIP_WARM_STARTED, **(scip_params or {})} if warm_start else None)
    except KeyError as e:
        raise SopjaxError(f"unknown SCIP parameter {e}") from None
    total = time.perf_counter() - t0
    scip_status = out["status"]
    if scip_status in ("infeasible", "inforunbd"):
        if raise_on_infeasible:
            raise InfeasibleError(f"the model is infeasible (SCIP){': ' + hint if hint else ''}")
        return SolveInfo("infeasible", "SCIP", float("nan"), float("nan"), float("nan"), out["build_s"],
                         out["solve_s"], total, out["nodes"], scip_status=scip_status)
    if not np.isfinite(out["objective"]):
        raise SolverError(f"SCIP returned no solution (status {scip_status})")
    status = "optimal" if scip_status in ("optimal", "gaplimit") else "time_limit" if scip_status in (
        "timelimit", "nodelimit", "totalnodelimit", "stallnodelimit", "memlimit", "userinterrupt") else "error"
    obj, bound = out["objective"], out["bound"]
    gap = abs(obj - bound) / max(abs(obj), 1e-9)
    return SolveInfo(status, "SCIP", obj, bound, gap, out["build_s"], out["solve_s"], total, out["nodes"],
                     scip_status=scip_status)
