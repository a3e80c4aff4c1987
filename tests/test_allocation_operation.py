"""Stage 2 (sopjax.problems.allocation.operation) and the direct cost minimum (cost_optimum) on the 7-bus feeder."""

import numpy as np
import pytest
from test_allocation import COSTS, LOAD, PV, tiny_net
from test_allocation import model as tiny_model  # noqa: F401  (the fixture)

import sopjax
from sopjax.errors import ConfigError
from sopjax.problems.allocation import (
    AllocationCosts,
    EvalSettings,
    OperatingDay,
    RobustnessSettings,
    Stage2Settings,
    agreement,
    evaluate_plans,
    make_model,
    make_space,
    plan_costs,
    resweep_schedule,
    solve_cost_minimum,
    solve_operation,
    study_from_config,
)
from sopjax.problems.allocation.costs import COST_TERMS
from sopjax.problems.allocation.operation import OPERATION_TERMS, build_allocation_mip, cost_terms
from sopjax.problems.planning.costs import CostModel
from sopjax.solvers.backends.solve import InfeasibleError, solve_problem

PLAN = np.array([2, 1, 3])  # 200 kVA SOP at 4-7, 1 step at bus 3, 3 steps at bus 6


@pytest.fixture(scope="module")
def model(tiny_model):  # noqa: F811  (the fixture imported above)
    """test_allocation's 7-bus model with forward-difference gradients (the quicker program to compile)."""
    m = make_model(tiny_model.net, tiny_model.space, tiny_model.day, settings=EvalSettings(gradient="fd"))
    m.set_batch_size(2)  # one compiled evaluation program for every re-sweep below
    return m


@pytest.mark.parametrize("cap", [0, 1, 2])
def test_schedule_is_integer_within_units_and_respects_the_switching_cap(model, cap):
    r = solve_operation(model, COSTS, PLAN, settings=Stage2Settings(max_switching=cap))
    assert r.status == "optimal"
    steps = r.cb_steps
    assert steps.dtype.kind == "i" and steps.shape == (4, 2)
    assert (steps >= 0).all() and (steps <= PLAN[1:]).all()
    changes = (steps != np.roll(steps, 1, axis=0)).sum(0)  # setting changes over the cyclic day
    assert (changes <= cap).all() and (r.bank_switchings == changes).all()
    assert (r.cb_step_ops == np.abs(steps - np.roll(steps, 1, axis=0)).sum(0)).all()
    # the SOP stays within its capacity on both VSCs
    assert (np.hypot(r.sop_p_i_kw, r.sop_q_i_kvar) <= 200 + 1e-4).all()
    assert (np.hypot(r.sop_p_j_kw, r.sop_q_j_kvar) <= 200 + 1e-4).all()
    assert (r.vm_pu[:, 1:] >= 0.95 - 1e-6).all() and (r.vm_pu <= 1.05 + 1e-6).all()


def test_a_tighter_switching_cap_never_lowers_the_operation_cost(model):
    c = [solve_operation(model, COSTS, PLAN, settings=Stage2Settings(max_switching=k)).operation_cost for k in (0, 2)]
    free = solve_operation(model, COSTS, PLAN, settings=Stage2Settings(max_switching=None)).operation_cost
    assert c[0] >= c[1] - 1e-6 >= free - 2e-6


def test_cost_terms_equal_plan_costs_by_hand():
    """The model's linear cost terms and plan_costs price one hand-made operating day alike."""
    imp, line, conv = np.array([100.0, 200.0]), np.array([5.0, 7.0]), np.array([1.0, 2.0])
    a = cost_terms(COSTS, periods=2, sop_kva_total=200.0, n_sites=1, cb_kvar_total=150.0, import_kw=imp,
                   line_loss_kw=line, converter_loss_kw=conv, cb_step_ops=6)
    b = plan_costs(COSTS, sop_kva=[[200.0]], cb_kvar=[[150.0]], import_kw=imp[None], line_loss_kw=line[None],
                   converter_loss_kw=conv[None], cb_switch_ops=[6])
    for k in COST_TERMS:
        assert a[k] == pytest.approx(b[k][0]), k
    assert a["purchase"] == pytest.approx(365 * 0.07 * 300.0) and a["cb_switching"] == pytest.approx(365 * 2.0 * 6)


@pytest.mark.parametrize("formulation", ["lindistflow", "soc"])
def test_the_solved_model_prices_its_solution_as_plan_costs(model, formulation):
    mip = build_allocation_mip(model, COSTS, formulation=formulation, plan=PLAN, max_switching=2)
    info = solve_problem(mip.cvx)
    from sopjax.problems.allocation.operation import extract

    r = extract(model, COSTS, mip, info, info.status)
    for k in OPERATION_TERMS:  # the objective's terms at the solution = plan_costs of the extracted solution
        assert float(np.asarray(getattr(mip.terms[k], "value", mip.terms[k]))) == pytest.approx(r.costs[k], rel=1e-6,
                                                                                                 abs=1e-3), k
    assert info.objective / 1e-3 == pytest.approx(r.operation_cost, rel=1e-6)
    # purchase includes the losses: import = load - PV + line + converter losses
    load = model.day.p_load_pu.sum(1) * 1e3
    pv = model.day.p_pv_pu.sum(1) * 1e3
    np.testing.assert_allclose(r.import_kw, load - pv + r.line_loss_kw + r.converter_loss_kw, atol=1e-3)


def test_lindistflow_and_soc_close_and_the_resweep_confirms(model):
    lin = solve_operation(model, COSTS, PLAN, settings=Stage2Settings(formulation="lindistflow", max_switching=2))
    soc = solve_operation(model, COSTS, PLAN, settings=Stage2Settings(formulation="soc", max_switching=2))
    assert lin.status == soc.status == "optimal"
    assert abs(lin.operation_cost - soc.operation_cost) <= 0.01 * soc.operation_cost
    np.testing.assert_allclose(lin.vm_pu, soc.vm_pu, atol=5e-3)
    rs = resweep_schedule(model, COSTS, np.stack([PLAN, PLAN]), np.stack([lin.cb_steps, soc.cb_steps]))
    assert rs["converged"].all()
    # the SOC relaxation is tight here: its cost is the exact evaluation's within 0.1 %
    assert abs(rs["operation_cost"][1] - soc.operation_cost) <= 1e-3 * soc.operation_cost


def test_the_schedule_hook_reproduces_the_on_off_rule(model):
    kva, units = model.space.decode(PLAN[None])
    rule = units[:, None, :] * model.cb_on[None, :, None]
    run = lambda **kw: model.operate_with_jacobian(kva, units, **kw)[0]
    a = run()
    b = run(cb_steps=rule)
    np.testing.assert_allclose(b.p_import, a.p_import, rtol=1e-12)
    np.testing.assert_allclose(b.vm_pu, a.vm_pu, rtol=1e-12)
    c = run(cb_steps=np.zeros_like(rule))
    assert not np.allclose(c.vm_pu, a.vm_pu)


def test_infeasible_stage2_names_the_plan(model):
    tight = make_model(model.net, model.space, model.day, settings=EvalSettings(v_min_pu=1.0, v_max_pu=1.001))
    r = solve_operation(tight, COSTS, PLAN)
    assert r.status == "infeasible" and not r.solved
    assert "SOP 4-7: 200 kVA, CB 3: 50 kvar, CB 6: 150 kvar" in r.message
    assert np.isnan(r.operation_cost) and (r.cb_steps == -1).all()
    with pytest.raises(InfeasibleError, match="SOP 4-7: 200 kVA"):
        solve_operation(tight, COSTS, PLAN, raise_on_infeasible=True)


def test_a_plan_outside_the_box_is_refused(model):
    with pytest.raises(ConfigError, match="SOP 4-7: 5 is outside 0..4"):
        solve_operation(model, COSTS, np.array([5, 0, 0]))


BASE = {"network": {"case": "ieee33"}, "allocation": {"sop": {"candidates": [[12, 22], [25, 29]]}},
        "ga": {"pop_size": 8, "generations": 1}}


@pytest.mark.parametrize("key, value, message", [
    ("formulation", "dc", "stage2.formulation must be one of lindistflow, soc, got 'dc'"),
    ("time_limit_s", -1.0, "stage2.time_limit_s must be a positive number"),
    ("time_limit_s", "long", "stage2.time_limit_s"),
    ("plans", "all", "stage2.plans must be one of front, compromise"),
    ("mip_gap", 1.5, r"stage2.mip_gap must lie in \[0, 1\)"),
    ("enabled", "yes", "stage2.enabled must be true or false"),
    ("bogus", 1, r"\[stage2\]: unknown key 'bogus'"),
])
def test_bad_stage2_config_is_a_config_error(key, value, message):
    with pytest.raises(ConfigError, match=message):
        study_from_config({**BASE, "stage2": {key: value}})


def test_stage2_config_is_parsed_and_kept_out_of_the_ga_fingerprint():
    a = study_from_config({**BASE, "allocation": {"sop": {"candidates": [[12, 22]]},
                                                  "capacitors": {"buses": [18], "max_units": 2, "max_switching": 3}},
                           "stage2": {"formulation": "soc", "plans": "compromise", "time_limit_s": 5}})
    assert a.stage2 == Stage2Settings(formulation="soc", plans="compromise", time_limit_s=5.0, max_switching=3)
    b = study_from_config({**BASE, "allocation": a.config["allocation"]})
    assert b.stage2 is None and a.fingerprint() == b.fingerprint()


def test_cli_bad_stage2_exits_2(tmp_path, capsys):
    from sopjax.cli.main import main

    p = tmp_path / "bad.toml"
    p.write_text('[network]\ncase = "ieee33"\n[allocation.sop]\ncandidates = [[12, 22]]\n'
                 '[stage2]\nformulation = "dc"\n')
    assert main(["allocate", str(p)]) == 2
    assert "stage2.formulation must be one of lindistflow, soc" in capsys.readouterr().err


# ----------------------------------------------------------------- the direct cost minimum


def skewed_model():
    """The 7-bus feeder with 1.6x the load on feeder 5-6-7 and 1500 kVA of PV at bus 4: an SOP at 4-7 pays."""
    net = tiny_net()
    scale = np.where(np.isin(np.asarray(net.bus_ids), [5, 6, 7]), 1.6, 1.0)
    net = net.replace(p_load_pu=np.asarray(net.p_load_pu) * scale, q_load_pu=np.asarray(net.q_load_pu) * scale)
    net = sopjax.add_pv(net, buses=[4], s_rated_kva=[1500], pf=1.0)
    space = make_space(net, sop_pairs=[(4, 7)], module_kva=100, max_modules=4, cb_buses=[3, 6], cb_unit_kvar=50,
                       cb_max_units=3)
    day = OperatingDay(np.outer(LOAD, net.p_load_pu), np.outer(LOAD, net.q_load_pu),
                       np.outer(PV, np.asarray(net.pv.s_rated_pu)))
    return make_model(net, space, day, settings=EvalSettings(gradient="fd", sop_loss=0.005))


SKEW_COSTS = AllocationCosts(
    sop=CostModel(cost_per_kva=60.0, fixed_cost_per_site=100.0, discount_rate=0.05, lifetime_years=10,
                  om_fraction=0.02, energy_price_per_kwh=0.5),
    cb_cost_per_kvar=2.0, cb_lifetime_years=12, cb_switch_cost=0.05, purchase_price_per_kwh=0.07,
    emission_kg_per_kwh=0.6, emission_price_per_kg=0.03)


def test_cost_minimum_agrees_with_exhaustive_enumeration_within_a_module():
    """Ground truth: every plan of the box (80) under the GA's own evaluation (evaluate_plans)."""
    m = skewed_model()
    grid = np.array(np.meshgrid(*[np.arange(u + 1) for u in m.space.upper], indexing="ij")).reshape(3, -1).T
    m.set_batch_size(len(grid))
    ev = evaluate_plans(m, SKEW_COSTS, RobustnessSettings(), grid)
    ok = ev["failed_periods"] == 0
    best = int(np.flatnonzero(ok)[np.argmin(ev["cost_total"][ok])])
    assert grid[best][0] >= 1  # the SOP pays here: the test is not the trivial "install nothing"
    for formulation in ("soc", "lindistflow"):
        opt = solve_cost_minimum(m, SKEW_COSTS, formulation=formulation, max_switching=4)
        assert opt.status == "optimal"
        i = int(np.flatnonzero((grid == opt.plan).all(1))[0])
        a = agreement(m, SKEW_COSTS, grid[best], opt.plan, ev["cost_total"][best], ev["cost_total"][i])
        assert a.agree, (formulation, grid[best], opt.plan, a)
    # the optimum's own cost terms are plan_costs of its solution, and its SOP is what the plan says
    assert opt.costs["total"] == pytest.approx(sum(opt.costs[k] for k in COST_TERMS))
    assert np.all(np.hypot(opt.sop_p_i_kw, opt.sop_q_i_kvar) <= opt.sop_kva[0] + 1e-4)
    # a plan more than one module away, or one module's yearly cost worse, is not agreement
    worse = agreement(m, SKEW_COSTS, np.array([4, 3, 3]), np.array([1, 3, 3]), 0.0, 0.0)
    assert not worse.agree and worse.max_module_difference == 3
    c = ev["cost_total"][best]
    assert not agreement(m, SKEW_COSTS, grid[best], grid[best], c + 1.01 * a.module_cost, c).agree
    assert agreement(m, SKEW_COSTS, grid[best], grid[best], c + 0.99 * a.module_cost, c).agree


def test_study_runs_stage2_on_the_front_and_writes_it(model, tmp_path):
    """run_allocation_study with [stage2]: every front plan solved, compared with the GA, in the dataset and JSON.

    ~17 s on the shared machine: it compiles the GA's evaluation at the population's batch shape (the
    stage-2 re-sweep reuses that program).
    """
    import json

    from sopjax.problems.allocation import GASettings, run_allocation_study
    from sopjax.problems.allocation.results import to_dataset, write_dataset
    from sopjax.problems.allocation.study import AllocationStudy

    study = AllocationStudy(title="", model=model, costs=COSTS, robustness=RobustnessSettings(), refine_front=False,
                            ga=GASettings(pop_size=4, generations=1, seed=1), objectives=("cost", "offset"),
                            contingency=None, contingency_cases=(), contingency_ga=None, config={},
                            stage2=Stage2Settings(max_switching=2))
    res = run_allocation_study(study, progress=False)
    s2 = res.stage2
    n = len(res.ga.X)
    assert list(s2["plans"]) == list(range(n)) and set(s2["status"]) == {"optimal"}
    # the GA's evaluation of the stage-2 schedule is within 1 % of the stage-2 model's cost, and on this feeder
    # (2 $ per step operation) the optimized schedule is cheaper than the on/off rule in the GA's own evaluation
    rs, ga, mip = s2["resweep_operation_cost"], s2["ga_operation_cost"], s2["operation_cost"]
    assert np.all(np.abs(rs - mip) <= 0.01 * mip) and np.all(rs <= ga * (1 + 1e-9))
    d = res.as_dict()
    assert len(d["stage2"]["plans"]) == n and d["stage2"]["formulation"] == "lindistflow"
    json.dumps(d, default=float)
    from sopjax.cli.allocate import format_report

    assert "stage 2 (lindistflow)" in format_report(d)
    ds = to_dataset(res)
    assert ds["stage2_cb_steps"].shape == (n, 4, 2) and ds["stage2_operation_cost"].notnull().all()
    assert ds.attrs["stage2"]
    write_dataset(ds, tmp_path / "a.nc")
    import xarray as xr

    back = xr.open_dataset(tmp_path / "a.nc")
    assert list(back["stage2_status"].values) == ["optimal"] * n
    back.close()
    study_c = AllocationStudy(**{**study.__dict__, "stage2": Stage2Settings(plans="compromise", max_switching=2)})
    res_c = run_allocation_study(study_c, progress=False)
    assert list(res_c.stage2["plans"]) == [res_c.compromise]
    assert np.isnan(res_c.stage2["operation_cost"]).sum() == len(res_c.ga.X) - 1
