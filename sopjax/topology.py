"""Compile branch statuses into a rooted forest (host side, numpy).

A bus is energized when its closed-branch path reaches a *source*: the
substation or an SOP terminal in Vf mode (DESIGN.md). Each energized component
must be a tree with exactly one source; a closed loop, or two sources joined,
is a :class:`~sopjax.errors.TopologyError` naming the branches. Buses with no
path to a source are de-energized (not an error).

The arrays are laid out for the O(bus) kernels in :mod:`sopjax.kernels.tree`:
a depth-first *preorder* (a subtree is a contiguous slice of it) and an Euler
tour (a root-to-bus path sum is a prefix sum of it). De-energized buses are
singleton trees, so every array has the fixed shape (bus,) and topologies of
different switch states stack and vmap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from sopjax import graph
from sopjax.errors import TopologyError
from sopjax.network import Network

__all__ = ["Topology", "compile_topology", "stack_topologies", "spanning_tree_order"]


@dataclasses.dataclass(frozen=True)
class Topology:
    """Rooted forest of one switch configuration (int/bool arrays, pytree).

    Attributes:
        parent: parent bus, or the bus itself for sources and de-energized buses, (bus,).
        up_branch: branch to the parent, or 0 where ``has_parent`` is False, (bus,).
        has_parent: True for energized non-source buses, (bus,).
        up_forward: True if the upstream branch is oriented parent -> bus (f -> t), (bus,).
        root: the source feeding each bus (itself if de-energized), (bus,).
        is_source: True at the substation and at Vf-mode SOP terminals, (bus,).
        energized: True if the bus is fed by a source, (bus,).
        island: component id (sources first, in the order given), (bus,).
        depth: edges from the source, (bus,).
        preorder: buses in depth-first order, (bus,).
        position: index of each bus in ``preorder``, (bus,).
        subtree_end: ``position`` + subtree size, (bus,).
        tour: Euler tour as indices into ``concat(d, -d)``, (2*bus,).
        entry: position of each bus's entry in ``tour``, (bus,).
        branch_child: downstream bus of each energized closed branch, else 0, (branch,).
        branch_active: True for closed branches inside an energized tree, (branch,).
    """

    parent: Any
    up_branch: Any
    has_parent: Any
    up_forward: Any
    root: Any
    is_source: Any
    energized: Any
    island: Any
    depth: Any
    preorder: Any
    position: Any
    subtree_end: Any
    tour: Any
    entry: Any
    branch_child: Any
    branch_active: Any


jax.tree_util.register_dataclass(
    Topology, data_fields=[f.name for f in dataclasses.fields(Topology)], meta_fields=[]
)


def _loop_message(net: Network, k: int, u: int, v: int, parent, up_branch) -> str:
    """Describe the closed path formed by branch k between two visited buses u, v."""
    pu, pv = graph.ancestors(parent, u), graph.ancestors(parent, v)
    if pu[-1] != pv[-1]:
        branches = [up_branch[b] for b in pu[:-1]] + [k] + [up_branch[b] for b in pv[:-1]]
        labels = ", ".join(net.branch_label(b) for b in branches)
        return (
            f"closed branches {labels} join two sources (bus {net.bus_ids[pu[-1]]} and bus "
            f"{net.bus_ids[pv[-1]]}); open one of them"
        )
    common = set(pu) & set(pv)
    lca_u = next(i for i, b in enumerate(pu) if b in common)
    lca_v = pv.index(pu[lca_u])
    branches = [up_branch[b] for b in pu[:lca_u]] + [k] + [up_branch[b] for b in pv[:lca_v]]
    labels = ", ".join(net.branch_label(b) for b in sorted(branches))
    return f"closed loop through branches {labels}: the radial solver needs a tree; open one of them"


def compile_topology(
    net: Network,
    status: Sequence[bool] | np.ndarray | None = None,
    sources: Sequence[int] = (),
) -> Topology:
    """Build the rooted forest for one switch configuration.

    Args:
        net: the network.
        status: closed flag per branch (default: the case's statuses).
        sources: extra source buses (0-based), e.g. Vf-mode SOP terminals.
            The substation is always a source.

    Returns:
        A :class:`Topology` of numpy arrays.

    Raises:
        TopologyError: if a closed loop exists in an energized component, or two
            sources are joined; the message lists the branches.
    """
    nb, nl = net.n_bus, net.n_branch
    closed = np.asarray(net.in_service if status is None else status, dtype=bool)
    if closed.shape != (nl,):
        raise TopologyError(f"branch status needs {nl} entries, got shape {closed.shape}")
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    adj = graph.incidence(nb, f, t, np.flatnonzero(closed))

    roots = [net.slack_bus] + [int(s) for s in sources if int(s) != net.slack_bus]
    if len(set(roots)) != len(roots):
        raise TopologyError("a bus is listed twice as a source")
    parent = np.arange(nb)
    up_branch = np.zeros(nb, dtype=np.int64)
    has_parent = np.zeros(nb, dtype=bool)
    root = np.arange(nb)
    island = np.full(nb, -1)
    depth = np.zeros(nb, dtype=np.int64)
    visited = np.zeros(nb, dtype=bool)
    preorder: list[int] = []
    subtree_end = np.zeros(nb, dtype=np.int64)
    tour: list[int] = []
    entry = np.zeros(nb, dtype=np.int64)

    def grow(src: int, comp: int) -> None:
        """Root a tree at source ``src``: parents, depths, preorder and Euler tour."""
        for kind, u, v, k in graph.depth_first(adj, src, visited):
            if kind == graph.CYCLE:
                raise TopologyError(_loop_message(net, k, u, v, parent, up_branch))
            if kind == graph.LEAVE:
                subtree_end[u] = len(preorder)
                tour.append(nb + u)
                continue
            island[v] = comp
            if u >= 0:  # entered through branch k (the source is entered first, from nowhere)
                parent[v], up_branch[v], has_parent[v] = u, k, True
                root[v], depth[v] = root[u], depth[u] + 1
            preorder.append(v)
            entry[v] = len(tour)
            tour.append(v)

    for comp, src in enumerate(roots):
        if visited[src]:
            raise TopologyError(
                f"source bus {net.bus_ids[src]} is connected to another source through closed branches"
            )
        grow(src, comp)
    energized = visited.copy()
    comp = len(roots)
    for b in range(nb):  # de-energized components: label islands, each bus a singleton tree
        if not visited[b]:
            for kind, _, v, _ in graph.depth_first(adj, b, visited):
                if kind == graph.ENTER:
                    island[v] = comp
            comp += 1
    for b in np.flatnonzero(~energized):
        parent[b], has_parent[b], root[b] = b, False, b
        preorder.append(b)
        entry[b] = len(tour)
        tour.append(b)
        tour.append(nb + b)
        subtree_end[b] = len(preorder)
    preorder_arr = np.asarray(preorder, dtype=np.int32)
    position = np.empty(nb, dtype=np.int32)
    position[preorder_arr] = np.arange(nb, dtype=np.int32)

    branch_child = np.zeros(nl, dtype=np.int32)
    branch_active = np.zeros(nl, dtype=bool)
    kids = np.flatnonzero(has_parent)
    branch_child[up_branch[kids]] = kids
    branch_active[up_branch[kids]] = True
    up_forward = np.where(has_parent, f[up_branch] == parent, True)
    is_source = np.zeros(nb, dtype=bool)
    is_source[roots] = True
    return Topology(
        parent=parent.astype(np.int32),
        up_branch=np.where(has_parent, up_branch, 0).astype(np.int32),
        has_parent=has_parent,
        up_forward=up_forward,
        root=root.astype(np.int32),
        is_source=is_source,
        energized=energized,
        island=island.astype(np.int32),
        depth=depth.astype(np.int32),
        preorder=preorder_arr,
        position=position,
        subtree_end=subtree_end.astype(np.int32),
        tour=np.asarray(tour, dtype=np.int32),
        entry=entry.astype(np.int32),
        branch_child=branch_child,
        branch_active=branch_active,
    )


def stack_topologies(topologies: Sequence[Topology]) -> Topology:
    """Stack topologies of one network along a new leading (strategy) axis."""
    return jax.tree_util.tree_map(lambda *xs: np.stack(xs), *topologies)


def spanning_tree_order(net: Network, status: np.ndarray) -> list[tuple[int, int, int]] | None:
    """Breadth-first order of the closed branches from the substation, if they form a spanning tree.

    Returns:
        ``(branch, parent bus, child bus)`` per closed branch in breadth-first
        order, or ``None`` if the closed branches are not a spanning tree of all buses.
    """
    closed = np.flatnonzero(status)
    if closed.size != net.n_bus - 1:
        return None
    adj = graph.incidence(net.n_bus, np.asarray(net.f_bus), np.asarray(net.t_bus), closed)
    order = graph.search_forest(adj, [net.slack_bus]).edges
    return order if len(order) == net.n_bus - 1 else None
