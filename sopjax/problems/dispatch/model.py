"""The SOP dispatch as a DPP second-order-cone program in cvxpy, built once per topology.

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
per-VSC capacities ``S_i, S_j``. The problem is built once and solved many
times: :func:`~sopjax.problems.dispatch.reference.solve_dispatch` solves one
operating point with cvxpy (the reference), and
:class:`~sopjax.problems.dispatch.layer.DispatchLayer` wraps the model as a
``cvxpylayers`` JAX layer so that ``jax.grad`` / ``jax.jacobian`` of the optimal
value and set-points with respect to all parameters work.

Why a separate formulation: the restoration / planning formulations
(``sopjax.solvers.formulations``) are mixed-integer (switch binaries with big-M
couplings) and read loads and capacities as numbers, so they are neither convex
nor DPP-parametrized; a differentiable layer needs a fixed-structure SOCP in
which every input is a ``cvxpy.Parameter``. This module is that compact model.

Exactness: the SOC relaxation is tight on radial feeders when voltage upper
bounds are not binding (Gan, Li, Topcu & Low 2015);
:func:`~sopjax.problems.dispatch.reference.solve_dispatch`
reports the largest relaxation gap ``v_a l_b - P_b^2 - Q_b^2`` so callers can check.
The converter-loss relaxation ``L >= A|s|`` is tight whenever burning power does
not help (it never lowers the objective unless an upper voltage limit binds).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from sopjax.kernels.dispatch import CAPACITY_FLOOR_PU, DispatchData, DispatchInputs, DispatchResult

__all__ = ["DispatchModel", "build_dispatch", "result_from_values"]


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

    def param_values(self, inputs: DispatchInputs) -> list:
        """The layer's parameter arrays, in ``self.params`` order (capacities floored)."""
        out = [inputs.p_load_pu, inputs.q_load_pu]
        if "p_pv_pu" in self.params:
            out.append(inputs.p_pv_pu)
        out += [_floor(inputs.s_rated_i_pu), _floor(inputs.s_rated_j_pu)]
        return out

    def set_parameter_values(self, inputs: DispatchInputs) -> None:
        """Set the cvxpy parameters to one sample's values (for a direct cvxpy solve)."""
        for p, val in zip(self.params.values(), self.param_values(inputs)):
            p.value = np.asarray(val, float)


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


def result_from_values(data: DispatchData, V: dict, dual_i, dual_j, xp) -> DispatchResult:
    """The :class:`~sopjax.kernels.dispatch.DispatchResult` of solved variable values.

    Shared by the reference solve (numpy) and the layer (JAX, so that gradients
    flow through the objective and voltage magnitudes).

    Args:
        data: the compiled dispatch data.
        V: variable values by name (as ``DispatchModel.vars``), with any leading batch axes.
        dual_i, dual_j: capacity duals per VSC (batch..., n_sop).
        xp: ``numpy`` or ``jax.numpy``.
    """
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

