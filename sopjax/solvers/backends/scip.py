"""Pass a cvxpy problem to SCIP directly (pyscipopt), cones without auxiliary variables.

cvxpy's own SCIP interface adds one auxiliary variable and one equality per
entry of every second-order cone and scans the whole constraint matrix once
per cone. Here the canonical data (``problem.get_problem_data``) is turned
into a SCIP model in one pass: linear rows from a CSR matrix and each cone
``||(e_1, ..., e_d)|| <= e_0`` as the quadratic constraint
``e_1^2 + ... + e_d^2 <= e_0^2`` over the affine expressions themselves
(with ``e_0 >= 0``), which SCIP expands, simplifies (a rotated cone
``(l + w)^2 - (l - w)^2`` becomes ``4 l w``) and recognises as convex.
The solution is mapped back through cvxpy's inverse chain, so variable
values and ``problem.value`` are set as with ``problem.solve``.

Two hooks let a problem builder pass what it knows to SCIP:

* ``warm_start`` -- values for some cvxpy variables (typically the switch
  binaries of a heuristic topology, :mod:`sopjax.problems.reconfiguration.heuristic`). When the
  integer variables are given but not the continuous ones, the model is first
  solved with those integers fixed (a convex SOCP) and the completed solution
  is handed to SCIP as its first incumbent, so the search prunes by bound from
  the root node on. A warm start that is infeasible is dropped (reported as
  ``warm_start_objective`` = NaN), never trusted.
* ``branch_priority`` -- a SCIP branching priority per cvxpy variable.

Parameter names may contain ``*`` (``"heuristics/*/freq"``): they are expanded
to every matching SCIP parameter (:func:`expand_params`).
"""

from __future__ import annotations

import fnmatch
import time

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.settings import SOLVE_TIME, NUM_ITERS

from sopjax.errors import SopjaxError

__all__ = ["solve_scip"]

_STATUS = {
    "optimal": cp.OPTIMAL,
    "timelimit": cp.OPTIMAL_INACCURATE,
    "gaplimit": cp.OPTIMAL_INACCURATE,
    "nodelimit": cp.OPTIMAL_INACCURATE,
    "totalnodelimit": cp.OPTIMAL_INACCURATE,
    "infeasible": cp.INFEASIBLE,
    "unbounded": cp.UNBOUNDED,
    "inforunbd": cp.INFEASIBLE,
}


def _affine_rows(A: sp.csr_matrix, b: np.ndarray, x: list, rows: range):
    """``b_i - A_i x`` for each row as SCIP expressions (cvxpy's conic form ``A x + s = b``)."""
    from pyscipopt import quicksum

    out = []
    for i in rows:
        lo, hi = A.indptr[i], A.indptr[i + 1]
        terms = quicksum(-A.data[p] * x[A.indices[p]] for p in range(lo, hi))
        out.append(terms + float(b[i]))
    return out


def expand_params(model, params: dict) -> dict:
    """SCIP parameters with ``*`` patterns expanded (``fnmatch``) to every matching parameter name.

    Raises:
        SopjaxError: a pattern that matches no parameter.
    """
    out = {}
    names = None
    for key, val in params.items():
        if "*" not in key:
            out[key] = val
            continue
        if names is None:
            names = list(model.getParams())
        hits = [n for n in names if fnmatch.fnmatchcase(n, key)]
        if not hits:
            raise SopjaxError(f"SCIP parameter pattern {key!r} matches no parameter")
        out.update({n: val for n in hits})
    return out


def _variable_columns(inverse_data, problem: cp.Problem) -> dict[int, int]:
    """Column offset of each of ``problem``'s variables in cvxpy's canonical ``x`` (by variable id)."""
    stuffing = [d for d in inverse_data if hasattr(d, "var_offsets")]
    if not stuffing:
        return {}
    offsets = stuffing[-1].var_offsets
    return {v.id: int(offsets[v.id]) for v in problem.variables() if v.id in offsets}


def _complete_warm_start(model, x, values: np.ndarray, integer: set[int], params: dict) -> np.ndarray | None:
    """Fix the given integer columns, solve the rest, return the full solution (or None)."""
    fixed = [j for j in integer if np.isfinite(values[j])]
    if len(fixed) < len(integer):
        return None
    bounds = {j: (x[j].getLbOriginal(), x[j].getUbOriginal()) for j in fixed}
    for j in fixed:
        val = float(np.round(values[j]))
        model.chgVarLb(x[j], val)
        model.chgVarUb(x[j], val)
    model.setParams({**params, "limits/gap": 1e-6})
    model.optimize()
    full = None
    if model.getNSols() > 0:
        sol = model.getBestSol()
        full = np.array([model.getSolVal(sol, v) for v in x])
    model.freeTransform()
    for j, (lo, hi) in bounds.items():
        model.chgVarLb(x[j], lo)
        model.chgVarUb(x[j], hi)
    model.setParams({"limits/gap": float(params.get("limits/gap", 0.0))})
    return full


def solve_scip(
    problem: cp.Problem,
    *,
    params: dict | None = None,
    verbose: bool = False,
    equality_cone_dim: int | None = None,
    objective_limit: float | None = None,
    warm_start: dict | None = None,
    branch_priority: dict | None = None,
    params_if_warm: dict | None = None,
) -> dict:
    """Solve ``problem`` with SCIP, building the model directly; set the cvxpy values.

    Args:
        problem: a cvxpy problem with linear, SOC and integrality constraints.
        params: SCIP parameters, e.g. ``{"limits/time": 60, "limits/gap": 1e-6}``.
        verbose: show the SCIP log.
        objective_limit: a value (in the problem's own sense and units) that a solution must
            beat, e.g. the objective of a known feasible plan; SCIP prunes every node whose
            bound cannot beat it and reports ``infeasible`` when nothing does.
        equality_cone_dim: cones of this dimension become *equalities*
            ``e_1^2 + ... = e_0^2`` (non-convex): with 4 this turns the SOC DistFlow
            branch cones ``||(2P, 2Q, l - v)|| <= l + v`` into the exact DistFlow
            ``P^2 + Q^2 = l v`` (the MINLP of seed 002's Table 1), solved by SCIP's
            spatial branch and bound.
        warm_start: ``{cvxpy Variable: value}`` for some of the problem's variables (see the
            module docstring); values of every integer variable make a complete start.
        branch_priority: ``{cvxpy Variable: int}``, SCIP branching priority (default 0;
            higher is branched on first).
        params_if_warm: SCIP parameters applied on top of ``params`` only when the warm start
            was accepted (e.g. primal heuristics off: the search then only has to prove the bound).

    Returns:
        dict with ``status`` (SCIP status string), ``objective``, ``bound``, ``nodes``,
        ``build_s``, ``solve_s``, ``warm_start_objective`` (the first incumbent's value in
        the problem's sense, NaN when none was given or it was infeasible), ``warm_start_s``
        and the SCIP ``model``.
    """
    from pyscipopt import Model, quicksum

    t0 = time.perf_counter()
    data, chain, inverse_data = problem.get_problem_data(cp.SCIP)
    A = sp.csr_matrix(data["A"])
    b = np.asarray(data["b"], dtype=float)
    c = np.asarray(data["c"], dtype=float)
    dims = data["dims"]
    if dims.exp or dims.psd or getattr(dims, "p3d", None):
        raise SopjaxError("scip_direct handles linear and second-order-cone constraints only")
    n = c.size
    lb = data.get("lower_bounds")
    ub = data.get("upper_bounds")
    bools = set(int(i) for i in data.get("bool_vars_idx", []))
    ints = set(int(i) for i in data.get("int_vars_idx", []))
    model = Model()
    model.hideOutput(not verbose)
    x = []
    for j in range(n):
        if j in bools:
            x.append(model.addVar(name=f"x{j}", vtype="B", obj=float(c[j])))
            continue
        lo = None if lb is None or not np.isfinite(lb[j]) else float(lb[j])
        hi = None if ub is None or not np.isfinite(ub[j]) else float(ub[j])
        x.append(model.addVar(name=f"x{j}", vtype="I" if j in ints else "C", lb=lo, ub=hi, obj=float(c[j])))
    # rows: zero cone (equalities), nonneg cone (b - A x >= 0), then SOCs
    n_eq, n_le = dims.zero, dims.nonneg
    row = 0
    for i in range(n_eq):
        lo_, hi_ = A.indptr[i], A.indptr[i + 1]
        if hi_ > lo_:
            model.addCons(quicksum(A.data[p] * x[A.indices[p]] for p in range(lo_, hi_)) == float(b[i]))
    row = n_eq
    for i in range(row, row + n_le):
        lo_, hi_ = A.indptr[i], A.indptr[i + 1]
        if hi_ > lo_:
            model.addCons(quicksum(A.data[p] * x[A.indices[p]] for p in range(lo_, hi_)) <= float(b[i]))
    row += n_le
    for d in dims.soc:
        e = _affine_rows(A, b, x, range(row, row + d))
        model.addCons(e[0] >= 0)
        if equality_cone_dim is not None and d == equality_cone_dim:
            model.addCons(quicksum(ei * ei for ei in e[1:]) == e[0] * e[0])
        else:
            model.addCons(quicksum(ei * ei for ei in e[1:]) <= e[0] * e[0])
        row += d
    maximize = isinstance(problem.objective, cp.Maximize)
    offset = float(data["param_prob"].apply_parameters()[1]) if "param_prob" in data else 0.0
    columns = _variable_columns(inverse_data, problem) if (warm_start or branch_priority) else {}
    for var, prio in (branch_priority or {}).items():
        if var.id not in columns:
            raise SopjaxError(f"branch_priority: variable {var.name()!r} is not in the problem")
        for j in range(columns[var.id], columns[var.id] + var.size):
            model.chgVarBranchPriority(x[j], int(prio))
    warm_value, warm_s = float("nan"), 0.0
    if warm_start:
        tw = time.perf_counter()
        values = np.full(n, np.nan)
        for var, val in warm_start.items():
            if var.id not in columns:
                raise SopjaxError(f"warm_start: variable {var.name()!r} is not in the problem")
            values[columns[var.id]:columns[var.id] + var.size] = np.asarray(val, dtype=float).reshape(-1, order="F")
        if np.all(np.isfinite(values)):
            full = values
        else:
            model.hideOutput(True)
            full = _complete_warm_start(model, x, values, bools | ints, expand_params(model, dict(params or {})))
            model.hideOutput(not verbose)
        if full is not None:
            sol = model.createSol()
            for j in range(n):
                model.setSolVal(sol, x[j], float(full[j]))
            # SCIP keeps the completion's own solution after freeTransform, so addSol may find a
            # duplicate and return False: feasibility is what counts
            if model.checkSol(sol, printreason=verbose):
                model.addSol(sol, free=True)
                cx = float(c @ full) + offset
                warm_value = -cx if maximize else cx
        warm_s = time.perf_counter() - tw
    if params:
        model.setParams(expand_params(model, params))
    if params_if_warm and np.isfinite(warm_value):
        model.setParams(expand_params(model, params_if_warm))
    if objective_limit is not None:
        # problem value = c.x + offset (minimise) or -(c.x + offset) (maximise, cvxpy flips the sign)
        model.setObjlimit((-float(objective_limit) if maximize else float(objective_limit)) - offset)
    build_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    model.optimize()
    solve_s = time.perf_counter() - t1
    status = model.getStatus()
    out = {
        "status": status,
        "model": model,
        "build_s": build_s,
        "solve_s": solve_s,
        "nodes": int(model.getNNodes()),
        "objective": float("nan"),
        "bound": float("nan"),
        "warm_start_objective": warm_value,
        "warm_start_s": warm_s,
    }
    if model.getNSols() > 0:
        sol = model.getBestSol()
        primal = np.array([model.getSolVal(sol, v) for v in x])
        value = float(c @ primal)
        solution = {
            "status": _STATUS.get(status, cp.OPTIMAL_INACCURATE),
            "primal": primal,
            "value": value,
            SOLVE_TIME: solve_s,
            NUM_ITERS: 0,
            "model": model,
        }
        problem.unpack_results(solution, chain, inverse_data)
        out["objective"] = float(problem.value)
        # dual bound in the problem's own sense and units (cvxpy may negate and offset)
        delta = float(model.getDualbound()) - value
        out["bound"] = out["objective"] - delta if maximize else out["objective"] + delta
    return out
