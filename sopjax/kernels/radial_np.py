"""numpy twins of :mod:`sopjax.kernels.radial`, for host-side checks and search loops.

The same equations as the JAX kernels, in plain numpy: a caller that evaluates
hundreds of small, different topologies one at a time (a branch-exchange search,
input validation) pays milliseconds per call here instead of a JIT compilation
per shape. Tests hold each twin equal to its kernel.
"""

from __future__ import annotations

import numpy as np

from sopjax.branch_model import fold_capacitors
from sopjax.network import Network
from sopjax.topology import spanning_tree_order

__all__ = ["vdcq_power_np", "radial_sweep"]


def vdcq_power_np(p_other, loss_other, s_other_abs, a, q):
    """numpy twin of :func:`sopjax.kernels.radial.vdcq_power` (DC balance of a VdcQ VSC)."""
    c = -p_other - loss_other * s_other_abs
    return (c - a * np.sqrt(c * c + (1.0 - a * a) * q * q)) / (1.0 - a * a)


def radial_sweep(
    net: Network,
    status: np.ndarray,
    p_net_pu: np.ndarray,
    q_net_pu: np.ndarray,
    *,
    tol: float = 1e-10,
    max_iter: int = 50,
) -> tuple[float, np.ndarray] | None:
    """Exact power flow of a spanning-tree topology by backward/forward current sweep.

    The numpy twin of :func:`sopjax.kernels.radial.sweep_power_flow` on one
    spanning tree (the substation the only source, no Vf coupling). Bus shunts and
    capacitor banks (at the network's steps) draw ``y V``; line charging and
    transformer ratios are not modelled here (a search warm start, re-checked by
    the exact kernels).

    Args:
        net: the network (impedances in p.u., ``v_slack_pu``).
        status: closed flag per branch (branch,); must be a spanning tree of all buses.
        p_net_pu, q_net_pu: net load per bus (bus,), positive = consumption (PV subtracted).
        tol: convergence tolerance on the voltage update (p.u.).
        max_iter: sweep iterations.

    Returns:
        (losses in p.u., voltage magnitudes (bus,)), or ``None`` if ``status`` is not a
        spanning tree or the sweep does not converge.
    """
    order = spanning_tree_order(net, np.asarray(status, dtype=bool))
    if order is None:
        return None
    nb = net.n_bus
    k_idx = np.array([o[0] for o in order])
    z = (np.asarray(net.r_pu, float) + 1j * np.asarray(net.x_pu, float))[k_idx]
    # path[i, p] = branch p (BFS position) lies on the path from the substation to bus i; then
    # branch currents are subtree sums of load currents and voltages are source minus path drops
    # (elementwise numpy, no BLAS: tiny dense products thread badly on a loaded machine)
    path = np.zeros((nb, len(order)), dtype=bool)
    for p, (_, par, chi) in enumerate(order):
        path[chi] = path[par]
        path[chi, p] = True
    s = np.asarray(p_net_pu, float) + 1j * np.asarray(q_net_pu, float)
    folded = fold_capacitors(net)
    y = 0.0 if folded.g_sh_pu is None else np.asarray(folded.g_sh_pu, float) + 1j * np.asarray(folded.b_sh_pu, float)
    vs = complex(float(net.v_slack_pu))
    v = np.full(nb, vs)
    current = np.zeros(len(order), dtype=complex)
    for _ in range(max_iter):
        i_load = np.conj(s / v) + y * v
        current = np.where(path, i_load[:, None], 0).sum(axis=0)
        v_new = vs - np.where(path, (z * current)[None, :], 0).sum(axis=1)
        if not np.all(np.isfinite(v_new)) or np.min(np.abs(v_new)) < 0.3:
            return None
        done = np.max(np.abs(v_new - v)) < tol
        v = v_new
        if done:
            break
    else:
        return None
    return float(np.sum(z.real * np.abs(current) ** 2)), np.abs(v)
