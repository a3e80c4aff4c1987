"""pandapower import/export: mapping of every supported element, and one test per bad input."""

import math
import warnings

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest

import sopjax
from sopjax.errors import NetworkError, UnsupportedElementError
from sopjax.io.pandapower import (
    from_pandapower,
    load_pandapower_network,
    pandapower_bus_map,
)
from sopjax.io.pandapower_export import to_pandapower

warnings.filterwarnings("ignore", category=FutureWarning)


def feeder(n_bus=4, vn=10.0):
    """A small radial pandapower feeder: ext_grid at bus 0, lines 0-1-2-..., one load per bus."""
    net = pp.create_empty_network(sn_mva=1.0)
    for i in range(n_bus):
        pp.create_bus(net, vn_kv=vn, index=10 + i, min_vm_pu=0.92, max_vm_pu=1.08)
    pp.create_ext_grid(net, 10, vm_pu=1.02)
    for i in range(n_bus - 1):
        pp.create_line_from_parameters(
            net,
            10 + i,
            11 + i,
            length_km=2.0,
            r_ohm_per_km=0.3,
            x_ohm_per_km=0.2,
            c_nf_per_km=0.0,
            max_i_ka=0.2,
        )
        pp.create_load(net, 11 + i, p_mw=0.5, q_mvar=0.2)
    return net


def test_case33bw_matches_builtin_ieee33():
    mine = sopjax.ieee33()
    net = from_pandapower(pn.case33bw())
    assert net.n_bus == 33 and net.n_branch == 37
    assert net.bus_ids == tuple(range(33)) and net.branch_numbers == tuple(range(1, 38))
    np.testing.assert_allclose(net.r_pu, mine.r_pu, rtol=1e-12)
    np.testing.assert_allclose(net.x_pu, mine.x_pu, rtol=1e-12)
    np.testing.assert_allclose(net.p_load_pu, mine.p_load_pu, rtol=1e-12)
    np.testing.assert_allclose(net.q_load_pu, mine.q_load_pu, rtol=1e-12)
    np.testing.assert_array_equal(net.in_service, mine.in_service)
    np.testing.assert_array_equal(net.switchable, mine.switchable)  # the 5 out-of-service tie lines
    assert net.slack_bus == 0 and net.v_slack_pu == 1.0
    res, _ = sopjax.solve(net)
    assert abs(float(res.losses_pu) * net.base_mva * 1e3 - 202.68) < 0.01


def test_round_trip_keeps_ids_impedances_loads_and_statuses():
    a = sopjax.ieee69()
    b = from_pandapower(to_pandapower(a))
    assert b.bus_ids == a.bus_ids and b.branch_numbers == a.branch_numbers
    np.testing.assert_allclose(b.r_pu, a.r_pu, rtol=1e-12)
    np.testing.assert_allclose(b.x_pu, a.x_pu, rtol=1e-12)
    np.testing.assert_allclose(b.p_load_pu, a.p_load_pu, rtol=1e-12, atol=0)
    np.testing.assert_allclose(b.q_load_pu, a.q_load_pu, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(b.in_service, a.in_service)
    assert b.slack_bus == a.slack_bus and b.v_slack_pu == a.v_slack_pu
    np.testing.assert_allclose(b.base_kv, a.base_kv)


def test_line_parameters_rating_and_bus_limits():
    net_pp = feeder()
    net_pp.line.loc[1, "parallel"] = 2
    net_pp.line.loc[1, "df"] = 0.8
    net = from_pandapower(net_pp)
    zbase = 10.0**2 / 1.0
    np.testing.assert_allclose(net.r_pu, np.array([0.6, 0.3, 0.6]) / zbase)
    np.testing.assert_allclose(net.x_pu, np.array([0.4, 0.2, 0.4]) / zbase)
    rate = math.sqrt(3) * 10.0 * 0.2
    np.testing.assert_allclose(net.rate_pu, [rate, rate * 0.8 * 2, rate])
    np.testing.assert_allclose(net.v_min_pu, 0.92)
    np.testing.assert_allclose(net.v_max_pu, 1.08)
    assert net.v_slack_pu == 1.02 and net.bus_ids == (10, 11, 12, 13)


def test_missing_voltage_limits_default_to_0p9_1p1():
    net_pp = feeder()
    net_pp.bus.drop(columns=["min_vm_pu", "max_vm_pu"], inplace=True)
    net = from_pandapower(net_pp)
    np.testing.assert_allclose(net.v_min_pu, 0.9)
    np.testing.assert_allclose(net.v_max_pu, 1.1)


def test_loads_summed_per_bus_with_scaling_and_out_of_service_ignored():
    net_pp = feeder()
    pp.create_load(net_pp, 12, p_mw=0.1, q_mvar=0.05, scaling=2.0)
    pp.create_load(net_pp, 12, p_mw=7.0, q_mvar=7.0, in_service=False)
    net = from_pandapower(net_pp)
    k = net.bus_index(12)
    assert net.p_load_pu[k] == pytest.approx(0.5 + 0.2)
    assert net.q_load_pu[k] == pytest.approx(0.2 + 0.1)
    assert net.p_load_pu[net.bus_index(10)] == 0


def test_line_switches_set_status_and_switchable():
    net_pp = feeder(5)
    pp.create_switch(net_pp, 12, 2, et="l", closed=False)  # line 2 (12-13) open at bus 12
    pp.create_switch(net_pp, 11, 1, et="l", closed=True)
    net = from_pandapower(net_pp)
    np.testing.assert_array_equal(net.in_service, [True, True, False, True])
    np.testing.assert_array_equal(net.switchable, [False, True, True, False])
    topo = sopjax.compile_topology(net)
    assert not topo.energized[net.bus_index(13)] and not topo.energized[net.bus_index(14)]


def test_closed_bus_switch_merges_buses_and_open_one_is_ignored():
    net_pp = feeder()
    pp.create_bus(net_pp, vn_kv=10.0, index=20)
    pp.create_load(net_pp, 20, p_mw=0.3, q_mvar=0.1)
    pp.create_switch(net_pp, 13, 20, et="b", closed=True)
    pp.create_bus(net_pp, vn_kv=10.0, index=30)
    pp.create_switch(net_pp, 13, 30, et="b", closed=False)
    net = from_pandapower(net_pp)
    assert 20 not in net.bus_ids and 30 in net.bus_ids
    assert net.p_load_pu[net.bus_index(13)] == pytest.approx(0.8)
    assert pandapower_bus_map(net_pp)[20] == 13 and pandapower_bus_map(net_pp)[30] == 30


def test_sgen_becomes_pv_unit_or_negative_load():
    net_pp = feeder()
    pp.create_sgen(net_pp, 12, p_mw=0.3, q_mvar=0.4, sn_mva=1.0)
    pp.create_sgen(net_pp, 13, p_mw=0.2, q_mvar=0.0)
    net = from_pandapower(net_pp)
    np.testing.assert_array_equal(net.pv.bus, [net.bus_index(12), net.bus_index(13)])
    np.testing.assert_allclose(net.pv.s_rated_pu, [1.0, 0.2])
    np.testing.assert_allclose(net.pv.pf, [0.6, 1.0])
    assert net.p_load_pu[net.bus_index(12)] == pytest.approx(0.5)  # PV output is not in the load
    as_load = from_pandapower(net_pp, sgen_as="load")
    assert as_load.pv.count == 0
    assert as_load.p_load_pu[as_load.bus_index(12)] == pytest.approx(0.2)
    assert as_load.q_load_pu[as_load.bus_index(12)] == pytest.approx(-0.2)


def test_slack_at_trafo_lv_merges_lv_busbars_into_one_slack():
    net_pp = pp.create_empty_network()
    hv = [pp.create_bus(net_pp, vn_kv=20.0, index=i) for i in (0, 1)]
    for i in (5, 6, 7, 8):
        pp.create_bus(net_pp, vn_kv=0.4, index=i)
    for b in hv:
        pp.create_ext_grid(net_pp, b, vm_pu=0.98)
    pp.create_transformer(net_pp, 0, 5, std_type="0.4 MVA 20/0.4 kV")
    pp.create_transformer(net_pp, 1, 6, std_type="0.4 MVA 20/0.4 kV")
    pp.create_line_from_parameters(net_pp, 5, 7, 0.1, 0.2, 0.08, 0.0, 0.2)
    pp.create_line_from_parameters(net_pp, 6, 8, 0.1, 0.2, 0.08, 0.0, 0.2)
    pp.create_load(net_pp, 7, p_mw=0.01)
    pp.create_load(net_pp, 8, p_mw=0.02)
    full = from_pandapower(net_pp)  # transformers are modelled since issue 15; both ext_grids one slack
    assert full.n_branch == 4 and full.transformer is not None and int(np.sum(full.transformer)) == 2
    net = from_pandapower(net_pp, slack_at_trafo_lv=True)
    assert net.bus_ids == (5, 7, 8) and net.bus_ids[net.slack_bus] == 5 and net.v_slack_pu == 0.98
    assert pandapower_bus_map(net_pp, slack_at_trafo_lv=True) == {5: 5, 6: 5, 7: 7, 8: 8}
    res, _ = sopjax.solve(net)
    assert res.converged and res.p_source_pu[net.slack_bus] > 0.03


def test_slack_at_trafo_lv_refuses_loads_on_the_hv_side():
    net_pp = pp.create_empty_network()
    pp.create_bus(net_pp, vn_kv=20.0, index=0)
    pp.create_bus(net_pp, vn_kv=0.4, index=1)
    pp.create_ext_grid(net_pp, 0)
    pp.create_transformer(net_pp, 0, 1, std_type="0.4 MVA 20/0.4 kV")
    pp.create_load(net_pp, 0, p_mw=1.0)
    with pytest.raises(UnsupportedElementError, match="HV side"):
        from_pandapower(net_pp, slack_at_trafo_lv=True)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda n: pp.create_gen(n, 12, p_mw=0.1), "1 voltage-controlled generator"),
        (lambda n: pp.create_asymmetric_load(n, 12, p_a_mw=0.01), "asymmetric load"),
        (lambda n: pp.create_ward(n, 12, 0.1, 0.1, 0, 0), "1 ward"),
        (lambda n: pp.create_ext_grid(n, 13), "exactly one in-service ext_grid, found 2"),
    ],
)
def test_unsupported_elements_are_named_and_counted(build, match):
    net_pp = feeder()
    build(net_pp)
    with pytest.raises(UnsupportedElementError, match=match):
        from_pandapower(net_pp)


def test_storage_is_a_load_at_its_set_point():
    """Since issue 15 storage with power is modelled (it was refused): p_mw > 0 charges, like a load."""
    net_pp = feeder()
    pp.create_storage(net_pp, 12, p_mw=0.1, q_mvar=-0.02, max_e_mwh=1.0)
    net = from_pandapower(net_pp)
    k = net.bus_index(12)
    assert net.p_load_pu[k] == pytest.approx(0.5 + 0.1) and net.q_load_pu[k] == pytest.approx(0.2 - 0.02)


def test_storage_without_power_and_out_of_service_elements_are_accepted():
    net_pp = feeder()
    pp.create_storage(net_pp, 12, p_mw=0.0, max_e_mwh=1.0)
    pp.create_gen(net_pp, 12, p_mw=0.1, in_service=False)
    assert from_pandapower(net_pp).n_bus == 4


def test_no_ext_grid_is_an_error():
    net_pp = feeder()
    net_pp.ext_grid.drop(net_pp.ext_grid.index, inplace=True)
    with pytest.raises(UnsupportedElementError, match="found 0"):
        from_pandapower(net_pp)


def test_voltage_dependent_load_is_an_error():
    net_pp = feeder()
    net_pp.load.loc[0, "const_z_p_percent"] = 50.0
    with pytest.raises(UnsupportedElementError, match="voltage-dependent"):
        from_pandapower(net_pp)


def test_closed_bus_switch_with_impedance_is_an_error():
    net_pp = feeder()
    pp.create_bus(net_pp, vn_kv=10.0, index=20)
    pp.create_switch(net_pp, 13, 20, et="b", closed=True, z_ohm=0.5)
    with pytest.raises(UnsupportedElementError, match="z_ohm"):
        from_pandapower(net_pp)


def test_line_charging_and_shunts_are_modelled():
    """Since issue 15 charging and shunts are modelled (no longer refused): pi halves, shunt admittance."""
    net_pp = feeder()
    net_pp.line["c_nf_per_km"] = 300.0
    net_pp.line["g_us_per_km"] = 1.0
    pp.create_shunt(net_pp, 12, q_mvar=-0.1, p_mw=0.01)  # a 100 kvar capacitor
    net = from_pandapower(net_pp)
    zbase = 10.0**2 / 1.0
    np.testing.assert_allclose(net.b_br_pu, 2 * math.pi * 50 * 300e-9 * 2.0 * zbase)
    np.testing.assert_allclose(net.g_br_pu, 1e-6 * 2.0 * zbase)
    k = net.bus_index(12)
    assert net.b_sh_pu[k] == pytest.approx(0.1) and net.g_sh_pu[k] == pytest.approx(0.01)


def test_line_to_unknown_bus_and_bad_length_are_named():
    net_pp = feeder()
    net_pp.line.loc[1, "length_km"] = 0.0
    with pytest.raises(NetworkError, match="line 1"):
        from_pandapower(net_pp)


def test_absorbing_sgen_and_bad_option_are_errors():
    net_pp = feeder()
    pp.create_sgen(net_pp, 12, p_mw=0.3, q_mvar=-0.1)
    with pytest.raises(UnsupportedElementError, match="sgen 0 at bus 12"):
        from_pandapower(net_pp)
    with pytest.raises(NetworkError, match="sgen_as"):
        from_pandapower(net_pp, sgen_as="battery")


def test_unknown_builder_is_an_error():
    with pytest.raises(NetworkError, match="no network builder 'no_such_net'"):
        load_pandapower_network("no_such_net")


def test_to_pandapower_rejects_bad_shapes():
    with pytest.raises(NetworkError, match="branch status needs 37"):
        to_pandapower(sopjax.ieee33(), status=np.ones(3, bool))


@pytest.mark.slow
def test_lv_schutterwald_below_its_transformers():
    net = load_pandapower_network("lv_schutterwald")
    assert net.n_bus == 2913 and net.n_branch == 3000 and net.bus_ids[net.slack_bus] == 3000
    assert net.v_slack_pu == pytest.approx(0.965)
    assert net.total_load_mw == pytest.approx(1506 * 0.0021, rel=0.2)
