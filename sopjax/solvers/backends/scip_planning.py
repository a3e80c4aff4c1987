"""A cvxpy solver class that hands conic data to SCIP in linear time.

cvxpy's own SCIP interface builds each second-order cone by scanning the whole
constraint matrix (``for (i, j), c in A.items()`` once per cone), which costs
O(nnz x cones): minutes for a 24-period planning model with thousands of cones.
:class:`FastSCIP` reuses cvxpy's SCIP interface (problem reduction, result
inversion, status map) and replaces only the model construction with a
row-wise (CSR) pass. Use it as ``problem.solve(solver=FastSCIP(...))``.

Cones are passed with one auxiliary variable per cone row ``y = b - A x`` (as
cvxpy's interface does) but as the norm constraint ``sqrt(sum_{k>0} y_k^2) <= y_0``
rather than the squared form: SCIP's feasibility tolerance is absolute, and on
the squared form a cone of small magnitude (a converter loss ``L >= A|S|`` of a
few kW in p.u.) could be violated by the square root of the tolerance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from cvxpy.reductions.solvers.conic_solvers.scip_conif import SCIP as _CvxpySCIP
from cvxpy.reductions.solvers.conic_solvers.scip_conif import STATUS_MAP
import cvxpy.settings as s
from cvxpy.reductions.solvers.conic_solvers.conic_solver import dims_to_solver_dict

__all__ = ["FastSCIP"]


class FastSCIP(_CvxpySCIP):
    """SCIP through cvxpy with linear-time model construction.

    Args:
        params: SCIP parameters (e.g. ``{"limits/gap": 1e-6, "limits/time": 60}``).
        verbose: show SCIP's log.

    After a solve, ``problem.solver_stats.extra_stats`` holds ``model`` (the
    ``pyscipopt.Model``: ``getGap()``, ``getDualbound()``, ``getNNodes()``),
    ``scip_status`` and ``build_time`` (s spent creating the SCIP model).
    """

    def __init__(self, params: dict | None = None, verbose: bool = False, seed_cuts: bool = False,
                 heuristics: str = "default", warm_start: bool = False):
        super().__init__()
        self.params = dict(params or {})
        self.verbose = bool(verbose)
        self.seed_cuts = bool(seed_cuts)
        if heuristics not in ("default", "off", "fast", "aggressive"):
            raise ValueError(f"heuristics must be default, off, fast or aggressive, got {heuristics!r}")
        self.heuristics = heuristics
        self.warm_start = bool(warm_start)

    def name(self) -> str:
        return "SOPJAX_SCIP"

    def solve_via_data(self, data: dict[str, Any], warm_start: bool, verbose: bool,
                       solver_opts: dict[str, Any], solver_cache: dict | None = None):
        import time

        from pyscipopt import Model, quicksum, sqrt

        t0 = time.perf_counter()
        A = sp.csr_matrix(data[s.A])
        b = np.asarray(data[s.B], dtype=float)
        c = np.asarray(data[s.C], dtype=float)
        dims = dims_to_solver_dict(data[s.DIMS])
        n = c.size
        is_bool = np.zeros(n, dtype=bool)
        is_int = np.zeros(n, dtype=bool)
        is_bool[np.asarray(sorted(data.get(s.BOOL_IDX, ())), dtype=int)] = True
        is_int[np.asarray(sorted(data.get(s.INT_IDX, ())), dtype=int)] = True
        lb = data.get(s.LOWER_BOUNDS)
        ub = data.get(s.UPPER_BOUNDS)

        model = Model()
        model.hideOutput(not (verbose or self.verbose))
        x = []
        for j in range(n):
            if is_bool[j]:
                x.append(model.addVar(name=f"x_{j}", vtype="B", lb=0, ub=1, obj=float(c[j])))
                continue
            lo = None if lb is None or not np.isfinite(lb[j]) else float(lb[j])
            hi = None if ub is None or not np.isfinite(ub[j]) else float(ub[j])
            vtype = "I" if is_int[j] else "C"
            x.append(model.addVar(name=f"x_{j}", vtype=vtype, lb=lo, ub=hi, obj=float(c[j])))

        indptr, indices, values = A.indptr, A.indices, A.data

        def row(i):
            lo_, hi_ = indptr[i], indptr[i + 1]
            return quicksum(float(v) * x[j] for j, v in zip(indices[lo_:hi_], values[lo_:hi_]))

        n_eq, n_leq = dims[s.EQ_DIM], dims[s.LEQ_DIM]
        for i in range(n_eq):
            if indptr[i + 1] > indptr[i]:
                model.addCons(row(i) == float(b[i]))
        for i in range(n_eq, n_eq + n_leq):
            if indptr[i + 1] > indptr[i]:
                model.addCons(row(i) <= float(b[i]))
        x_relax = x_start = None
        if (self.seed_cuts or self.warm_start) and dims[s.SOC_DIM]:
            x_relax = _relaxation_point(A, b, c, dims, lb, ub, is_bool)
        if self.warm_start and x_relax is not None:
            # round the relaxation's binaries up (more capacity allowed keeps feasibility) and re-solve
            fixed = np.where(x_relax[is_bool] > 1e-6, 1.0, 0.0)
            x_start = _relaxation_point(A, b, c, dims, lb, ub, is_bool, fix=(np.flatnonzero(is_bool), fixed))
        if not self.seed_cuts:
            x_relax = None
        n_seed = 0
        soc_vars = []
        start = n_eq + n_leq
        for size in dims[s.SOC_DIM]:
            y = []
            for k in range(size):
                i = start + k
                yk = model.addVar(name=f"soc_{i}", lb=0.0 if k == 0 else None, ub=None)
                model.addCons(yk + row(i) == float(b[i]))
                y.append(yk)
            # the norm form keeps SCIP's absolute feasibility tolerance in the units of y
            # (the squared form would let small cones, e.g. converter losses, be violated by sqrt(tol))
            model.addCons(sqrt(quicksum(yk * yk for yk in y[1:])) <= y[0])
            soc_vars.extend(y)
            if x_relax is not None:
                ybar = b[start:start + size] - A[start:start + size] @ x_relax
                nrm = float(np.linalg.norm(ybar[1:]))
                if nrm > 1e-9 and ybar[0] - nrm <= 1e-6 * max(1.0, abs(ybar[0])):
                    g = ybar[1:] / nrm  # tangent plane of the cone at the relaxation optimum
                    model.addCons(quicksum(float(gk) * yk for gk, yk in zip(g, y[1:]) if gk != 0) <= y[0])
                    n_seed += 1
            start += size
        if self.heuristics != "default":
            from pyscipopt import SCIP_PARAMSETTING

            model.setHeuristics(getattr(SCIP_PARAMSETTING, self.heuristics.upper()))
        opts = {"nlpi/ipopt/optfile": _ipopt_options_file()}
        opts.update(self.params)
        opts.update(solver_opts.pop("scip_params", {}) if solver_opts else {})
        model.setParams(opts)
        if x_start is not None:
            sol = model.createSol()
            for j in range(n):
                val = np.round(x_start[j]) if is_bool[j] or is_int[j] else x_start[j]
                model.setSolVal(sol, x[j], float(val))
            for var, val in zip(soc_vars, b[n_eq + n_leq:] - A[n_eq + n_leq:] @ x_start):
                model.setSolVal(sol, var, float(val))
            model.addSol(sol)  # checked by SCIP when solving starts; discarded if infeasible
        build = time.perf_counter() - t0

        model.optimize()
        status = model.getStatus()
        solution = {
            s.SOLVE_TIME: model.getSolvingTime(),
            s.NUM_ITERS: model.getNLPIterations(),
            "scip_status": status,
            "model": model,
            "build_time": build,
            "seed_cuts": n_seed,
        }
        if model.getNSols() > 0:
            sol = model.getBestSol()
            solution["primal"] = np.array([sol[v] for v in x])
            solution["value"] = float(np.dot(c, solution["primal"]))
        solution["status"] = STATUS_MAP.get(status, s.SOLVER_ERROR)
        stopped = status in ("timelimit", "gaplimit", "nodelimit", "userinterrupt", "memlimit")
        if stopped and model.getNSols() > 0:
            solution["status"] = s.OPTIMAL_INACCURATE
        elif status == "timelimit":
            solution["status"] = s.SOLVER_ERROR
        return solution

    def invert(self, solution: dict[str, Any], inverse_data: dict[str, Any]):
        from cvxpy.reductions.solution import Solution, failure_solution

        status = solution["status"]
        attr = {s.SOLVE_TIME: solution[s.SOLVE_TIME], s.NUM_ITERS: solution[s.NUM_ITERS],
                s.EXTRA_STATS: solution}
        if status in s.SOLUTION_PRESENT and "primal" in solution:
            opt_val = solution["value"] + inverse_data[s.OFFSET]
            primal_vars = {inverse_data[_CvxpySCIP.VAR_ID]: solution["primal"]}
            return Solution(status, opt_val, primal_vars, {}, attr)
        return failure_solution(status, attr)



def _ipopt_options_file() -> str:
    """An Ipopt options file selecting AMD ordering in MUMPS.

    SCIP's NLP heuristics call Ipopt/MUMPS; with the default METIS ordering they
    can corrupt memory on large models (scipopt/PySCIPOpt#1234: "free(): invalid
    pointer" mid-solve, seen here on the 24-period planning model). AMD avoids
    that code path.
    """
    import os
    import tempfile

    path = os.path.join(tempfile.gettempdir(), "sopjax_ipopt_amd.opt")
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write("mumps_pivot_order 0\n")
    return path


def _relaxation_point(A, b, c, dims, lb, ub, is_bool, fix=None) -> np.ndarray | None:
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
    n_eq, n_leq = dims[s.EQ_DIM], dims[s.LEQ_DIM]
    A_cl = sp.vstack([A[: n_eq + n_leq], -eye[has_lo], eye[has_hi], A[n_eq + n_leq:]]).tocsc()
    b_cl = np.concatenate([b[: n_eq + n_leq], -lo[has_lo], hi[has_hi], b[n_eq + n_leq:]])
    cones = [clarabel.ZeroConeT(n_eq), clarabel.NonnegativeConeT(n_leq + has_lo.size + has_hi.size)]
    cones += [clarabel.SecondOrderConeT(int(d)) for d in dims[s.SOC_DIM]]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    sol = clarabel.DefaultSolver(sp.csc_matrix((n, n)), c, A_cl, b_cl, cones, settings).solve()
    if str(sol.status) not in ("Solved", "AlmostSolved"):
        return None
    return np.asarray(sol.x, float)
