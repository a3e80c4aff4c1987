"""Capacitor banks (``Network.capacitor``): a fixed susceptance ``step * q_unit`` at their bus.

Checked against the same network with the equivalent bus shunt, against pandapower's
Newton-Raphson with a pandapower shunt, in Monte Carlo scoring (the step as a strategy
field), in the SOC / LinDistFlow formulations and in a restoration plan; bad inputs named.
"""

import json
import warnings

import numpy as np
import pytest

import sopjax
from sopjax.bench.newton import newton_power_flow
from sopjax.branch_model import capacitor_steps, fold_capacitors, with_capacitor_steps
from sopjax.errors import NetworkError
from sopjax.kernels.radial_np import radial_sweep
from sopjax.montecarlo import ArraySource, MonteCarloSettings, run_montecarlo
from sopjax.powerflow import batched_solver, make_grid
from sopjax.strategies import Strategy, StrategyError, compile_strategies, strategy_from_config
from sopjax.topology import compile_topology

BANKS = dict(buses=[18, 30], q_unit_kvar=[100.0, 150.0], units=[3, 4])
_RUN = []


@pytest.fixture(scope="module")
def net():
    """IEEE 33 with a 3 x 100 kvar bank at bus 18 (2 steps on) and a 4 x 150 kvar bank at bus 30 (all on)."""
    return sopjax.add_capacitors(sopjax.ieee33(), **BANKS, step=[2, 4])


def exact(net, capacitors=None, p=None, q=None):
    """The exact sweep on the case topology, one compiled solver for every call (keeps the tests fast)."""
    if not _RUN:
        _RUN.append(batched_solver("sweep", tol=1e-11, layout="vmap"))
    n = net if capacitors is None else with_capacitor_steps(net, capacitors)
    topo = compile_topology(n, np.asarray(n.in_service))
    p = np.atleast_2d(np.asarray(n.p_load_pu if p is None else p, float))
    q = np.atleast_2d(np.asarray(n.q_load_pu if q is None else q, float))
    res = _RUN[0](topo, make_grid(n, topo), np.asarray(n.f_bus), p, q)
    res = type(res)(*(np.asarray(a) for a in res))
    return res if p.shape[0] > 1 else type(res)(*(a[0] for a in res))


@pytest.fixture(scope="module")
def res(net):
    return exact(net)


@pytest.fixture(scope="module")
def plain():
    return exact(sopjax.ieee33())


def shunt_twin(net, steps):
    """The same network with the banks written by hand as bus shunt susceptance (p.u.)."""
    b = np.zeros(net.n_bus)
    for bus, q_kvar, k in zip(BANKS["buses"], BANKS["q_unit_kvar"], steps):
        b[net.bus_index(bus)] += k * q_kvar / 1e3 / net.base_mva
    plain = sopjax.ieee33()
    return plain.replace(g_sh_pu=np.zeros(net.n_bus), b_sh_pu=b)


def test_power_flow_with_banks_equals_the_equivalent_bus_shunt(net, res, plain):
    twin = exact(shunt_twin(net, [2, 4]))
    assert res.converged
    np.testing.assert_allclose(res.vm_pu, twin.vm_pu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(res.p_from_pu, twin.p_from_pu, rtol=0, atol=1e-12)
    assert res.vm_pu.min() > plain.vm_pu.min() + 0.01  # 900 kvar lift the feeder end
    # constant susceptance: the banks inject b |V|^2, so the substation supplies
    # the load's Q plus the reactive losses minus sum_b b |V_b|^2
    b = np.asarray(fold_capacitors(net).b_sh_pu)
    q_loss = float(np.sum(np.asarray(net.x_pu) * res.i_pu**2))
    q_expected = float(np.sum(net.q_load_pu)) + q_loss - float(np.sum(b * res.vm_pu**2))
    assert float(res.q_source_pu[0]) == pytest.approx(q_expected, abs=1e-9)
    # the independent dense Newton-Raphson reads the capacitor table itself
    vm_nr, _, _, ok = newton_power_flow(net, np.asarray(net.in_service), np.asarray(net.p_load_pu),
                                        np.asarray(net.q_load_pu))
    assert ok
    np.testing.assert_allclose(res.vm_pu, vm_nr[: net.n_bus], rtol=0, atol=1e-8)
    # the numpy twin of the branch-exchange search sees the banks too
    _, vm_np = radial_sweep(net, np.asarray(net.in_service), np.asarray(net.p_load_pu), np.asarray(net.q_load_pu))
    np.testing.assert_allclose(vm_np, res.vm_pu, rtol=0, atol=1e-8)


def test_power_flow_with_banks_matches_pandapower_newton_raphson(net, res):
    pp = pytest.importorskip("pandapower")
    from test_crosscheck_pandapower import TOL_A, TOL_MW, TOL_V, runpp

    from sopjax.io.pandapower_export import to_pandapower

    status, p, q = np.asarray(net.in_service), np.asarray(net.p_load_pu), np.asarray(net.q_load_pu)
    # by hand: the network without banks, plus pandapower shunts (q_mvar < 0 is capacitive)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        pnet = to_pandapower(sopjax.ieee33(), status, p, q)
        pp.create_shunt(pnet, 18, q_mvar=-0.2, p_mw=0.0)
        pp.create_shunt(pnet, 30, q_mvar=-0.6, p_mw=0.0)
        runpp(pnet)
        exported = runpp(to_pandapower(net, status, p, q))  # the export writes the banks as shunts
    pos = [pnet.bus.index.get_loc(b) for b in net.bus_ids]
    np.testing.assert_allclose(res.vm_pu, pnet.res_bus.vm_pu.to_numpy()[pos], rtol=0, atol=TOL_V)
    np.testing.assert_allclose(res.va_rad, np.radians(pnet.res_bus.va_degree.to_numpy()[pos]), rtol=0, atol=TOL_A)
    assert float(res.losses_pu) * net.base_mva == pytest.approx(float(pnet.res_line.pl_mw.sum()), abs=TOL_MW)
    assert float(res.q_source_pu[0]) * net.base_mva == pytest.approx(float(pnet.res_ext_grid.q_mvar[0]), abs=TOL_MW)
    np.testing.assert_allclose(exported.res_bus.vm_pu.to_numpy(), pnet.res_bus.vm_pu.to_numpy(), rtol=0, atol=1e-9)
    assert exported.shunt.step.tolist() == [2, 4] and exported.shunt.max_step.tolist() == [3, 4]


def test_steps_given_to_solve_and_the_network_default(net, res, plain):
    full = sopjax.add_capacitors(sopjax.ieee33(), **BANKS)  # default: every installed step connected
    assert np.asarray(full.capacitor.step).tolist() == [3, 4]
    a, _ = sopjax.solve(full, capacitors={18: 2}, tol=1e-11)
    np.testing.assert_allclose(a.vm_pu, res.vm_pu, rtol=0, atol=1e-12)
    np.testing.assert_allclose(exact(net, [0, 0]).vm_pu, plain.vm_pu, rtol=0, atol=1e-12)


def test_monte_carlo_step_as_a_strategy_field(net):
    """Per-sample voltages of each strategy equal the exact solve at that strategy's steps."""
    n = 8
    rng = np.random.default_rng(3)
    p0, q0 = np.asarray(net.p_load_pu), np.asarray(net.q_load_pu)
    f = rng.uniform(0.6, 1.2, (n, net.n_bus))
    source = ArraySource(p0 * f, q0 * f, np.zeros((n, 0)), nominal=(p0, q0, np.zeros(0)))
    steps = {"network": None, "off": {18: 0, 30: 0}, "bus 18 full": {18: 3}}
    strategies = [Strategy.build(net, name, capacitors=s) for name, s in steps.items()]
    ds = run_montecarlo(net, strategies, source, MonteCarloSettings(n_samples=n, chunk_size=n, keep_samples=True),
                        progress=False)
    vm = ds["vm_sample"].values  # (strategy, sample, bus)
    for k, s in enumerate(steps.values()):
        np.testing.assert_allclose(vm[k], exact(net, s, p0 * f, q0 * f).vm_pu, rtol=0, atol=1e-7)
    assert np.all(vm[1].min(axis=1) < vm[0].min(axis=1) - 0.01)  # banks off: lower voltages
    recorded = json.loads(ds.attrs["strategies"])[2]["capacitor_steps"]  # the dataset records each strategy's steps
    assert recorded == [{"bus": 18, "step": 3}, {"bus": 30, "step": 4}]


@pytest.mark.parametrize("form_name", ["soc_distflow", "lindistflow"])
def test_formulations_model_the_banks_at_their_steps(net, form_name, res, plain):
    from test_soc_distflow import opf

    from sopjax.solvers.formulations import lindistflow as lin
    from sopjax.solvers.formulations import soc_distflow as soc

    form = soc if form_name == "soc_distflow" else lin
    scale = 1.0 if form is soc else 0.2
    m, _ = opf(net, form, scale=[scale])
    if scale != 1.0:
        p, q = scale * np.asarray(net.p_load_pu), scale * np.asarray(net.q_load_pu)
        res, plain = exact(net, None, p, q), exact(sopjax.ieee33(), None, p, q)
    vm = np.sqrt(m.value("v")[0])
    if form is soc:  # the relaxation is tight: the exact solution, banks included
        np.testing.assert_allclose(vm, res.vm_pu, atol=2e-6)
        assert float(m.value("p_substation")[0]) == pytest.approx(float(res.p_source_pu[0]), abs=1e-6)
    else:  # LinDistFlow: close at light load, and much closer than without the banks
        err = np.max(np.abs(vm - res.vm_pu))
        assert err < 2e-3 < np.max(np.abs(vm - plain.vm_pu))


def test_restoration_plan_with_a_bank_is_exact():
    from sopjax.problems.restoration import RestorationSettings, exact_check, restored_load_bound, solve_restoration

    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=[300], pf=0.95)
    net = sopjax.add_capacitors(net, buses=[17], q_unit_kvar=200, units=3, step=2)
    st = RestorationSettings(faulted=(2,), pv_forecast_pu=(0.02,), switchable=(33,), use_sop=False)
    plan, model = solve_restoration(net, st)
    chk = exact_check(net, plan, st, model=model)
    assert plan.info.status == "optimal" and chk["converged"]
    assert chk["dv_max_pu"] < 1e-4
    assert chk["line_losses_kw"] == pytest.approx(plan.line_losses_kw, abs=0.05)
    assert plan.strategy(net, "p").capacitor_step.tolist() == [2]
    # the LinDistFlow bound model (its voltage ceiling counts the bank's injection) stays above the plan
    bound, info = restored_load_bound(net, st)
    assert info.status == "optimal" and bound >= plan.served_kw - 1e-6


def test_bad_capacitor_inputs_are_named(net):
    ieee = sopjax.ieee33()
    with pytest.raises(NetworkError, match=r"bank 0 at bus 18: units = 2.5; it must be an integer"):
        sopjax.add_capacitors(ieee, buses=[18], q_unit_kvar=100, units=2.5)
    with pytest.raises(NetworkError, match=r"bank 1 at bus 30: step = 5; it must be an integer in \[0, 4\]"):
        sopjax.add_capacitors(ieee, **BANKS, step=[1, 5])
    with pytest.raises(NetworkError, match=r"bank 0 at bus 18: q_unit_kvar = -100"):
        sopjax.add_capacitors(ieee, buses=[18], q_unit_kvar=-100, units=1)
    with pytest.raises(NetworkError, match="capacitor bank 0: unknown bus 99"):
        sopjax.add_capacitors(ieee, buses=[99], q_unit_kvar=100, units=1)
    cases = [
        ({99: 1}, "unknown bus 99"),
        ({17: 1}, r"bus 17 has no capacitor bank \(banks at buses: 18, 30\)"),
        ({18: 4}, r"capacitor bank 0 at bus 18: step 4 is outside \[0, 3\]"),
        ({18: -1}, r"step -1 is outside \[0, 3\]"),
        ({18: 1.5}, "step must be an integer, got 1.5"),
        ({18: True}, "step must be an integer, got True"),
        ({18: "2"}, "step must be an integer, got '2'"),
        ({"x": 1}, "named by their case bus id, got 'x'"),
        ([1, 2, 3], r"one value per bank \(2\), got 3"),
    ]
    for steps, msg in cases:
        with pytest.raises(StrategyError, match=rf"strategy 's': .*{msg}"):
            Strategy.build(net, "s", capacitors=steps)
    with pytest.raises(NetworkError, match="bus 17 has no capacitor bank"):
        sopjax.solve(net, capacitors={17: 1})
    # a strategy of another network
    s = Strategy.build(net, "s")
    other = sopjax.add_capacitors(ieee, buses=[18], q_unit_kvar=100, units=3)
    with pytest.raises(StrategyError, match="capacitor steps differ in number"):
        compile_strategies(other, [s])
    # config tables: string bus keys as TOML writes them, and their errors
    s = strategy_from_config(net, {"name": "c", "capacitors": {"18": 0}})
    assert s.capacitor_step.tolist() == [0, 4]
    with pytest.raises(StrategyError, match=r"strategy 'c': capacitor bank 1 at bus 30: step 9"):
        strategy_from_config(net, {"name": "c", "capacitors": {"30": 9}})
    assert capacitor_steps(net).tolist() == [2, 4]


def test_paths_without_a_capacitor_model_refuse_the_network(net):
    from sopjax.kernels.dispatch import DispatchInputError, compile_dispatch

    with_sop = sopjax.add_sops(net, pairs=[(8, 21)], s_rated_kva=1000)
    with pytest.raises(DispatchInputError, match="capacitor bank 0 at bus 18, which the convex SOP dispatch"):
        compile_dispatch(with_sop, with_sop.branch_status(close=[33], open=[7]))


def test_config_banks_and_strategy_steps(tmp_path, capsys):
    """``[network] capacitor`` rows build the banks; a strategy's bad step is a one-line CLI error (exit 2)."""
    from test_montecarlo import _write_config

    from sopjax.cli.main import main
    from sopjax.config import ConfigError, parse_network
    from sopjax.network_builder import build_network

    spec = parse_network({"case": "ieee33", "capacitor": [{"bus": 18, "q_unit_kvar": 100, "units": 3},
                                                          {"bus": 30, "q_unit_kvar": 150, "units": 4, "step": 1}]})
    built = build_network(spec)
    assert np.asarray(built.capacitor.step).tolist() == [3, 1]
    assert np.asarray(built.capacitor.q_unit_pu).tolist() == pytest.approx([0.1 / built.base_mva, 0.15 / built.base_mva])
    with pytest.raises(ConfigError, match=r"\[network\] capacitor\[0\] units"):
        parse_network({"case": "ieee33", "capacitor": [{"bus": 18, "q_unit_kvar": 100, "units": 1.5}]})
    cfg = _write_config(tmp_path, extra='[[strategy]]\nname = "caps"\ncapacitors = {"18" = 4}\n')
    cfg.write_text(cfg.read_text().replace(
        "[fault]", "capacitor = [{ bus = 18, q_unit_kvar = 100, units = 3 }]\n[fault]"))
    assert main(["montecarlo", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "strategy 'caps': capacitor bank 0 at bus 18: step 4 is outside [0, 3]" in err


def test_reconfiguration_with_banks_is_tight_against_the_exact_sweep(net):
    """The SOC reconfiguration sees the banks: its loss value equals the exact losses of its topology."""
    from sopjax.problems.reconfiguration.build import solve_reconfiguration

    sw = np.zeros(net.n_branch, bool)
    sw[[net.branch_index(k) for k in (7, 9, 14, 32, 33, 34, 35, 36, 37)]] = True
    r = solve_reconfiguration(net, switchable=sw)
    assert r.info.status == "optimal"
    assert r.losses_relaxed_kw == pytest.approx(r.losses_kw, abs=0.05)
    exact_loss = float(sopjax.solve(net, status=r.status, tol=1e-11)[0].losses_pu) * 1e3 * net.base_mva
    assert r.losses_kw == pytest.approx(exact_loss, abs=1e-6)
    # no worse than the case's best topology without banks (open 7, 9, 14, 32, 37), evaluated with them;
    # before the flow-direction cut left Q free under capacitive shunts, SCIP returned 158.64 kW here
    known = net.branch_status(open=[7, 9, 14, 32, 37], close=[33, 34, 35, 36])
    known_kw = float(sopjax.solve(net, status=known, tol=1e-11)[0].losses_pu) * 1e3 * net.base_mva
    assert r.losses_kw <= known_kw + 1e-3 and known_kw < 139.55 - 20
