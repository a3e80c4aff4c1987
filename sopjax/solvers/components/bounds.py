"""Data-derived bounds for branch flows, currents and voltage drops (no blanket big-M).

Every bound is computed from the network data and the model's period data:

* **Active/reactive branch flow.** In a radial network the power entering a
  branch feeds the loads (or collects the generation) on one side of it, plus
  the losses there. So ``|P_k| <= (1 + loss_allowance) * max(D, G)`` with ``D``
  the largest total demand (loads plus SOP absorption) and ``G`` the largest
  total injection (PV, SOP output, negative loads) over the periods; the same
  for ``Q`` with the reactive totals. A branch rating (``rate_pu``) tightens
  both. ``loss_allowance`` (default 0.5) covers losses; a feeder losing half of
  its load would already violate any voltage limit in use.
* **Squared current.** ``l_k = |S_k|^2 / v_f <= s_max^2 / v_min(f)^2`` (and
  ``i_max^2`` when a current limit is given).
* **Voltage ceiling.** Without generation (every net load non-negative, no PV,
  no SOP), power flows away from the substation and the voltage magnitude can
  only fall along it (``v_t = v_f - 2(rP + xQ) + |z|^2 l <= v_f`` whenever the
  branch drop ``|z I|`` is below ``2 |V| cos(angle(z) - angle(S))``, i.e. in any
  operating point within voltage limits), so ``v <= v_slack^2`` at every bus.
  Builders pass this as ``v_max_pu`` when it applies; it tightens the
  voltage-drop big-Ms below.
* **Voltage drop of an open branch.** With ``v`` in ``[v_min^2, v_max^2]`` the
  difference ``v_t - v_f`` lies in ``[v_min(t)^2 - v_max(f)^2, v_max(t)^2 - v_min(f)^2]``,
  which is exactly the big-M the switched voltage-drop constraint needs.
"""

from __future__ import annotations

import numpy as np

from sopjax.branch_model import fold_capacitors
from sopjax.network import Network

__all__ = ["branch_bounds"]


def _max_over_periods(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x if x.ndim == 1 else x.max(axis=0) if x.shape[0] else np.zeros(x.shape[1:])


def branch_bounds(
    net: Network,
    *,
    p_load_pu: np.ndarray,
    q_load_pu: np.ndarray,
    pv_p_pu: np.ndarray | None = None,
    pv_q_pu: np.ndarray | None = None,
    sop_s_pu: np.ndarray | None = None,
    i_max_pu: np.ndarray | None = None,
    loss_allowance: float = 0.5,
    v_max_pu: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-branch bounds derived from loads, generation, SOP capacity and limits.

    Args:
        net: the network.
        p_load_pu, q_load_pu: bus load per period, (T, bus) or (bus,) (positive = consumption).
        pv_p_pu, pv_q_pu: largest PV injection per unit per period, (T, pv) or (pv,).
        sop_s_pu: largest capacity of each SOP VSC, (sop,) (the larger of its two VSCs).
        i_max_pu: optional current limit per branch, (branch,), ``inf`` = none.
        loss_allowance: fraction of the throughput allowed for losses (>= 0).
        v_max_pu: effective upper voltage bound per bus (default ``net.v_max_pu``), e.g.
            the source voltage in a network without generation.

    Returns:
        dict with ``p_max``, ``q_max``, ``s_max``, ``l_max`` (branch,), the squared voltage
        bounds ``v_min2``, ``v_max2`` (bus,) and the open-branch voltage-drop big-Ms
        ``dv_up`` (bound on ``v_t - v_f / tap^2``) and ``dv_dn`` (on ``v_f / tap^2 - v_t``).
    """
    p = np.atleast_2d(np.asarray(p_load_pu, dtype=float))
    q = np.atleast_2d(np.asarray(q_load_pu, dtype=float))
    nl = net.n_branch
    sop_total = 0.0 if sop_s_pu is None else float(np.sum(sop_s_pu))
    pv_p = 0.0 if pv_p_pu is None else float(np.max(np.sum(np.atleast_2d(pv_p_pu), axis=-1), initial=0.0))
    pv_q = 0.0 if pv_q_pu is None else float(np.max(np.sum(np.abs(np.atleast_2d(pv_q_pu)), axis=-1), initial=0.0))
    demand_p = np.max(np.sum(np.clip(p, 0, None), axis=-1)) + sop_total
    supply_p = np.max(np.sum(np.clip(-p, 0, None), axis=-1)) + pv_p + sop_total
    demand_q = np.max(np.sum(np.abs(q), axis=-1)) + pv_q + sop_total
    net = fold_capacitors(net)  # capacitor banks at their connected steps, as bus shunts
    if net.has_shunts:  # shunts and line charging draw or give at most |y| v_max^2 each
        v2 = float(np.max(np.asarray(net.v_max_pu if v_max_pu is None else v_max_pu, float))) ** 2
        g_all = np.abs(np.asarray(net.g_sh_pu)).sum() + (0 if net.g_br_pu is None else np.abs(net.g_br_pu).sum())
        b_all = np.abs(np.asarray(net.b_sh_pu)).sum() + (0 if net.b_br_pu is None else np.abs(net.b_br_pu).sum())
        demand_p, supply_p = demand_p + g_all * v2, supply_p + g_all * v2
        demand_q += b_all * v2
    scale = 1.0 + float(loss_allowance)
    p_lim = scale * max(demand_p, supply_p)
    q_lim = scale * demand_q
    rate = np.asarray(net.rate_pu, dtype=float)
    p_max = np.minimum(np.full(nl, p_lim), rate)
    q_max = np.minimum(np.full(nl, q_lim), rate)
    s_max = np.minimum(np.hypot(p_max, q_max), rate)
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    vmin = np.asarray(net.v_min_pu, float)
    vmax = np.asarray(net.v_max_pu if v_max_pu is None else v_max_pu, float)
    seen = np.ones(nl) if net.tap is None else 1.0 / np.asarray(net.tap, float) ** 2  # v_f / tap^2
    l_max = s_max**2 / (vmin[f] ** 2 * seen)
    if i_max_pu is not None:
        l_max = np.minimum(l_max, np.asarray(i_max_pu, dtype=float) ** 2)
    return {
        "p_max": p_max,
        "q_max": q_max,
        "s_max": s_max,
        "l_max": l_max,
        "v_min2": vmin**2,
        "v_max2": vmax**2,
        "dv_up": vmax[t] ** 2 - vmin[f] ** 2 * seen,
        "dv_dn": vmax[f] ** 2 * seen - vmin[t] ** 2,
    }
