"""Formulation functions shared by SOC DistFlow and LinDistFlow.

Both formulations use the same bus voltage ``v = |V|^2``, branch power
``P, Q`` (at the case from-bus), injections and power balance; they differ in
the current variable ``l``, the voltage drop and the cone
(:mod:`~sopjax.solvers.formulations.soc_distflow`,
:mod:`~sopjax.solvers.formulations.lindistflow`), which re-export everything
here so that a problem builder only ever talks to one formulation module.

Shunts and transformers (:mod:`sopjax.network`): a bus shunt ``g + jb`` and the
pi-model halves of every branch that is closed or switchable draw ``g v`` and
``-b v`` at their bus (linear in ``v``; the halves of a switchable branch are
counted whether it closes or not, which matches a line whose switch leaves one end
connected); a branch ratio ``tap`` at the from side scales the from-bus voltage
seen by the branch: ``v_f / tap^2`` in the voltage drop and the cone. Phase
shifts do not enter a radial DistFlow model (no angles). Networks without them
build exactly the models they built before.

Switches: a branch is *fixed closed*, *fixed open* or *switchable*
(:func:`branch_sets`); the status ``alpha`` (branch,) is set by
:func:`sopjax.solvers.components.radiality.variable_branch_status` and defaults to the
case's ``in_service`` when that was not called (fixed topology, e.g. dispatch).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from sopjax.branch_model import fold_capacitors
from sopjax.errors import SopjaxError
from sopjax.solvers.components.bounds import branch_bounds
from sopjax.solvers.model import Model

__all__ = [
    "branch_sets",
    "broadcast_periods",
    "set_bounds",
    "variable_bus_voltage",
    "variable_branch_power",
    "constraint_source_voltage",
    "variable_substation_power",
    "constraint_switched_flow",
    "constraint_power_balance",
    "constraint_voltage_drop",
    "injection_load",
    "variable_load_pickup",
    "injection_pv",
    "pv_q_ratio",
    "from_voltage",
    "from_voltage_scale",
    "bus_shunt_admittance",
]


def branch_sets(m: Model) -> dict[str, np.ndarray]:
    """Index arrays of fixed-closed, fixed-open and switchable branches (from ``m.meta``).

    Without a call to ``variable_branch_status`` every branch keeps its case status.
    """
    if "branch_switch" not in m.meta:
        closed = np.asarray(m.net.in_service, dtype=bool)
        m.meta["branch_switch"] = np.zeros_like(closed)
        m.meta["branch_fixed_closed"] = closed.copy()
        m.meta["branch_fixed_open"] = ~closed
        m.var.setdefault("alpha", closed.astype(float))
    return {
        "closed": np.flatnonzero(m.meta["branch_fixed_closed"]),
        "open": np.flatnonzero(m.meta["branch_fixed_open"]),
        "switch": np.flatnonzero(m.meta["branch_switch"]),
    }


def from_voltage_scale(net) -> np.ndarray | None:
    """``1 / tap^2`` per branch (the from-bus ``v`` seen behind the ratio), or None without taps."""
    if net.tap is None:
        return None
    return 1.0 / np.asarray(net.tap, dtype=float) ** 2


def from_voltage(m: Model, idx: np.ndarray):
    """``v_f / tap^2`` of the branches ``idx``, (T, len(idx)) expression."""
    v = m.var["v"][:, np.asarray(m.net.f_bus)[idx]]
    scale = from_voltage_scale(m.net)
    return v if scale is None else cp.multiply(v, np.tile(scale[idx], (m.periods, 1)))


def bus_shunt_admittance(m: Model) -> tuple[np.ndarray, np.ndarray] | None:
    """``(g, b)`` per bus: bus shunts, capacitor banks at their connected steps and the halves of the
    closed and switchable branches, or None.

    A capacitor bank is a fixed susceptance ``b = step * q_unit`` (``-b v`` in the Q balance,
    ``v = |V|^2``), the same model as the exact power flow (:func:`sopjax.branch_model.fold_capacitors`).
    """
    net = fold_capacitors(m.net)
    if not net.has_shunts:
        return None
    g = np.asarray(net.g_sh_pu, dtype=float).copy()
    b = np.asarray(net.b_sh_pu, dtype=float).copy()
    if net.g_br_pu is not None:
        sets = branch_sets(m)
        k = np.sort(np.concatenate([sets["closed"], sets["switch"]]))
        f, t = np.asarray(net.f_bus)[k], np.asarray(net.t_bus)[k]
        gb, bb = np.asarray(net.g_br_pu)[k] / 2, np.asarray(net.b_br_pu)[k] / 2
        scale = np.ones(k.size) if net.tap is None else 1.0 / np.asarray(net.tap, float)[k] ** 2
        np.add.at(g, f, gb * scale)
        np.add.at(b, f, bb * scale)
        np.add.at(g, t, gb)
        np.add.at(b, t, bb)
    return g, b


def broadcast_periods(x, periods: int):
    """Repeat a (n,) expression/array along a leading period axis: (periods, n)."""
    if isinstance(x, cp.Expression):
        n = x.shape[0]
        return np.ones((periods, 1)) @ cp.reshape(x, (1, n), order="C")
    x = np.asarray(x, dtype=float)
    return np.broadcast_to(x, (periods,) + x.shape[-1:]) if x.ndim == 1 else x


def pv_q_ratio(m: Model) -> np.ndarray:
    """Reactive-to-active ratio ``tan(acos(pf))`` of each PV unit, (pv,)."""
    pf = np.asarray(m.net.pv.pf, dtype=float)
    return np.sqrt(np.maximum(1.0 - pf**2, 0.0)) / pf


def set_bounds(m: Model, *, i_max_pu=None, loss_allowance: float = 0.5, sop_s_pu=None,
               big_m: float | None = None, v_max_pu=None) -> dict:
    """Compute data-derived bounds (:func:`sopjax.solvers.components.bounds.branch_bounds`) into ``m.bounds``.

    Uses ``m.data['p_load_pu']``, ``q_load_pu``, ``pv_p_pu`` (numpy values; for
    cvxpy Parameters their current ``value``) and the SOP capacities.

    ``big_m`` replaces every flow, current and voltage-drop bound by one blanket
    constant (the naive baseline of :mod:`sopjax.solvers.options`); current limits
    ``i_max_pu`` still apply. ``v_max_pu`` (bus,) is an effective voltage ceiling
    (see :mod:`sopjax.solvers.components.bounds`).
    """

    def val(name, default=None):
        x = m.data.get(name, default)
        if x is None:
            return None
        if isinstance(x, cp.Expression):
            if x.value is None:
                raise SopjaxError(f"parameter {name!r} needs a value before bounds can be derived")
            return np.asarray(x.value, dtype=float)
        return np.asarray(x, dtype=float)

    pv = val("pv_p_pu")
    if sop_s_pu is None and m.net.sop.count:
        sop_s_pu = np.maximum(np.asarray(m.net.sop.s_rated_i_pu), np.asarray(m.net.sop.s_rated_j_pu))
    b = branch_bounds(
        m.net,
        p_load_pu=val("p_load_pu", m.net.p_load_pu),
        q_load_pu=val("q_load_pu", m.net.q_load_pu),
        pv_p_pu=pv,
        pv_q_pu=None if pv is None else pv * pv_q_ratio(m),
        sop_s_pu=sop_s_pu,
        i_max_pu=i_max_pu,
        loss_allowance=loss_allowance,
        v_max_pu=v_max_pu,
    )
    if big_m is not None:
        nl = m.net.n_branch
        M = np.full(nl, float(big_m))
        b.update({"p_max": M, "q_max": M.copy(), "s_max": M.copy(), "l_max": M.copy(), "dv_up": M.copy(),
                  "dv_dn": M.copy()})
        if i_max_pu is not None:
            b["l_max"] = np.minimum(b["l_max"], np.asarray(i_max_pu, dtype=float) ** 2)
    m.bounds.update(b)
    return b


def _bounds(m: Model) -> dict:
    return m.bounds if "p_max" in m.bounds else set_bounds(m)


def variable_bus_voltage(m: Model) -> cp.Variable:
    """``v = |V|^2`` per period and bus within the voltage limits, (T, bus).

    The limits are ``m.bounds['v_min2']``, ``['v_max2']`` (set by :func:`set_bounds`).
    """
    b = _bounds(m)
    vmin, vmax = b["v_min2"], b["v_max2"]
    T = m.periods
    v = cp.Variable((T, m.net.n_bus), name="v", bounds=[np.tile(vmin, (T, 1)), np.tile(vmax, (T, 1))])
    m.var["v"] = v
    return v


def variable_branch_power(m: Model) -> tuple[cp.Variable, cp.Variable]:
    """Branch power ``P, Q`` at the from-bus, (T, branch), bounded by the data-derived limits."""
    b = _bounds(m)
    T, nl = m.periods, m.net.n_branch
    sets = branch_sets(m)
    pmax = np.tile(b["p_max"], (T, 1))
    qmax = np.tile(b["q_max"], (T, 1))
    pmax[:, sets["open"]] = 0.0
    qmax[:, sets["open"]] = 0.0
    P = cp.Variable((T, nl), name="P", bounds=[-pmax, pmax])
    Q = cp.Variable((T, nl), name="Q", bounds=[-qmax, qmax])
    m.var["P"], m.var["Q"] = P, Q
    return P, Q


def constraint_source_voltage(m: Model) -> None:
    """Substation voltage fixed at ``v_slack^2`` (``m.data['v_slack_pu']`` (T,) overrides)."""
    m.require("v")
    vs = np.broadcast_to(np.asarray(m.data.get("v_slack_pu", m.net.v_slack_pu), dtype=float), (m.periods,))
    m.add("source_voltage", m.var["v"][:, m.net.slack_bus] == vs**2)


def variable_substation_power(m: Model, p_min_pu=None) -> tuple[cp.Variable, cp.Variable]:
    """Substation injection ``p_src, q_src`` per period, (T,), registered at the slack bus.

    Args:
        m: the model.
        p_min_pu: optional lower bound on the active import (e.g. 0 forbids reverse flow).
    """
    T, nb = m.periods, m.net.n_bus
    p = cp.Variable(T, name="p_substation")
    q = cp.Variable(T, name="q_substation")
    sel = np.zeros((1, nb))
    sel[0, m.net.slack_bus] = 1.0
    m.var["p_substation"], m.var["q_substation"] = p, q
    m.p_inj["substation"] = cp.reshape(p, (T, 1), order="C") @ sel
    m.q_inj["substation"] = cp.reshape(q, (T, 1), order="C") @ sel
    if p_min_pu is not None:
        m.add("substation_import", p >= float(p_min_pu))
    return p, q


def constraint_switched_flow(m: Model) -> None:
    """Switchable branches carry no flow when open: ``|P| <= p_max alpha``, ``|Q| <= q_max alpha``.

    The bounds are the data-derived ones (:mod:`sopjax.solvers.components.bounds`), not a blanket big-M.
    Fixed-open branches already have zero bounds.
    """
    m.require("P", "Q")
    sw = branch_sets(m)["switch"]
    if sw.size == 0:
        return
    b = _bounds(m)
    alpha = m.var["alpha"][sw]
    a = broadcast_periods(alpha, m.periods)
    P, Q = m.var["P"][:, sw], m.var["Q"][:, sw]
    pm = np.tile(b["p_max"][sw], (m.periods, 1))
    qm = np.tile(b["q_max"][sw], (m.periods, 1))
    m.add(
        "switched_flow",
        [P <= cp.multiply(pm, a), -P <= cp.multiply(pm, a), Q <= cp.multiply(qm, a), -Q <= cp.multiply(qm, a)],
    )


def _total(parts: dict, T: int, nb: int):
    exprs = list(parts.values())
    if not exprs:
        return np.zeros((T, nb))
    total = exprs[0]
    for e in exprs[1:]:
        total = total + e
    return total


def constraint_power_balance(m: Model) -> None:
    """Bus power balance with losses on the branch: injections = out-flow - received in-flow.

    For each period and bus ``i``::

        sum_inj p_i = sum_{k: f_k = i} P_k - sum_{k: t_k = i} (P_k - r_k l_k)

    and the same for ``Q`` with ``x_k``. ``l`` is zero in LinDistFlow. Shunts
    (:func:`bus_shunt_admittance`) add ``g_i v_i`` and ``-b_i v_i`` to the out-flow.
    """
    m.require("P", "Q", "l")
    net = m.net
    T, nb = m.periods, net.n_bus
    r = np.asarray(net.r_pu, dtype=float)
    x = np.asarray(net.x_pu, dtype=float)
    P, Q, l = m.var["P"], m.var["Q"], m.var["l"]
    cf, ct = m.cf, m.ct
    cft = (cf - ct).T.tocsr()  # (branch, bus)
    ctt = ct.T.tocsr()
    p_out = P @ cft
    q_out = Q @ cft
    if isinstance(l, cp.Expression):
        p_out = p_out + l @ sp.diags(r) @ ctt
        q_out = q_out + l @ sp.diags(x) @ ctt
    shunt = bus_shunt_admittance(m)
    if shunt is not None:
        m.require("v")
        p_out = p_out + cp.multiply(m.var["v"], np.tile(shunt[0], (T, 1)))
        q_out = q_out - cp.multiply(m.var["v"], np.tile(shunt[1], (T, 1)))
    m.add("power_balance_p", _total(m.p_inj, T, nb) == p_out)
    m.add("power_balance_q", _total(m.q_inj, T, nb) == q_out)


def variable_load_pickup(m: Model, *, blocks: int = 1, fixed: np.ndarray | None = None, on=None):
    """Load pickup: each bus's load in ``blocks`` equal blocks, each picked up or not (binary).

    ``served`` (bus,) = picked-up fraction = ``sum_b lambda_{i,b} / blocks``, with
    ``lambda_{i,b} <= e_i`` (only energized buses are served) and
    ``lambda_{i,b} >= lambda_{i,b+1}`` (blocks in order; no symmetric copies).

    Args:
        m: the model.
        blocks: blocks per bus (1 = one binary per bus).
        fixed: (bus,) float in [0, 1] or NaN; non-NaN entries fix the served fraction
            (e.g. 1 for buses the fault does not touch). Buses without load are fixed at 0.
        on: energization (bus,) (default ``m.var['energized']``).

    Returns:
        ``served`` (bus,) expression, also stored as ``m.var['served']``.
    """
    from sopjax.errors import SopjaxError

    if int(blocks) < 1:
        raise SopjaxError(f"load_blocks must be >= 1, got {blocks}")
    nb = m.net.n_bus
    B = int(blocks)
    fix = np.full(nb, np.nan) if fixed is None else np.asarray(fixed, dtype=float).copy()
    p = np.atleast_2d(np.asarray(m.data.get("p_load_pu", m.net.p_load_pu), dtype=float))
    q = np.atleast_2d(np.asarray(m.data.get("q_load_pu", m.net.q_load_pu), dtype=float))
    no_load = (np.abs(p).max(axis=0) == 0) & (np.abs(q).max(axis=0) == 0)
    fix[no_load] = 0.0
    free = np.flatnonzero(np.isnan(fix))
    base = np.where(np.isnan(fix), 0.0, fix)
    on = m.var.get("energized") if on is None else on
    if free.size == 0:
        m.var["served"] = base
        return base
    lam = m.binary((free.size, B), "pickup")
    S = sp.csr_matrix((np.ones(free.size), (free, np.arange(free.size))), shape=(nb, free.size))
    served = base + S @ (cp.sum(lam, axis=1) / B)
    cons = []
    if on is not None and isinstance(on, cp.Expression):
        e_free = cp.reshape(on[free], (free.size, 1), order="C")
        cons.append(lam <= e_free @ np.ones((1, B)))
    elif on is not None:
        off = np.flatnonzero(np.asarray(on, dtype=float)[free] < 0.5)
        if off.size:
            cons.append(lam[off, :] == 0)
    if B > 1:
        cons.append(lam[:, 1:] <= lam[:, :-1])
    if cons:
        m.add("load_pickup", cons)
    m.var["pickup_blocks"] = lam
    m.var["served"] = served
    m.meta["pickup_free"] = free
    return served


def injection_load(m: Model, served=None, name: str = "load") -> None:
    """Served load as a negative injection: ``-served_i * p_load[t, i]``.

    Args:
        m: the model (reads ``m.data['p_load_pu']``, ``q_load_pu`` (T, bus)).
        served: fraction of each bus's load that is served, (bus,) expression or array
            in [0, 1], shared by all periods; ``None`` = all load served.
        name: injection name.
    """
    p = m.per_period("p_load_pu", m.net.p_load_pu)
    q = m.per_period("q_load_pu", m.net.q_load_pu)
    if served is None:
        m.p_inj[name], m.q_inj[name] = -p, -q
        return
    s = broadcast_periods(served, m.periods)
    m.p_inj[name] = -cp.multiply(p, s)
    m.q_inj[name] = -cp.multiply(q, s)


def injection_pv(m: Model, on=None, curtail: bool = False, name: str = "pv") -> None:
    """PV injection at its buses: ``m.data['pv_p_pu']`` (T, pv) when the bus is energized.

    Reactive output follows the unit's power factor (``p * tan(acos(pf))``).

    Args:
        m: the model.
        on: energization of each bus, (bus,) expression or array (``None`` = all on). PV alone
            never energizes a bus (DESIGN.md), so its output is multiplied by ``on``.
        curtail: if True the output is a variable in ``[0, available * on]`` (``var['pv_p']``);
            otherwise it equals the available power.
        name: injection name.
    """
    net = m.net
    n_pv = net.pv.count
    if n_pv == 0:
        return
    T = m.periods
    avail = m.per_period("pv_p_pu")
    bus = np.asarray(net.pv.bus)
    M = sp.csr_matrix((np.ones(n_pv), (np.arange(n_pv), bus)), shape=(n_pv, net.n_bus))  # (pv, bus)
    ratio = pv_q_ratio(m)
    if on is not None:
        on_pv = on[bus] if isinstance(on, cp.Expression) else np.asarray(on, dtype=float)[bus]
        avail = cp.multiply(avail, broadcast_periods(on_pv, T))
    if curtail:
        amax = np.asarray(m.data["pv_p_pu"] if not isinstance(m.data["pv_p_pu"], cp.Expression)
                          else m.data["pv_p_pu"].value, dtype=float)
        p_pv = cp.Variable((T, n_pv), name="pv_p", bounds=[np.zeros((T, n_pv)), np.broadcast_to(amax, (T, n_pv))])
        m.add("pv_available", p_pv <= avail)
    else:
        p_pv = avail
    m.var["pv_p"] = p_pv
    m.p_inj[name] = p_pv @ M
    m.q_inj[name] = cp.multiply(p_pv, np.tile(ratio, (T, 1))) @ M if isinstance(p_pv, cp.Expression) \
        else (np.asarray(p_pv) * ratio) @ M


def _drop(m: Model, idx: np.ndarray):
    net = m.net
    r = np.asarray(net.r_pu, dtype=float)[idx]
    x = np.asarray(net.x_pu, dtype=float)[idx]
    t = np.asarray(net.t_bus)[idx]
    v, P, Q = m.var["v"], m.var["P"][:, idx], m.var["Q"][:, idx]
    T = m.periods
    drop = cp.multiply(np.tile(r, (T, 1)), P) + cp.multiply(np.tile(x, (T, 1)), Q)
    expr = v[:, t] - from_voltage(m, idx) + 2 * drop
    l = m.var.get("l")
    if isinstance(l, cp.Expression):
        expr = expr - cp.multiply(np.tile(r**2 + x**2, (T, 1)), l[:, idx])
    return expr


def constraint_voltage_drop(m: Model) -> None:
    """``v_t = v_f - 2 (r P + x Q) + |z|^2 l`` on closed branches, relaxed by ``(1 - alpha) dv`` on switches.

    ``dv`` is the exact range of ``v_t - v_f`` implied by the voltage limits
    (:mod:`sopjax.solvers.components.bounds`). In LinDistFlow ``l`` is zero and the
    ``|z|^2 l`` term drops out.
    """
    m.require("v", "P", "Q", "l")
    sets = branch_sets(m)
    T = m.periods
    if sets["closed"].size:
        m.add("voltage_drop", _drop(m, sets["closed"]) == 0)
    sw = sets["switch"]
    if sw.size:
        b = m.bounds
        e = _drop(m, sw)
        slack = 1 - broadcast_periods(m.var["alpha"][sw], T)
        m.add(
            "voltage_drop_switched",
            [
                e <= cp.multiply(np.tile(b["dv_up"][sw], (T, 1)), slack),
                -e <= cp.multiply(np.tile(b["dv_dn"][sw], (T, 1)), slack),
            ],
        )
