"""SOP siting and sizing (seed 000): cost model, scenarios, problem validation, solvers, physics."""

from __future__ import annotations

import numpy as np
import pytest

import sopjax as sj
from sopjax.problems.planning import (
    CostModel,
    PlanningInputError,
    Scenarios,
    capital_recovery_factor,
    kmeans,
    make_planning_problem,
    reduce_scenarios,
    tie_candidates,
)
from sopjax.problems.planning.baselines import comparison, fixed_size, no_sop, plan_row, round_to_units, standard_units
from sopjax.problems.planning.validation import validate_plan
from sopjax.sampling.profiles import clear_sky_pv_profile, load_profile
from sopjax.problems.planning import evaluate_plan, solve_plan
from sopjax.solvers.backends.solve import InfeasibleError

HOURS = [3, 12, 19]  # night, PV peak, evening load peak


def _net():
    return sj.add_pv(sj.ieee33(), buses=[14, 18, 25, 33], s_rated_kva=600, pf=1.0)


def _scenarios(net, hours=HOURS):
    lp = load_profile("rts79_summer_weekday")[hours]
    pv = clear_sky_pv_profile()[hours]
    P = lp[:, None] * np.asarray(net.p_load_pu)
    Q = lp[:, None] * np.asarray(net.q_load_pu)
    PV = pv[:, None] * 0.8 * np.asarray(net.pv.s_rated_pu)
    return Scenarios(np.stack([P, 0.9 * P]), np.stack([Q, 0.9 * Q]), np.stack([PV, 0.5 * PV]),
                     np.array([0.6, 0.4]))


@pytest.fixture(scope="module")
def problem():
    net = _net()
    return make_planning_problem(net, scenarios=_scenarios(net), v_min_pu=0.95, v_max_pu=1.05)


@pytest.fixture(scope="module")
def plan(problem):
    return solve_plan(problem, "bnb")


# ----------------------------------------------------------------- costs


def test_capital_recovery_factor_values():
    # r (1+r)^n / ((1+r)^n - 1) at 8 %, 20 years (standard annuity table: 0.10185)
    assert capital_recovery_factor(0.08, 20) == pytest.approx(0.1018522, rel=1e-6)
    assert capital_recovery_factor(0.0, 10) == pytest.approx(0.1)
    # annuity identity: the present value of n payments of CRF is 1
    r, n = 0.05, 15
    crf = capital_recovery_factor(r, n)
    assert sum(crf / (1 + r) ** k for k in range(1, n + 1)) == pytest.approx(1.0, rel=1e-12)


def test_capital_recovery_factor_tiny_rate_tends_to_one_over_n():
    # found by the thorough bad-input profile: (1 + 1e-300)^20 rounds to 1 and divided by zero
    assert capital_recovery_factor(1e-300, 20) == pytest.approx(1 / 20, rel=1e-12)
    assert capital_recovery_factor(1e-9, 20) == pytest.approx(1 / 20, rel=1e-7)
    assert capital_recovery_factor(1.0, 200) == pytest.approx(1.0, rel=1e-12)


def test_cost_model_rejects_negative_costs():
    with pytest.raises(PlanningInputError, match="costs.cost_per_kva"):
        CostModel(cost_per_kva=-1.0)
    with pytest.raises(PlanningInputError, match="costs.energy_price_per_kwh"):
        CostModel(energy_price_per_kwh=float("nan"))
    with pytest.raises(PlanningInputError, match="lifetime_years"):
        CostModel(lifetime_years=0)
    with pytest.raises(PlanningInputError, match="discount_rate"):
        CostModel(discount_rate=-0.1)


def test_cost_breakdown_adds_up():
    c = CostModel(cost_per_kva=100, fixed_cost_per_site=1000, om_fraction=0.02, energy_price_per_kwh=0.1)
    b = c.breakdown(capacity_kva=500, n_sites=2, line_loss_kwh_day=100, converter_loss_kwh_day=10)
    assert b["investment"] == pytest.approx(100 * 500 + 1000 * 2)
    assert b["line_loss_cost"] == pytest.approx(365 * 0.1 * 100)
    assert b["total"] == pytest.approx(b["annualized_investment"] + b["om"] + b["converter_loss_cost"]
                                       + b["line_loss_cost"])
    assert b["sop_cost"] == pytest.approx(b["total"] - b["line_loss_cost"])


# ------------------------------------------------------------- scenarios


def test_kmeans_recovers_separated_clusters_deterministically():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + rng.normal(0, 0.3, (n, 2)) for c, n in zip(centres, (50, 30, 20))])
    c1, lab1, _ = kmeans(x, 3, seed=1)
    c2, lab2, _ = kmeans(x, 3, seed=1)
    np.testing.assert_array_equal(lab1, lab2)
    sizes = sorted(np.bincount(lab1).tolist())
    assert sizes == [20, 30, 50]
    for c in centres:
        assert np.min(np.linalg.norm(c1 - c, axis=1)) < 0.2


def test_reduced_scenarios_preserve_the_sample_mean():
    rng = np.random.default_rng(0)
    n, T, nb, npv = 200, 4, 5, 2
    pl = rng.uniform(0.5, 1.0, (n, T, nb))
    ql = 0.5 * pl
    pv = rng.uniform(0, 1, (n, T, npv))
    sc = reduce_scenarios(pl, ql, pv, 5, seed=2)
    assert sc.probability.sum() == pytest.approx(1.0)
    assert np.all(np.diff(sc.probability) <= 0)  # sorted by probability
    # with cluster means as representatives, the probability-weighted scenarios
    # reproduce the sample mean exactly (the expected energy is preserved)
    np.testing.assert_allclose(np.tensordot(sc.probability, sc.p_load_pu, 1), pl.mean(0), rtol=1e-12)
    np.testing.assert_allclose(np.tensordot(sc.probability, sc.p_pv_pu, 1), pv.mean(0), rtol=1e-12)
    # each sample is assigned back to its own cluster
    np.testing.assert_array_equal(sc.assign(pl, pv), sc.labels)


def test_scenarios_reject_bad_input():
    ok = np.ones((1, 3, 4))
    with pytest.raises(PlanningInputError, match="sum to 1"):
        Scenarios(ok, ok, np.ones((1, 3, 1)), np.array([0.5]))
    with pytest.raises(PlanningInputError, match="scenario arrays"):
        Scenarios(ok, np.ones((1, 2, 4)), np.ones((1, 3, 1)), np.array([1.0]))
    with pytest.raises(PlanningInputError, match="number of scenarios"):
        reduce_scenarios(ok, ok, np.ones((1, 3, 1)), 2)


# --------------------------------------------------------------- problem


def test_tie_candidates_of_ieee33():
    net = sj.ieee33()
    labels = [c.label for c in tie_candidates(net)]
    pairs = {frozenset((net.bus_ids[c.bus_i], net.bus_ids[c.bus_j])) for c in tie_candidates(net)}
    assert pairs == {frozenset(p) for p in [(8, 21), (9, 15), (12, 22), (18, 33), (25, 29)]}
    assert labels[0].endswith("(tie 33)")


def test_candidate_on_unknown_bus_is_named():
    net = _net()
    with pytest.raises(PlanningInputError, match=r"candidate 2 \(12, 99\).*unknown bus 99"):
        make_planning_problem(net, scenarios=_scenarios(net), candidates=[(8, 21), (12, 99)])
    with pytest.raises(PlanningInputError, match="both terminals at bus 8"):
        make_planning_problem(net, scenarios=_scenarios(net), candidates=[(8, 8)])
    with pytest.raises(PlanningInputError, match="duplicates candidate 1"):
        make_planning_problem(net, scenarios=_scenarios(net), candidates=[(8, 21), (21, 8)])


def test_problem_rejects_bad_limits_and_shapes():
    net = _net()
    sc = _scenarios(net)
    with pytest.raises(PlanningInputError, match="s_max_kva"):
        make_planning_problem(net, scenarios=sc, s_max_kva=-5)
    with pytest.raises(PlanningInputError, match="max_sops"):
        make_planning_problem(net, scenarios=sc, max_sops=-1)
    with pytest.raises(PlanningInputError, match="budget"):
        make_planning_problem(net, scenarios=sc, budget=-1.0)
    with pytest.raises(PlanningInputError, match="PV units"):
        make_planning_problem(sj.ieee33(), scenarios=sc)


# ---------------------------------------------------------------- solves


def test_bnb_enumeration_and_scip_agree(problem, plan):
    enum = solve_plan(problem, "enumerate")
    mono = solve_plan(problem, "monolithic")
    assert plan.stats.status == enum.stats.status == mono.stats.status == "optimal"
    np.testing.assert_array_equal(plan.site, enum.site)
    np.testing.assert_array_equal(plan.site, mono.site)
    assert enum.costs["total"] == pytest.approx(plan.costs["total"], rel=1e-6)
    # SCIP checks cones to an absolute tolerance of 1e-6 p.u.: agreement to 1e-4
    assert mono.costs["total"] == pytest.approx(plan.costs["total"], rel=1e-4)
    assert mono.stats.gap <= 1e-6
    assert enum.stats.n_socp == 2 ** problem.n_candidates + 1
    assert plan.stats.n_socp < enum.stats.n_socp  # bounding prunes site sets
    # sizes agree to a few kVA (the cost is flat around the optimum)
    np.testing.assert_allclose(mono.s_j_kva, plan.s_j_kva, atol=10.0)


def test_plan_physics(problem, plan):
    # at least one SOP is needed: without it the evening peak violates v_min = 0.95
    assert plan.n_sites >= 1
    assert np.min(plan.vmin_pu) >= 0.95 - 1e-6 and np.max(plan.vmax_pu) <= 1.05 + 1e-6
    assert plan.relaxation_gap < 1e-6  # SOC relaxation tight
    # DC link: p_i + p_j + converter losses = 0, losses = A (|S_i| + |S_j|)
    a = problem.loss[0]
    s_i = np.hypot(plan.p_i_kw, plan.q_i_kvar).sum(-1)
    s_j = np.hypot(plan.p_j_kw, plan.q_j_kvar).sum(-1)
    np.testing.assert_allclose(plan.converter_loss_kw, a * (s_i + s_j), atol=1e-3)
    np.testing.assert_allclose((plan.p_i_kw + plan.p_j_kw).sum(-1), -plan.converter_loss_kw, atol=1e-3)
    # VSC loading within the chosen capacities
    assert np.all(np.hypot(plan.p_i_kw, plan.q_i_kvar) <= plan.s_i_kva + 1e-3)
    assert np.all(np.hypot(plan.p_j_kw, plan.q_j_kvar) <= plan.s_j_kva + 1e-3)
    # reported cost breakdown equals the solver's objective
    assert plan.costs["total"] == pytest.approx(plan.costs["objective"], rel=1e-7)


def test_exact_power_flow_reproduces_the_socp(problem, plan):
    # operate the plan on its own scenarios (lookup rule = the scenario's set-points)
    sc = problem.scenarios
    v = validate_plan(problem, plan, sc.p_load_pu, sc.q_load_pu, sc.p_pv_pu, dispatch="lookup",
                      day_weights=sc.probability)
    assert v.not_converged == 0
    assert v.expected_line_kwh_day == pytest.approx(plan.line_loss_kwh_day, rel=1e-4)
    assert v.expected_converter_kwh_day == pytest.approx(plan.converter_loss_kwh_day, rel=1e-4)
    assert v.costs["total"] == pytest.approx(plan.costs["total"], rel=1e-4)
    assert v.capacity_excess_kva < 1e-2


def test_no_sop_socp_equals_power_flow():
    net = _net()
    prob = make_planning_problem(net, scenarios=_scenarios(net), v_min_pu=0.85, v_max_pu=1.1)
    socp = evaluate_plan(prob, np.zeros(prob.n_candidates), method="no_sop")
    pf = no_sop(prob)
    assert socp.line_loss_kwh_day == pytest.approx(pf.expected_line_kwh_day, rel=1e-5)
    assert socp.converter_loss_kwh_day == 0.0
    # IEEE 33 nominal peak without PV is the 202.68 kW case; the scenarios are lighter
    assert 0 < pf.expected_line_kwh_day < 3 * 202.68


def test_optimum_beats_baselines(problem, plan):
    rows = [plan_row("optimal", plan), plan_row("no SOP", no_sop(problem))]
    fixed = fixed_size(problem, 1000)
    std = standard_units(problem, plan, 250)
    assert np.all(std.s_i_kva % 250 == 0) and np.all(std.s_i_kva >= plan.s_i_kva - 1e-9)
    for name, p in (("fixed size", fixed), ("standard units", std)):
        assert p.costs["total"] >= plan.costs["total"] * (1 - 1e-7)
        rows.append(plan_row(name, p))
    comp = comparison(rows)
    assert comp["loss_reduction_pct"] > 0
    assert comp["fixed size"]["cost_reduction_pct"] > 0
    assert comp["standard units"]["cost_reduction_pct"] >= -1e-5
    assert rows[1]["voltage_violation"]  # the network alone breaks v_min = 0.95


def test_round_to_units():
    s = round_to_units(np.array([0.0, 1.0, 250.0, 251.0, 1990.0]), 250, np.full(5, 2000.0))
    np.testing.assert_array_equal(s, [0, 250, 250, 500, 2000])
    with pytest.raises(PlanningInputError, match="standard_unit_kva"):
        round_to_units(np.ones(2), 0, np.ones(2))


def test_max_sops_and_budget_are_respected():
    net = _net()
    sc = _scenarios(net)
    wide = dict(v_min_pu=0.9, v_max_pu=1.1)
    none = solve_plan(make_planning_problem(net, scenarios=sc, max_sops=0, **wide), "bnb")
    assert none.n_sites == 0
    budget = 60000.0
    capped = solve_plan(make_planning_problem(net, scenarios=sc, budget=budget, **wide), "bnb")
    assert capped.costs["investment"] <= budget * (1 + 1e-6)


def test_infeasible_plan_is_reported():
    net = _net()
    prob = make_planning_problem(net, scenarios=_scenarios(net), v_min_pu=0.99, v_max_pu=1.01, s_max_kva=50)
    with pytest.raises(InfeasibleError, match="voltage limits"):
        solve_plan(prob, "bnb")


def test_evaluate_plan_rejects_oversize(problem):
    with pytest.raises(PlanningInputError, match="exceeds s_max_kva"):
        evaluate_plan(problem, np.ones(problem.n_candidates), 5000.0)
    with pytest.raises(PlanningInputError, match="unknown planning method"):
        solve_plan(problem, "gurobi-magic")


def test_plan_dataset_and_json(problem, plan):
    import json

    ds = plan.to_dataset()
    assert dict(ds.sizes) == {"candidate": problem.n_candidates, "scenario": 2, "period": len(HOURS)}
    np.testing.assert_allclose(ds["line_loss_kw"].values, plan.line_loss_kw)
    d = json.loads(json.dumps(plan.as_dict()))
    assert d["solve"]["method"] == "bnb" and d["n_sites"] == plan.n_sites
    assert d["capacity_kva"] == pytest.approx(plan.s_i_kva.sum() + plan.s_j_kva.sum())
