"""Network variants of a dataset: the pool of radial switch configurations and faults.

Pool configuration 0 is the case's own; the others are random spanning trees of every
branch (closed and tie), each kept only if its nominal-load voltage stays above a floor
(long radial paths can collapse a feeder). The last ``held_out`` configurations feed
the out-of-distribution topology split only. A function of ``(net, seed, size)``.
"""

from __future__ import annotations

import numpy as np

from sopjax import graph
from sopjax.datasets.spec import DatasetError
from sopjax.network import Network
from sopjax.topology import compile_topology

__all__ = ["configuration_pool", "random_spanning_tree", "vf_candidates"]


def random_spanning_tree(net: Network, rng: np.random.Generator) -> np.ndarray:
    """Closed flags (branch,) of a random spanning tree (Kruskal on random weights)."""
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    ds = graph.DisjointSet(range(net.n_bus))
    closed = np.zeros(net.n_branch, bool)
    for k in np.argsort(rng.random(net.n_branch), kind="stable"):
        if ds.union(int(f[k]), int(t[k])):
            closed[k] = True
    return closed


def configuration_pool(
    net: Network, size: int, seed: int, *, v_min_pu: float = 0.85, max_tries: int = 200
) -> np.ndarray:
    """``size`` distinct radial configurations (config, branch) bool; row 0 is the case's own.

    Args:
        net: the network.
        size: pool size (>= 1).
        seed: pool seed (the dataset seed).
        v_min_pu: a random tree is kept only if its lowest voltage at nominal load is above this.
        max_tries: random trees drawn per wanted configuration before giving up.

    Raises:
        DatasetError: not enough distinct trees pass the voltage floor (names the numbers).
    """
    from sopjax.datasets.labels import power_flow_labels

    base = np.asarray(net.branch_status(), bool)
    compile_topology(net, base)  # raises if the case itself is not radial
    pool, seen = [base], {base.tobytes()}
    rng = np.random.default_rng([seed, 0x5EED])
    p_nom = np.asarray(net.p_load_pu, float)[None]
    q_nom = np.asarray(net.q_load_pu, float)[None]
    batch, tries = 16, 0  # candidates checked per power-flow call (one compiled shape)
    while len(pool) < size:
        if tries >= max_tries * size:
            raise DatasetError(
                f"found only {len(pool)} of {size} radial configurations of {net.name!r} with "
                f"Vmin >= {v_min_pu} p.u. at nominal load after {tries} random trees; "
                "lower 'configurations' or 'v_min_pu'"
            )
        cand = [random_spanning_tree(net, rng) for _ in range(batch)]
        tries += batch
        lab = power_flow_labels(net, np.stack(cand), np.repeat(p_nom, batch, 0), np.repeat(q_nom, batch, 0))
        for st, ok, vmin in zip(cand, lab["converged"], lab["vm_pu"].min(axis=1)):
            if len(pool) < size and ok and vmin >= v_min_pu and st.tobytes() not in seen:
                pool.append(st)
                seen.add(st.tobytes())
    return np.stack(pool)


def vf_candidates(net: Network, closed: np.ndarray) -> np.ndarray:
    """Every way a single fault of configuration ``closed`` leaves an island one SOP can form in Vf mode.

    A candidate ``(sop, a_is_i, branch)`` opens the closed ``branch`` on the path from the
    substation to the SOP's terminal ``a`` (its ``i`` terminal if ``a_is_i``), so that ``a``
    is de-energized and its partner ``b`` stays fed by the substation; the island (every bus
    below ``branch``) carries some load. ``a`` in Vf mode then energizes the whole island.

    Args:
        net: the network (with its SOP table).
        closed: closed flags of a radial configuration, (branch,).

    Returns:
        int array (candidate, 3): ``sop``, ``a_is_i`` (0/1), ``branch`` (0-based); sorted, so a
        draw by index is deterministic. Empty (0, 3) when there is none.
    """
    topo = compile_topology(net, closed)
    parent, up = np.asarray(topo.parent), np.asarray(topo.up_branch)
    has_parent, energized = np.asarray(topo.has_parent), np.asarray(topo.energized)
    load = np.asarray(net.p_load_pu, float) > 0
    children: dict[int, list[int]] = {}
    for b in np.flatnonzero(has_parent):
        children.setdefault(int(parent[b]), []).append(int(b))

    def subtree(c: int) -> np.ndarray:
        mask, stack = np.zeros(net.n_bus, bool), [c]
        while stack:
            x = stack.pop()
            mask[x] = True
            stack.extend(children.get(x, ()))
        return mask

    out = []
    for k, (bi, bj) in enumerate(zip(np.asarray(net.sop.bus_i), np.asarray(net.sop.bus_j))):
        for a_is_i, (a, b) in ((1, (int(bi), int(bj))), (0, (int(bj), int(bi)))):
            if a == net.slack_bus or not (energized[a] and energized[b]):
                continue
            c = a
            while has_parent[c]:  # walk up from a: the branch above c isolates subtree(c)
                below = subtree(c)
                if not below[b] and load[below].any():
                    out.append((k, a_is_i, int(up[c])))
                c = int(parent[c])
    return np.asarray(sorted(out), dtype=np.int64).reshape(-1, 3)
