"""An independent reference: Newton-Raphson on MATPOWER's bus admittance matrix (dense, numpy).

It builds ``Ybus`` from the :class:`~sopjax.network.Network` tables directly (pi
branches, ratio and phase shift at the from side, bus shunts, capacitor banks, and for an open
branch with ``dangle_end`` a far-end bus of its own) and solves the full complex
power-balance equations, sharing nothing with the sweep kernels or
:mod:`sopjax.branch_model`. Used to cross-check grids pandapower cannot load
(MATPOWER case files) and in the kernel tests. Dense: meant for up to a few
thousand buses.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order

__all__ = ["newton_power_flow"]


def _admittance(net, status):
    nb, nl = net.n_bus, net.n_branch
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    tap = np.ones(nl) if net.tap is None else np.asarray(net.tap, float)
    shift = np.zeros(nl) if net.shift_deg is None else np.asarray(net.shift_deg, float)
    a = tap * np.exp(1j * np.deg2rad(shift))
    ys = 1 / (np.asarray(net.r_pu, float) + 1j * np.asarray(net.x_pu, float))
    yc = np.zeros(nl, complex)
    if net.g_br_pu is not None:
        yc = np.asarray(net.g_br_pu) + 1j * np.asarray(net.b_br_pu)
    dangle = np.full(nl, -1) if net.dangle_end is None else np.asarray(net.dangle_end)
    hanging = [k for k in range(nl) if not status[k] and dangle[k] >= 0]
    n = nb + len(hanging)
    Y = np.zeros((n, n), complex)
    if net.g_sh_pu is not None:
        Y[np.arange(nb), np.arange(nb)] += np.asarray(net.g_sh_pu) + 1j * np.asarray(net.b_sh_pu)
    cap = net.capacitor  # capacitor banks: susceptance step * q_unit at their bus
    np.add.at(Y, (np.asarray(cap.bus, int),) * 2, 1j * np.asarray(cap.step, float) * np.asarray(cap.q_unit_pu, float))
    ends = [(k, f[k], t[k]) for k in range(nl) if status[k]]
    ends += [(k, f[k], nb + j) if dangle[k] == 0 else (k, nb + j, t[k]) for j, k in enumerate(hanging)]
    for k, i, m in ends:
        Y[i, i] += (ys[k] + yc[k] / 2) / abs(a[k]) ** 2
        Y[m, m] += ys[k] + yc[k] / 2
        Y[i, m] -= ys[k] / np.conj(a[k])
        Y[m, i] -= ys[k] / a[k]
    edges = np.asarray([(i, m) for _, i, m in ends], dtype=int).reshape(-1, 2)
    return Y, n, edges


def newton_power_flow(net, status, p_load_pu, q_load_pu, *, va0_rad=None, tol=1e-9, max_iter=30):
    """Solve the balanced power flow of ``net`` with the branch statuses ``status``.

    Args:
        net: the network.
        status: closed flag per branch, (branch,).
        p_load_pu, q_load_pu: net load per bus (positive = consumption), (bus,).
        va0_rad: start angles per bus (default flat; a vector-group shift needs its
            downstream angles here, Newton does not reach 150 degrees from a flat start).
        tol: largest power mismatch (p.u.); 1e-9 because case141 has a branch of |z| = 6e-7
            p.u., whose admittance puts the rounding floor of the mismatch near 1e-10.
        max_iter: Newton iterations.

    Returns:
        ``(vm, va, s_slack, converged)``: |V| and angle (rad) per bus (0 where not
        connected to the slack), the complex slack injection (p.u.) and whether the
        mismatch met ``tol``.
    """
    nb = net.n_bus
    Y, n, edges = _admittance(net, np.asarray(status, bool))
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)) if len(edges) else \
        coo_matrix((n, n))  # fmt: skip
    live = np.zeros(n, bool)
    live[breadth_first_order(graph, net.slack_bus, directed=False, return_predecessors=False)] = True
    s_load = np.concatenate([np.asarray(p_load_pu) + 1j * np.asarray(q_load_pu), np.zeros(n - nb)])
    va0 = np.zeros(n) if va0_rad is None else np.concatenate([np.asarray(va0_rad, float), np.zeros(n - nb)])
    V = np.where(live, net.v_slack_pu * np.exp(1j * va0), 0)
    pq = np.flatnonzero(live & (np.arange(n) != net.slack_bus))
    Yl = Y[np.ix_(live, live)]
    idx = np.flatnonzero(live)
    pos = np.searchsorted(idx, pq)
    converged = False
    for _ in range(max_iter + 1):
        Vl = V[idx]
        Ibus = Yl @ Vl
        mis = Vl * np.conj(Ibus) + s_load[idx]
        F = np.concatenate([mis.real[pos], mis.imag[pos]])
        if np.max(np.abs(F), initial=0.0) < tol:
            converged = True
            break
        dS_dVa = 1j * np.diag(Vl) @ np.conj(np.diag(Ibus) - Yl @ np.diag(Vl))
        Vn = np.exp(1j * np.angle(Vl))
        dS_dVm = np.diag(Vl) @ np.conj(Yl @ np.diag(Vn)) + np.diag(Vn) @ np.conj(np.diag(Ibus))
        J = np.block([[dS_dVa.real[np.ix_(pos, pos)], dS_dVm.real[np.ix_(pos, pos)]],
                      [dS_dVa.imag[np.ix_(pos, pos)], dS_dVm.imag[np.ix_(pos, pos)]]])  # fmt: skip
        dx = np.linalg.solve(J, -F)
        va, vm = np.angle(V), np.abs(V)
        va[pq] += dx[: len(pq)]
        vm[pq] += dx[len(pq):]
        V = np.where(live, vm * np.exp(1j * va), 0)
    s_slack = V[net.slack_bus] * np.conj(Y[net.slack_bus] @ V) + s_load[net.slack_bus]
    return np.abs(V[:nb]), np.angle(V[:nb]), complex(s_slack), converged
