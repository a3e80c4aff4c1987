"""Pass a cvxpy problem to SCIP directly (pyscipopt): one-pass model build, two cone forms.

cvxpy's own SCIP interface scans the whole constraint matrix once per cone
(``for (i, j), c in A.items()``): O(nnz x cones), minutes for a 24-period
planning model with thousands of cones. Here the canonical data
(``problem.get_problem_data``) becomes a SCIP model in one pass over a CSR
matrix, and the solution is mapped back through cvxpy's inverse chain, so
variable values and ``problem.value`` are set as with ``problem.solve``.

How each cone ``||(e_1, ..., e_d)|| <= e_0`` (``e = b - A x``) reaches SCIP is
the option ``cone_form``:

* ``"quadratic"`` (default) -- ``e_1^2 + ... + e_d^2 <= e_0^2`` over the affine
  expressions themselves (with ``e_0 >= 0``), no auxiliary variables: SCIP
  expands, simplifies (a rotated cone ``(l + w)^2 - (l - w)^2`` becomes
  ``4 l w``) and recognises it as convex. Fastest on the switching models
  (restoration, reconfiguration).
* ``"norm"`` -- one auxiliary variable per cone row ``y = b - A x`` and the norm
  constraint ``sqrt(y_1^2 + ... + y_d^2) <= y_0``. SCIP's feasibility tolerance
  is absolute, and on the squared form a cone of small magnitude (a converter
  loss ``L >= A|S|`` of a few kW in p.u.) may be violated by the square root of
  the tolerance: the planning model needs this form (docs/planning.md).

Hooks that let a problem pass what it knows to SCIP:

* ``warm_start`` -- values for some cvxpy variables (typically the switch
  binaries of a heuristic topology, :mod:`sopjax.problems.reconfiguration.heuristic`). When the
  integer variables are given but not the continuous ones, the model is first
  solved with those integers fixed (a convex SOCP) and the completed solution
  is handed to SCIP as its first incumbent, so the search prunes by bound from
  the root node on. A warm start that is infeasible is dropped (reported as
  ``warm_start_objective`` = NaN), never trusted.
* ``relaxation_start`` -- a first incumbent from the continuous relaxation
  (Clarabel) with its binaries rounded up and the rest re-solved; right where
  rounding up only adds capacity (planning: installing a site never hurts feasibility).
* ``branch_priority`` -- a SCIP branching priority per cvxpy variable.
* ``heuristics`` -- SCIP's primal-heuristics emphasis.

Parameter names may contain ``*`` (``"heuristics/*/freq"``): they are expanded
to every matching SCIP parameter (:func:`expand_params`).
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
import time

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from cvxpy.settings import SOLVE_TIME, NUM_ITERS

from sopjax.errors import SopjaxError

__all__ = ["CONE_FORMS", "HEURISTICS", "expand_params", "ipopt_amd_params", "solve_scip"]

CONE_FORMS = ("quadratic", "norm")
HEURISTICS = ("default", "off", "fast", "aggressive")

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


def ipopt_amd_params() -> dict:
    """SCIP parameters pointing Ipopt at an options file selecting AMD ordering in MUMPS.

    SCIP's NLP heuristics call Ipopt/MUMPS; with the default METIS ordering they
    can corrupt memory on large models (scipopt/PySCIPOpt#1234: "free(): invalid
    pointer" mid-solve, seen on the 24-period planning model). AMD avoids that code path.
    """
    path = os.path.join(tempfile.gettempdir(), "sopjax_ipopt_amd.opt")
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write("mumps_pivot_order 0\n")
    return {"nlpi/ipopt/optfile": path}


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


def _relaxation_point(A, b, c, n_eq, n_leq, soc, lb, ub, is_bool, fix=None) -> np.ndarray | None:
    """Optimum of the continuous relaxation of the conic data (Clarabel), or None if not solved.

    ``fix`` = (indices, values) fixes some variables (e.g. rounded binaries).
    """
    import clarabel

    n = c.size
    lo = np.full(n, -np.inf) if lb is None else np.asarray(lb, float).copy()
    hi = np.full(n, np.inf) if ub is None else np.asarray(ub, float).copy()
    lo[is_bool] = np.maximum(lo[is_bool], 0.0)
    hi[is_bool] = np.minimum(hi[is_bool], 1.0)
    if fix is not None:
        lo[fix[0]] = fix[1]
        hi[fix[0]] = fix[1]
    eye = sp.identity(n, format="csr")
    has_lo, has_hi = np.flatnonzero(np.isfinite(lo)), np.flatnonzero(np.isfinite(hi))
    A_cl = sp.vstack([A[: n_eq + n_leq], -eye[has_lo], eye[has_hi], A[n_eq + n_leq:]]).tocsc()
    b_cl = np.concatenate([b[: n_eq + n_leq], -lo[has_lo], hi[has_hi], b[n_eq + n_leq:]])
    cones = [clarabel.ZeroConeT(n_eq), clarabel.NonnegativeConeT(n_leq + has_lo.size + has_hi.size)]
    cones += [clarabel.SecondOrderConeT(int(d)) for d in soc]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    sol = clarabel.DefaultSolver(sp.csc_matrix((n, n)), c, A_cl, b_cl, cones, settings).solve()
    if str(sol.status) not in ("Solved", "AlmostSolved"):
        return None
    return np.asarray(sol.x, float)


def _rounded_relaxation(A, b, c, n_eq, n_leq, soc, lb, ub, is_bool) -> np.ndarray | None:
    """The relaxation optimum with its binaries rounded up and the rest re-solved (None if either fails)."""
    x_relax = _relaxation_point(A, b, c, n_eq, n_leq, soc, lb, ub, is_bool)
    if x_relax is None:
        return None
    # round the relaxation's binaries up (more capacity allowed keeps feasibility) and re-solve
    fixed = np.where(x_relax[is_bool] > 1e-6, 1.0, 0.0)
    return _relaxation_point(A, b, c, n_eq, n_leq, soc, lb, ub, is_bool, fix=(np.flatnonzero(is_bool), fixed))


def _add_cones(model, A, b, x, row, soc, cone_form: str, equality_cone_dim: int | None) -> list:
    """Add the second-order cones (rows ``row`` on) in ``cone_form``; the auxiliary variables (norm form)."""
    from pyscipopt import quicksum, sqrt

    indptr, indices, values = A.indptr, A.indices, A.data
    aux = []
    for d in soc:
        if cone_form == "norm":
            y = []
            for k in range(d):
                i = row + k
                yk = model.addVar(name=f"soc_{i}", lb=0.0 if k == 0 else None, ub=None)
                lo_, hi_ = indptr[i], indptr[i + 1]
                row_i = quicksum(float(v) * x[j] for j, v in zip(indices[lo_:hi_], values[lo_:hi_]))
                model.addCons(yk + row_i == float(b[i]))
                y.append(yk)
            model.addCons(sqrt(quicksum(yk * yk for yk in y[1:])) <= y[0])
            aux.extend(y)
        else:
            e = [quicksum(-values[p] * x[indices[p]] for p in range(indptr[i], indptr[i + 1])) + float(b[i])
                 for i in range(row, row + d)]
            model.addCons(e[0] >= 0)
            if equality_cone_dim is not None and d == equality_cone_dim:
                model.addCons(quicksum(ei * ei for ei in e[1:]) == e[0] * e[0])
            else:
                model.addCons(quicksum(ei * ei for ei in e[1:]) <= e[0] * e[0])
        row += d
    return aux


def _start_solution(model, x, aux, values: np.ndarray, cone_rows: tuple, round_int: np.ndarray | None = None):
    """A SCIP solution holding ``values`` (and the cone rows' auxiliary variables, norm form)."""
    sol = model.createSol()
    for j, v in enumerate(x):
        val = np.round(values[j]) if round_int is not None and round_int[j] else values[j]
        model.setSolVal(sol, v, float(val))
    if aux:
        A_cone, b_cone = cone_rows
        for var, val in zip(aux, b_cone - A_cone @ values):
            model.setSolVal(sol, var, float(val))
    return sol


def solve_scip(
    problem: cp.Problem,
    *,
    params: dict | None = None,
    verbose: bool = False,
    cone_form: str = "quadratic",
    equality_cone_dim: int | None = None,
    objective_limit: float | None = None,
    warm_start: dict | None = None,
    branch_priority: dict | None = None,
    params_if_warm: dict | None = None,
    relaxation_start: bool = False,
    heuristics: str = "default",
) -> dict:
    """Solve ``problem`` with SCIP, building the model directly; set the cvxpy values.

    Args:
        problem: a cvxpy problem with linear, SOC and integrality constraints.
        params: SCIP parameters, e.g. ``{"limits/time": 60, "limits/gap": 1e-6}``.
        verbose: show the SCIP log.
        cone_form: ``"quadratic"`` or ``"norm"`` (see the module docstring).
        equality_cone_dim: (quadratic form) cones of this dimension become *equalities*
            ``e_1^2 + ... = e_0^2`` (non-convex): with 4 this turns the SOC DistFlow
            branch cones ``||(2P, 2Q, l - v)|| <= l + v`` into the exact DistFlow
            ``P^2 + Q^2 = l v`` (the MINLP of seed 002's Table 1), solved by SCIP's
            spatial branch and bound.
        objective_limit: a value (in the problem's own sense and units) that a solution must
            beat, e.g. the objective of a known feasible plan; SCIP prunes every node whose
            bound cannot beat it and reports ``infeasible`` when nothing does.
        warm_start: ``{cvxpy Variable: value}`` for some of the problem's variables (see the
            module docstring); values of every integer variable make a complete start.
        branch_priority: ``{cvxpy Variable: int}``, SCIP branching priority (default 0;
            higher is branched on first).
        params_if_warm: SCIP parameters applied on top of ``params`` only when the warm start
            was accepted (e.g. primal heuristics off: the search then only has to prove the bound).
        relaxation_start: hand SCIP the rounded-up relaxation optimum as a first solution
            (SCIP checks it when solving starts and discards it if infeasible).
        heuristics: SCIP's primal-heuristics emphasis, one of :data:`HEURISTICS`.

    Returns:
        dict with ``status`` (SCIP status string), ``objective``, ``bound``, ``nodes``,
        ``build_s``, ``solve_s``, ``warm_start_objective`` (the first incumbent's value in
        the problem's sense, NaN when none was given or it was infeasible), ``warm_start_s``
        and the SCIP ``model``.

    Raises:
        SopjaxError: an unknown cone form or heuristics emphasis, cones other than SOCs,
            a warm-start or branch-priority variable not in the problem.
    """
    from pyscipopt import Model, quicksum

    if cone_form not in CONE_FORMS:
        raise SopjaxError(f"cone_form must be one of {CONE_FORMS}, got {cone_form!r}")
    if heuristics not in HEURISTICS:
        raise SopjaxError(f"heuristics must be one of {HEURISTICS}, got {heuristics!r}")
    if equality_cone_dim is not None and cone_form != "quadratic":
        raise SopjaxError("equality_cone_dim needs cone_form='quadratic'")
    t0 = time.perf_counter()
    data, chain, inverse_data = problem.get_problem_data(cp.SCIP)
    A = sp.csr_matrix(data["A"])
    b = np.asarray(data["b"], dtype=float)
    c = np.asarray(data["c"], dtype=float)
    dims = data["dims"]
    if dims.exp or dims.psd or getattr(dims, "p3d", None):
        raise SopjaxError("solve_scip handles linear and second-order-cone constraints only")
    n = c.size
    lb = data.get("lower_bounds")
    ub = data.get("upper_bounds")
    is_bool = np.zeros(n, dtype=bool)
    is_int = np.zeros(n, dtype=bool)
    is_bool[np.asarray(sorted(data.get("bool_vars_idx", ())), dtype=int)] = True
    is_int[np.asarray(sorted(data.get("int_vars_idx", ())), dtype=int)] = True
    model = Model()
    model.hideOutput(not verbose)
    x = []
    for j in range(n):
        if is_bool[j]:
            x.append(model.addVar(name=f"x{j}", vtype="B", lb=0, ub=1, obj=float(c[j])))
            continue
        lo = None if lb is None or not np.isfinite(lb[j]) else float(lb[j])
        hi = None if ub is None or not np.isfinite(ub[j]) else float(ub[j])
        x.append(model.addVar(name=f"x{j}", vtype="I" if is_int[j] else "C", lb=lo, ub=hi, obj=float(c[j])))
    # rows: zero cone (equalities), nonneg cone (b - A x >= 0), then SOCs
    indptr, indices, values = A.indptr, A.indices, A.data
    n_eq, n_le = dims.zero, dims.nonneg
    for i in range(n_eq + n_le):
        lo_, hi_ = indptr[i], indptr[i + 1]
        if hi_ > lo_:
            terms = quicksum(float(v) * x[j] for j, v in zip(indices[lo_:hi_], values[lo_:hi_]))
            model.addCons(terms == float(b[i]) if i < n_eq else terms <= float(b[i]))
    x_start = None
    if relaxation_start and dims.soc:
        x_start = _rounded_relaxation(A, b, c, n_eq, n_le, dims.soc, lb, ub, is_bool)
    aux = _add_cones(model, A, b, x, n_eq + n_le, dims.soc, cone_form, equality_cone_dim)
    cone_rows = (A[n_eq + n_le:], b[n_eq + n_le:]) if aux else ()
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
        given = np.full(n, np.nan)
        for var, val in warm_start.items():
            if var.id not in columns:
                raise SopjaxError(f"warm_start: variable {var.name()!r} is not in the problem")
            j0 = columns[var.id]
            given[j0:j0 + var.size] = np.asarray(val, dtype=float).reshape(-1, order="F")
        if np.all(np.isfinite(given)):
            full = given
        else:
            model.hideOutput(True)
            integer = set(np.flatnonzero(is_bool | is_int).tolist())
            full = _complete_warm_start(model, x, given, integer, expand_params(model, dict(params or {})))
            model.hideOutput(not verbose)
        if full is not None:
            sol = _start_solution(model, x, aux, full, cone_rows)
            # SCIP keeps the completion's own solution after freeTransform, so addSol may find a
            # duplicate and return False: feasibility is what counts
            if model.checkSol(sol, printreason=verbose):
                model.addSol(sol, free=True)
                cx = float(c @ full) + offset
                warm_value = -cx if maximize else cx
        warm_s = time.perf_counter() - tw
    if heuristics != "default":
        from pyscipopt import SCIP_PARAMSETTING

        model.setHeuristics(getattr(SCIP_PARAMSETTING, heuristics.upper()))
    if params:
        model.setParams(expand_params(model, params))
    if params_if_warm and np.isfinite(warm_value):
        model.setParams(expand_params(model, params_if_warm))
    if objective_limit is not None:
        # problem value = c.x + offset (minimise) or -(c.x + offset) (maximise, cvxpy flips the sign)
        model.setObjlimit((-float(objective_limit) if maximize else float(objective_limit)) - offset)
    if x_start is not None:
        model.addSol(_start_solution(model, x, aux, x_start, cone_rows, round_int=is_bool | is_int))
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
