"""sopjax.problems.allocation on a tiny two-feeder network (fast), the full study marked slow."""

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sopjax
from sopjax.errors import ConfigError, SopjaxError
from sopjax.problems.allocation import (
    AllocationCosts, AllocationProblem, GASettings, OperatingDay, RobustnessSettings, best_compromise,
    cb_schedule, evaluate_plans, fuzzy_membership, make_model, make_space, nondominated, plan_costs, run_nsga2,
    study_from_config,
)
from sopjax.problems.planning.costs import CostModel, capital_recovery_factor


def tiny_net():
    """Substation 1; feeders 1-2-3-4 and 1-5-6-7; open tie 4-7 (branch 7); PV at 4."""
    net = sopjax.make_network(
        bus_ids=[1, 2, 3, 4, 5, 6, 7], p_load_mw=[0, 0.3, 0.4, 0.5, 0.2, 0.3, 0.6],
        q_load_mvar=[0, 0.1, 0.2, 0.2, 0.1, 0.1, 0.3],
        branch_from=[1, 2, 3, 1, 5, 6, 4], branch_to=[2, 3, 4, 5, 6, 7, 7],
        r_ohm=[0.5, 0.6, 0.7, 0.4, 0.8, 0.9, 0.5], x_ohm=[0.4, 0.5, 0.6, 0.3, 0.7, 0.6, 0.4],
        in_service=[True] * 6 + [False], slack_bus=1, base_kv=12.66, base_mva=1.0,
        v_min_pu=0.9, v_max_pu=1.1, name="tiny",
    )
    return sopjax.add_pv(net, buses=[4], s_rated_kva=[600], pf=1.0)


T = 4
LOAD = np.array([0.6, 0.8, 1.0, 0.9])
PV = np.array([0.0, 0.8, 1.0, 0.2])


@pytest.fixture(scope="module")
def model():
    net = tiny_net()
    space = make_space(net, sop_pairs=[(4, 7)], module_kva=100, max_modules=4, cb_buses=[3, 6], cb_unit_kvar=50,
                       cb_max_units=3)
    day = OperatingDay(np.outer(LOAD, net.p_load_pu), np.outer(LOAD, net.q_load_pu),
                       np.outer(PV, np.asarray(net.pv.s_rated_pu)))
    return make_model(net, space, day)


COSTS = AllocationCosts(sop=CostModel(cost_per_kva=100.0, fixed_cost_per_site=1000.0, discount_rate=0.05,
                                      lifetime_years=10, om_fraction=0.02, energy_price_per_kwh=0.1,
                                      days_per_year=365, period_hours=1.0),
                        cb_cost_per_kvar=20.0, cb_lifetime_years=12, cb_switch_cost=2.0,
                        purchase_price_per_kwh=0.07, emission_kg_per_kwh=0.6, emission_price_per_kg=0.03)


def test_cost_terms_against_hand_computation():
    imp = np.array([[100.0, 200.0]])  # kW per period
    line = np.array([[5.0, 7.0]])
    conv = np.array([[1.0, 2.0]])
    c = plan_costs(COSTS, sop_kva=[[200.0, 0.0]], cb_kvar=[[150.0]], import_kw=imp, line_loss_kw=line,
                   converter_loss_kw=conv, cb_switch_ops=[6])
    crf = 0.05 * 1.05**10 / (1.05**10 - 1)
    inv = 100.0 * 400.0 + 1000.0  # both VSCs of one SOP + one site
    assert c["sop_investment"][0] == pytest.approx(crf * inv)
    assert c["sop_operation"][0] == pytest.approx(0.02 * inv)
    assert c["cb_investment"][0] == pytest.approx(capital_recovery_factor(0.05, 12) * 20.0 * 150.0)
    assert c["purchase"][0] == pytest.approx(365 * 0.07 * 300.0)
    assert c["line_loss"][0] == pytest.approx(365 * 0.1 * 12.0)
    assert c["converter_loss"][0] == pytest.approx(365 * 0.1 * 3.0)
    assert c["cb_switching"][0] == pytest.approx(365 * 2.0 * 6)
    assert c["emission"][0] == pytest.approx(365 * 0.03 * 0.6 * 300.0)
    parts = sum(c[k][0] for k in ("sop_investment", "sop_operation", "cb_investment", "purchase", "line_loss",
                                  "converter_loss", "cb_switching", "emission"))
    assert c["total"][0] == pytest.approx(parts)


def test_capacitor_rule_switches_twice_a_day():
    on, ops = cb_schedule(np.array([0.5, 0.8, 1.0, 0.6]), 0.7)
    assert on.tolist() == [0, 1, 1, 0] and ops == 2


def test_batched_evaluation_equals_a_loop_over_plans(model):
    X = np.array([[0, 0, 0], [2, 1, 3], [4, 3, 0], [1, 0, 2]])
    kva, cb = model.space.decode(X)
    batch = model.operate(kva, cb)
    assert batch.converged.all()
    for n in range(len(X)):
        one = model.operate(kva[n : n + 1], cb[n : n + 1])
        for name in ("vm_pu", "p_i", "q_i", "line_loss", "p_import", "offset", "utilization", "vcpi_max"):
            np.testing.assert_allclose(getattr(batch, name)[n], getattr(one, name)[0], rtol=1e-6, atol=1e-9,
                                       err_msg=name)
    # the exact sweep's power balance: import = load - PV + line losses + converter losses
    net = model.net
    load = model.day.p_load_pu.sum(1)
    pv = model.day.p_pv_pu.sum(1)
    np.testing.assert_allclose(batch.p_import, load - pv + batch.line_loss + batch.converter_loss.sum(-1),
                               atol=1e-8)
    assert net.sop.count == 1
    # an SOP lowers the losses of this feeder, capacitors lower the offset
    assert batch.line_loss[1].sum() < batch.line_loss[0].sum()
    assert batch.utilization[0] == 0.0 and 0 < batch.utilization[1] <= 1


def test_jacobian_matches_finite_differences(model):
    X = np.array([[2, 1, 1], [1, 0, 0], [3, 2, 3], [4, 0, 1]])  # 4 plans: the GA test's batch shape
    kva, cb = model.space.decode(X)
    _, jac = model.operate_with_jacobian(kva, cb)
    h = 1e-3
    for k in range(2):
        d = np.zeros((1, 2))
        d[0, k] = h
        up, down = model.operate(kva[:1], cb[:1], d), model.operate(kva[:1], cb[:1], -d)
        fd = np.array([up.offset[0] - down.offset[0], up.utilization[0] - down.utilization[0]]) / (2 * h)
        np.testing.assert_allclose(jac[0, :, k], fd, rtol=2e-2, atol=1e-5)


@pytest.mark.slow
def test_refined_radius_of_a_plan_against_brute_force_sampling(model):
    """The allocation-level check (minutes: it compiles the worst-case search around the dispatch).

    The kernel-level check on an analytic case is in tests/test_robustness.py (default suite).
    """
    rob = RobustnessSettings(tolerance=(0.02, 0.05), r_max=4.0, bisection_steps=9, ascent_steps=3)
    kva, cb = model.space.decode(np.array([[2, 1, 1]]))
    op = model.operate(kva, cb)
    f0 = np.stack([op.offset, op.utilization], -1)
    from sopjax.problems.allocation import refine_radius, tolerances

    rr = refine_radius(rob, model, kva, cb, f0)
    tol = tolerances(rob, f0)[0]
    # brute force: every direction of a fine fan at radii up to 4, the same plan repeated as a batch
    th = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    radii = np.linspace(0.05, 4.0, 80)
    pts = (radii[:, None, None] * np.stack([np.cos(th), np.sin(th)], 1)[None]).reshape(-1, 2)
    n = len(pts)
    fun = jax.jit(model.index_fun(np.repeat(kva, n, 0), np.repeat(cb, n, 0)))
    f = np.asarray(fun(jnp.asarray(pts))).reshape(len(radii), len(th), 2)
    bad = np.any(np.max(np.abs(f - f0[0]) / tol, -1) > 1, -1)
    r_bf = radii[np.argmax(bad)] if bad.any() else 4.0
    step = radii[1] - radii[0]
    assert float(rr.radius[0]) <= r_bf + 4.0 / 2**9 + 1e-9  # no sampled violation inside the refined ball
    assert float(rr.radius[0]) >= r_bf - 2 * step - 4.0 / 2**9  # and it is not much smaller
    print(f"refined {float(rr.radius[0]):.4f}, first order {float(rr.first_order[0]):.4f}, brute force {r_bf:.4f}")


def test_fuzzy_selection_on_a_known_front():
    F = np.array([[0.0, 10.0], [4.0, 4.0], [10.0, 0.0], [9.0, 3.0]])
    mu = fuzzy_membership(F)
    assert mu.sum() == pytest.approx(1.0)
    # memberships (1+0), (0.6+0.6), (0+1), (0.1+0.7): the balanced plan wins
    np.testing.assert_allclose(mu * (1 + 1.2 + 1 + 0.8), [1.0, 1.2, 1.0, 0.8])
    assert best_compromise(F) == 1
    with pytest.raises(SopjaxError, match="empty"):
        fuzzy_membership(np.zeros((0, 2)))


def test_nsga2_end_to_end_tiny_front_nondominated_reproducible_and_resumable(model, tmp_path):
    rob = RobustnessSettings()
    ga = GASettings(pop_size=4, generations=8, seed=3, checkpoint_every=1)
    res = run_nsga2(AllocationProblem(model, COSTS, rob), ga, progress=False)
    assert len(res.X) >= 1 and nondominated(res.F).all()
    again = run_nsga2(AllocationProblem(model, COSTS, rob), ga, progress=False)
    np.testing.assert_array_equal(res.X, again.X)
    np.testing.assert_allclose(res.F, again.F)
    ck = tmp_path / "ga.pkl"
    run_nsga2(AllocationProblem(model, COSTS, rob), ga, checkpoint=ck, stop_after=2, progress=False)
    resumed = run_nsga2(AllocationProblem(model, COSTS, rob), ga, checkpoint=ck, progress=False)
    assert resumed.resumed_from == 2
    np.testing.assert_array_equal(resumed.X, res.X)
    with pytest.raises(SopjaxError, match="another study"):
        run_nsga2(AllocationProblem(model, COSTS, rob), ga, checkpoint=ck, fingerprint="other", progress=False)
    # the cost-minimum end of the front is the cost minimum over all plans of this small box
    grid = np.array(np.meshgrid(*[np.arange(u + 1) for u in model.space.upper], indexing="ij")).reshape(3, -1).T
    chunks = [evaluate_plans(model, COSTS, rob, grid[i : i + 4]) for i in range(0, len(grid), 4)]  # batch shape 4
    cost = np.concatenate([c["cost_total"] for c in chunks])
    ok = np.concatenate([c["failed_periods"] for c in chunks]) == 0
    best = cost[ok].min()
    # the front's cheapest plan against the exhaustive optimum of the box (a tiny GA: 5 % slack)
    assert best <= res.F[:, 0].min() <= best * 1.05, (res.F[:, 0].min(), best)
    assert pickle.loads(pickle.dumps(model)).space == model.space


BASE = {
    "network": {"case": "ieee33"},
    "allocation": {"sop": {"candidates": [[12, 22], [25, 29]]}},
    "ga": {"pop_size": 8, "generations": 1},
}


def _cfg(**changes):
    import copy

    cfg = copy.deepcopy(BASE)
    for path, value in changes.items():
        d = cfg
        keys = path.split("__")
        for k in keys[:-1]:
            d = d.setdefault(k, {})
        d[keys[-1]] = value
    return cfg


@pytest.mark.parametrize("path, value, message", [
    ("allocation__sop__candidates", [[12, 22], [5, 30]], r"allocation.sop.candidates\[1\]: no branch joins buses 5 and 30"),
    ("allocation__sop__candidates", [[12, 99]], r"allocation.sop.candidates\[0\].*unknown bus 99"),
    ("costs__cb_cost_per_kvar", -1.0, "costs.cb_cost_per_kvar must be a finite number >= 0"),
    ("costs__cost_per_kva", -5.0, "costs.cost_per_kva must be a finite number >= 0"),
    ("robustness__tolerance", [0.1, 0.0], "robustness.tolerance must be two numbers > 0"),
    ("robustness__tolerance", [-0.1, 0.1], "robustness.tolerance must be two numbers > 0"),
    ("ga__pop_size", 3, "ga.pop_size must be an integer >= 4"),
    ("ga__objectives", ["cost", "beauty"], "ga.objectives: unknown objective 'beauty'"),
    ("allocation__sop__bogus", 1, r"\[allocation.sop\]: unknown key 'bogus'"),
])
def test_bad_config_raises_config_error_naming_the_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        cfg = study_from_config(_cfg(**{path: value}))
        from sopjax.problems.allocation import AllocationProblem as P

        P(cfg.model, cfg.costs, cfg.robustness, cfg.objectives)


def test_infeasible_operation_stage_is_a_clear_error(model):
    """Voltage limits no set-point can meet: every plan fails, the study says so."""
    from sopjax.problems.allocation import EvalSettings
    from sopjax.problems.allocation.study import AllocationStudy, run_allocation_study

    bad = make_model(model.net, model.space, model.day, settings=EvalSettings(v_min_pu=1.0, v_max_pu=1.001))
    study = AllocationStudy(title="", model=bad, costs=COSTS, robustness=RobustnessSettings(), refine_front=False,
                            ga=GASettings(pop_size=4, generations=1), objectives=("cost", "offset"),
                            contingency=None, contingency_cases=(), contingency_ga=None, config={})
    with pytest.raises(SopjaxError, match="no feasible plan"):
        run_allocation_study(study, progress=False)


def test_cli_bad_config_exits_2(tmp_path, capsys):
    from sopjax.cli.main import main

    p = tmp_path / "bad.toml"
    p.write_text('[network]\ncase = "ieee33"\n[allocation.sop]\ncandidates = [[12, 22]]\n[ga]\npop_size = 2\n')
    assert main(["allocate", str(p)]) == 2
    assert "ga.pop_size must be an integer >= 4" in capsys.readouterr().err


@pytest.mark.slow
def test_seed001_full_study(tmp_path):
    """The full study of configs/seed001_allocation.toml (minutes): orderings of seed 001."""
    import tomllib

    from sopjax.problems.allocation import run_allocation_study

    with open("configs/seed001_allocation.toml", "rb") as fh:
        cfg = tomllib.load(fh)
    res = run_allocation_study(study_from_config(cfg), progress=False)
    c = res.cases
    assert c["case3_sop_cb"]["line_loss_cost"] < c["case2_cb_only"]["line_loss_cost"] < \
        c["case1_no_sop_no_cb"]["line_loss_cost"]
    assert nondominated(res.ga.F).all()
    assert math.isfinite(res.timings["total"])


def test_forward_difference_gradient_option_agrees_with_jvp(model):
    from sopjax.problems.allocation import EvalSettings

    X = np.array([[2, 1, 1], [1, 0, 0], [3, 2, 3], [4, 0, 1]])
    kva, cb = model.space.decode(X)
    _, jac = model.operate_with_jacobian(kva, cb)
    fd_model = make_model(model.net, model.space, model.day, settings=EvalSettings(gradient="fd", fd_step=1e-3))
    op, jac_fd = fd_model.operate_with_jacobian(kva, cb)
    assert op.offset.shape == (4,)
    np.testing.assert_allclose(jac_fd, jac, rtol=5e-2, atol=2e-5)
