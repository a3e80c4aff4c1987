"""Convex SOP dispatch as a DPP second-order-cone program and a cvxpylayers layer.

The model (branch flow / SOC DistFlow, Farivar & Low 2013; SOP model of Cao et
al. 2016), per unit, for one fixed radial topology. For each non-substation bus
``b`` with parent ``a`` and up-branch resistance / reactance ``r, x``::

    P_b - r l_b - sum_{c child of b} P_c = p_net_b          (active balance)
    Q_b - x l_b - sum_{c child of b} Q_c = q_net_b          (reactive balance)
    v_b = v_a - 2 (r P_b + x Q_b) + (r^2 + x^2) l_b        (voltage drop)
    P_b^2 + Q_b^2 <= v_a l_b                               (SOC relaxation of = )
    v_min^2 <= v_b <= v_max^2,   P_b^2 + Q_b^2 <= rate^2 (finite ratings only)

    p_net = p_load - p_pv - p_sop,   q_net = q_load - p_pv tan(phi) - q_sop

and per SOP with VSCs i, j (injections ``s = (p, q)`` into their AC buses)::

    |s_i| <= S_i,  |s_j| <= S_j                            (capacity; S are parameters)
    L_i >= A_i |s_i|,  L_j >= A_j |s_j|                    (converter loss, relaxed)
    p_i + p_j + L_i + L_j = 0                              (DC-link balance)
    q_rel_min S <= q <= q_rel_max S                        (only where tighter than S)

    minimize  sum r l + sum (L_i + L_j) + w sum (v - 1)^2

Parameters (DPP: they enter affinely, never multiplied by each other or by a
variable): bus loads ``p_load, q_load``, PV active outputs ``p_pv`` and the
per-VSC capacities ``S_i, S_j``. The problem is canonicalized once and solved in
batches; :class:`DispatchLayer` wraps it as a ``cvxpylayers`` JAX layer (diffcp
with Clarabel by default) so that ``jax.grad`` / ``jax.jacobian`` of the optimal
value and set-points with respect to all parameters work.

Why a separate formulation: the restoration / planning formulations
(``sopjax.solvers.formulations``) are mixed-integer (switch binaries with big-M
couplings) and read loads and capacities as numbers, so they are neither convex
nor DPP-parametrized; a differentiable layer needs a fixed-structure SOCP in
which every input is a ``cvxpy.Parameter``. This module is that compact model.

Exactness: the SOC relaxation is tight on radial feeders when voltage upper
bounds are not binding (Gan, Li, Topcu & Low 2015); :func:`solve_dispatch`
reports the largest relaxation gap ``v_a l_b - P_b^2 - Q_b^2`` so callers can check.
The converter-loss relaxation ``L >= A|s|`` is tight whenever burning power does
not help (it never lowers the objective unless an upper voltage limit binds).
"""

from __future__ import annotations

import time
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from sopjax.kernels.dispatch import (
    CAPACITY_FLOOR_PU,
    DispatchData,
    DispatchInfeasibleError,
    DispatchInputError,
    DispatchInputs,
    DispatchResult,
    concrete_value,
    check_inputs,
)

__all__ = ["DispatchModel", "build_dispatch", "solve_dispatch", "DispatchLayer", "diagnose_infeasible"]


class DispatchModel:
    """The DPP SOC dispatch of one :class:`~sopjax.kernels.dispatch.DispatchData` (built once).

    Attributes:
        data: the compiled dispatch data.
        problem: the ``cvxpy.Problem``.
        params: ``{"p_load_pu", "q_load_pu", "p_pv_pu" (if PV), "s_rated_i_pu", "s_rated_j_pu"}``.
        vars: the variables by name (``P, Q, l, v, p_i, q_i, p_j, q_j, L_i, L_j``).
        cap_i, cap_j: the capacity cone constraint of each VSC (their first dual is ``cap_dual``).
    """

    def __init__(self, data: DispatchData):
        self.data = data
        nk, ns, npv, nb = data.n_kid, data.n_sop, data.n_pv, data.n_bus
        kid_bus = np.asarray(data.kid_bus)
        parent = np.asarray(data.parent_kid)
        r, x = np.asarray(data.r), np.asarray(data.x)
        z2 = r**2 + x**2

        par = {
            "p_load_pu": cp.Parameter(nb, name="p_load_pu"),
            "q_load_pu": cp.Parameter(nb, name="q_load_pu"),
        }
        if npv:
            par["p_pv_pu"] = cp.Parameter(npv, name="p_pv_pu", nonneg=True)
        par["s_rated_i_pu"] = cp.Parameter(ns, name="s_rated_i_pu", nonneg=True)
        par["s_rated_j_pu"] = cp.Parameter(ns, name="s_rated_j_pu", nonneg=True)

        P, Q = cp.Variable(nk, name="P"), cp.Variable(nk, name="Q")
        l = cp.Variable(nk, name="l")
        v = cp.Variable(nk, name="v")
        p_i, q_i = cp.Variable(ns, name="p_i"), cp.Variable(ns, name="q_i")
        p_j, q_j = cp.Variable(ns, name="p_j"), cp.Variable(ns, name="q_j")
        L_i, L_j = cp.Variable(ns, name="L_i"), cp.Variable(ns, name="L_j")

        def incidence(kid_index, n_dev):
            """(kid, device) 0/1 matrix; devices at the substation (index nk) drop out."""
            kid_index = np.asarray(kid_index)
            keep = np.flatnonzero(kid_index < nk)
            return sp.csr_matrix((np.ones(keep.size), (kid_index[keep], keep)), shape=(nk, n_dev))

        M_i = incidence(data.sop_kid_i, ns)
        M_j = incidence(data.sop_kid_j, ns)
        sel = sp.csr_matrix((np.ones(nk), (np.arange(nk), kid_bus)), shape=(nk, nb))
        p_net = sel @ par["p_load_pu"] - M_i @ p_i - M_j @ p_j
        q_net = sel @ par["q_load_pu"] - M_i @ q_i - M_j @ q_j
        if npv:
            M_pv = incidence(data.pv_kid, npv)
            p_net = p_net - M_pv @ par["p_pv_pu"]
            q_net = q_net - (M_pv @ sp.diags(np.asarray(data.pv_tan))) @ par["p_pv_pu"]

        has_kid_parent = np.flatnonzero(parent < nk)
        C = sp.csr_matrix(  # C[a, b] = 1 if kid b is a child of kid a
            (np.ones(has_kid_parent.size), (parent[has_kid_parent], has_kid_parent)), shape=(nk, nk)
        )
        Pi = sp.csr_matrix(  # parent |V|^2 selection; substation parents take v0^2
            (np.ones(has_kid_parent.size), (has_kid_parent, parent[has_kid_parent])), shape=(nk, nk)
        )
        v0 = np.where(parent < nk, 0.0, float(data.v0_sq))
        v_par = Pi @ v + v0

        cons = [
            P - C @ P - cp.multiply(r, l) == p_net,
            Q - C @ Q - cp.multiply(x, l) == q_net,
            v == v_par - 2 * (cp.multiply(r, P) + cp.multiply(x, Q)) + cp.multiply(z2, l),
            cp.SOC(l + v_par, cp.vstack([2 * P, 2 * Q, l - v_par]), axis=0),
        ]
        self.v_limits = [v >= np.asarray(data.vmin_sq), v <= np.asarray(data.vmax_sq)]
        cons += self.v_limits
        rk = np.asarray(data.rate_kid)
        if rk.size:
            cons.append(cp.SOC(np.asarray(data.rate), cp.vstack([P[rk], Q[rk]]), axis=0))
        S_i, S_j = par["s_rated_i_pu"], par["s_rated_j_pu"]
        # one cone per VSC: cvxpylayers reads a constraint's dual as a contiguous
        # slice, which is only right for a single cone (a vectorized SOC interleaves
        # the t and x parts of its cones in the dual vector)
        self.cap_i = [cp.SOC(S_i[k], cp.hstack([p_i[k], q_i[k]])) for k in range(ns)]
        self.cap_j = [cp.SOC(S_j[k], cp.hstack([p_j[k], q_j[k]])) for k in range(ns)]
        a_i, a_j = np.asarray(data.loss_i), np.asarray(data.loss_j)
        cons += self.cap_i + self.cap_j
        cons += [
            cp.SOC(L_i, cp.vstack([cp.multiply(a_i, p_i), cp.multiply(a_i, q_i)]), axis=0),
            cp.SOC(L_j, cp.vstack([cp.multiply(a_j, p_j), cp.multiply(a_j, q_j)]), axis=0),
            p_i + p_j + L_i + L_j == 0,
        ]
        qmax, qmin = np.asarray(data.q_rel_max), np.asarray(data.q_rel_min)
        for flat in data.q_lim_rows:
            side, k = divmod(flat, ns)
            q, S = (q_i, S_i) if side == 0 else (q_j, S_j)
            cons += [q[k] <= qmax[k, side] * S[k], q[k] >= qmin[k, side] * S[k]]

        objective = cp.sum(cp.multiply(r, l)) + cp.sum(L_i + L_j)
        w = float(data.voltage_weight)
        if w > 0:
            objective = objective + w * cp.sum_squares(v - 1.0)
        self.problem = cp.Problem(cp.Minimize(objective), cons)
        if not self.problem.is_dpp():  # pragma: no cover - guards future edits
            raise RuntimeError("dispatch model is not DPP")
        self.params = par
        self.vars = dict(P=P, Q=Q, l=l, v=v, p_i=p_i, q_i=q_i, p_j=p_j, q_j=q_j, L_i=L_i, L_j=L_j)

    # ------------------------------------------------------------------ helpers
    def param_values(self, inputs: DispatchInputs) -> list:
        """The layer's parameter arrays, in ``self.params`` order (capacities floored)."""
        out = [inputs.p_load_pu, inputs.q_load_pu]
        if "p_pv_pu" in self.params:
            out.append(inputs.p_pv_pu)
        out += [_floor(inputs.s_rated_i_pu), _floor(inputs.s_rated_j_pu)]
        return out


def _floor(s):
    """Capacity raised to CAPACITY_FLOOR_PU with a straight-through gradient (right derivative at 0)."""
    if isinstance(s, np.ndarray) or np.isscalar(s):
        return np.maximum(np.asarray(s, float), CAPACITY_FLOOR_PU)
    import jax
    import jax.numpy as jnp

    return s + jax.lax.stop_gradient(jnp.maximum(s, CAPACITY_FLOOR_PU) - s)


def build_dispatch(data: DispatchData) -> DispatchModel:
    """Build (and DPP-check) the SOC dispatch model of ``data``."""
    return DispatchModel(data)


# ---------------------------------------------------------------------------
# reference solve with cvxpy (numpy in, numpy out, duals and relaxation gap)
# ---------------------------------------------------------------------------


def solve_dispatch(
    model: DispatchModel,
    inputs: DispatchInputs,
    *,
    solver: str = "CLARABEL",
    diagnose: bool = True,
    **solver_opts: Any,
) -> tuple[DispatchResult, dict]:
    """Solve one operating point with cvxpy (not differentiable; the reference).

    Args:
        model: from :func:`build_dispatch`.
        inputs: one sample (no batch axis).
        solver: cvxpy solver name (default Clarabel).
        diagnose: on infeasibility, solve an elastic model to name the limiting bus.
        solver_opts: passed to ``Problem.solve``.

    Returns:
        (result as numpy arrays, info dict with ``relaxation_gap`` (largest
        ``v_a l - P^2 - Q^2``), ``loss_gap`` (largest ``L - A|s|``), ``solve_time_s``, ``status``).

    Raises:
        DispatchInputError: bad inputs. DispatchInfeasibleError: no feasible set-point.
    """
    data = model.data
    batch = check_inputs(data, inputs)
    if batch:
        raise DispatchInputError(f"solve_dispatch takes one sample, got batch shape {batch}")
    for p, val in zip(model.params.values(), model.param_values(inputs)):
        p.value = np.asarray(val, float)
    t0 = time.perf_counter()
    try:
        model.problem.solve(solver=solver, **solver_opts)
    except cp.error.SolverError as e:
        raise DispatchInfeasibleError(_infeasible_message(model, inputs, diagnose, str(e))) from None
    dt = time.perf_counter() - t0
    if model.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise DispatchInfeasibleError(_infeasible_message(model, inputs, diagnose, model.problem.status))
    V = {k: np.asarray(v.value, float) for k, v in model.vars.items()}
    dual_i = np.array([float(np.ravel(c.dual_value[0])[0]) for c in model.cap_i])
    dual_j = np.array([float(np.ravel(c.dual_value[0])[0]) for c in model.cap_j])
    res = _result_from_vars(data, V, dual_i, dual_j, np)
    v_par = np.concatenate([V["v"], [float(data.v0_sq)]])[np.asarray(data.parent_kid)]
    gap = v_par * V["l"] - V["P"] ** 2 - V["Q"] ** 2
    lgap = np.concatenate(
        [
            V["L_i"] - np.asarray(data.loss_i) * np.hypot(V["p_i"], V["q_i"]),
            V["L_j"] - np.asarray(data.loss_j) * np.hypot(V["p_j"], V["q_j"]),
        ]
    )
    info = {
        "relaxation_gap": float(np.max(np.abs(gap))),
        "loss_gap": float(np.max(np.abs(lgap))),
        "solve_time_s": dt,
        "status": model.problem.status,
    }
    return res, info


def _result_from_vars(data: DispatchData, V: dict, dual_i, dual_j, xp) -> DispatchResult:
    r = xp.asarray(data.r)
    line = xp.sum(r * V["l"], axis=-1)
    conv = V["L_i"] + V["L_j"]
    obj = line + xp.sum(conv, axis=-1)
    w = float(data.voltage_weight)
    if w > 0:
        obj = obj + w * xp.sum((V["v"] - 1.0) ** 2, axis=-1)
    v = V["v"]
    batch = v.shape[:-1]
    vm = xp.full(batch + (data.n_bus,), float(np.sqrt(data.v0_sq)))
    kid_bus = np.asarray(data.kid_bus)
    if xp is np:
        vm[..., kid_bus] = np.sqrt(np.maximum(v, 0.0))
    else:
        vm = vm.at[..., kid_bus].set(xp.sqrt(xp.maximum(v, 0.0)))
    ok = xp.ones(batch, dtype=bool)
    return DispatchResult(
        p_i=V["p_i"], q_i=V["q_i"], p_j=V["p_j"], q_j=V["q_j"],
        converter_loss=conv, line_loss=line, objective=obj, vm_pu=vm,
        cap_dual_i=dual_i, cap_dual_j=dual_j,
        converged=ok, iterations=xp.zeros(batch, dtype=np.int32), infeasibility=xp.zeros(batch),
    )


# ---------------------------------------------------------------------------
# infeasibility diagnosis: elastic voltage / rating limits
# ---------------------------------------------------------------------------


def diagnose_infeasible(model: DispatchModel, inputs: DispatchInputs) -> tuple[str, float] | None:
    """Name the limit that makes an operating point infeasible.

    Solves the dispatch with every voltage and rating limit softened by a
    non-negative slack and minimizes the total slack; returns the most violated
    limit as (description, violation), or None if nothing needs to be violated.
    """
    data = model.data
    for p, val in zip(model.params.values(), model.param_values(inputs)):
        p.value = np.asarray(val, float)
    V = model.vars
    nk = data.n_kid
    lo, hi = cp.Variable(nk, nonneg=True), cp.Variable(nk, nonneg=True)
    keep = [c for c in model.problem.constraints if all(c is not w for w in model.v_limits)]
    keep += [V["v"] + lo >= np.asarray(data.vmin_sq), V["v"] - hi <= np.asarray(data.vmax_sq)]
    prob = cp.Problem(cp.Minimize(cp.sum(lo + hi)), keep)
    try:
        prob.solve(solver="CLARABEL")
    except cp.error.SolverError:
        return None
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return None
    lo_v, hi_v = np.asarray(lo.value), np.asarray(hi.value)
    k_lo, k_hi = int(np.argmax(lo_v)), int(np.argmax(hi_v))
    if max(lo_v[k_lo], hi_v[k_hi]) < 1e-7:
        return None
    if lo_v[k_lo] >= hi_v[k_hi]:
        vmin = float(np.sqrt(np.asarray(data.vmin_sq)[k_lo]))
        best = float(np.sqrt(max(np.asarray(data.vmin_sq)[k_lo] - lo_v[k_lo], 0.0)))
        return (f"{data.kid_label(k_lo)} cannot be held above v_min = {vmin:.4f} p.u. "
                f"(best reachable {best:.4f} p.u.)", float(lo_v[k_lo]))
    vmax = float(np.sqrt(np.asarray(data.vmax_sq)[k_hi]))
    best = float(np.sqrt(np.asarray(data.vmax_sq)[k_hi] + hi_v[k_hi]))
    return (f"{data.kid_label(k_hi)} cannot be held below v_max = {vmax:.4f} p.u. "
            f"(best reachable {best:.4f} p.u.)", float(hi_v[k_hi]))


def _infeasible_message(model: DispatchModel, inputs: DispatchInputs, diagnose: bool, status: str,
                        sample: str = "") -> str:
    head = f"no SOP set-point satisfies the operating limits{sample} (solver: {status})"
    if not diagnose:
        return head
    found = diagnose_infeasible(model, inputs)
    if found is None:
        return head
    return f"{head}: {found[0]}"


# ---------------------------------------------------------------------------
# the cvxpylayers layer (JAX interface)
# ---------------------------------------------------------------------------


class DispatchLayer:
    """Differentiable batched SOP dispatch: a ``cvxpylayers`` JAX layer over :class:`DispatchModel`.

    The problem is canonicalized once at construction. Calling the layer with
    :class:`~sopjax.kernels.dispatch.DispatchInputs` (with or without one leading
    batch axis) returns a :class:`~sopjax.kernels.dispatch.DispatchResult` of JAX
    arrays that ``jax.grad`` / ``jax.jacrev`` differentiate by implicit
    differentiation of the cone program. Not ``jit``-able: the solver runs on the host.

    Args:
        model: the dispatch model.
        mode: ``"exact"`` (default): Clarabel and the exact sparse adjoint of this
            module (also supports ``jax.jacrev``); ``"lsqr"`` / ``"dense"``:
            cvxpylayers' stock diffcp context with Clarabel and that diffcp
            derivative mode (the naive baseline of benchmarks/dispatch_bench.py;
            it does not detect infeasibility and supports ``jax.grad`` only).
        n_jobs: threads over the batch (Clarabel solves and adjoint factorizations; both
            release the GIL, so this buys wall time where cores are free, not CPU time).
        solver_args: Clarabel settings (e.g. ``{"tol_gap_rel": 1e-9}``). By default one
            solver per thread is set up once per batch matrix, with a Ruiz scaling
            computed once; giving ``equilibrate_enable`` switches to a fresh Clarabel
            solver per problem with that setting.
    """

    def __init__(self, model: DispatchModel, *, mode: str = "exact", n_jobs: int = 1,
                 solver_args: dict | None = None):
        from cvxpylayers.jax import CvxpyLayer

        if mode not in ("exact", "lsqr", "dense", "lsmr"):
            raise DispatchInputError(f"unknown layer mode {mode!r}; choose exact, lsqr, dense or lsmr")
        if int(n_jobs) < 1:
            raise DispatchInputError(f"n_jobs must be >= 1, got {n_jobs}")
        self.model = model
        self.mode = mode
        V = model.vars
        self._names = ["p_i", "q_i", "p_j", "q_j", "L_i", "L_j", "l", "v"]
        variables = [V[n] for n in self._names]
        variables += [c.dual_variables[0] for c in model.cap_i + model.cap_j]
        self.layer = CvxpyLayer(model.problem, parameters=list(model.params.values()), variables=variables)
        if mode == "exact":
            self.layer.ctx.solver_ctx = _fast_context(self.layer.ctx, dict(solver_args or {}), int(n_jobs))
            self.solver_args = {}
            self.derivative_args = {}
        else:
            # diffcp's solve-only path rejects derivative options, so they are added
            # per call, only when the inputs are being differentiated
            self.solver_args = {"solve_method": "Clarabel", "n_jobs_forward": int(n_jobs)}
            self.solver_args.update(solver_args or {})
            self.derivative_args = {"mode": mode, "n_jobs_backward": int(n_jobs)}

    def __call__(self, inputs: DispatchInputs) -> DispatchResult:
        import jax
        import jax.numpy as jnp
        from diffcp.cone_program import SolverError as DiffcpSolverError

        data = self.model.data
        batch = check_inputs(data, inputs)
        if len(batch) > 1:
            raise DispatchInputError(f"the cvxpylayers dispatch takes at most one batch axis, got {batch}")
        params = [jnp.asarray(p, jnp.float64) for p in self.model.param_values(inputs)]
        args = dict(self.solver_args)
        if any(isinstance(p, jax.core.Tracer) for p in params):
            args.update(self.derivative_args)
        try:
            out = self.layer(*params, solver_args=args)
        except (DiffcpSolverError, cp.error.SolverError, RuntimeError) as e:
            raise DispatchInfeasibleError(self._explain(inputs, batch, str(e))) from None
        nv, ns = len(self._names), data.n_sop
        V = dict(zip(self._names, out[:nv]))
        duals = [jnp.reshape(d, batch) for d in out[nv:]]
        dual_i = jnp.stack(duals[:ns], axis=-1)
        dual_j = jnp.stack(duals[ns:], axis=-1)
        return _result_from_vars(data, V, dual_i, dual_j, jnp)

    def _explain(self, inputs: DispatchInputs, batch: tuple, err: str) -> str:
        """Find the infeasible sample (host-side re-solve) and name its limiting bus."""
        vals = [concrete_value(a) for a in inputs]
        if any(v is None for v in vals):
            return f"no SOP set-point satisfies the operating limits (solver: {err})"
        samples = range(batch[0]) if batch else [None]
        for i in samples:
            one = DispatchInputs(*(v if i is None else v[i] for v in vals))
            try:
                solve_dispatch(self.model, one, diagnose=False)
            except DispatchInfeasibleError:
                where = "" if i is None else f" in sample {i}"
                return _infeasible_message(self.model, one, True, "infeasible", where)
        return f"the cone solver failed (solver: {err})"


# ---------------------------------------------------------------------------
# a faster solver context for the cvxpylayers layer: Clarabel + exact sparse adjoint
# ---------------------------------------------------------------------------
#
# cvxpylayers' diffcp context solves each cone program with Clarabel (through
# diffcp) and differentiates it with LSQR on the derivative operator M of
# Agrawal et al. (2019), "Differentiating through a cone program". For a
# feeder-sized problem LSQR needs hundreds of iterations (M is ill-conditioned
# at an interior-point solution), which dominates the backward pass. The context
# below keeps cvxpylayers' canonicalization, parameter maps and custom_vjp, calls
# Clarabel directly (one solver per worker, set up once per batch matrix A), and
# applies the *same* adjoint formula with M assembled from a fixed sparsity
# pattern and factorized once per problem (SuperLU on its sparse core), falling
# back to LSQR only if M is numerically singular. Its backward is a
# ``pure_callback`` with sequential vmap, so ``jax.jacrev`` works too.


def _clarabel_cones(cone_dict: dict):
    import clarabel

    bad = [k for k in ("s", "ep", "ed", "p") if cone_dict.get(k)]
    if bad:  # pragma: no cover - the dispatch model has only these cones
        raise NotImplementedError(f"cones {bad} are not supported by the fast dispatch context")
    cones = []
    if cone_dict.get("z", 0):
        cones.append(clarabel.ZeroConeT(int(cone_dict["z"])))
    if cone_dict.get("l", 0):
        cones.append(clarabel.NonnegativeConeT(int(cone_dict["l"])))
    for q in cone_dict.get("q", []):
        cones.append(clarabel.SecondOrderConeT(int(q)))
    return cones


def _dproj_dual(v: np.ndarray, cone_dict: dict):
    """Derivative of the projection onto the dual cone K* at ``v``: block-diagonal (rows, cols, vals).

    Zero cone: its dual is the free cone (identity). Non-negative orthant: 0/1
    diagonal. Second-order cone ``(t, x)``: identity inside, zero in the polar
    cone, else ``1/2 [[1, u^T], [u, (1 + t/|x|) I - (t/|x|) u u^T]]`` with ``u = x/|x|``.
    The pattern (rows, cols) depends only on the cones (full blocks for the SOCs).
    """
    rows, cols = _dproj_pattern(cone_dict)
    return rows, cols, _dproj_dual_batch(np.asarray(v, float)[None], cone_dict)[0]


def _cone_starts(cone_dict: dict):
    nz, nl = int(cone_dict.get("z", 0)), int(cone_dict.get("l", 0))
    sizes = np.asarray(cone_dict.get("q", []), dtype=int)
    starts = nz + nl + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) if sizes.size else sizes
    return nz, nl, sizes, starts


def _dproj_pattern(cone_dict: dict):
    """(rows, cols) of :func:`_dproj_dual`'s entries, in its value order."""
    nz, nl, sizes, starts = _cone_starts(cone_dict)
    rows, cols = [np.arange(nz + nl)], [np.arange(nz + nl)]
    for q in np.unique(sizes):
        st = starts[sizes == q]
        r, c = np.meshgrid(np.arange(q), np.arange(q), indexing="ij")
        rows.append((st[:, None, None] + r).ravel())
        cols.append((st[:, None, None] + c).ravel())
    return np.concatenate(rows), np.concatenate(cols)


class _KKTPattern:
    """The fixed sparsity pattern of the adjoint system of one canonical problem.

    cvxpylayers' DPP canonicalization puts every parameter of the dispatch into
    ``b``: ``A`` and the cone sizes are the same for every problem of a batch, so
    the pattern of ``M^T`` of :class:`_BatchAdjoint` (with full second-order-cone
    blocks in ``D``) is fixed.
    It is built once; per problem only values are computed, for the whole batch at
    once (numpy), and each problem is factorized from its CSC values without any
    per-problem sparse-matrix assembly.

    What is factorized is the core ``R`` of ``M^T`` without the row and column of
    the homogeneous variable ``tau``::

        M^T = [[R, a], [g^T, 0]],   a = [-c; -D b],   g = [c; b],
        R = [[0, -A^T], [D A, I - D]]

    and the bordered system ``[[M^T, z], [z^T, 0]]`` of :class:`_BatchAdjoint` is
    solved exactly by eliminating ``tau`` and the border multiplier (a 2 x 2
    system, three solves with ``R``). ``R`` has no dense row or column, so its LU
    has about a third of the fill of the bordered matrix. If ``R`` is singular the
    full bordered matrix is factorized instead.
    """

    def __init__(self, A: sp.csc_matrix, cone_dict: dict):
        m, n = A.shape
        self.m, self.n, self.N = m, n, n + m + 1
        self.cone_dict = cone_dict
        Acoo = A.tocoo()
        order = np.lexsort((Acoo.row, Acoo.col))  # CSC order: cvxpylayers' dA layout
        ra, ca, va = Acoo.row[order], Acoo.col[order], Acoo.data[order]
        self.ra, self.ca = ra, ca
        dr, dc = _dproj_pattern(cone_dict)
        self.dr, self.dc = dr, dc
        # DA = D A: values linear in D's values, DA_vals = D_vals @ G (G: nnz(D) x nnz(DA))
        Ar = A.tocsr()
        cnt = np.diff(Ar.indptr)[dc]
        e_rep = np.repeat(np.arange(dr.size), cnt)
        a_idx = np.concatenate([np.arange(Ar.indptr[k], Ar.indptr[k + 1]) for k in dc]) if dr.size else dc
        key = dr[e_rep].astype(np.int64) * n + Ar.indices[a_idx]
        uk, inv = np.unique(key, return_inverse=True)
        self.da_row, self.da_col = (uk // n).astype(np.int64), (uk % n).astype(np.int64)
        self.G = sp.csr_matrix((Ar.data[a_idx], (e_rep, inv)), shape=(dr.size, uk.size))
        # Db = D b: Db = (D_vals * b[:, dc]) @ R
        self.Rb = sp.csr_matrix((np.ones(dr.size), (np.arange(dr.size), dr)), shape=(dr.size, m))
        self.neg_a = -va
        ar_m = np.arange(m)
        self.core = self._csc_map([ca, n + self.da_row, n + ar_m, n + dr],
                                  [n + ra, self.da_col, n + ar_m, n + dc], n + m)
        N = self.N
        ar_n, ar_N = np.arange(n), np.arange(N)
        self.full = self._csc_map(
            [ca, ar_n, n + self.da_row, n + ar_m, n + dr, n + ar_m, np.full(n, N - 1), np.full(m, N - 1),
             ar_N, np.full(N, N)],
            [n + ra, np.full(n, N - 1), self.da_col, n + ar_m, n + dc, np.full(m, N - 1), ar_n, n + ar_m,
             np.full(N, N), ar_N], N + 1)

    @staticmethod
    def _csc_map(parts_r, parts_c, size):
        """(S, indices, indptr): CSC values = entry values @ S (duplicates summed)."""
        rows, cols = np.concatenate(parts_r), np.concatenate(parts_c)
        key = cols.astype(np.int64) * size + rows
        uk, inv = np.unique(key, return_inverse=True)
        S = sp.csr_matrix((np.ones(rows.size), (np.arange(rows.size), inv)), shape=(rows.size, uk.size))
        return S, (uk % size).astype(np.int32), np.searchsorted(uk // size, np.arange(size + 1)).astype(np.int32)

    def values(self, b, c, x, y, s):
        """Per batch: CSC values of ``R`` (batch, nnz(R)), ``D`` values, ``D b``."""
        B = x.shape[0]
        Dv = _dproj_dual_batch(y - s, self.cone_dict)
        DA = np.asarray(self.G.T @ Dv.T).T
        Db = np.asarray(self.Rb.T @ (Dv * b[:, self.dc]).T).T
        V = np.concatenate([np.broadcast_to(self.neg_a, (B, self.neg_a.size)), DA, np.ones((B, self.m)), -Dv],
                           axis=1)
        return np.ascontiguousarray(np.asarray(self.core[0].T @ V.T).T), Dv, Db

    def full_matrix(self, b, c, x, y, s, Dv, Db) -> sp.csc_matrix:
        """The bordered matrix ``[[M^T, z], [z^T, 0]]`` of one problem (the fallback)."""
        zz = np.concatenate([x, y - s, [1.0]])
        DA = self.G.T @ Dv
        V = np.concatenate([self.neg_a, -c, DA, np.ones(self.m), -Dv, -Db, c, b, zz, zz])
        S, indices, indptr = self.full
        return sp.csc_matrix((S.T @ V, indices, indptr), shape=(self.N + 1, self.N + 1))


def _dproj_dual_batch(V: np.ndarray, cone_dict: dict) -> np.ndarray:
    """Values of :func:`_dproj_dual` for a batch of points ``V`` (batch, m), same entry order."""
    B = V.shape[0]
    nz, nl, sizes, starts = _cone_starts(cone_dict)
    vals = [np.ones((B, nz)), (V[:, nz : nz + nl] > 0).astype(float)]
    for q in np.unique(sizes):
        st = starts[sizes == q]
        W = V[:, st[:, None] + np.arange(q)]  # (B, k, q)
        t, X = W[..., 0], W[..., 1:]
        nx = np.linalg.norm(X, axis=-1)
        safe = np.where(nx > 0, nx, 1.0)
        U = X / safe[..., None]
        ratio = t / safe
        Bm = np.zeros(W.shape + (q,))
        Bm[..., 0, 0] = 1.0
        Bm[..., 0, 1:] = U
        Bm[..., 1:, 0] = U
        Bm[..., 1:, 1:] = ((1.0 + ratio)[..., None, None] * np.eye(q - 1)
                           - ratio[..., None, None] * U[..., :, None] * U[..., None, :])
        Bm *= 0.5
        Bm[nx <= t] = np.eye(q)
        Bm[nx <= -t] = 0.0
        vals.append(Bm.reshape(B, -1))
    return np.concatenate(vals, axis=1)


class _BatchAdjoint:
    """Adjoint derivatives of a batch of cone programs ``min c'x, Ax + s = b, s in K`` sharing ``A``.

    With the homogeneous embedding's residual map (Agrawal et al. 2019) the
    adjoint solves ``M^T r = dz`` where, with ``D = D Pi_{K*}(y - s)`` (symmetric)::

        M^T = [[0,    -A^T,  -c  ],
               [D A,  I - D, -D b],
               [c^T,  b^T,    0  ]]

    The embedding is homogeneous, so ``M z = 0`` at ``z = (x, y - s, 1)``; ``dz`` is
    orthogonal to ``z`` by construction and every solution gives the same
    derivative. The bordered matrix ``[[M^T, z], [z^T, 0]]`` is nonsingular; its
    solution is computed through the sparse core ``R`` (see :class:`_KKTPattern`);
    diffcp uses least squares for the same reason.
    """

    def __init__(self, pat: _KKTPattern, b, c, x, y, s, n_jobs: int = 1):
        self.pat, self.b, self.c, self.x, self.y, self.s = pat, b, c, x, y, s
        self._fac: dict[int, Any] = {}
        self._vals = None
        self.n_jobs = n_jobs

    def _prepare(self):
        if self._vals is None:
            self._vals, self._Dv, self._Db = self.pat.values(self.b, self.c, self.x, self.y, self.s)

    def _factor(self, i: int):
        """Factorize problem i: ``("core", lu, u1, u2, g, zr, E)`` or ``("full", lu_or_matrix)``."""
        import scipy.sparse.linalg as spla

        pat = self.pat
        self._prepare()
        S, indices, indptr = pat.core
        R = sp.csc_matrix((self._vals[i], indices, indptr), shape=(pat.N - 1, pat.N - 1))
        x, y, s, c, b = self.x[i], self.y[i], self.s[i], self.c[i], self.b[i]
        a = np.concatenate([-c, -self._Db[i]])
        g = np.concatenate([c, b])
        zr = np.concatenate([x, y - s])
        fac = None
        try:
            lu = spla.splu(R)
            u1, u2 = lu.solve(a), lu.solve(zr)
            E = np.array([[-g @ u1, 1.0 - g @ u2], [1.0 - zr @ u1, -zr @ u2]])
            if np.all(np.isfinite(E)) and np.linalg.cond(E) < 1e12:
                fac = ("core", lu, u1, u2, g, zr, E)
        except RuntimeError:  # R singular: factorize the bordered matrix
            pass
        if fac is None:
            K = pat.full_matrix(b, c, x, y, s, self._Dv[i], self._Db[i])
            try:
                fac = ("full", spla.splu(K))
            except RuntimeError:  # degenerate beyond the embedding's scaling: least squares
                fac = ("lsqr", K[: pat.N, : pat.N])
        self._fac[i] = fac
        return fac

    def _solve(self, i: int, dz: np.ndarray) -> np.ndarray:
        """A solution r of ``M^T r = dz`` (the bordered system's, ``z . r = 0``)."""
        import scipy.sparse.linalg as spla

        fac = self._fac[i] if i in self._fac else self._factor(i)
        if fac[0] == "core":
            _, lu, u1, u2, g, zr, E = fac
            u0 = lu.solve(dz[:-1])
            r_tau, lam = np.linalg.solve(E, [dz[-1] - g @ u0, -zr @ u0])
            return np.concatenate([u0 - r_tau * u1 - lam * u2, [r_tau]])
        if fac[0] == "full":
            return fac[1].solve(np.concatenate([dz, [0.0]]))[:-1]
        return spla.lsqr(fac[1], dz, atol=1e-12, btol=1e-12)[0]

    def vjp(self, dx: np.ndarray, dy: np.ndarray):
        """(dA (batch, nnz(A)) in A's CSC order, db (batch, m), dc (batch, n)) for cotangents (batch, n/m)."""
        pat = self.pat
        n, m, B = pat.n, pat.m, dx.shape[0]
        self._prepare()
        Dt_dy = _block_apply_t(pat, self._Dv, dy)
        dw = -(np.sum(self.x * dx, axis=1) + np.sum(self.y * dy, axis=1))
        dz = np.concatenate([dx, Dt_dy, dw[:, None]], axis=1)
        r = np.zeros_like(dz)
        todo = [i for i in range(B) if np.any(dz[i])]

        def solve(i):
            r[i] = self._solve(i, dz[i])

        if self.n_jobs > 1 and len(todo) > 1:  # SuperLU releases the GIL
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(self.n_jobs, len(todo))) as pool:
                list(pool.map(solve, todo))
        else:
            for i in todo:
                solve(i)
        pz = np.concatenate([self.x, self.y, np.ones((B, 1))], axis=1)
        rows, cols = pat.ra, pat.ca
        dA = pz[:, cols] * r[:, rows + n] - pz[:, n + rows] * r[:, cols]
        db = pz[:, n : n + m] * r[:, -1:] - r[:, n : n + m]
        dc = pz[:, :n] * r[:, -1:] - r[:, :n]
        return dA, db, dc


def _block_apply_t(pat: _KKTPattern, Dv: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """D^T dy for a batch (D symmetric block-diagonal given by its pattern values)."""
    out = np.zeros_like(dy)
    np.add.at(out, (slice(None), pat.dc), Dv * dy[:, pat.dr])
    return out


class _Ruiz:
    """Ruiz equilibration of a cone program's ``A`` (what Clarabel does inside, done once).

    ``A_s = diag(e) A diag(d)``: ``x = d * x_s``, ``y = e * y_s``, ``s = s_s / e``; ``e``
    is constant on each second-order cone so that the scaled slack stays in the cone.
    Scalings are clipped to [1e-4, 1e4] and iterated 10 times, as Clarabel's defaults.
    """

    def __init__(self, A: sp.csc_matrix, cone_dict: dict, iters: int = 10):
        m, n = A.shape
        d, e = np.ones(n), np.ones(m)
        nz, nl = int(cone_dict.get("z", 0)), int(cone_dict.get("l", 0))
        sizes = np.asarray(cone_dict.get("q", []), dtype=int)
        block = np.concatenate([np.arange(nz + nl), nz + nl + np.repeat(np.arange(sizes.size), sizes)])
        As = A.tocsc(copy=True)
        for _ in range(iters):
            absA = abs(As)
            cn = np.asarray(absA.max(axis=0).todense()).ravel()
            rn = np.asarray(absA.max(axis=1).todense()).ravel()
            dc = np.clip(1.0 / np.sqrt(np.where(cn > 0, cn, 1.0)), 1e-4, 1e4)
            er = np.clip(1.0 / np.sqrt(np.where(rn > 0, rn, 1.0)), 1e-4, 1e4)
            # one factor per second-order cone (the block mean), rows of z / l cones free
            mean = np.bincount(block, er) / np.bincount(block)
            er = mean[block]
            d, e = d * dc, e * er
            As = (sp.diags(er) @ As @ sp.diags(dc)).tocsc()
        self.A, self.d, self.e = As, d, e


def _fast_context(layer_ctx, settings: dict, n_jobs: int):
    """Replace cvxpylayers' diffcp solver context of a layer by the exact-adjoint one.

    Forward: the batch's canonical data is read once into arrays (no per-problem
    scipy slicing); since the dispatch's parameters all live in ``b`` (DPP), ``A``
    is one shared matrix; Clarabel solves each problem (``n_jobs`` threads).
    Backward: :class:`_BatchAdjoint` on a fixed pattern with batched value
    computation; a batch whose ``A`` varies gets one pattern per problem.
    """
    import threading

    import clarabel
    import jax
    import jax.numpy as jnp
    from diffcp.cone_program import SolverError as DiffcpSolverError

    base = layer_ctx.solver_ctx
    indices, indptr = base.A_structure
    m, np1 = base.A_shape
    n = np1 - 1
    nnz_a = int(indptr[-2])
    b_idx = np.asarray(base.b_idx)
    from cvxpylayers.interfaces.diffcp_if import dims_to_solver_dict

    cone_dict = dims_to_solver_dict(base.dims)
    cones = _clarabel_cones(cone_dict)
    st = clarabel.DefaultSettings()
    st.verbose = False
    for k, v in settings.items():
        setattr(st, k, v)
    shared = {}
    P0 = sp.csc_matrix((n, n))
    # One solver per worker thread, set up once per A: Clarabel's own equilibration
    # is replaced by the same Ruiz scaling computed once here (Clarabel's update(b=...)
    # with its equilibration on does not reproduce a fresh solve: capacity duals moved
    # by up to 1e-3 relative after a different b; without any equilibration the
    # degenerate capacity-0 points lose their accuracy).
    reuse = "equilibrate_enable" not in settings
    st_scaled = clarabel.DefaultSettings()
    st_scaled.verbose = False
    for k, v in settings.items():
        setattr(st_scaled, k, v)
    st_scaled.equilibrate_enable = False
    local = threading.local()

    def fresh_solver(A, b, c):
        return clarabel.DefaultSolver(P0, c, A, b, cones, st)

    def solve_one(A, b, c):
        """Solve one problem; returns (x, y, s, status) in the original scaling."""
        if not (reuse and A is shared.get("A")):
            sol = fresh_solver(A, b, c).solve()
            return np.asarray(sol.x), np.asarray(sol.z), np.asarray(sol.s), str(sol.status)
        eq = shared["eq"]
        cached = getattr(local, "solver", None)
        if cached is None or cached[0] is not eq:
            solver = clarabel.DefaultSolver(P0, eq.d * c, eq.A, eq.e * b, cones, st_scaled)
            if solver.is_data_update_allowed():  # else a fresh (scaled) solver next time too
                local.solver = (eq, solver, c)
        else:
            _, solver, c_old = cached
            if np.array_equal(c, c_old):
                solver.update(b=eq.e * b)
            else:
                solver.update(b=eq.e * b, q=eq.d * c)
                local.solver = (eq, solver, c)
        sol = solver.solve()
        return (eq.d * np.asarray(sol.x), eq.e * np.asarray(sol.z), np.asarray(sol.s) / eq.e, str(sol.status))

    class Batch:
        def __init__(self, A_vals, b, c, unbatched):
            self.B = b.shape[0]
            self.b, self.c = b, c
            self.originally_unbatched = unbatched
            self.shared_A = bool(np.all(A_vals == A_vals[:, :1]))
            if self.shared_A:
                key = A_vals[:, 0].tobytes()
                if shared.get("key") != key:
                    shared["key"] = key
                    shared["A"] = sp.csc_matrix((A_vals[:, 0], indices[:nnz_a], indptr[:-1]), shape=(m, n))
                    shared["pattern"] = None
                    shared["eq"] = _Ruiz(shared["A"], cone_dict)
                self.As = None
            else:
                self.As = [sp.csc_matrix((A_vals[:, i], indices[:nnz_a], indptr[:-1]), shape=(m, n))
                           for i in range(self.B)]

        def _solve_all(self):
            def one(i):
                A = shared["A"] if self.shared_A else self.As[i]
                x, y, s_, status = solve_one(A, self.b[i], self.c[i])
                if status not in ("Solved", "AlmostSolved"):
                    raise DiffcpSolverError(f"Clarabel returned status {status} for problem {i} of the batch")
                return x, y, s_

            if n_jobs > 1 and self.B > 1:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(min(n_jobs, self.B)) as pool:
                    out = list(pool.map(one, range(self.B)))
            else:
                out = [one(i) for i in range(self.B)]
            return (np.stack([o[0] for o in out]), np.stack([o[1] for o in out]),
                    np.stack([o[2] for o in out]))

        def jax_solve_only(self, solver_args=None):
            x, y, _ = self._solve_all()
            return self._out(x), self._out(y)

        def _out(self, a):
            return jnp.asarray(a)

        def jax_solve(self, solver_args=None):
            x, y, s = self._solve_all()
            if self.shared_A:
                if shared.get("pattern") is None:
                    shared["pattern"] = _KKTPattern(shared["A"], cone_dict)
                adj = _BatchAdjoint(shared["pattern"], self.b, self.c, x, y, s, n_jobs)
            else:  # one pattern per problem
                adj = [_BatchAdjoint(_KKTPattern(self.As[i], cone_dict), self.b[i : i + 1], self.c[i : i + 1],
                                     x[i : i + 1], y[i : i + 1], s[i : i + 1]) for i in range(self.B)]
            return self._out(x), self._out(y), adj

        def jax_derivative(self, dprimal, ddual, adj):
            B = self.B
            n_q, n_a = n + 1, nnz_a + b_idx.size

            def host(dp, dd):
                dp = np.asarray(dp, float).reshape(B, n)
                dd = np.asarray(dd, float).reshape(B, m)
                if isinstance(adj, _BatchAdjoint):
                    a, bb, cc = adj.vjp(dp, dd)
                else:
                    res = [ad.vjp(dp[i : i + 1], dd[i : i + 1]) for i, ad in enumerate(adj)]
                    a, bb, cc = (np.concatenate([r_[k] for r_ in res]) for k in range(3))
                dA = np.concatenate([-a, bb[:, b_idx]], axis=1).T
                dq = np.concatenate([cc, np.zeros((B, 1))], axis=1).T
                return dq, dA

            shapes = (
                jax.ShapeDtypeStruct((n_q, B), jnp.float64),
                jax.ShapeDtypeStruct((n_a, B), jnp.float64),
            )
            dq, dA = jax.pure_callback(host, shapes, dprimal, ddual, vmap_method="sequential")
            if self.originally_unbatched:
                dq, dA = dq[:, 0], dA[:, 0]
            return None, dq, dA

    class ExactCtx:
        def __getattr__(self, name):
            return getattr(base, name)

        def jax_to_data(self, quad_obj_values, lin_obj_values, con_values):
            cv, lv = np.asarray(con_values, float), np.asarray(lin_obj_values, float)
            unbatched = cv.ndim == 1
            if unbatched:
                cv, lv = cv[:, None], lv[:, None]
            B = cv.shape[1]
            A_vals = -cv[:nnz_a]
            b = np.zeros((B, m))
            b[:, b_idx] = cv[nnz_a:].T
            return Batch(A_vals, b, np.ascontiguousarray(lv[:-1].T), unbatched)

    return ExactCtx()
