"""Primal heuristics (branch exchange, exact sweep) and SCIP warm starts."""

import numpy as np
import pytest

import sopjax
from sopjax.powerflow import solve as power_flow
from sopjax.kernels.radial_np import radial_sweep
from sopjax.problems.reconfiguration.heuristic import branch_exchange
from sopjax.problems.reconfiguration.build import build_reconfiguration, reconfiguration_warm_start
from sopjax.solvers.backends.scip import solve_scip
from sopjax.solvers.backends.solve import SCIP_DEFAULTS


@pytest.fixture(scope="module")
def net33():
    return sopjax.ieee33()


def test_sweep_matches_the_power_flow_kernel(net33):
    p, q = np.asarray(net33.p_load_pu), np.asarray(net33.q_load_pu)
    status = net33.branch_status(open=[7, 9, 14, 32], close=[33, 34, 35, 36])
    losses, vm = radial_sweep(net33, status, p, q)
    res, _ = power_flow(net33, status=status, p_load_pu=p, q_load_pu=q)
    assert losses * net33.base_mva * 1e3 == pytest.approx(139.55, abs=0.01)
    assert losses == pytest.approx(float(res.losses_pu), rel=1e-8)
    np.testing.assert_allclose(vm, np.asarray(res.vm_pu), atol=1e-9)
    base = radial_sweep(net33, np.asarray(net33.in_service, bool), p, q)[0]
    assert base * net33.base_mva * 1e3 == pytest.approx(202.68, abs=0.01)
    # not a spanning tree: a loop (all closed) or an isolated bus
    assert radial_sweep(net33, np.ones(net33.n_branch, bool), p, q) is None
    assert radial_sweep(net33, net33.branch_status(open=[7, 9, 14, 32, 1], close=[33, 34, 35, 36]), p, q) is None


def test_branch_exchange_finds_the_known_optimum(net33):
    p, q = np.asarray(net33.p_load_pu), np.asarray(net33.q_load_pu)
    status, losses = branch_exchange(net33, p, q)
    opened = sorted(net33.branch_numbers[i] for i in np.flatnonzero(~status))
    assert opened == [7, 9, 14, 32, 37]
    assert losses * net33.base_mva * 1e3 == pytest.approx(139.55, abs=0.01)
    # limits no radial topology meets: nothing is returned
    assert branch_exchange(net33, p, q, v_min_pu=np.full(net33.n_bus, 0.99)) is None


def test_warm_start_is_completed_and_an_infeasible_one_dropped(net33):
    m, prob = build_reconfiguration(net33)
    hints = reconfiguration_warm_start(m)
    alpha = m.var["alpha_sw"]
    assert set(hints) == {alpha}
    out = solve_scip(prob, params={**SCIP_DEFAULTS, "limits/solutions": 1}, warm_start=hints)
    assert out["warm_start_objective"] * net33.base_mva * 1e3 == pytest.approx(139.55, abs=0.01)
    assert out["objective"] <= out["warm_start_objective"] + 1e-9
    # every switch closed is not radial: the completion is infeasible and is dropped
    m2, prob2 = build_reconfiguration(net33)
    bad = {m2.var["alpha_sw"]: np.ones(m2.var["alpha_sw"].size)}
    out2 = solve_scip(prob2, params={**SCIP_DEFAULTS, "limits/solutions": 1}, warm_start=bad)
    assert np.isnan(out2["warm_start_objective"])
