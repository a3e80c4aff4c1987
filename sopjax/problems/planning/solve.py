"""Solving the siting and sizing problem: monolithic MISOCP (SCIP) or structured (SOCPs).

Three ways to the same optimum (they must agree; ``benchmarks/planning_bench.py``
times them side by side):

``monolithic``  the whole MISOCP (binary siting, continuous sizes, every
                scenario and period) in SCIP (:func:`sopjax.solvers.backends.scip.solve_scip`,
                cones in the norm form), optionally
                warm-started with the incumbent obtained by rounding the root
                relaxation up.
``bnb``         best-first branch-and-bound over the few siting binaries only.
                Each node is the SOCP relaxation with ``x`` bounded to
                ``[x_lo, x_hi]`` (cvxpy Parameters: the DPP model is
                canonicalised once and re-solved by Clarabel with new bounds).
                A node is pruned when its bound cannot beat the incumbent by
                more than ``tol``; a node whose relaxed ``x`` is integral is a
                feasible plan. Proven optimal when the queue is empty.
``enumerate``   one fixed-site SOCP per admissible site set (``2^candidates``,
                fewer with ``max_sops``/``budget``); the cheapest is optimal.

Clarabel is an interior-point solver and cannot reuse iterates, so "warm start"
here means reusing the canonicalised problem, not the previous solution.
"""

from __future__ import annotations

import heapq
import itertools
import time
import warnings

import cvxpy as cp
import numpy as np

from sopjax.problems.planning.costs import PlanningInputError
from sopjax.problems.planning.problem import PlanningProblem
from sopjax.problems.planning.results import PlanResult
from sopjax.problems.planning.model import OBJECTIVE_SCALE, PlanningModel, build_planning_model
from sopjax.solvers.backends.scip import ipopt_amd_params, solve_scip
from sopjax.solvers.backends.report import SolveInfo
from sopjax.solvers.backends.solve import InfeasibleError, SolverError

__all__ = ["METHODS", "solve_plan", "solve_monolithic", "solve_bnb", "solve_enumeration", "evaluate_plan"]

METHODS = ("bnb", "enumerate", "monolithic")
_INT_TOL = 1e-6
_INFEASIBLE_HINT = (
    "no plan meets the voltage limits in every scenario and period; raise s_max_kva, add candidates, "
    "relax the budget / max_sops, or widen v_min_pu / v_max_pu"
)


# ---------------------------------------------------------------------------
# result extraction
# ---------------------------------------------------------------------------


def _extract(pm: PlanningModel, stats: SolveInfo, sizes_kva: np.ndarray | None = None) -> PlanResult:
    p = pm.problem
    sc = p.scenarios
    K, T, C = sc.n_scenarios, sc.n_periods, p.n_candidates
    kva = p.kva_per_pu
    m = pm.m
    site = np.asarray(pm.x.value, float) > 0.5
    s_i = np.where(site, np.maximum(np.asarray(pm.s_i.value, float), 0.0), 0.0) * kva
    s_j = np.where(site, np.maximum(np.asarray(pm.s_j.value, float), 0.0), 0.0) * kva
    if sizes_kva is not None:  # fixed sizes: report them exactly, not the solver's copy
        s_i, s_j = np.where(site, sizes_kva[0], 0.0), np.where(site, sizes_kva[1], 0.0)
    line = np.asarray(pm.line_loss_pu.value, float).reshape(K, T) * kva
    conv = ((m.value("sop_loss_i") + m.value("sop_loss_j")) * site[None, :]).sum(axis=1).reshape(K, T) * kva
    v = np.sqrt(np.maximum(m.value("v"), 0.0)).reshape(K, T, -1)
    P, Q, l, vv = (m.value(k) for k in ("P", "Q", "l", "v"))
    active = np.asarray(p.status, bool)
    vf = vv[:, np.asarray(p.net.f_bus)]
    gap = (l * vf - P**2 - Q**2)[:, active]

    def sop(name):
        return m.value(name).reshape(K, T, C) * kva * site[None, None, :]

    per_day = lambda x: float(sc.probability @ x.sum(axis=1)) * p.costs.period_hours  # noqa: E731
    costs = p.costs.breakdown(s_i.sum() + s_j.sum(), int(site.sum()), per_day(line), per_day(conv))
    costs["objective"] = float(pm.cvx.value) / OBJECTIVE_SCALE
    return PlanResult(
        labels=p.labels, site=site, s_i_kva=s_i, s_j_kva=s_j, costs=costs,
        probability=sc.probability.copy(), line_loss_kw=line, converter_loss_kw=conv,
        vmin_pu=v.min(axis=2), vmax_pu=v.max(axis=2),
        p_i_kw=sop("sop_p_i"), q_i_kvar=sop("sop_q_i"), p_j_kw=sop("sop_p_j"), q_j_kvar=sop("sop_q_j"),
        relaxation_gap=float(np.max(np.abs(gap), initial=0.0)), stats=stats,
        period_hours=p.costs.period_hours,
    )


def _solve_socp(pm: PlanningModel, solver_opts: dict) -> float | None:
    """Solve the continuous model at its current bounds; objective (scaled) or None if infeasible.

    Clarabel's "optimal_inaccurate" (reduced accuracy reached) is accepted and
    counted in ``pm.m.meta['inaccurate']``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pm.cvx.solve(solver=cp.CLARABEL, **solver_opts)
    except cp.error.SolverError as e:
        raise SolverError(f"Clarabel failed on a planning SOCP: {e}") from None
    if pm.cvx.status == cp.OPTIMAL_INACCURATE:
        pm.m.meta["inaccurate"] = pm.m.meta.get("inaccurate", 0) + 1
    if pm.cvx.status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
        return None
    if pm.cvx.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or pm.cvx.value is None:
        raise SolverError(f"Clarabel returned status {pm.cvx.status} on a planning SOCP")
    return float(pm.cvx.value)


def _check_tol(tol: float) -> float:
    if not (0 <= tol < 1):
        raise PlanningInputError(f"tol must be in [0, 1), got {tol}")
    return float(tol)


def _resolve_best(pm: PlanningModel, best_x: np.ndarray | None, solver_opts: dict) -> None:
    """Re-solve the best site set cleanly, so the model's values are its plan.

    Raises:
        InfeasibleError: no site set was feasible (``best_x`` is None).
    """
    if best_x is None:
        raise InfeasibleError(f"the planning problem is infeasible: {_INFEASIBLE_HINT}")
    pm.set_bounds(x_lo=best_x, x_hi=best_x)
    _solve_socp(pm, solver_opts)


def _report(method: str, solver: str, status: str, t0: float, built: float, objective: float, bound: float,
            gap: float, nodes: int = 0, n_socp: int = 0, scip_status: str = "") -> SolveInfo:
    """The solve report of a planning method that started at ``t0`` and had its model built at ``built``."""
    total = time.perf_counter() - t0
    build = built - t0
    return SolveInfo(status, solver, objective, bound, gap, build, total - build, total, nodes, method,
                     n_socp, scip_status)


# ---------------------------------------------------------------------------
# structured approaches
# ---------------------------------------------------------------------------


def solve_bnb(problem: PlanningProblem, *, tol: float = 1e-6, solver_opts: dict | None = None) -> PlanResult:
    """Best-first branch-and-bound over the siting binaries with SOCP relaxations (Clarabel).

    Args:
        problem: the planning problem.
        tol: relative optimality tolerance: nodes whose bound is within ``tol`` of
            the incumbent are pruned; the reported gap is at most ``tol``.
        solver_opts: options for Clarabel (passed to ``cvxpy.Problem.solve``).

    Returns:
        The optimal :class:`PlanResult`.

    Raises:
        InfeasibleError: if no site set meets the limits.
    """
    tol = _check_tol(tol)
    opts = dict(solver_opts or {})
    t0 = time.perf_counter()
    pm = build_planning_model(problem, integer=False)
    built = time.perf_counter()
    n = problem.n_candidates
    counter = itertools.count()
    heap = [(-np.inf, next(counter), np.zeros(n), np.ones(n))]
    best, best_x, n_socp, nodes = np.inf, None, 0, 0

    def prune(bound):
        return bound >= best - tol * abs(best)

    def try_fixed(mask):
        nonlocal best, best_x, n_socp
        pm.set_bounds(x_lo=mask, x_hi=mask)
        obj = _solve_socp(pm, opts)
        n_socp += 1
        if obj is not None and obj < best:
            best, best_x = obj, mask.copy()

    while heap:
        bound, _, lo, hi = heapq.heappop(heap)
        if prune(bound):
            continue
        nodes += 1
        pm.set_bounds(x_lo=lo, x_hi=hi)
        obj = _solve_socp(pm, opts)
        n_socp += 1
        if obj is None or prune(obj):
            continue
        x = np.clip(np.asarray(pm.x.value, float), 0.0, 1.0)
        free = lo < hi
        frac = np.minimum(x, 1.0 - x) * free
        if np.all(frac <= _INT_TOL):  # integral relaxation: a feasible plan (re-solved cleanly at the end)
            if obj < best:
                best, best_x = obj, np.round(x)
            continue
        if nodes == 1:  # root heuristic: install every site the relaxation uses
            try_fixed(np.where(free, (x > _INT_TOL).astype(float), lo))
        c = int(np.argmax(frac))
        up_lo, dn_hi = lo.copy(), hi.copy()
        up_lo[c], dn_hi[c] = 1.0, 0.0
        heapq.heappush(heap, (obj, next(counter), up_lo, hi.copy()))
        heapq.heappush(heap, (obj, next(counter), lo.copy(), dn_hi))
    _resolve_best(pm, best_x, opts)
    n_socp += 1
    obj = best / OBJECTIVE_SCALE
    stats = _report("bnb", "CLARABEL", "optimal", t0, built, obj, obj * (1 - tol), tol if tol > 0 else 0.0,
                    nodes, n_socp)
    return _extract(pm, stats)


def _admissible(problem: PlanningProblem):
    n = problem.n_candidates
    for bits in itertools.product((0.0, 1.0), repeat=n):
        mask = np.asarray(bits)
        k = int(mask.sum())
        if problem.max_sops is not None and k > problem.max_sops:
            continue
        if problem.budget is not None and problem.costs.fixed_cost_per_site * k > problem.budget:
            continue
        yield mask


def solve_enumeration(problem: PlanningProblem, *, solver_opts: dict | None = None) -> PlanResult:
    """Solve one fixed-site SOCP (sizes free) per admissible site set; return the cheapest.

    Raises:
        InfeasibleError: if no site set meets the limits.
    """
    opts = dict(solver_opts or {})
    t0 = time.perf_counter()
    pm = build_planning_model(problem, integer=False)
    built = time.perf_counter()
    best, best_x, n_socp = np.inf, None, 0
    for mask in _admissible(problem):
        pm.set_bounds(x_lo=mask, x_hi=mask)
        obj = _solve_socp(pm, opts)
        n_socp += 1
        if obj is not None and obj < best:
            best, best_x = obj, mask
    _resolve_best(pm, best_x, opts)
    n_socp += 1
    obj = best / OBJECTIVE_SCALE
    stats = _report("enumerate", "CLARABEL", "optimal", t0, built, obj, obj, 0.0, n_socp - 1, n_socp)
    return _extract(pm, stats)


# ---------------------------------------------------------------------------
# monolithic MISOCP
# ---------------------------------------------------------------------------


def solve_monolithic(
    problem: PlanningProblem,
    *,
    mip_gap: float = 1e-6,
    time_limit: float | None = None,
    warm_start: bool = True,
    heuristics: str = "off",
    verbose: bool = False,
    params: dict | None = None,
) -> PlanResult:
    """Solve the whole MISOCP with SCIP.

    Args:
        problem: the planning problem.
        mip_gap: SCIP's relative gap limit (``limits/gap``).
        time_limit: SCIP's time limit (s); None = none.
        warm_start: give SCIP the plan obtained by rounding the root SOCP relaxation up
            (two Clarabel solves) as a starting incumbent.
        heuristics: SCIP heuristics emphasis: ``"off"`` (default: with the warm start,
            SCIP's NLP heuristics cost more than they find here), ``"default"``, ``"fast"``.
        verbose: print SCIP's log.
        params: further SCIP parameters.

    Returns:
        :class:`PlanResult`; ``stats.status`` is ``"optimal"`` when SCIP proved the
        gap limit, ``"time_limit"`` when it stopped with a feasible plan.

    Raises:
        InfeasibleError: SCIP proved infeasibility. SolverError: no plan found in time.
    """
    _check_tol(mip_gap)
    if time_limit is not None and not time_limit > 0:
        raise PlanningInputError(f"time_limit must be positive, got {time_limit}")
    t0 = time.perf_counter()
    pm = build_planning_model(problem, integer=True)
    built = time.perf_counter()
    scip_params = {**ipopt_amd_params(), "limits/gap": float(mip_gap)}
    if time_limit is not None:
        scip_params["limits/time"] = float(time_limit)
    scip_params.update(params or {})
    with warnings.catch_warnings():  # a time-limited solve is "inaccurate" to cvxpy; stats say so
        warnings.simplefilter("ignore", UserWarning)
        # norm-form cones: with SCIP's absolute tolerance, small converter-loss cones
        # would slip on the squared form (docs/planning.md)
        out = solve_scip(pm.cvx, params=scip_params, verbose=verbose, cone_form="norm",
                         relaxation_start=warm_start, heuristics=heuristics)
    model, scip_status = out["model"], out["status"]
    if scip_status == "infeasible":
        raise InfeasibleError(f"the planning problem is infeasible (SCIP): {_INFEASIBLE_HINT}")
    if pm.cvx.value is None or pm.x.value is None:
        raise SolverError(f"SCIP found no plan (status {scip_status}); raise the time limit")
    offset = float(pm.cvx.value) - float(model.getPrimalbound())
    bound = (float(model.getDualbound()) + offset) / OBJECTIVE_SCALE
    status = "optimal" if scip_status in ("optimal", "gaplimit") else "time_limit"
    value = float(pm.cvx.value) / OBJECTIVE_SCALE
    stats = _report("monolithic", "SCIP", status, t0, built + out["build_s"], value, bound,
                    float(model.getGap()), int(model.getNNodes()), 0, scip_status)
    return _extract(pm, stats)


# ---------------------------------------------------------------------------
# fixed plans (baselines) and the dispatcher
# ---------------------------------------------------------------------------


def evaluate_plan(
    problem: PlanningProblem,
    site,
    s_i_kva=None,
    s_j_kva=None,
    *,
    method: str = "fixed",
    solver_opts: dict | None = None,
) -> PlanResult:
    """Optimal operation and yearly cost of a given plan (sites, and sizes if given).

    Args:
        problem: the planning problem.
        site: installed flag per candidate, (candidate,).
        s_i_kva, s_j_kva: fixed VSC capacities (kVA) per candidate; None = sizes optimised.
        method: label stored in the result's stats.
        solver_opts: Clarabel options.

    Raises:
        PlanningInputError: wrong shapes, a size above ``s_max_kva`` or on an unused site.
        InfeasibleError: the plan cannot meet the limits.
    """
    n = problem.n_candidates
    mask = np.asarray(site, float)
    if mask.shape != (n,) or not np.all(np.isin(mask, (0.0, 1.0))):
        raise PlanningInputError(f"site must be {n} flags (0/1), got {np.asarray(site).tolist()}")
    lo = hi = None
    if s_i_kva is not None or s_j_kva is not None:
        sizes = []
        for name, s in (("s_i_kva", s_i_kva), ("s_j_kva", s_j_kva if s_j_kva is not None else s_i_kva)):
            arr = np.broadcast_to(np.asarray(s, float), (n,)).copy()
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise PlanningInputError(f"{name} must be finite and >= 0, got {arr.tolist()}")
            over = np.flatnonzero(arr > problem.s_max_kva * (1 + 1e-9))
            if over.size:
                c = over[0]
                raise PlanningInputError(
                    f"{name} = {arr[c]:g} kVA at candidate {problem.labels[c]} exceeds s_max_kva = "
                    f"{problem.s_max_kva[c]:g}"
                )
            arr = arr * mask
            sizes.append(arr)
        lo = hi = np.stack(sizes)
    t0 = time.perf_counter()
    pm = build_planning_model(problem, integer=False)
    built = time.perf_counter()
    pm.set_bounds(x_lo=mask, x_hi=mask, s_lo_kva=lo, s_hi_kva=hi)
    obj = _solve_socp(pm, dict(solver_opts or {}))
    if obj is None:
        raise InfeasibleError(f"the plan ({method}) is infeasible: {_INFEASIBLE_HINT}")
    value = obj / OBJECTIVE_SCALE
    stats = _report(method, "CLARABEL", "optimal", t0, built, value, value, 0.0, 1, 1)
    return _extract(pm, stats, lo)


def solve_plan(problem: PlanningProblem, method: str = "bnb", **options) -> PlanResult:
    """Solve the planning problem by ``method`` (``"bnb"``, ``"enumerate"`` or ``"monolithic"``).

    Raises:
        PlanningInputError: unknown method.
    """
    if method == "bnb":
        return solve_bnb(problem, **options)
    if method == "enumerate":
        return solve_enumeration(problem, **options)
    if method == "monolithic":
        return solve_monolithic(problem, **options)
    raise PlanningInputError(f"unknown planning method {method!r}; choose from {', '.join(METHODS)}")
