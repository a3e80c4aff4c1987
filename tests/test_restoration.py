"""Service restoration with SOP + reconfiguration (sopjax.problems.restoration), ``sopjax restore``."""

import dataclasses
import json
import textwrap

import numpy as np
import pytest

import sopjax
from sopjax.cli.main import main
from sopjax.errors import NetworkError, SopjaxError
from sopjax.solvers.options import NAIVE
from sopjax.problems.restoration import (
    RestorationSettings,
    build_restoration,
    exact_check,
    plan_periods,
    restored_load_bound,
    solve_restoration,
)
from sopjax.problems.restoration.study import pv_summary, score_plans, study_from_config
from sopjax.strategies import compile_strategies

KVA = 1e4


def seed_net(sop_kva=2000):
    """Seed 002 section 5.2: PV of Table 4, SOP 8-21."""
    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=[300, 200, 200], pf=0.95)
    return sopjax.add_sops(net, pairs=[(8, 21)], s_rated_kva=sop_kva, loss=0.02)


FORECAST = tuple(np.array([300.0, 200.0, 200.0]) * 500 / 700 / KVA)
CASES = {
    1: dict(switchable=(33,), use_sop=False),
    2: dict(switchable="none", keep_open=(33,), use_sop=True),
    3: dict(switchable="all", use_sop=False),
    4: dict(switchable="all", keep_open=(33,), use_sop=True),
}


def settings(case, **kw):
    return RestorationSettings(faulted=(2,), pv_forecast_pu=FORECAST, **{**CASES[case], **kw})


@pytest.fixture(scope="module")
def solved():
    net = seed_net()
    out = {}
    for case in (1, 2):
        st = settings(case)
        plan, model = solve_restoration(net, st)
        out[case] = (st, plan, model)
    return net, out


def test_tie_switch_below_sop_and_plans_are_exact(solved):
    net, out = solved
    (s1, p1, m1), (s2, p2, m2) = out[1], out[2]
    assert p1.info.status == "optimal" and p2.info.status == "optimal"
    assert p1.outage_kw == pytest.approx(3255.0) and p2.outage_kw == pytest.approx(3255.0)
    assert 0 < p1.recovery_ratio < p2.recovery_ratio < 1
    assert p1.closed == [33] and p1.sop_modes == ["off"]
    assert p2.sop_modes == ["vf_i"] and p2.switch_operations == 0
    for st, p, m in ((s1, p1, m1), (s2, p2, m2)):
        chk = exact_check(net, p, st, model=m)
        assert chk["converged"] and not chk["any_violation"]
        assert chk["recovery_ratio"] == pytest.approx(p.recovery_ratio, abs=1e-9)
        assert chk["dv_max_pu"] < 1e-4  # SOC voltages = exact voltages
        assert chk["line_losses_kw"] == pytest.approx(p.line_losses_kw, abs=0.05)
        # balance of the model at the forecast: substation + PV + SOP = served load + losses
        sub = float(m.value("p_substation")[0]) * KVA
        pv = float(np.sum(m.value("pv_p")[0])) * KVA
        assert sub + pv == pytest.approx(p.served_kw + p.line_losses_kw + p.sop_losses_kw, abs=1e-3)


def test_vf_sop_plan_as_strategy(solved):
    net, out = solved
    st, p, _ = out[2]
    sp = p.sop_setpoints[0]
    assert 1.0 <= sp["u_set_pu"] <= 1.05  # U >= U_set = 1.0 within the limit
    # DC balance P_i + P_j + L = 0 and the island side supplies the island
    assert sp["p_i_kw"] + sp["p_j_kw"] + sp["loss_kw"] == pytest.approx(0.0, abs=1e-3)
    assert sp["p_i_kw"] > 0 > sp["p_j_kw"]
    assert np.hypot(sp["p_i_kw"], sp["q_i_kvar"]) <= 2000 * (1 + 1e-6)
    strat = p.strategy(net, "case 2")
    batch = compile_strategies(net, [strat], fault_open=[2, 33])
    assert batch.names == ("case 2",)
    topo = batch.topologies[0]
    assert np.array_equal(np.asarray(topo.energized), p.energized)


def test_monte_carlo_score_of_a_plan(solved):
    net, out = solved
    st, p, _ = out[1]
    unc = {"scheme": "mc", "pv": {"kind": "normal", "sigma_frac": 0.1}, "load": {"kind": "normal", "sigma_frac": 0.1}}
    _, score = score_plans(net, [("tie", p)], st, unc, {"samples": 32, "seed": 1})
    s = score["tie"]
    assert s["recovery_nominal"] == pytest.approx(p.recovery_ratio, abs=1e-9)
    assert 0 <= s["recovery_guaranteed"] <= s["recovery_mean"] <= 1
    assert s["samples"] == 32 and s["failed"] == 0


def test_uncertainty_periods_and_bound_model():
    net = seed_net()
    st = settings(2, uncertainty="quantile", load_sigma_frac=0.1)
    d = plan_periods(net, st)
    assert d["labels"][0] == "forecast" and len(d["labels"]) == 3
    mu = np.asarray(FORECAST)
    z = 2.4135  # Phi^-1(0.9921)
    np.testing.assert_allclose(d["pv_p_pu"][1], mu * (1 - z * 0.1), rtol=1e-3)
    np.testing.assert_allclose(d["pv_p_pu"][2], mu * (1 + z * 0.1), rtol=1e-3)
    # the total load of the stressed period is the 99.21 % quantile of the sum of independent loads
    p = np.asarray(net.p_load_pu)
    assert d["p_load_pu"][1].sum() == pytest.approx(p.sum() + z * 0.1 * np.sqrt(np.sum(p**2)), rel=1e-3)
    st = settings(2, uncertainty="scenarios", scenarios=4, load_sigma_frac=0.1, seed=3)
    d = plan_periods(net, st)
    assert len(d["labels"]) == 5 and np.all(d["pv_p_pu"] >= 0)
    assert not np.allclose(d["p_load_pu"][1], d["p_load_pu"][0])
    m, prob = build_restoration(net, st)
    assert m.periods == 5 and "sop_shared_setpoints" in m.con


def test_lindistflow_bound_is_above_the_soc_optimum(solved):
    net, out = solved
    st, p, _ = out[1]
    bound, info = restored_load_bound(net, st)
    assert info.solver == "HIGHS" and info.status == "optimal"
    assert bound >= p.served_kw - 1e-6


def write(tmp_path, body):
    path = tmp_path / "restore.toml"
    path.write_text(textwrap.dedent(body))
    return str(path)


BASE = """
title = "test"
[network]
case = "ieee33"
pv = [{{ bus = 30, s_rated_kva = 1000, pf = 0.95 }}]
{sop}
[fault]
open = [{fault}]
[restoration]
switchable = [33]
use_sop = false
u_set_pu = {u}
[uncertainty]
pv_forecast_kw = [500]
pv = {{ kind = "normal", sigma_frac = 0.1 }}
load = {{ kind = "normal", sigma_frac = 0.1 }}
"""


def test_cli_restore_json(tmp_path, capsys):
    path = write(tmp_path, BASE.format(sop="", fault=2, u=1.0))
    code = main(["restore", path, "--json", "--no-montecarlo"])
    d = json.loads(capsys.readouterr().out)
    assert code == 0
    assert d["plan"]["closed"] == [33] and d["plan"]["solver"]["status"] == "optimal"
    assert d["exact_check"]["converged"] and 0 < d["plan"]["recovery_ratio"] < 1
    assert d["plan"]["outage_kw"] == pytest.approx(3255.0)


def test_bad_input(tmp_path, capsys):
    net = seed_net()
    with pytest.raises(SopjaxError, match="U_set = 1.1 p.u. is above the voltage limit 1.05"):
        build_restoration(net, settings(2, u_set_pu=1.1))
    with pytest.raises(SopjaxError, match="cuts the substation .* off from every load"):
        build_restoration(net, RestorationSettings(faulted=(1,), pv_forecast_pu=FORECAST))
    with pytest.raises(NetworkError, match="unknown branch number 40"):
        build_restoration(net, RestorationSettings(faulted=(40,)))
    with pytest.raises(SopjaxError, match="switchable must be"):
        build_restoration(net, RestorationSettings(faulted=(2,), switchable="some"))
    with pytest.raises(SopjaxError, match="pv_forecast needs one value per PV unit"):
        build_restoration(net, RestorationSettings(faulted=(2,), pv_forecast_pu=(0.01,)))
    # config: SOP on a bus that does not exist, U_set above the limit, unknown key
    path = write(tmp_path, BASE.format(sop='sop = [{ pair = [8, 99], s_rated_kva = 2000 }]', fault=2, u=1.0))
    code = main(["restore", path])
    assert code == 2 and "unknown bus 99" in capsys.readouterr().err
    path = write(tmp_path, BASE.format(sop='sop = [{ pair = [8, 21], s_rated_kva = 2000 }]', fault=2, u=1.2)
                 .replace("use_sop = false", "use_sop = true"))
    code = main(["restore", path])
    assert code == 2 and "U_set = 1.2" in capsys.readouterr().err
    with pytest.raises(SopjaxError, match="unknown key 'etad'"):
        study_from_config({"network": {"case": "ieee33"}, "fault": {"open": [2]}, "restoration": {"etad": 1}})


@pytest.mark.slow
def test_table5_order():
    """Seed 002 Table 5 with configs/seed002_table5.toml: tie switch < SOP < reconfiguration < SOP + reconf."""
    import pathlib
    import tomllib

    cfg = tomllib.loads((pathlib.Path(__file__).parents[1] / "configs" / "seed002_table5.toml").read_text())
    base = {k: v for k, v in cfg.items() if k not in ("case", "experiment", "montecarlo")}
    r = []
    for case in cfg["case"]:
        study = study_from_config({**base, "restoration": {**base["restoration"], **case["restoration"]}})
        plan, _ = solve_restoration(study.net, study.settings, time_limit=300)
        r.append(plan.recovery_ratio)
    assert r[0] < r[1] < r[2] < r[3]


@pytest.mark.slow
def test_naive_agrees():
    net = seed_net()
    tight = solve_restoration(net, settings(4))[0]
    naive = solve_restoration(net, dataclasses.replace(settings(4), options=NAIVE))[0]
    assert naive.objective == pytest.approx(tight.objective, rel=2e-4)


def test_bad_input_nothing_restorable_and_healthy_area(tmp_path, capsys):
    """One-line errors that name the element, before or instead of a solver failure."""
    net = seed_net()
    fc = dict(pv_forecast_pu=FORECAST)
    # a fault on an open tie interrupts nothing
    with pytest.raises(SopjaxError, match=r"branch\(es\) 33 \(21-8\) interrupts no load"):
        build_restoration(net, RestorationSettings(faulted=(33,), switchable="none", **fc))
    # no switch and no SOP can reach the outage area
    with pytest.raises(SopjaxError, match=r"nothing can be restored .* no closable switch connects the outage "
                                          r"area \(buses 26, 27, 28"):
        build_restoration(net, RestorationSettings(faulted=(25,), switchable="none", use_sop=False, **fc))
    # limits that the substation itself violates; bad current limit
    with pytest.raises(SopjaxError, match=r"substation voltage 1 p.u. \(bus 1\) lies outside .*\[1.01, 1.05\]"):
        build_restoration(net, settings(1, v_min_pu=1.01))
    with pytest.raises(SopjaxError, match=r"i_max_pu of branch 1 \(1-2\) must be a positive number"):
        build_restoration(net, settings(1, i_max_pu=-0.1))
    # a current limit that the healthy area already exceeds: the diagnosis names the branch
    from sopjax.solvers.backends.solve import InfeasibleError

    with pytest.raises(InfeasibleError, match=r"branch 1 \(1-2\) .* above i_max_pu = 0.001"):
        solve_restoration(net, settings(1, i_max_pu=0.001), time_limit=60)
    # CLI: a fault on a branch that does not exist -> exit 2, one line naming it
    path = write(tmp_path, BASE.format(sop="", fault=40, u=1.0))
    assert main(["restore", path, "--no-montecarlo"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown branch number 40" in err and "\n" not in err


def test_unreachable_block_stays_dead():
    """Two faults (2-3 and 6-7): buses 3-6 and 23-33 are reachable by no switch or SOP; the rest is restored.

    The dead block's fixed branches are closed but carry nothing; they are not switching operations.
    """
    net = seed_net()
    st = RestorationSettings(faulted=(2, 6), switchable=(33,), use_sop=False, max_switch_operations=1,
                             pv_forecast_pu=FORECAST)
    plan, model = solve_restoration(net, st, time_limit=60)
    assert plan.info.status == "optimal" and plan.closed == [33] and plan.opened == []
    dead = sorted(net.bus_ids[b] for b in np.flatnonzero(~plan.energized))
    assert dead == [3, 4, 5, 6] + list(range(23, 34))
    assert plan.status[net.branch_index(3)] and plan.switch_operations == 1  # 3-4: closed, dead
    chk = exact_check(net, plan, st, model=model)
    assert chk["converged"] and not chk["any_violation"]
    assert chk["recovery_ratio"] == pytest.approx(plan.recovery_ratio, abs=1e-9) and plan.recovery_ratio > 0


def test_vdcq_partner_is_fed_by_the_substation():
    """A Vf island must not contain the SOP's own VdcQ terminal (the SOP would feed itself).

    With branch 1-2 forced open and the SOP in Vf mode at bus 8, the only way to energize the healthy
    buses 2, 19-22 (bus 21 = the VdcQ terminal) is through tie 12-22 from the Vf island, with PV as
    its only energy:
    the model must be infeasible, and feasible once branch 1-2 may close.
    """
    import cvxpy as cp

    from sopjax.solvers.backends.solve import InfeasibleError, solve_problem

    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=526.3, pf=0.95)
    net = sopjax.add_sops(net, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)
    opts = dataclasses.replace(settings(4).options, formulation="lindistflow")
    st = RestorationSettings(faulted=(2,), switchable=(1, 35), keep_open=(33,), pv_forecast_pu=(0.05, 0.05, 0.05),
                             options=opts)
    m, prob = build_restoration(net, st)
    self_fed = [m.var["alpha"][net.branch_index(1)] == 0, m.var["sop_vf_i"][0] == 1]
    with pytest.raises(InfeasibleError):
        solve_problem(cp.Problem(prob.objective, prob.constraints + self_fed), solver="HIGHS", time_limit=60)
    info = solve_problem(cp.Problem(prob.objective, prob.constraints + self_fed[1:]), solver="HIGHS", time_limit=60)
    assert info.status == "optimal"


@pytest.mark.parametrize("truncation", ["clip", "inverse_cdf"])
def test_planner_pv_quantile_is_the_scorer_sample_quantile(truncation):
    """The quantile period's PV equals the empirical 0.79 % quantile of the draws the Monte Carlo score
    makes (100 000 draws: standard error ~0.5 kW; the two truncations differ by 6.3 kW)."""
    import jax

    from sopjax.sampling import UncertaintyModel

    unc = {"pv_forecast_kw": [500.0], "scheme": "mc",
           "pv": {"kind": "normal", "sigma_frac": 0.1, "truncation": truncation}, "load": "none"}
    cfg = {"network": {"case": "ieee33", "pv": [{"bus": 30, "s_rated_kva": 526.3, "pf": 0.95}]},
           "fault": {"open": [2]}, "restoration": {"uncertainty": "quantile", "quantile_sides": "low"},
           "uncertainty": unc, "montecarlo": {"samples": 8, "confidence": 0.9921}}
    study = study_from_config(cfg)
    assert study.settings.pv_model.truncation == truncation
    planned_kw = plan_periods(study.net, study.settings)["pv_p_pu"][1, 0] * KVA
    # the scorer's sampler: score_plans builds it from the same [uncertainty] table
    model = UncertaintyModel.from_dict({k: v for k, v in unc.items() if k != "pv_forecast_kw"})
    s = model.sample(study.net, [500.0 / KVA], key=jax.random.key(11), n=100_000)
    empirical = float(np.quantile(np.asarray(s.p_pv_pu[:, 0]) * KVA, 1 - 0.9921))
    assert planned_kw == pytest.approx(empirical, abs=2.0)
    assert planned_kw == pytest.approx({"clip": 379.32, "inverse_cdf": 373.0}[truncation], abs=0.1)
    summary = pv_summary(study.net, study.settings)
    assert summary["truncation"] == truncation and summary["quantiles"]["0.0079"][0] == pytest.approx(planned_kw)


def test_pv_model_must_be_a_pv_model():
    with pytest.raises(SopjaxError, match="pv_model"):
        settings(2, pv_model="clip").validate(seed_net())
