"""Graph primitives: incidence order, searches, tree paths, reachability, shortest paths, union-find."""

import numpy as np

from sopjax import graph

# a 6-bus graph: a loop 0-1-2-0, a tail 2-3, a parallel pair 3=4, an isolated bus 5
F = np.array([0, 1, 2, 2, 3, 3])
T = np.array([1, 2, 0, 3, 4, 4])


def test_incidence_lists_follow_edge_order():
    adj = graph.incidence(6, F, T, edges=[3, 0])
    assert adj[2] == [(3, 3)] and adj[0] == [(1, 0)] and adj[1] == [(0, 0)] and adj[5] == []


def test_depth_first_reports_cycles_and_parallel_edges():
    adj = graph.incidence(6, F, T)
    visited = np.zeros(6, bool)
    steps = list(graph.depth_first(adj, 0, visited))
    assert steps[0] == (graph.ENTER, -1, 0, -1)
    entered = [v for kind, _, v, _ in steps if kind == graph.ENTER]
    assert entered == [0, 1, 2, 3, 4]
    cycles = {k for kind, _, _, k in steps if kind == graph.CYCLE}
    assert cycles == {2, 5}  # the loop's closing edge and the parallel edge
    assert [u for kind, u, _, _ in steps if kind == graph.LEAVE] == [4, 3, 2, 1, 0]
    assert visited.tolist() == [True] * 5 + [False]


def test_search_forest_orders_and_tree_path():
    adj = graph.incidence(6, F, T)
    bfs = graph.search_forest(adj, [0])
    assert bfs.edges == [(0, 0, 1), (2, 0, 2), (3, 2, 3), (4, 3, 4)]
    assert bfs.depth.tolist() == [0, 1, 1, 2, 3, -1]
    stack = graph.search_forest(adj, range(6), order="stack")
    assert stack.root.tolist() == [0, 0, 0, 0, 0, 5]
    assert stack.edges == [(0, 0, 1), (2, 0, 2), (3, 2, 3), (4, 3, 4)]
    assert graph.tree_path(bfs, 4, 1) == [4, 3, 2, 0]
    assert graph.ancestors(bfs.parent, 4) == [4, 3, 2, 0]


def test_reachable_and_shortest_path_tree():
    adj = graph.incidence(6, F, T)
    assert graph.reachable(adj, [4], skip_edge=3).tolist() == [False, False, False, True, True, False]
    dist, via = graph.shortest_path_tree(adj, np.array([1.0, 1.0, 5.0, 1.0, 2.0, 1.0]), 0)
    assert dist.tolist()[:5] == [0.0, 1.0, 2.0, 3.0, 4.0] and np.isinf(dist[5])
    assert via.tolist() == [-1, 0, 1, 3, 5, -1]


def test_disjoint_set_keeps_the_smallest_representative():
    s = graph.DisjointSet([7, 3, 5, 1])
    assert s.union(7, 5) and s.union(5, 3) and not s.union(3, 7)
    assert s.find(7) == 3 and s.find(1) == 1 and 5 in s and 9 not in s
    assert list(s) == [7, 3, 5, 1]
