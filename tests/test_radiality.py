"""Radiality constraints (sopjax.solvers.components.radiality): exactness checked by enumeration."""

import itertools

import cvxpy as cp
import numpy as np
import pytest

import sopjax
from sopjax.errors import SopjaxError, TopologyError
from sopjax.solvers.components import radiality
from sopjax.solvers.model import Model
from sopjax.solvers.options import NAIVE
from sopjax.problems.reconfiguration.build import solve_reconfiguration

# A small meshed feeder: 9 buses, 11 branches, 3 independent loops. Buses 8 and 9 carry no
# load and join blocks {3} and {5} by two parallel switched paths (3-8-5 and 3-9-5): the
# case where counting constraints written per block pair admit a loop.
BRANCHES = [(1, 2), (2, 3), (3, 4), (4, 5), (2, 6), (6, 5), (3, 8), (8, 5), (3, 9), (9, 5), (6, 7)]
LOADS_KW = {1: 0, 2: 300, 3: 250, 4: 400, 5: 350, 6: 200, 7: 300, 8: 0, 9: 0}


def mesh():
    ids = list(LOADS_KW)
    return sopjax.make_network(
        bus_ids=ids,
        p_load_mw=[LOADS_KW[b] / 1e3 for b in ids],
        q_load_mvar=[0.5 * LOADS_KW[b] / 1e3 for b in ids],
        branch_from=[f for f, _ in BRANCHES],
        branch_to=[t for _, t in BRANCHES],
        r_ohm=[0.5, 0.8, 1.0, 0.9, 1.2, 0.7, 0.4, 0.6, 0.5, 0.7, 0.8],
        x_ohm=[0.4, 0.6, 0.8, 0.7, 0.9, 0.5, 0.3, 0.4, 0.4, 0.5, 0.6],
        slack_bus=1,
        base_kv=12.66,
        base_mva=10.0,
        v_min_pu=0.9,
        v_max_pu=1.1,
        switchable=[True] * len(BRANCHES),
        name="mesh9",
    )


class RadialityLP:
    """The radiality constraints with the branch statuses as a parameter (LP, HiGHS; compiled once)."""

    def __init__(self, net, *, energize_all: bool, method="spanning_forest", minimal=False):
        m = Model(net, relax=True)
        radiality.variable_branch_status(m, switchable=np.ones(net.n_branch, bool))
        if energize_all:
            radiality.variable_energized(m, fixed_on=np.ones(net.n_bus, bool))
        else:
            radiality.variable_energized(m, binary=False)
        connect = None
        if minimal:
            m.data["p_load_pu"] = np.asarray(net.p_load_pu)[None]
            connect = radiality.connectivity_buses(m)
        radiality.constraint_radiality(m, method=method, loop_cuts=False, connect=connect)
        self.status = cp.Parameter(net.n_branch)
        self.m = m
        self.prob = cp.Problem(cp.Minimize(0), m.constraints() + [m.var["alpha_sw"] == self.status])

    def __call__(self, status) -> bool:
        self.status.value = np.asarray(status, float)
        self.prob.solve(solver="HIGHS")
        return self.prob.status == cp.OPTIMAL


def radiality_feasible(net, status, *, energize_all: bool, method="spanning_forest", minimal=False):
    """Is the radiality constraint set feasible with the branch statuses fixed? (LP, HiGHS)."""
    m = Model(net, relax=True)
    radiality.variable_branch_status(m, switchable=np.ones(net.n_branch, bool))
    if energize_all:
        radiality.variable_energized(m, fixed_on=np.ones(net.n_bus, bool))
    else:
        radiality.variable_energized(m, binary=False)
    connect = None
    if minimal:
        m.data["p_load_pu"] = np.asarray(net.p_load_pu)[None]
        connect = radiality.connectivity_buses(m)
    radiality.constraint_radiality(m, method=method, loop_cuts=False, connect=connect)
    fix = [m.var["alpha_sw"] == np.asarray(status, float)]
    prob = cp.Problem(cp.Minimize(0), m.constraints() + fix)
    prob.solve(solver="HIGHS")
    return prob.status == cp.OPTIMAL, m


def is_forest_from_slack(net, status):
    """Closed branches form a forest whose every non-trivial tree holds the substation."""
    try:
        topo = sopjax.compile_topology(net, status)
    except TopologyError:
        return False, None
    energized = np.asarray(topo.energized)
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    dead = np.asarray(status) & ~(energized[f] & energized[t])
    return not dead.any(), energized


def test_cycle_basis_and_bridges_of_ieee33():
    net = sopjax.ieee33()
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    cycles = radiality.cycle_basis(net.n_bus, f, t)
    assert len(cycles) == net.n_branch - net.n_bus + 1 == 5
    for cyc in cycles:  # every fundamental cycle is closed: each bus has even degree on it
        deg = np.bincount(np.concatenate([f[cyc], t[cyc]]), minlength=net.n_bus)
        assert np.all(deg % 2 == 0)
    assert [net.branch_numbers[k] for k in np.flatnonzero(radiality.bridges(net.n_bus, f, t))] == [1]


@pytest.mark.parametrize("method", ["spanning_forest", "single_commodity"])
def test_spanning_tree_constraints_exact_by_enumeration(method):
    """With every bus energized, the constraints accept exactly the spanning trees."""
    net = mesh()
    lp = RadialityLP(net, energize_all=True, method=method)
    n_ok = 0
    for bits in itertools.product([False, True], repeat=net.n_branch):
        status = np.array(bits)
        if status.sum() != net.n_bus - 1:
            continue  # other counts are rejected by counting alone; the interesting cases are these
        tree, energized = is_forest_from_slack(net, status)
        tree = tree and bool(np.all(energized))
        ok = lp(status)
        assert ok == tree, f"status {status.astype(int)}: feasible={ok}, spanning tree={tree}"
        n_ok += tree
    assert n_ok > 10


def test_forest_constraints_exact_with_continuous_energization():
    """Restoration setting: e in [0, 1]; feasible iff a forest rooted at the substation, and e is integral."""
    net = mesh()
    lp = RadialityLP(net, energize_all=False)
    rng = np.random.default_rng(0)
    for _ in range(120):
        status = rng.random(net.n_branch) < 0.6
        forest, energized = is_forest_from_slack(net, status)
        ok = lp(status)
        assert ok == forest, f"status {status.astype(int)}"
        if ok:
            np.testing.assert_allclose(lp.m.value("energized"), energized.astype(float), atol=1e-7)


def test_parallel_switch_paths_between_blocks_cannot_close_a_loop():
    """Closing 3-8, 8-5, 3-9 and 9-5 loops through zero-load buses while bus 4 is cut off.

    The branch count is right (8 closed for 9 buses), so counting alone would accept it.
    """
    net = mesh()
    status = np.zeros(net.n_branch, bool)
    status[[net.branch_index(k) for k in (1, 2, 5, 11, 7, 8, 9, 10)]] = True
    assert status.sum() == net.n_bus - 1
    for minimal in (False, True):
        ok, _ = radiality_feasible(net, status, energize_all=True, minimal=minimal)
        assert not ok


def test_reconfiguration_matches_brute_force():
    from sopjax.powerflow import batched_solver, make_grid

    net = mesh()
    run = batched_solver("sweep")
    p, q = np.asarray(net.p_load_pu)[None], np.asarray(net.q_load_pu)[None]
    best = (np.inf, None)
    for bits in itertools.product([False, True], repeat=net.n_branch):
        status = np.array(bits)
        if status.sum() != net.n_bus - 1:
            continue
        tree, energized = is_forest_from_slack(net, status)
        if not tree or not energized.all():
            continue
        topo = sopjax.compile_topology(net, status)
        res = run(topo, make_grid(net, topo), np.asarray(net.f_bus), p, q)
        if bool(res.converged[0]) and float(res.losses_pu[0]) < best[0]:
            best = (float(res.losses_pu[0]), status)
    r = solve_reconfiguration(net)
    assert r.info.status == "optimal"
    assert r.losses_kw == pytest.approx(best[0] * 1e4, abs=1e-3)
    np.testing.assert_array_equal(r.status, best[1])
    naive = solve_reconfiguration(net, options=NAIVE)
    assert naive.losses_kw == pytest.approx(r.losses_kw, abs=1e-3)


def test_bad_input():
    net = mesh()
    m = Model(net)
    with pytest.raises(SopjaxError, match="forced-open branch index 99"):
        radiality.variable_branch_status(m, forced_open=[99])
    radiality.variable_branch_status(m)
    with pytest.raises(SopjaxError, match="unknown radiality method"):
        radiality.constraint_radiality(m, method="counting")
    with pytest.raises(SopjaxError, match="max_switch_operations"):
        radiality.constraint_switch_operations(m, np.asarray(net.in_service), -1)
