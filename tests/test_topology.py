"""Rooted-forest compilation: radial checks, energization, tree reductions."""

import jax.numpy as jnp
import numpy as np
import pytest

import sopjax
from sopjax.errors import TopologyError
from sopjax.kernels.tree import path_sum, subtree_sum
from sopjax.topology import compile_topology


def brute_subtree(topo, x):
    n = len(x)
    out = np.zeros(n)
    for b in range(n):  # walk every bus up to its root, adding to each ancestor
        a = b
        while True:
            out[a] += x[b]
            if not topo.has_parent[a]:
                break
            a = topo.parent[a]
    return out


def brute_path(topo, d):
    out = np.zeros(len(d))
    for b in range(len(d)):
        a, s = b, 0.0
        while True:
            s += d[a]
            if not topo.has_parent[a]:
                break
            a = topo.parent[a]
        out[b] = s
    return out


@pytest.mark.parametrize("case", ["ieee33", "ieee69", "ieee85"])
def test_tree_reductions_match_brute_force(case):
    net = sopjax.load_case(case)
    rng = np.random.default_rng(0)
    status = net.in_service.copy()
    status[rng.choice(np.flatnonzero(status), 3, replace=False)] = False  # some de-energized parts
    topo = compile_topology(net, status)
    x = rng.normal(size=net.n_bus)
    np.testing.assert_allclose(subtree_sum(topo, jnp.asarray(x)), brute_subtree(topo, x), atol=1e-12)
    np.testing.assert_allclose(path_sum(topo, jnp.asarray(x)), brute_path(topo, x), atol=1e-12)


def test_radial_case_structure():
    net = sopjax.ieee33()
    topo = compile_topology(net)
    assert topo.energized.all()
    assert topo.has_parent.sum() == 32 and not topo.has_parent[0]
    assert topo.depth[17] == 17  # bus 18 at the end of the main feeder
    assert sorted(topo.preorder.tolist()) == list(range(33))
    assert topo.branch_active.sum() == 32 and not topo.branch_active[32:].any()


def test_loop_error_names_its_branches():
    net = sopjax.ieee33()
    with pytest.raises(TopologyError) as err:
        compile_topology(net, net.branch_status(close=[35]))  # 12-22
    msg = str(err.value)
    assert "closed loop" in msg
    for label in ("35 (12-22)", "21 (21-22)", "18 (2-19)", "11 (11-12)", "2 (2-3)"):
        assert label in msg
    assert "33 (21-8)" not in msg


def test_open_branch_deenergizes_downstream():
    net = sopjax.ieee33()
    topo = compile_topology(net, net.branch_status(open=[2]))  # 2-3
    off = [net.bus_ids[b] for b in np.flatnonzero(~topo.energized)]
    assert off == list(range(3, 19)) + list(range(23, 34))
    assert net.p_load_pu[~topo.energized].sum() * net.base_mva == pytest.approx(3.255)


def test_vf_source_energizes_island_and_two_sources_may_not_join():
    net = sopjax.ieee33()
    status = net.branch_status(open=[2])
    topo = compile_topology(net, status, sources=[net.bus_index(8)])
    assert topo.is_source[7] and topo.energized[2:18].all()
    assert topo.root[17] == 7 and topo.root[1] == 0
    with pytest.raises(TopologyError, match="connected to another source|join two sources"):
        compile_topology(net, net.in_service, sources=[net.bus_index(8)])


def test_status_shape_checked():
    with pytest.raises(TopologyError, match="needs 37 entries"):
        compile_topology(sopjax.ieee33(), np.ones(5, bool))
