"""SOC DistFlow / LinDistFlow formulations (sopjax.solvers.formulations) and the SOP model.

Continuous models (fixed topology) solved with Clarabel / HiGHS: fast, and
cross-checked against the exact sweep and the LinDistFlow kernel.
"""

import cvxpy as cp
import numpy as np
import pytest

import sopjax
from sopjax.errors import SopjaxError
from sopjax.kernels.injections import sop_pq_net_load
from sopjax.solvers.components import radiality, sop_model
from sopjax.solvers.formulations import get, lindistflow, soc_distflow
from sopjax.solvers.model import Model

KW = 1e4  # p.u. -> kW on the 10 MVA base of case33bw


def opf(net, form, *, status=None, periods=1, scale=None, perspective=True):
    """Minimum-loss power flow on a fixed topology (all loads served)."""
    m = Model(net, periods=periods)
    s = np.ones(periods) if scale is None else np.asarray(scale, float)
    m.data["p_load_pu"] = s[:, None] * np.asarray(net.p_load_pu)[None]
    m.data["q_load_pu"] = s[:, None] * np.asarray(net.q_load_pu)[None]
    if status is not None:
        radiality.variable_branch_status(m, switchable=np.zeros(net.n_branch, bool), status=status)
    form.set_bounds(m)
    form.variable_bus_voltage(m)
    form.variable_branch_power(m)
    form.variable_branch_current(m)
    form.variable_substation_power(m)
    form.injection_load(m)
    form.constraint_source_voltage(m)
    form.constraint_power_balance(m)
    form.constraint_voltage_drop(m)
    form.constraint_switched_flow(m)
    if form is soc_distflow:
        form.constraint_branch_cone(m, perspective=perspective)
    else:
        form.constraint_branch_cone(m)
    losses = form.expression_line_losses(m)
    obj = cp.sum(losses) if isinstance(losses, cp.Expression) else cp.sum(m.var["p_substation"])
    prob = cp.Problem(cp.Minimize(obj), m.constraints())
    prob.solve(solver="CLARABEL" if form is soc_distflow else "HIGHS")
    assert prob.status == cp.OPTIMAL
    return m, losses


def test_ieee33_base_case_matches_exact_sweep():
    net = sopjax.ieee33()
    m, losses = opf(net, soc_distflow)
    assert float(losses.value[0]) * KW == pytest.approx(202.68, abs=0.01)
    vm = np.sqrt(m.value("v")[0])
    res, _ = sopjax.solve(net)
    np.testing.assert_allclose(vm, res.vm_pu, atol=1e-6)
    assert int(np.argmin(vm)) == net.bus_index(18)
    # the relaxation is tight on a radial feeder (DESIGN.md)
    gap = soc_distflow.relaxation_gap(m)
    assert np.max(np.abs(gap["rel"])) < 1e-5
    # power balance: substation = load + losses
    p_sub = float(m.value("p_substation")[0])
    assert p_sub == pytest.approx(float(np.sum(net.p_load_pu)) + float(losses.value[0]), rel=1e-7)


def test_reconfigured_topology_139_kw_and_branch_flows():
    net = sopjax.ieee33()
    status = net.branch_status(open=[7, 9, 14, 32, 37], close=[33, 34, 35, 36])
    m, losses = opf(net, soc_distflow, status=status)
    assert float(losses.value[0]) * KW == pytest.approx(139.55, abs=0.01)
    res, _ = sopjax.solve(net, status=status)
    np.testing.assert_allclose(m.value("P")[0], res.p_from_pu, atol=1e-6)
    np.testing.assert_allclose(m.value("P")[0][~status], 0.0, atol=1e-9)


def test_multi_period_equals_single_periods():
    net = sopjax.ieee33()
    scales = [0.5, 0.8, 1.0]
    m, losses = opf(net, soc_distflow, periods=3, scale=scales)
    for t, s in enumerate(scales):
        res, _ = sopjax.solve(net, load_scale=s)
        assert float(losses.value[t]) == pytest.approx(float(res.losses_pu), rel=1e-5)


def test_lindistflow_matches_kernel_and_bounds_soc_voltages():
    net = sopjax.ieee33()
    m, _ = opf(net, lindistflow)
    res, _ = sopjax.solve(net, method="lindistflow")
    np.testing.assert_allclose(np.sqrt(m.value("v")[0]), res.vm_pu, atol=1e-7)
    # LinDistFlow neglects losses in the drop: its voltages are upper bounds of the exact ones
    exact, _ = sopjax.solve(net)
    assert np.all(np.sqrt(m.value("v")[0]) >= exact.vm_pu - 1e-9)


def test_perspective_cone_same_optimum_on_fixed_topology():
    net = sopjax.ieee33()
    status = net.branch_status(open=[7, 9, 14, 32, 37], close=[33, 34, 35, 36])
    m = Model(net, relax=True)  # switches continuous in [0, 1], then fixed below
    m.data["p_load_pu"] = np.asarray(net.p_load_pu)[None]
    m.data["q_load_pu"] = np.asarray(net.q_load_pu)[None]
    sw = np.zeros(net.n_branch, bool)
    sw[[net.branch_index(k) for k in (7, 33)]] = True  # two switches, fixed by constraints below
    radiality.variable_branch_status(m, switchable=sw, status=status)
    f = soc_distflow
    f.set_bounds(m)
    for fn in (f.variable_bus_voltage, f.variable_branch_power, f.variable_branch_current,
               f.variable_substation_power, f.injection_load, f.constraint_source_voltage,
               f.constraint_power_balance, f.constraint_voltage_drop, f.constraint_switched_flow,
               f.constraint_branch_cone):
        fn(m)
    a = m.var["alpha_sw"]
    prob = cp.Problem(cp.Minimize(cp.sum(f.expression_line_losses(m))), m.constraints() + [a[0] == 0, a[1] == 1])
    prob.solve(solver="CLARABEL")
    assert prob.value * KW == pytest.approx(139.55, abs=0.01)
    # an open switch carries nothing: the perspective variable w is 0 there
    assert abs(m.value("w_from")[0, 0]) < 1e-7


def sop_network():
    net = sopjax.add_sops(sopjax.ieee33(), pairs=[(18, 33)], s_rated_kva=500, loss=0.02)
    return net


def test_sop_balance_loss_capacity_and_kernel_agreement():
    net = sop_network()
    m = Model(net)
    m.data["p_load_pu"] = np.asarray(net.p_load_pu)[None]
    m.data["q_load_pu"] = np.asarray(net.q_load_pu)[None]
    f = soc_distflow
    f.set_bounds(m)
    f.variable_bus_voltage(m)
    f.variable_branch_power(m)
    f.variable_branch_current(m)
    f.variable_substation_power(m)
    f.injection_load(m)
    sop_model.variable_sop(m)
    sop_model.constraint_sop(m)
    for fn in (f.constraint_source_voltage, f.constraint_power_balance, f.constraint_voltage_drop,
               f.constraint_switched_flow, f.constraint_branch_cone):
        fn(m)
    obj = cp.sum(f.expression_line_losses(m)) + cp.sum(sop_model.expression_sop_losses(m))
    prob = cp.Problem(cp.Minimize(obj), m.constraints())
    prob.solve(solver="CLARABEL")
    assert prob.status == cp.OPTIMAL
    pi, qi, pj, qj = (float(m.value(k)[0, 0]) for k in ("sop_p_i", "sop_q_i", "sop_p_j", "sop_q_j"))
    li, lj = float(m.value("sop_loss_i")[0, 0]), float(m.value("sop_loss_j")[0, 0])
    s = 500 / 1e4
    assert pi + pj + li + lj == pytest.approx(0.0, abs=1e-8)
    assert np.hypot(pi, qi) <= s * (1 + 1e-6) and np.hypot(pj, qj) <= s * (1 + 1e-6)
    # losses are priced, so the loss cones are tight (L = A |S|)
    assert np.max(np.abs(sop_model.loss_gap(m))) < 1e-6
    # the SOP lowers losses below the 202.68 kW base case
    assert float(f.expression_line_losses(m).value[0]) * KW < 202.68 - 20
    # same DC balance as the kernel's closed form for a PQ + VdcQ SOP
    import jax.numpy as jnp

    _, _, pj_kernel, _ = sop_pq_net_load(
        jnp.array([int(net.sop.bus_i[0])]), jnp.array([int(net.sop.bus_j[0])]), jnp.array([0.02]), jnp.array([0.02]),
        jnp.array([pi]), jnp.array([qi]), jnp.array([qj]), net.n_bus)
    assert float(pj_kernel[0]) == pytest.approx(pj, abs=1e-6)


def test_sop_capacity_as_variable_for_sizing():
    net = sop_network()
    m = Model(net)
    m.data["p_load_pu"] = np.asarray(net.p_load_pu)[None]
    m.data["q_load_pu"] = np.asarray(net.q_load_pu)[None]
    f = soc_distflow
    f.set_bounds(m)
    for fn in (f.variable_bus_voltage, f.variable_branch_power, f.variable_branch_current,
               f.variable_substation_power, f.injection_load):
        fn(m)
    size = cp.Variable(1, nonneg=True)
    sop_model.variable_sop(m, s_rated_i_pu=size, s_rated_j_pu=size, s_ub_pu=[0.2])
    sop_model.constraint_sop(m)
    for fn in (f.constraint_source_voltage, f.constraint_power_balance, f.constraint_voltage_drop,
               f.constraint_switched_flow, f.constraint_branch_cone):
        fn(m)
    cost = 0.05  # p.u. of loss per p.u. of capacity: sizing trades losses for capacity
    obj = cp.sum(f.expression_line_losses(m)) + cp.sum(sop_model.expression_sop_losses(m)) + cost * size
    cp.Problem(cp.Minimize(obj), m.constraints()).solve(solver="CLARABEL")
    s = float(size.value[0])
    assert 0.001 < s < 0.2
    assert np.hypot(m.value("sop_p_i")[0, 0], m.value("sop_q_i")[0, 0]) <= s * (1 + 1e-5)


def test_errors_name_the_problem():
    net = sopjax.ieee33()
    m = Model(net)
    with pytest.raises(SopjaxError, match="variable_"):
        soc_distflow.constraint_voltage_drop(m)
    with pytest.raises(SopjaxError, match="unknown formulation"):
        get("acopf")
    with pytest.raises(SopjaxError, match="periods"):
        Model(net, periods=0)
    m = Model(net)
    m.data["p_load_pu"] = cp.Parameter((1, net.n_bus))
    with pytest.raises(SopjaxError, match="needs a value"):
        soc_distflow.set_bounds(m)
    net2 = sopjax.add_sops(net, pairs=[(18, 33)], s_rated_kva=500)
    m = Model(net2)
    with pytest.raises(SopjaxError, match="s_ub_pu is required"):
        sop_model.variable_sop(m, s_rated_i_pu=cp.Variable(1), s_rated_j_pu=cp.Variable(1))
