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
    _concrete,
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
        n_jobs: threads over the batch.
        solver_args: Clarabel settings (e.g. ``{"tol_gap_rel": 1e-9}``).
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
        vals = [_concrete(a) for a in inputs]
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
# Clarabel directly, and applies the *same* adjoint formula with M assembled as
# a sparse matrix and factorized once (SuperLU), falling back to LSQR only if M
# is numerically singular. Its backward is a ``pure_callback`` with sequential
# vmap, so ``jax.jacrev`` works too.


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
    """
    nz, nl = int(cone_dict.get("z", 0)), int(cone_dict.get("l", 0))
    rows = [np.arange(nz + nl)]
    cols = [np.arange(nz + nl)]
    vals = [np.concatenate([np.ones(nz), (v[nz : nz + nl] > 0).astype(float)])]
    sizes = np.asarray(cone_dict.get("q", []), dtype=int)
    starts = nz + nl + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) if sizes.size else sizes
    for q in np.unique(sizes):
        st = starts[sizes == q]  # cones of this size, vectorized
        V = v[st[:, None] + np.arange(q)]  # (k, q)
        t, X = V[:, 0], V[:, 1:]
        nx = np.linalg.norm(X, axis=1)
        safe = np.where(nx > 0, nx, 1.0)
        U = X / safe[:, None]
        ratio = t / safe
        B = np.zeros((st.size, q, q))
        B[:, 0, 0] = 1.0
        B[:, 0, 1:] = U
        B[:, 1:, 0] = U
        outer = U[:, :, None] * U[:, None, :]
        B[:, 1:, 1:] = (1.0 + ratio)[:, None, None] * np.eye(q - 1) - ratio[:, None, None] * outer
        B *= 0.5
        B[nx <= t] = np.eye(q)
        B[nx <= -t] = 0.0
        r, c = np.meshgrid(np.arange(q), np.arange(q), indexing="ij")
        rows.append((st[:, None, None] + r).ravel())
        cols.append((st[:, None, None] + c).ravel())
        vals.append(B.ravel())
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


class _ConeAdjoint:
    """Adjoint derivative of one cone program ``min c'x, Ax + s = b, s in K`` at its solution.

    With the homogeneous embedding's residual map (Agrawal et al. 2019) the
    adjoint solves ``M^T r = dz`` where, with ``D = D Pi_{K*}(y - s)`` (symmetric)::

        M^T = [[0,    -A^T,  -c  ],
               [D A,  I - D, -D b],
               [c^T,  b^T,    0  ]]

    The embedding is homogeneous, so ``M z = 0`` at ``z = (x, y - s, 1)``; ``dz`` is
    orthogonal to ``z`` by construction and every solution gives the same
    derivative. The bordered matrix ``[[M^T, z], [z^T, 0]]`` is nonsingular and is
    factorized once (SuperLU); diffcp uses least squares for the same reason.
    """

    def __init__(self, A, b, c, x, y, s, cone_dict):
        self.A, self.b, self.c = A, b, c
        self.x, self.y, self.s = x, y, s
        self.cone_dict = cone_dict
        self._lu = None

    def _factor(self):
        import scipy.sparse.linalg as spla

        A, b, c = self.A, self.b, self.c
        m, n = A.shape
        N = n + m + 1
        Acoo = A.tocoo()
        order = np.lexsort((Acoo.row, Acoo.col))  # CSC order: cvxpylayers' dA layout
        ra, ca, va = Acoo.row[order], Acoo.col[order], Acoo.data[order]
        self.rows, self.cols = ra, ca
        dr, dc, dv = _dproj_dual(self.y - self.s, self.cone_dict)
        D = sp.csr_matrix((dv, (dr, dc)), shape=(m, m))
        self.D = D
        DA = (D @ A).tocoo()
        Db = D @ b
        zz = np.concatenate([self.x, self.y - self.s, [1.0]])
        ar_n, ar_m, ar_N = np.arange(n), np.arange(m), np.arange(N)
        rows = np.concatenate([ca, ar_n, n + DA.row, n + ar_m, n + dr, n + ar_m, np.full(n, N - 1),
                               np.full(m, N - 1), ar_N, np.full(N, N)])
        cols = np.concatenate([n + ra, np.full(n, N - 1), DA.col, n + ar_m, n + dc, np.full(m, N - 1), ar_n,
                               n + ar_m, np.full(N, N), ar_N])
        vals = np.concatenate([-va, -c, DA.data, np.ones(m), -dv, -Db, c, b, zz, zz])
        K = sp.csc_matrix((vals, (rows, cols)), shape=(N + 1, N + 1))
        self.pi_z = np.concatenate([self.x, self.y, [1.0]])
        try:
            self._lu = spla.splu(K)
        except RuntimeError:  # degenerate beyond the embedding's scaling: least squares
            self._lu = False
            self.MT = K[:N, :N]

    def vjp(self, dx: np.ndarray, dy: np.ndarray):
        """(dA values in A's CSC order, db, dc) for cotangents (dx, dy) of (x, y)."""
        import scipy.sparse.linalg as spla

        if self._lu is None:
            self._factor()
        m, n = self.A.shape
        dw = -(self.x @ dx + self.y @ dy)
        dz = np.concatenate([dx, self.D.T @ dy, [dw]])
        if not np.any(dz):
            r = np.zeros_like(dz)
        elif self._lu is not False:
            r = self._lu.solve(np.concatenate([dz, [0.0]]))[:-1]
        else:
            r = spla.lsqr(self.MT, dz, atol=1e-12, btol=1e-12)[0]
        pz, rows, cols = self.pi_z, self.rows, self.cols
        dA = pz[cols] * r[rows + n] - pz[n + rows] * r[cols]
        db = pz[n : n + m] * r[-1] - pz[-1] * r[n : n + m]
        dc = pz[:n] * r[-1] - pz[-1] * r[:n]
        return dA, db, dc


def _fast_context(layer_ctx, settings: dict, n_jobs: int):
    """Replace cvxpylayers' diffcp solver context of a layer by the exact-adjoint one."""
    import jax
    import jax.numpy as jnp
    from cvxpylayers.interfaces.diffcp_if import DIFFCP_ctx, DIFFCP_data
    from diffcp.cone_program import SolverError as DiffcpSolverError

    class ExactData(DIFFCP_data):
        def _solve_all(self):
            import clarabel

            cones = _clarabel_cones(self.cone_dict)
            st = clarabel.DefaultSettings()
            st.verbose = False
            for k, v in settings.items():
                setattr(st, k, v)

            def one(i):
                A, b, c = self.As[i], self.bs[i], self.cs[i]
                P = sp.csc_matrix((A.shape[1], A.shape[1]))
                sol = clarabel.DefaultSolver(P, c, A.tocsc(), b, cones, st).solve()
                status = str(sol.status)
                if status not in ("Solved", "AlmostSolved"):
                    raise DiffcpSolverError(f"Clarabel returned status {status} for problem {i} of the batch")
                return np.asarray(sol.x), np.asarray(sol.z), np.asarray(sol.s)

            if n_jobs > 1 and self.batch_size > 1:
                from multiprocessing.pool import ThreadPool

                with ThreadPool(min(n_jobs, self.batch_size)) as pool:
                    return pool.map(one, range(self.batch_size))
            return [one(i) for i in range(self.batch_size)]

        def jax_solve_only(self, solver_args=None):
            out = self._solve_all()
            return jnp.asarray(np.stack([o[0] for o in out])), jnp.asarray(np.stack([o[1] for o in out]))

        def jax_solve(self, solver_args=None):
            out = self._solve_all()
            adj = [
                _ConeAdjoint(self.As[i].tocsc(), self.bs[i], self.cs[i], *out[i], self.cone_dict)
                for i in range(self.batch_size)
            ]
            x, y = np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
            return jnp.asarray(x), jnp.asarray(y), adj

        def jax_derivative(self, dprimal, ddual, adj_batch):
            B = self.batch_size
            n_q = adj_batch[0].A.shape[1] + 1
            n_a = adj_batch[0].A.nnz + len(self.b_idxs[0])

            def host(dp, dd):
                dp, dd = np.asarray(dp, float), np.asarray(dd, float)
                dq = np.empty((n_q, B))
                dA = np.empty((n_a, B))
                for i, adj in enumerate(adj_batch):
                    a, b, c = adj.vjp(dp[i], dd[i])
                    dA[:, i] = np.concatenate([-a, b[self.b_idxs[i]]])
                    dq[:, i] = np.concatenate([c, [0.0]])
                return dq, dA

            shapes = (
                jax.ShapeDtypeStruct((n_q, B), jnp.float64),
                jax.ShapeDtypeStruct((n_a, B), jnp.float64),
            )
            dq, dA = jax.pure_callback(host, shapes, dprimal, ddual, vmap_method="sequential")
            if self.originally_unbatched:
                dq, dA = dq[:, 0], dA[:, 0]
            return None, dq, dA

    class ExactCtx(DIFFCP_ctx):
        def jax_to_data(self, quad_obj_values, lin_obj_values, con_values):
            # one host transfer instead of a JAX slice per problem (cvxpylayers' loop)
            d = super().jax_to_data(quad_obj_values, np.asarray(lin_obj_values), np.asarray(con_values))
            return ExactData(**{f: getattr(d, f) for f in d.__dataclass_fields__})

    old = layer_ctx.solver_ctx
    new = ExactCtx.__new__(ExactCtx)
    new.__dict__.update(old.__dict__)
    return new
