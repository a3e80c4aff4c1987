"""Independent cross-check: sopjax's sweep against pandapower's Newton-Raphson (runpp).

Voltages within 1e-6 p.u., angles within 1e-6 rad, losses and branch flows within
1e-6 MW, on every shipped case and on random radial reconfigurations (random
spanning trees of the meshed graph of closed + tie branches) with random loads.
"""

import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

import sopjax
from sopjax.io.pandapower import from_pandapower
from sopjax.io.pandapower_export import to_pandapower
from sopjax.powerflow import batched_solver, make_grid
from sopjax.topology import compile_topology

warnings.filterwarnings("ignore", category=FutureWarning)

TOL_V = 1e-6  # p.u.
TOL_A = 1e-6  # rad
TOL_MW = 1e-6


def runpp(pnet):
    pp.runpp(
        pnet,
        algorithm="nr",
        tolerance_mva=1e-10,
        init="flat",
        calculate_voltage_angles=True,
        max_iteration=50,
        numba=False,
    )
    return pnet


def pandapower_solution(net, status, p, q):
    """vm, va (rad), losses (MW), p_from (MW) per branch from runpp on the equivalent pandapower net."""
    pnet = runpp(to_pandapower(net, status, p, q))
    pos = [pnet.bus.index.get_loc(b) for b in net.bus_ids]
    vm = np.nan_to_num(pnet.res_bus.vm_pu.to_numpy()[pos])
    va = np.radians(np.nan_to_num(pnet.res_bus.va_degree.to_numpy()[pos]))
    p_from = np.nan_to_num(pnet.res_line.p_from_mw.to_numpy())
    return vm, va, float(np.nansum(pnet.res_line.pl_mw)), p_from


def assert_agree(net, res, status, p, q):
    vm, va, loss_mw, p_from = pandapower_solution(net, status, p, q)
    assert bool(res.converged)
    np.testing.assert_allclose(np.asarray(res.vm_pu), vm, rtol=0, atol=TOL_V)
    np.testing.assert_allclose(np.asarray(res.va_rad), va, rtol=0, atol=TOL_A)
    assert abs(float(res.losses_pu) * net.base_mva - loss_mw) < TOL_MW
    np.testing.assert_allclose(np.asarray(res.p_from_pu) * net.base_mva, p_from, rtol=0, atol=TOL_MW)


@pytest.mark.parametrize("case", ["ieee33", "ieee69", "ieee85"])
def test_shipped_cases_match_newton_raphson(case):
    net = sopjax.load_case(case)
    res, _ = sopjax.solve(net, tol=1e-10)
    status = np.asarray(net.in_service)
    assert_agree(net, res, status, np.asarray(net.p_load_pu), np.asarray(net.q_load_pu))


def test_imported_case33bw_matches_pandapowers_own_solution():
    original = pn.case33bw()
    net = from_pandapower(original)
    res, _ = sopjax.solve(net, tol=1e-10)
    runpp(original)
    np.testing.assert_allclose(res.vm_pu, original.res_bus.vm_pu.to_numpy(), rtol=0, atol=TOL_V)
    np.testing.assert_allclose(
        res.va_rad, np.radians(original.res_bus.va_degree.to_numpy()), rtol=0, atol=TOL_A
    )
    assert abs(float(res.losses_pu) * net.base_mva - original.res_line.pl_mw.sum()) < TOL_MW


def random_spanning_tree(net, rng):
    """Closed flags of a random spanning tree of all branches (Kruskal on random weights)."""
    parent = list(range(net.n_bus))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    status = np.zeros(net.n_branch, dtype=bool)
    for k in rng.permutation(net.n_branch):
        a, b = find(int(net.f_bus[k])), find(int(net.t_bus[k]))
        if a != b:
            parent[a] = b
            status[k] = True
    assert status.sum() == net.n_bus - 1
    return status


@pytest.mark.parametrize("case, seed", [("ieee33", 1), ("ieee69", 2)])
def test_random_reconfigurations_with_random_loads(case, seed):
    net = sopjax.load_case(case)
    rng = np.random.default_rng(seed)
    run = batched_solver(tol=1e-10)  # one compiled program for every topology of this network
    trees = 0
    while trees < 4:
        status = random_spanning_tree(net, rng)
        f = 1 + 0.3 * rng.uniform(-1, 1, net.n_bus)
        p, q = np.asarray(net.p_load_pu) * f, np.asarray(net.q_load_pu) * f
        topo = compile_topology(net, status)
        res = run(topo, make_grid(net, topo), net.f_bus, p[None], q[None])
        res = type(res)(*(np.asarray(a)[0] for a in res))
        if np.min(res.vm_pu) < 0.8:  # a far-fetched tree that collapses the voltage: draw another
            continue
        assert np.array_equal(status, np.asarray(topo.branch_active))  # every bus energized
        assert_agree(net, res, status, p, q)
        trees += 1


@pytest.mark.slow
def test_lv_schutterwald_feeder_matches_newton_raphson():
    from sopjax.bench.cases import bench_case

    bc = bench_case("pp:lv_schutterwald")
    net = bc.net
    res, _ = sopjax.solve(net, status=bc.status, tol=1e-10)
    assert_agree(net, res, bc.status, np.asarray(net.p_load_pu), np.asarray(net.q_load_pu))
