"""Primal heuristics that give the MISOCP solver a good first solution (an incumbent).

SCIP proves optimality by raising a dual bound until it meets the best known
solution; a good solution from the start lets it prune from the first node
instead of searching for one. For loss-minimising reconfiguration the classic
*branch exchange* (Civanlar et al. 1988; Baran & Wu 1989) finds the optimum or
a near-optimal radial topology in a few hundred exact power flows:

1. start from a radial topology that energizes every bus (the case's own
   in-service branches when they form a spanning tree, else a shortest-path tree
   from the substation weighted by resistance);
2. for every open switchable branch, closing it forms one loop with the tree;
   opening another switchable branch of that loop gives a neighbouring spanning
   tree; evaluate it with the exact power flow and move to the best neighbour
   that lowers the losses and keeps the voltages within limits;
3. stop when no exchange improves the losses.

The power flow is an exact backward/forward sweep on the complex branch
currents (the same physics as :mod:`sopjax.powerflow`, written here with numpy
so that hundreds of small topologies cost milliseconds, not JIT compilations).
:func:`sopjax.solvers.backends.scip.solve_scip` completes the heuristic topology
into a full solution of the model (the binaries fixed, the continuous rest solved).
"""

from __future__ import annotations

import heapq

import numpy as np

from sopjax.network import Network

__all__ = ["radial_sweep", "branch_exchange"]


def _tree(net: Network, status: np.ndarray):
    """BFS order of a spanning tree of the closed branches: (order of (branch, parent, child)), or None."""
    nb = net.n_bus
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    adj: list[list[tuple[int, int]]] = [[] for _ in range(nb)]
    closed = np.flatnonzero(status)
    if closed.size != nb - 1:
        return None
    for k in closed:
        adj[f[k]].append((int(t[k]), int(k)))
        adj[t[k]].append((int(f[k]), int(k)))
    seen = np.zeros(nb, dtype=bool)
    seen[net.slack_bus] = True
    order = []
    queue = [int(net.slack_bus)]
    head = 0
    while head < len(queue):
        u = queue[head]
        head += 1
        for w, k in adj[u]:
            if not seen[w]:
                seen[w] = True
                order.append((k, u, w))
                queue.append(w)
    return order if len(order) == nb - 1 else None


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
    order = _tree(net, np.asarray(status, dtype=bool))
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
    vs = complex(float(net.v_slack_pu))
    v = np.full(nb, vs)
    current = np.zeros(len(order), dtype=complex)
    for _ in range(max_iter):
        i_load = np.conj(s / v)
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


def _loop(net: Network, status: np.ndarray, k: int) -> list[int]:
    """Branches of the tree path between the ends of branch ``k`` (the loop closing ``k`` makes)."""
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    adj: list[list[tuple[int, int]]] = [[] for _ in range(net.n_bus)]
    for b in np.flatnonzero(status):
        adj[f[b]].append((int(t[b]), int(b)))
        adj[t[b]].append((int(f[b]), int(b)))
    src, dst = int(f[k]), int(t[k])
    prev = {src: (-1, -1)}
    stack = [src]
    while stack:
        u = stack.pop()
        if u == dst:
            break
        for w, b in adj[u]:
            if w not in prev:
                prev[w] = (u, b)
                stack.append(w)
    if dst not in prev:
        return []
    path = []
    u = dst
    while u != src:
        u, b = prev[u]
        path.append(b)
    return path


def _start_tree(net: Network, closable: np.ndarray) -> np.ndarray | None:
    """The case's in-service topology if it is a spanning tree, else a resistance-shortest-path tree."""
    status = np.asarray(net.in_service, dtype=bool) & closable
    if _tree(net, status) is not None:
        return status
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    r = np.asarray(net.r_pu, float)
    adj: list[list[tuple[int, int]]] = [[] for _ in range(net.n_bus)]
    for k in np.flatnonzero(closable):
        adj[f[k]].append((int(t[k]), int(k)))
        adj[t[k]].append((int(f[k]), int(k)))
    dist = np.full(net.n_bus, np.inf)
    via = np.full(net.n_bus, -1)
    dist[net.slack_bus] = 0.0
    heap = [(0.0, int(net.slack_bus))]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for w, k in adj[u]:
            nd = d + max(r[k], 1e-9)
            if nd < dist[w]:
                dist[w], via[w] = nd, k
                heapq.heappush(heap, (nd, w))
    if not np.all(np.isfinite(dist)):
        return None
    status = np.zeros(net.n_branch, dtype=bool)
    status[via[via >= 0]] = True
    return status


def branch_exchange(
    net: Network,
    p_net_pu: np.ndarray,
    q_net_pu: np.ndarray,
    *,
    switchable: np.ndarray | None = None,
    fixed_closed: np.ndarray | None = None,
    v_min_pu: np.ndarray | None = None,
    v_max_pu: np.ndarray | None = None,
    max_passes: int = 50,
) -> tuple[np.ndarray, float] | None:
    """Loss-minimising radial topology by branch exchange (a local optimum, usually the global one).

    Args:
        net: the network.
        p_net_pu, q_net_pu: net load per bus (bus,), positive = consumption.
        switchable: switch flag per branch (default every branch).
        fixed_closed: branches that stay closed (default: the non-switchable in-service ones).
        v_min_pu, v_max_pu: voltage limits a topology must meet (default the case's).
        max_passes: improvement passes.

    Returns:
        (closed flag per branch, exact losses in p.u.), or ``None`` when no spanning tree
        within the voltage limits was found.
    """
    nl = net.n_branch
    sw = np.ones(nl, dtype=bool) if switchable is None else np.asarray(switchable, dtype=bool)
    fixed = (~sw & np.asarray(net.in_service, dtype=bool)) if fixed_closed is None else np.asarray(fixed_closed, bool)
    closable = sw | fixed
    vmin = np.asarray(net.v_min_pu if v_min_pu is None else v_min_pu, float)
    vmax = np.asarray(net.v_max_pu if v_max_pu is None else v_max_pu, float)

    def evaluate(status):
        out = radial_sweep(net, status, p_net_pu, q_net_pu)
        if out is None:
            return np.inf
        losses, vm = out
        others = np.arange(net.n_bus) != net.slack_bus
        if np.any(vm[others] < vmin[others] - 1e-9) or np.any(vm[others] > vmax[others] + 1e-9):
            return np.inf
        return losses

    status = _start_tree(net, closable)
    if status is None or np.any(fixed & ~status):
        return None
    best = evaluate(status)
    for _ in range(int(max_passes)):
        move = None
        for k in np.flatnonzero(closable & ~status):
            for b in _loop(net, status, int(k)):
                if not sw[b]:
                    continue
                trial = status.copy()
                trial[k], trial[b] = True, False
                val = evaluate(trial)
                if val < best - 1e-12 and (move is None or val < move[0]):
                    move = (val, trial)
        if move is None:
            break
        best, status = move
    if not np.isfinite(best):
        return None
    return status, float(best)
