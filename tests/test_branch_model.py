"""Shunts, transformer ratios and dangling lines: every kernel against an independent Newton-Raphson.

The reference (sopjax.bench.newton) builds MATPOWER's bus admittance matrix (pi branches, ratio at the
from side, bus shunts) directly from the Network and solves it by Newton-Raphson
on the full complex equations: nothing of the referral in sopjax.branch_model is reused.
"""

import jax
import numpy as np
import pytest

import sopjax
from sopjax.bench.newton import newton_power_flow
from sopjax.branch_model import bus_shunts, refer
from sopjax.kernels.radial import lindistflow, sweep_power_flow
from sopjax.network import make_network
from sopjax.powerflow import batched_solver, make_grid
from sopjax.topology import compile_topology


def two_level_feeder(**overrides):
    """20 kV feeder 0-1-2, transformer 2->3 (tap 1.025 at the hv side), 0.4 kV 3-4-5, a transformer
    oriented lv->hv (5 is its to-bus... from 6 to 5), a dangling cable 1-7 open at bus 7."""
    kw = dict(
        bus_ids=[0, 1, 2, 3, 4, 5, 6, 7],
        p_load_mw=[0, 0.3, 0.2, 0.05, 0.04, 0.03, 0.02, 0.1],
        q_load_mvar=[0, 0.1, 0.05, 0.02, 0.01, 0.01, 0.005, 0.03],
        branch_from=[0, 1, 2, 3, 4, 6, 1],
        branch_to=[1, 2, 3, 4, 5, 5, 7],
        r_pu=[0.01, 0.02, 0.01, 0.05, 0.06, 0.02, 0.03],
        x_pu=[0.02, 0.03, 0.04, 0.03, 0.02, 0.06, 0.01],
        branch_g_pu=[1e-4, 0, 2e-3, 0, 0, 1e-3, 1e-4],
        branch_b_pu=[0.02, 0.03, -4e-3, 1e-3, 0, -2e-3, 0.05],
        tap=[1, 1, 1.025, 1, 1, 0.98, 1],
        shift_deg=[0, 0, 150, 0, 0, 0, 0],
        transformer=[False, False, True, False, False, True, False],
        dangle_end=[-1, -1, -1, -1, -1, -1, 0],
        in_service=[True, True, True, True, True, True, False],
        base_kv=[20, 20, 20, 0.4, 0.4, 0.4, 0.4, 20],
        shunt_g_pu=[0, 0, 0, 0, 0.002, 0, 0, 0],
        shunt_b_pu=[0, 0.05, 0, 0, 0, 0.01, 0, 0],
        slack_bus=0,
        v_slack_pu=1.02,
        base_mva=1.0,
    )
    kw.update(overrides)
    return make_network(**kw)


def newton_reference(net, status, p, q, va0_deg=(0, 0, 0, -150, -150, -150, -150, 0)):
    """Independent Newton-Raphson (sopjax.bench.newton); start angles across the 150 degree group."""
    vm, va, s_slack, ok = newton_power_flow(net, status, p, q, va0_rad=np.deg2rad(va0_deg))
    assert ok
    return vm, va, s_slack


def test_every_kernel_matches_newton_on_shunts_taps_and_a_dangling_cable():
    net = two_level_feeder()
    status = np.asarray(net.in_service)
    p, q = np.asarray(net.p_load_pu), np.asarray(net.q_load_pu)
    vm_ref, va_ref, s_slack = newton_reference(net, status, p, q)
    topo = compile_topology(net, status)
    grid = make_grid(net, topo)
    one = jax.jit(sweep_power_flow)(topo, grid, net.f_bus, p, q)
    assert bool(one.converged)
    np.testing.assert_allclose(one.vm_pu, vm_ref, atol=1e-9)
    np.testing.assert_allclose(one.va_rad - one.va_rad[0], va_ref - va_ref[0], atol=1e-9)
    assert complex(one.p_source_pu[0], one.q_source_pu[0]) == pytest.approx(s_slack, abs=1e-9)
    for iteration in ("power", "current"):
        res = batched_solver(tol=1e-11, layout="bus_major", iteration=iteration)(
            topo, grid, net.f_bus, p[None], q[None])  # fmt: skip
        np.testing.assert_allclose(np.asarray(res.vm_pu)[0], vm_ref, atol=1e-9)
        np.testing.assert_allclose(np.asarray(res.va_rad)[0], one.va_rad, atol=1e-9)
        np.testing.assert_allclose(np.asarray(res.p_source_pu)[0], one.p_source_pu, atol=1e-9)
        np.testing.assert_allclose(np.asarray(res.i_pu)[0], one.i_pu, atol=1e-9)


def test_closing_the_dangling_cable_moves_both_its_halves_onto_the_buses():
    net = two_level_feeder()
    status = np.asarray(net.in_service).copy()
    status[6] = True
    topo = compile_topology(net, status)
    y = bus_shunts(net, topo)
    assert y[7] == pytest.approx(0.05j / 2 + 1e-4 / 2)  # to-end half of branch 7 (1-7)
    vm_ref, _, _ = newton_reference(net, status, np.asarray(net.p_load_pu), np.asarray(net.q_load_pu))
    res, _ = sopjax.solve(net, status=status, tol=1e-11)
    np.testing.assert_allclose(res.vm_pu, vm_ref, atol=1e-9)


def test_plain_networks_keep_the_plain_kernels():
    net = sopjax.ieee33()
    grid = make_grid(net, compile_topology(net, np.asarray(net.in_service)))
    assert net.has_shunts is False and net.has_taps is False
    assert grid.g_sh is None and grid.b_sh is None and grid.v_scale is None and grid.va_shift is None


def test_referral_keeps_power_and_scales_voltage():
    net = two_level_feeder(shift_deg=None)
    topo = compile_topology(net, np.asarray(net.in_service))
    ref = refer(net, topo)
    # bus 3 sits behind the 1.025 ratio seen from its hv side: |V3| = |V3'| / 1.025
    assert ref.v_scale[3] == pytest.approx(1 / 1.025)
    # bus 6 is fed through branch 6 (from 6 to 5) against its orientation: ratio 0.98 on the child side
    assert ref.v_scale[6] == pytest.approx(ref.v_scale[5] * 0.98)


def test_lindistflow_with_shunts_is_close_to_the_sweep_at_light_load():
    net = two_level_feeder()
    topo = compile_topology(net, np.asarray(net.in_service))
    grid = make_grid(net, topo)
    p, q = 0.1 * np.asarray(net.p_load_pu), 0.1 * np.asarray(net.q_load_pu)
    exact = sweep_power_flow(topo, grid, net.f_bus, p, q)
    lin = lindistflow(topo, grid, net.f_bus, p, q)
    np.testing.assert_allclose(lin.vm_pu, exact.vm_pu, atol=2e-3)
    # the charging raises the voltage: without shunts LinDistFlow would be lower everywhere
    bare = net.replace(g_sh_pu=None, b_sh_pu=None, g_br_pu=None, b_br_pu=None)
    plain = lindistflow(topo, make_grid(bare, topo), net.f_bus, p, q)
    assert float(np.max(np.abs(plain.vm_pu - exact.vm_pu))) > float(np.max(np.abs(lin.vm_pu - exact.vm_pu)))


def test_bad_branch_data_is_named():
    with pytest.raises(sopjax.NetworkError, match="branch 3 has a non-positive tap ratio"):
        two_level_feeder(tap=[1, 1, 0.0, 1, 1, 1, 1])
    with pytest.raises(sopjax.NetworkError, match="mark it as a transformer"):
        two_level_feeder(transformer=None)


@pytest.mark.parametrize("form_name", ["soc_distflow", "lindistflow"])
def test_formulations_carry_charging_shunts_and_taps(form_name):
    """The cvxpy formulations on the two-level feeder: SOC is exact (tight) against the sweep;
    LinDistFlow with shunts linear in v is close at light load."""
    from test_soc_distflow import opf

    from sopjax.solvers.formulations import lindistflow as lin
    from sopjax.solvers.formulations import soc_distflow as soc

    form = soc if form_name == "soc_distflow" else lin
    # bus 7 behind the open cable is de-energized: no load there; limits wide enough for the LV side
    net = two_level_feeder(dangle_end=None, v_min_pu=0.8, v_max_pu=1.2,
                           p_load_mw=[0, 0.3, 0.2, 0.05, 0.04, 0.03, 0.02, 0],
                           q_load_mvar=[0, 0.1, 0.05, 0.02, 0.01, 0.01, 0.005, 0])  # fmt: skip
    net = net.replace(b_br_pu=np.where(np.arange(net.n_branch) == 6, 0.0, net.b_br_pu),
                      g_br_pu=np.where(np.arange(net.n_branch) == 6, 0.0, net.g_br_pu))  # fmt: skip
    scale = 1.0 if form is soc else 0.1
    m, _ = opf(net, form, scale=[scale])  # the minimum-loss power flow of tests/test_soc_distflow.py
    res, _ = sopjax.solve(net, load_scale=scale, tol=1e-11)
    vm = np.sqrt(m.value("v")[0])
    on = res.vm_pu > 0
    if form is soc:
        np.testing.assert_allclose(vm[on], res.vm_pu[on], atol=2e-6)
        assert float(m.value("p_substation")[0]) == pytest.approx(float(res.p_source_pu[0]), abs=1e-6)
    else:
        np.testing.assert_allclose(vm[on], res.vm_pu[on], atol=2e-3)
