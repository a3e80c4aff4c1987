"""Soft open point model (DESIGN.md) as formulation functions.

Per SOP ``s`` with VSCs ``i`` and ``j`` and per period ``t`` (arrays (T, sop)):

* injections ``p_i + j q_i`` into bus ``i`` and ``p_j + j q_j`` into bus ``j``;
* DC balance ``p_i + p_j + L_i + L_j = 0``;
* converter loss ``L_k >= A_k * sqrt(p_k^2 + q_k^2)`` (a second-order cone; it is
  tight whenever losses cost something in the objective — :func:`loss_gap`
  reports the slack after solving);
* capacity ``sqrt(p_k^2 + q_k^2) <= S_k`` (a cone); ``S_k`` is a number, a cvxpy
  Parameter or a Variable/expression (planning sizes it), given per VSC;
* reactive limits ``q_min_k <= q_k <= q_max_k``;
* availability: an SOP whose terminal bus is de-energized injects nothing at
  either end (``|p_k|, |q_k| <= S_ub_k * e_bus`` for both terminal buses); a
  Vf-mode terminal is energized by definition (it is a root).

Modes after a fault (:func:`variable_sop_mode`): binaries ``vf_i``, ``vf_j`` with
``vf_i + vf_j <= 1``. A Vf-mode VSC is the voltage source of the island it
feeds: its bus becomes a radiality root (:func:`sopjax.solvers.components.radiality.add_root`),
its voltage is at least ``U_set`` (:func:`constraint_sop_vf`), and its partner,
in VdcQ mode, must be energized. Without a Vf VSC the SOP runs PQ + VdcQ; in
both cases the steady state obeys the same equations above.

In LinDistFlow (``m.meta['conic'] is False``) the cones become polygons (inner
for the capacity, outer for the loss), so the model stays a MILP; with
``m.meta['outer_polygons']`` the capacity polygon is circumscribed instead, which
makes the SOP model a relaxation of the conic one (used for bounds).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from sopjax.errors import SopjaxError
from sopjax.solvers.formulations.common import broadcast_periods
from sopjax.solvers.formulations.lindistflow import polygon_ge, polygon_le
from sopjax.solvers.model import Model
from sopjax.solvers.components.radiality import add_root

__all__ = [
    "variable_sop",
    "constraint_sop",
    "variable_sop_mode",
    "constraint_sop_vf",
    "expression_sop_losses",
    "constraint_sop_shared_setpoints",
    "loss_gap",
    "check_u_set",
]


def check_u_set(net, u_set_pu) -> None:
    """Raise if ``U_set`` is not a positive number or exceeds a terminal bus's voltage limit (SOP and bus named)."""
    sop = net.sop
    n = sop.count
    u = np.broadcast_to(np.asarray(u_set_pu, dtype=float), (n,))
    vmax = np.asarray(net.v_max_pu, dtype=float)
    for s in range(n):
        if not np.isfinite(u[s]) or u[s] <= 0:
            raise SopjaxError(f"SOP {s}: U_set must be a positive number, got {u[s]}")
        for b in (int(sop.bus_i[s]), int(sop.bus_j[s])):
            if u[s] > vmax[b] + 1e-12:
                raise SopjaxError(
                    f"SOP {s} ({net.bus_ids[int(sop.bus_i[s])]}-{net.bus_ids[int(sop.bus_j[s])]}): U_set = {u[s]:g} "
                    f"p.u. is above the voltage limit {vmax[b]:g} p.u. of its terminal bus {net.bus_ids[b]}; "
                    "lower U_set or raise v_max"
                )


def _cap(x, n: int, name: str):
    if isinstance(x, cp.Expression):
        if x.shape not in ((n,), ()):
            raise SopjaxError(f"{name} must have shape ({n},), got {x.shape}")
        return x
    arr = np.broadcast_to(np.asarray(x, dtype=float), (n,)).copy()
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise SopjaxError(f"{name} must be finite and >= 0, got {arr.tolist()}")
    return arr


def variable_sop(m: Model, *, s_rated_i_pu=None, s_rated_j_pu=None, s_ub_pu=None) -> None:
    """SOP set-point variables ``p_i, q_i, p_j, q_j`` and losses ``L_i, L_j``, each (T, sop).

    Args:
        m: the model.
        s_rated_i_pu, s_rated_j_pu: VSC capacities (sop,): numbers, Parameters or
            Variables/expressions (sizing). Default: ``net.sop.s_rated_*``.
        s_ub_pu: upper bound on the capacities (sop,), needed when they are
            expressions (used for variable bounds and availability); default the
            numeric capacities.
    """
    sop = m.net.sop
    n, T = sop.count, m.periods
    if n == 0:
        return
    si = _cap(sop.s_rated_i_pu if s_rated_i_pu is None else s_rated_i_pu, n, "s_rated_i_pu")
    sj = _cap(sop.s_rated_j_pu if s_rated_j_pu is None else s_rated_j_pu, n, "s_rated_j_pu")
    if s_ub_pu is None:
        if isinstance(si, cp.Expression) or isinstance(sj, cp.Expression):
            vals = [getattr(x, "value", None) if isinstance(x, cp.Expression) else x for x in (si, sj)]
            if any(v is None for v in vals) or isinstance(si, cp.Variable) or isinstance(sj, cp.Variable):
                raise SopjaxError("s_ub_pu is required when the SOP capacity is a variable")
            s_ub_pu = np.maximum(np.asarray(vals[0], float), np.asarray(vals[1], float))
        else:
            s_ub_pu = np.maximum(si, sj)
    ub = np.tile(_cap(s_ub_pu, n, "s_ub_pu"), (T, 1))
    for k in ("i", "j"):
        m.var[f"sop_p_{k}"] = cp.Variable((T, n), name=f"sop_p_{k}", bounds=[-ub, ub])
        m.var[f"sop_q_{k}"] = cp.Variable((T, n), name=f"sop_q_{k}", bounds=[-ub, ub])
        m.var[f"sop_loss_{k}"] = cp.Variable((T, n), name=f"sop_loss_{k}", nonneg=True)
    m.var["sop_s_i"], m.var["sop_s_j"] = si, sj
    m.bounds["sop_s_ub"] = ub[0]


def constraint_sop(m: Model, *, on=None) -> None:
    """DC balance, loss and capacity cones, reactive limits, availability; registers injections.

    Args:
        m: the model after :func:`variable_sop`.
        on: energization per bus (bus,) (default ``m.var['energized']`` if present, else all on).
            A Vf-mode terminal is energized by definition (it is a root).
    """
    sop = m.net.sop
    n, T = sop.count, m.periods
    if n == 0:
        return
    m.require("sop_p_i", "sop_p_j")
    conic = m.meta.get("conic", True)
    cons = []
    p, q, L = {}, {}, {}
    for k in ("i", "j"):
        p[k], q[k], L[k] = m.var[f"sop_p_{k}"], m.var[f"sop_q_{k}"], m.var[f"sop_loss_{k}"]
    cons.append(p["i"] + p["j"] + L["i"] + L["j"] == 0)
    if on is None:
        on = m.var.get("energized")
    ub = np.tile(m.bounds["sop_s_ub"], (T, 1))
    for k, bus_k, a_k, s_k, qmin, qmax in (
        ("i", sop.bus_i, sop.loss_i, m.var["sop_s_i"], sop.q_min_i_pu, sop.q_max_i_pu),
        ("j", sop.bus_j, sop.loss_j, m.var["sop_s_j"], sop.q_min_j_pu, sop.q_max_j_pu),
    ):
        A = np.tile(np.asarray(a_k, dtype=float), (T, 1))
        S = broadcast_periods(s_k, T)
        flat = lambda e: cp.reshape(e, (T * n,), order="C")  # noqa: E731
        if conic:
            cons.append(cp.SOC(flat(L[k]), cp.vstack([flat(cp.multiply(A, p[k])), flat(cp.multiply(A, q[k]))]),
                               axis=0))
            S_flat = flat(S) if isinstance(S, cp.Expression) else np.asarray(S).reshape(-1)
            cons.append(cp.SOC(S_flat, cp.vstack([flat(p[k]), flat(q[k])]), axis=0))
        else:
            cons += polygon_ge(L[k], cp.multiply(A, p[k]), cp.multiply(A, q[k]))
            cons += polygon_le(p[k], q[k], S, inner=not m.meta.get("outer_polygons", False))
        cons += [q[k] <= np.tile(np.asarray(qmax, float), (T, 1)), q[k] >= np.tile(np.asarray(qmin, float), (T, 1))]
        if on is not None and isinstance(on, cp.Expression):
            # a VSC works only when both AC sides are live (the other side holds the DC link)
            for bus_on in (sop.bus_i, sop.bus_j):
                o = broadcast_periods(on[np.asarray(bus_on)], T)
                cons += [p[k] <= cp.multiply(ub, o), -p[k] <= cp.multiply(ub, o),
                         q[k] <= cp.multiply(ub, o), -q[k] <= cp.multiply(ub, o)]
    m.add("sop", cons)
    nb = m.net.n_bus

    def to_bus(bus):
        return sp.csr_matrix((np.ones(n), (np.arange(n), np.asarray(bus))), shape=(n, nb))

    Mi, Mj = to_bus(sop.bus_i), to_bus(sop.bus_j)
    m.p_inj["sop"] = p["i"] @ Mi + p["j"] @ Mj
    m.q_inj["sop"] = q["i"] @ Mi + q["j"] @ Mj


def variable_sop_mode(m: Model, *, allow_vf_i=True, allow_vf_j=True) -> None:
    """Vf-mode binaries ``vf_i``, ``vf_j`` (sop,), at most one per SOP; their buses become roots.

    Call before :func:`sopjax.solvers.components.radiality.constraint_radiality`.

    Args:
        allow_vf_i, allow_vf_j: bool or (sop,) masks; where False the binary is fixed to 0.
    """
    sop = m.net.sop
    n = sop.count
    if n == 0:
        return
    out = {}
    for k, allow, bus in (("i", allow_vf_i, sop.bus_i), ("j", allow_vf_j, sop.bus_j)):
        mask = np.broadcast_to(np.asarray(allow, dtype=bool), (n,))
        if mask.any():
            var = m.binary(n, f"sop_vf_{k}")
            if (~mask).any():
                m.add("sop_mode_allowed", var[np.flatnonzero(~mask)] == 0)
            out[k] = var
            add_root(m, np.asarray(bus), var)
        else:
            out[k] = np.zeros(n)
    m.var["sop_vf_i"], m.var["sop_vf_j"] = out["i"], out["j"]
    if all(isinstance(out[k], cp.Expression) for k in ("i", "j")):
        m.add("sop_mode", out["i"] + out["j"] <= 1)


def constraint_sop_vf(m: Model, u_set_pu) -> None:
    """Vf terminal voltage ``v >= U_set^2`` when in Vf mode; the VdcQ partner must be energized.

    Args:
        m: the model after :func:`variable_sop_mode` and the voltage variables.
        u_set_pu: minimum Vf-side voltage (scalar or (sop,)), p.u.

    Raises:
        SopjaxError: if ``U_set`` exceeds the voltage limit of a terminal bus.
    """
    sop = m.net.sop
    n, T = sop.count, m.periods
    if n == 0:
        return
    m.require("v", "sop_vf_i", "sop_vf_j")
    u = np.broadcast_to(np.asarray(u_set_pu, dtype=float), (n,))
    vmax = np.asarray(m.net.v_max_pu, dtype=float)
    vmin = np.asarray(m.net.v_min_pu, dtype=float)
    e = m.var.get("energized")
    cons = []
    for k, bus, partner in (("i", sop.bus_i, sop.bus_j), ("j", sop.bus_j, sop.bus_i)):
        vf = m.var[f"sop_vf_{k}"]
        if not isinstance(vf, cp.Expression):
            continue
        bus = np.asarray(bus)
        for s in range(n):
            b = int(bus[s])
            if not np.isfinite(u[s]) or u[s] <= 0:
                raise SopjaxError(f"SOP {s}: U_set must be a positive number, got {u[s]}")
            if u[s] > vmax[b] + 1e-12:
                raise SopjaxError(
                    f"SOP {s}: U_set = {u[s]:g} p.u. is above the voltage limit {vmax[b]:g} p.u. "
                    f"of its terminal bus {m.net.bus_ids[b]}; lower U_set or raise v_max"
                )
        # v >= vmin^2 + (U^2 - vmin^2) vf  (tight: v >= vmin^2 holds anyway)
        lift = np.maximum(u**2 - vmin[bus] ** 2, 0.0)
        cons.append(m.var["v"][:, bus] >= np.tile(vmin[bus] ** 2, (T, 1)) + broadcast_periods(cp.multiply(lift, vf), T))
        if isinstance(e, cp.Expression):
            cons.append(e[np.asarray(partner)] >= vf)
    m.add("sop_vf", cons)
    m.meta["u_set_pu"] = u


def expression_sop_losses(m: Model):
    """Total converter losses per period, (T,) (0 without SOPs)."""
    if m.net.sop.count == 0 or "sop_loss_i" not in m.var:
        return np.zeros(m.periods)
    return cp.sum(m.var["sop_loss_i"] + m.var["sop_loss_j"], axis=1)


def loss_gap(m: Model) -> np.ndarray:
    """Slack ``L - A|S|`` of the converter-loss cones after solving, (T, sop, 2) p.u."""
    sop = m.net.sop
    out = []
    for k, a in (("i", sop.loss_i), ("j", sop.loss_j)):
        p, q, L = m.value(f"sop_p_{k}"), m.value(f"sop_q_{k}"), m.value(f"sop_loss_{k}")
        out.append(L - np.asarray(a, float) * np.hypot(p, q))
    return np.stack(out, axis=-1)


def constraint_sop_shared_setpoints(m: Model) -> None:
    """One set of SOP set-points for all periods/scenarios (the plan a strategy can hold).

    What a VSC controls is shared by every period, what follows the network is
    free: in Vf mode at ``i`` the voltage ``v_i`` (``U_set``) and the partner's
    ``q_j`` are shared, while ``p_i, q_i`` (the island's demand) and ``p_j``
    (DC balance) follow each scenario; in PQ mode ``p_i, q_i, q_j`` are shared.
    Written with big-Ms of twice the VSC bound (``2 S_ub``) and the voltage range.
    """
    sop = m.net.sop
    n, T = sop.count, m.periods
    if n == 0 or T == 1:
        return
    m.require("sop_p_i", "sop_vf_i", "sop_vf_j", "v")
    ub = 2 * m.bounds["sop_s_ub"]
    vf_i, vf_j = m.var["sop_vf_i"], m.var["sop_vf_j"]
    cons = []

    def shared(x, free_when):
        d = x[1:, :] - np.ones((T - 1, 1)) @ cp.reshape(x[0, :], (1, n), order="C")
        slack = broadcast_periods(cp.multiply(ub, free_when) if isinstance(free_when, cp.Expression)
                                  else ub * np.asarray(free_when, float), T - 1)
        return [d <= slack, -d <= slack]

    cons += shared(m.var["sop_p_i"], vf_i + vf_j)
    cons += shared(m.var["sop_q_i"], vf_i)
    cons += shared(m.var["sop_q_j"], vf_j)
    dv = float(np.max(m.bounds["v_max2"] - m.bounds["v_min2"]))
    v = m.var["v"]
    for vf, bus in ((vf_i, sop.bus_i), (vf_j, sop.bus_j)):
        if not isinstance(vf, cp.Expression):
            continue
        bus = np.asarray(bus)
        d = v[1:, bus] - np.ones((T - 1, 1)) @ cp.reshape(v[0, bus], (1, n), order="C")
        slack = broadcast_periods(dv * (1 - vf), T - 1)
        cons += [d <= slack, -d <= slack]
    m.add("sop_shared_setpoints", cons)
