"""Graph traversals on bus-branch networks (host-side numpy, base layer).

Buses are vertices ``0 .. n-1``, branches are undirected edges ``(f[k], t[k])``
named by an edge id ``k``; parallel edges are distinct. Every traversal visits
neighbours in :func:`incidence` order (edge order), so the trees, orders and
paths it returns are deterministic and the same wherever they are used.

* :func:`incidence`: incidence lists ``adj[u] = [(neighbour, edge), ...]``;
* :func:`depth_first`: a depth-first search as enter / cycle / leave steps
  (preorders, Euler tours and loop detection of :mod:`sopjax.topology`);
* :func:`search_forest`: breadth-first or stack-order search trees
  (parent, edge to the parent, depth, root, tree edges in discovery order);
* :func:`tree_path`, :func:`ancestors`: paths in a rooted forest;
* :func:`reachable`: buses connected to a set of buses;
* :func:`shortest_path_tree`: Dijkstra from one bus;
* :class:`DisjointSet`: union-find over any sortable items (components, loops).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Hashable, Iterable, Iterator, Sequence

import numpy as np

__all__ = [
    "Incidence",
    "incidence",
    "ENTER",
    "CYCLE",
    "LEAVE",
    "depth_first",
    "SearchForest",
    "search_forest",
    "tree_path",
    "ancestors",
    "reachable",
    "shortest_path_tree",
    "DisjointSet",
]

Incidence = list[list[tuple[int, int]]]

# step kinds of depth_first
ENTER, CYCLE, LEAVE = "enter", "cycle", "leave"


def incidence(n: int, f: Sequence[int], t: Sequence[int], edges: Iterable[int] | None = None) -> Incidence:
    """Incidence lists of the undirected multigraph ``(f[k], t[k])`` for ``k`` in ``edges``.

    Args:
        n: number of vertices.
        f, t: edge ends (0-based).
        edges: edge ids to include, in the order their entries are appended
            (default every position of ``f``).

    Returns:
        ``adj[u]``: ``(neighbour, edge id)`` pairs of vertex ``u`` in edge order.
    """
    adj: Incidence = [[] for _ in range(n)]
    for k in range(len(f)) if edges is None else edges:
        a, b, k = int(f[k]), int(t[k]), int(k)
        adj[a].append((b, k))
        adj[b].append((a, k))
    return adj


def depth_first(adj: Incidence, source: int, visited: np.ndarray) -> Iterator[tuple[str, int, int, int]]:
    """Depth-first search from ``source`` as a stream of ``(kind, u, v, edge)`` steps.

    ``visited`` (vertex,) bool is read and updated in place; the search enters
    only unvisited vertices. Steps, in search order:

    * ``(ENTER, u, v, k)``: ``v`` is entered from ``u`` through edge ``k``
      (``(ENTER, -1, source, -1)`` first);
    * ``(CYCLE, u, v, k)``: edge ``k`` from ``u`` reaches the visited ``v`` (a
      loop, or a path to an earlier search; reported from each end the search
      expands); the edge ``u`` was entered by is not reported, a parallel edge is;
    * ``(LEAVE, u, -1, -1)``: all edges of ``u`` are done (its subtree is complete).
    """
    visited[source] = True
    yield ENTER, -1, source, -1
    stack = [(source, -1, iter(adj[source]))]
    while stack:
        u, up, it = stack[-1]
        for v, k in it:
            if k == up:
                continue
            if visited[v]:
                yield CYCLE, u, v, k
                continue
            visited[v] = True
            yield ENTER, u, v, k
            stack.append((v, k, iter(adj[v])))
            break
        else:
            stack.pop()
            yield LEAVE, u, -1, -1


@dataclasses.dataclass(frozen=True)
class SearchForest:
    """Search trees of :func:`search_forest`; ``-1`` marks roots and unreached vertices.

    Attributes:
        parent: parent vertex, (vertex,).
        up_edge: edge to the parent, (vertex,).
        depth: edges to the root (``-1``: not reached), (vertex,).
        root: root of the vertex's tree (``-1``: not reached), (vertex,).
        edges: tree edges ``(edge, parent, child)`` in discovery order.
    """

    parent: np.ndarray
    up_edge: np.ndarray
    depth: np.ndarray
    root: np.ndarray
    edges: list[tuple[int, int, int]]


def search_forest(adj: Incidence, roots: Iterable[int], *, order: str = "breadth") -> SearchForest:
    """Search trees grown from each of ``roots`` not reached by an earlier one.

    A vertex joins the tree when it is first discovered, from the vertex being
    expanded. ``order="breadth"`` expands vertices first-discovered first
    (breadth-first: depths are hop distances); ``order="stack"`` expands the
    last discovered first (a depth-first order that marks vertices on discovery).

    Args:
        adj: incidence lists (:func:`incidence`).
        roots: start vertices, in order.
        order: ``"breadth"`` or ``"stack"``.

    Returns:
        :class:`SearchForest`.
    """
    if order not in ("breadth", "stack"):
        raise ValueError(f"order must be 'breadth' or 'stack', got {order!r}")
    n = len(adj)
    parent = np.full(n, -1)
    up_edge = np.full(n, -1)
    depth = np.full(n, -1)
    root = np.full(n, -1)
    edges: list[tuple[int, int, int]] = []
    lifo = order == "stack"
    for s in roots:
        s = int(s)
        if depth[s] >= 0:
            continue
        depth[s], root[s] = 0, s
        frontier, head = [s], 0
        while head < len(frontier):
            if lifo:
                u = frontier.pop()
            else:
                u = frontier[head]
                head += 1
            for w, k in adj[u]:
                if depth[w] < 0:
                    depth[w], parent[w], up_edge[w], root[w] = depth[u] + 1, u, k, s
                    edges.append((k, u, w))
                    frontier.append(w)
    return SearchForest(parent=parent, up_edge=up_edge, depth=depth, root=root, edges=edges)


def tree_path(forest: SearchForest, a: int, b: int) -> list[int]:
    """Edges of the tree path between ``a`` and ``b`` of one tree of ``forest``.

    Walks up from the deeper end (from ``a`` on ties) until the ends meet, so
    with ``b`` the root the edges run from ``a`` up to the root.
    """
    path = []
    a, b = int(a), int(b)
    while a != b:
        if forest.depth[a] >= forest.depth[b]:
            path.append(int(forest.up_edge[a]))
            a = int(forest.parent[a])
        else:
            path.append(int(forest.up_edge[b]))
            b = int(forest.parent[b])
    return path


def ancestors(parent: Sequence[int], v: int) -> list[int]:
    """``[v, parent[v], ..., root]``; a root's parent is itself or negative."""
    path = [int(v)]
    while True:
        p = int(parent[path[-1]])
        if p < 0 or p == path[-1]:
            return path
        path.append(p)


def reachable(adj: Incidence, start: Iterable[int], *, skip_edge: int | None = None) -> np.ndarray:
    """Vertices connected to any of ``start`` (without crossing ``skip_edge``), (vertex,) bool."""
    seen = np.zeros(len(adj), dtype=bool)
    stack = [int(b) for b in start]
    seen[stack] = True
    while stack:
        u = stack.pop()
        for w, k in adj[u]:
            if k != skip_edge and not seen[w]:
                seen[w] = True
                stack.append(w)
    return seen


def shortest_path_tree(adj: Incidence, weight: np.ndarray, source: int) -> tuple[np.ndarray, np.ndarray]:
    """Dijkstra's shortest paths from ``source`` with edge lengths ``weight[edge]`` (>= 0).

    Returns:
        ``(dist, via)``: distance per vertex (``inf`` where unreachable) and the
        edge each vertex is reached by (``-1`` at the source and where unreachable).
    """
    n = len(adj)
    dist = np.full(n, np.inf)
    via = np.full(n, -1)
    dist[source] = 0.0
    heap = [(0.0, int(source))]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for w, k in adj[u]:
            nd = d + weight[k]
            if nd < dist[w]:
                dist[w], via[w] = nd, k
                heapq.heappush(heap, (nd, w))
    return dist, via


class DisjointSet:
    """Union-find over hashable, sortable items; the smallest item of a set represents it."""

    def __init__(self, items: Iterable[Hashable]):
        self.parent = {i: i for i in items}

    def __contains__(self, item: Hashable) -> bool:
        return item in self.parent

    def __iter__(self) -> Iterator:
        """The items, in the order given."""
        return iter(self.parent)

    def find(self, a):
        """Representative of ``a``'s set (compresses the path)."""
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a, b) -> bool:
        """Join the sets of ``a`` and ``b``; False if they were one set already."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        lo, hi = min(ra, rb), max(ra, rb)
        self.parent[hi] = lo
        return True
