"""SOC-relaxed DistFlow (branch flow model in W-space), multi-period, with switches.

API (PowerModels-style: a problem builder calls these on a :class:`~sopjax.solvers.model.Model`)::

    from sopjax.solvers.model import Model
    from sopjax.solvers.formulations import soc_distflow as form
    from sopjax.solvers.components import radiality, sop_model

    m = Model(net, periods=T)                       # T = 1 by default
    m.data.update(p_load_pu=..., q_load_pu=..., pv_p_pu=...)   # (T, bus), (T, bus), (T, pv)
    radiality.variable_branch_status(m, switchable=mask)        # optional: alpha (branch,)
    form.set_bounds(m)                              # data-derived flow/current bounds
    form.variable_bus_voltage(m)                    # v = |V|^2   (T, bus)
    form.variable_branch_power(m)                   # P, Q at from-bus (T, branch)
    form.variable_branch_current(m)                 # l = |I|^2   (T, branch)
    form.variable_substation_power(m)
    form.injection_load(m); form.injection_pv(m)    # bus injections
    sop_model.variable_sop(m, s_rated_i_pu=None)    # optional: S may be a Parameter/Variable (sizing)
    sop_model.constraint_sop(m)                     # registers the SOP injections: before the balance
    form.constraint_source_voltage(m)
    form.constraint_power_balance(m)                # sums every injection registered so far
    form.constraint_voltage_drop(m)
    form.constraint_switched_flow(m)
    form.constraint_branch_cone(m)                  # P^2 + Q^2 <= l v_f  (the SOC relaxation)
    losses = form.expression_line_losses(m)         # (T,) sum r l
    ...solve...;  form.relaxation_gap(m)            # per branch and period, after solving

Equations per period ``t`` and branch ``k = (i -> j)`` (``i`` the case from-bus):

* balance (:func:`constraint_power_balance`): injection at a bus = power leaving it
  into its branches minus the power arriving from them, ``P - r l`` at the to-bus;
* voltage drop (:func:`constraint_voltage_drop`):
  ``v_j = v_i - 2 (r P + x Q) + (r^2 + x^2) l`` for closed branches; for switchable
  branches the equation is relaxed by ``(1 - alpha) * dv`` with the data-derived
  ``dv`` of :mod:`sopjax.solvers.components.bounds` (no blanket big-M);
* cone (:func:`constraint_branch_cone`): ``P^2 + Q^2 <= l * v_i`` as a rotated SOC
  ``||(2P, 2Q, l - v_i)|| <= l + v_i``. This is the SOC relaxation of
  ``l v_i = P^2 + Q^2``; it is exact at optima that strictly prefer fewer losses
  (Farivar & Low 2013); check with :func:`relaxation_gap`.
* current (:func:`variable_branch_current`): ``0 <= l <= l_max * alpha``.

Either sign of ``P`` is allowed, so a reconfigured branch may carry power in
either direction; the loss ``r l`` is always charged to the receiving end.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from sopjax.solvers.formulations import common
from sopjax.solvers.formulations.common import *  # noqa: F401,F403  (re-exported API, common.__all__)
from sopjax.solvers.formulations.common import branch_sets, broadcast_periods, set_bounds
from sopjax.solvers.model import Model

NAME = "soc"
EXACT = False  # a relaxation: check relaxation_gap()
CONIC = True  # the model is a mixed-integer SOC program (SCIP)

# the shared functions of common.py plus this formulation's own
__all__ = [*common.__all__, "NAME", "CONIC", "variable_branch_current", "constraint_branch_cone",
           "constraint_current_limit", "expression_line_losses", "relaxation_gap"]


def variable_branch_current(m: Model) -> cp.Variable:
    """Squared current ``l = |I|^2`` per period and branch, in ``[0, l_max]``, (T, branch).

    Switchable branches get ``l <= l_max * alpha``; fixed-open branches ``l = 0``.
    """
    b = m.bounds if "l_max" in m.bounds else set_bounds(m)
    T, nl = m.periods, m.net.n_branch
    sets = branch_sets(m)
    lmax = np.tile(b["l_max"], (T, 1))
    lmax[:, sets["open"]] = 0.0
    l = cp.Variable((T, nl), name="l", bounds=[np.zeros((T, nl)), lmax])
    m.var["l"] = l
    sw = sets["switch"]
    if sw.size:
        a = broadcast_periods(m.var["alpha"][sw], T)
        m.add("switched_current", l[:, sw] <= cp.multiply(lmax[:, sw], a))
    m.formulation = NAME
    m.meta["conic"] = True
    return l


def constraint_branch_cone(m: Model, perspective: bool = True) -> None:
    """The SOC relaxation ``P^2 + Q^2 <= l * v_f`` on every branch that can close (``v_f / tap^2`` with taps).

    Written as ``||(2P, 2Q, l - w)||_2 <= l + w`` (one 4-dimensional rotated cone
    per period and branch) with ``w = v_f`` on fixed-closed branches.

    On switchable branches ``perspective=True`` (default) uses ``w = alpha * v_f``,
    linearised exactly for binary ``alpha``::

        v_min^2 alpha <= w <= v_max^2 alpha,  v_min^2 (1 - alpha) <= v_f - w <= v_max^2 (1 - alpha)

    This is the perspective of the cone: an open branch has ``w = 0`` hence
    ``P = Q = 0``, and in the continuous relaxation ``l >= (P^2 + Q^2) / (alpha v_f)``
    so that splitting flow over fractionally closed branches saves no losses. It
    is the convex hull of the on/off disjunction of the cone and much tighter than
    ``P^2 + Q^2 <= l v_f`` alone (which holds too: ``w <= v_f``). With
    ``perspective=False`` the plain cone is used (the naive baseline).
    """
    m.require("v", "P", "Q", "l")
    sets = branch_sets(m)
    T = m.periods
    f_all = np.asarray(m.net.f_bus)
    v = m.var["v"]

    def flat(e, n):
        return cp.reshape(e, (T * n,), order="C")

    def cone(idx, w):
        n = idx.size
        P, Q, l = m.var["P"][:, idx], m.var["Q"][:, idx], m.var["l"][:, idx]
        X = cp.vstack([flat(2 * P, n), flat(2 * Q, n), flat(l - w, n)])
        return cp.SOC(flat(l + w, n), X, axis=0)

    closed, sw = sets["closed"], sets["switch"]
    if not perspective:
        closed = np.sort(np.concatenate([closed, sw]))
        sw = np.zeros(0, dtype=int)
    if closed.size:
        m.add("branch_cone", cone(closed, from_voltage(m, closed)))
    if sw.size:
        f = f_all[sw]
        scale = np.ones(sw.size) if from_voltage_scale(m.net) is None else from_voltage_scale(m.net)[sw]
        vmin2 = np.tile(m.bounds["v_min2"][f] * scale, (T, 1))
        vmax2 = np.tile(m.bounds["v_max2"][f] * scale, (T, 1))
        a = broadcast_periods(m.var["alpha"][sw], T)
        w = cp.Variable((T, sw.size), name="w_from", nonneg=True)
        vf = from_voltage(m, sw)
        m.var["w_from"] = w
        m.add(
            "branch_cone_perspective",
            [
                w >= cp.multiply(vmin2, a),
                w <= cp.multiply(vmax2, a),
                vf - w >= cp.multiply(vmin2, 1 - a),
                vf - w <= cp.multiply(vmax2, 1 - a),
                cone(sw, w),
            ],
        )


def constraint_current_limit(m: Model, i_max_pu) -> None:
    """``l <= i_max^2`` per branch (also folded into the bounds by :func:`set_bounds`)."""
    m.require("l")
    imax = np.asarray(i_max_pu, dtype=float)
    finite = np.flatnonzero(np.isfinite(imax))
    if finite.size:
        m.add("current_limit", m.var["l"][:, finite] <= np.tile(imax[finite] ** 2, (m.periods, 1)))


def expression_line_losses(m: Model):
    """Total line losses ``sum_k r_k l_k`` per period, (T,) expression (p.u.)."""
    m.require("l")
    r = np.asarray(m.net.r_pu, dtype=float)
    return m.var["l"] @ r


def relaxation_gap(m: Model) -> dict[str, np.ndarray]:
    """SOC relaxation gap of a solved model, per period and branch.

    Returns:
        dict with ``abs`` = ``l v_f - (P^2 + Q^2)`` (p.u.^2, >= 0 up to solver tolerance),
        ``rel`` = ``abs / max(l v_f, eps)`` and ``current`` = the relative current error
        ``(sqrt(l) - |S|/sqrt(v_f)) / max(sqrt(l), eps)``, each (T, branch); zero on open branches.
    """
    P, Q, l, v = (m.value(k) for k in ("P", "Q", "l", "v"))
    f = np.asarray(m.net.f_bus)
    scale = from_voltage_scale(m.net)
    vf = v[:, f] if scale is None else v[:, f] * scale
    lv = l * vf
    s2 = P**2 + Q**2
    gap = lv - s2
    eps = 1e-12
    rel = np.where(lv > eps, gap / np.maximum(lv, eps), 0.0)
    i_exact = np.sqrt(s2 / np.maximum(vf, eps))
    cur = np.where(l > eps, (np.sqrt(np.maximum(l, 0)) - i_exact) / np.sqrt(np.maximum(l, eps)), 0.0)
    return {"abs": gap, "rel": rel, "current": cur}
