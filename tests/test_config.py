"""The config layer (sopjax.config): table and number checks, the typed [network] spec, one ConfigError."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from sopjax.cases import load_case
from sopjax.config import (
    ConfigError,
    NetworkSpec,
    PVSpec,
    SOPSpec,
    integer,
    integer_list,
    number,
    parse_network,
    require,
    sub_table,
    table,
    table_list,
)
from sopjax.devices import add_pv, add_sops
from sopjax.errors import SopjaxError
from sopjax.network_builder import build_network

NETWORK = {
    "case": "ieee33",
    "pv": [{"bus": 30, "s_rated_kva": 1000, "pf": 0.95}, {"bus": 18, "s_rated_kva": 400}],
    "sop": [{"pair": [8, 21], "s_rated_kva": 2000, "loss": 0.02}, {"pair": [12, 22], "s_rated_kva": 500,
                                                                     "q_max_kvar": 300}],
}


def _reference(pv=True, sop=True):
    """The network as every study built it before the config layer: load_case, add_pv, add_sops."""
    net = load_case("ieee33")
    rows = NETWORK["pv"]
    if pv:
        net = add_pv(net, buses=[r["bus"] for r in rows], s_rated_kva=[r["s_rated_kva"] for r in rows],
                     pf=[r.get("pf", 1.0) for r in rows])
    rows = NETWORK["sop"]
    if sop:
        net = add_sops(net, pairs=[tuple(r["pair"]) for r in rows], s_rated_kva=[r["s_rated_kva"] for r in rows],
                       loss=[r.get("loss", 0.02) for r in rows],
                       q_max_kvar=[r.get("q_max_kvar", r["s_rated_kva"]) for r in rows])
    return net


def _assert_same_network(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ---------------------------------------------------------------- tables and numbers


def test_unknown_key_is_named_with_its_table_and_the_allowed_keys():
    with pytest.raises(ConfigError, match=r"\[montecarlo\]: unknown key 'sampels'; allowed: samples, seed"):
        table({"sampels": 3}, "[montecarlo]", allowed={"samples", "seed"})
    with pytest.raises(ConfigError, match=r"\[network\]: unknown key 'pvv'"):
        parse_network({**NETWORK, "pvv": []})
    with pytest.raises(ConfigError, match=r"\[network\] sop\[1\]: unknown key 'los'"):
        parse_network({**NETWORK, "sop": [NETWORK["sop"][0], {"pair": [12, 22], "s_rated_kva": 1, "los": 0}]})
    # a study allows the subset of [network] it uses
    with pytest.raises(ConfigError, match=r"\[network\]: unknown key 'sop'"):
        parse_network(NETWORK, keys={"case", "pv"})


def test_wrong_type_is_named_with_the_key_path():
    with pytest.raises(ConfigError, match=r"\[network\] pv\[0\] s_rated_kva must be a number, got 'big'"):
        parse_network({**NETWORK, "pv": [{"bus": 30, "s_rated_kva": "big"}]})
    with pytest.raises(ConfigError, match=r"\[network\] pv\[0\] bus must be a number, got True"):
        parse_network({**NETWORK, "pv": [{"bus": True, "s_rated_kva": 1}]})
    with pytest.raises(ConfigError, match=r"\[network\] sop\[0\] pair must hold two bus ids"):
        parse_network({**NETWORK, "sop": [{"pair": [8], "s_rated_kva": 1}]})
    with pytest.raises(ConfigError, match=r"\[network\] pv must be a list of tables, got dict"):
        parse_network({**NETWORK, "pv": {"bus": 30}})
    with pytest.raises(ConfigError, match=r"\[network\] pv\[1\] must be a table, got int"):
        parse_network({**NETWORK, "pv": [NETWORK["pv"][0], 3]})
    with pytest.raises(ConfigError, match=r"\[dispatch\] must be a table, got list"):
        sub_table({"dispatch": [1]}, "dispatch", "[dispatch]")
    with pytest.raises(ConfigError, match=r"\[fault\] open: 2.5 is not an integer"):
        integer_list([2.5], "[fault] open")


def test_nan_and_infinity_are_refused():
    for bad in (math.nan, math.inf, -math.inf, np.float64("nan")):
        with pytest.raises(ConfigError, match=r"\[dispatch\] tol must be finite"):
            number(bad, "[dispatch] tol")
    with pytest.raises(ConfigError, match=r"\[network\] sop\[0\] s_rated_kva must be finite, got nan"):
        parse_network({**NETWORK, "sop": [{"pair": [8, 21], "s_rated_kva": math.nan}]})
    with pytest.raises(ConfigError, match=r"\[network\] v_slack_pu must be finite"):
        parse_network({"case": "ieee33", "v_slack_pu": math.nan})


def test_number_ranges_and_integers():
    assert number(3, "x") == 3.0 and isinstance(number(3, "x"), float)
    assert integer(4.0, "[sampling] samples", lo=1) == 4 and isinstance(integer(4.0, "x"), int)
    with pytest.raises(ConfigError, match=r"\[sampling\] samples must be an integer, got 2.5"):
        integer(2.5, "[sampling] samples")
    with pytest.raises(ConfigError, match=r"capacity_mva value 1 must be >= 0.0, got -1"):
        number(-1, "capacity_mva value 1", lo=0.0)
    with pytest.raises(ConfigError, match=r"x must be <= 1.0, got 2"):
        number(2, "x", hi=1.0)
    with pytest.raises(ConfigError, match=r"\[network\] v_slack_pu must lie in \[0.8, 1.2\], got 1.3"):
        parse_network({"case": "ieee33", "v_slack_pu": 1.3})
    with pytest.raises(ConfigError, match=r"\[network\] v_min_pu must be > 0, got 0"):
        parse_network({"case": "ieee33", "v_min_pu": 0})


def test_required_keys_and_missing_tables():
    with pytest.raises(ConfigError, match=r"\[network\] pv\[0\] needs 'bus' and 's_rated_kva' \(missing 'bus'\)"):
        parse_network({**NETWORK, "pv": [{"s_rated_kva": 1}]})
    with pytest.raises(ConfigError, match=r"\[network\] needs 'case' \(ieee33, ieee69, ieee85 or a .m file\)"):
        parse_network({"pv": []})
    with pytest.raises(ConfigError, match=r"the config needs a \[network\] table with 'case'"):
        parse_network(None)
    with pytest.raises(ConfigError, match=r"\[t\] needs 'a' and 'b' \(missing 'b'\)"):
        require({"a": 1}, ("a", "b"), "[t]")
    assert sub_table({}, "dispatch", "[dispatch]", allowed={"tol"}) == {}
    assert table_list(None, "[network] pv") == []


def test_one_config_error_old_names_are_aliases():
    from sopjax.montecarlo.study import ConfigError as MonteCarloConfigError
    from sopjax.problems.planning.costs import PlanningInputError
    from sopjax.sweeps import SweepConfigError

    assert SweepConfigError is ConfigError and PlanningInputError is ConfigError
    assert MonteCarloConfigError is ConfigError and issubclass(ConfigError, SopjaxError)


def test_table_checks_keep_a_narrower_error_type_when_asked():
    from sopjax.strategies import StrategyError

    with pytest.raises(StrategyError, match="unknown key 'clsoe'"):
        table({"clsoe": []}, "strategy 'x'", allowed={"close"}, error=StrategyError)


# ---------------------------------------------------------------- the [network] spec


def test_network_spec_holds_the_defaults_of_every_study():
    spec = parse_network(NETWORK)
    assert spec == NetworkSpec(
        case="ieee33",
        pv=(PVSpec(30, 1000.0, 0.95), PVSpec(18, 400.0, 1.0)),
        sop=(SOPSpec((8, 21), 2000.0, 0.02, None), SOPSpec((12, 22), 500.0, 0.02, 300.0)),
    )
    assert [s.q_limit_kvar for s in spec.sop] == [2000.0, 300.0]
    scaled = spec.scaled(pv_factor=2.0, sop_kva=100.0)
    assert [u.s_rated_kva for u in scaled.pv] == [2000.0, 800.0]
    assert [(s.s_rated_kva, s.q_limit_kvar) for s in scaled.sop] == [(100.0, 100.0), (100.0, 100.0)]
    assert spec.scaled() == spec


def test_built_network_equals_the_old_construction():
    _assert_same_network(build_network(parse_network(NETWORK)), _reference())
    _assert_same_network(build_network(parse_network({"case": "ieee33"})), load_case("ieee33"))


def test_v_slack_widens_the_slack_limits():
    net = build_network(parse_network({"case": "ieee33", "v_slack_pu": 1.06}))
    assert float(net.v_slack_pu) == 1.06
    assert float(np.asarray(net.v_max_pu)[net.slack_bus]) == 1.06


def test_each_study_parses_network_as_before():
    """The Monte Carlo, restoration, sweep and planning studies build the network of the old parsers."""
    from sopjax.montecarlo.study import study_from_config as mc_study
    from sopjax.problems.planning.study import study_from_config as planning_study
    from sopjax.problems.restoration.study import network_from_config
    from sopjax.sweeps import build_scenario, spec_from_config

    mc = mc_study({"network": NETWORK, "fault": {"open": [2]}, "montecarlo": {"samples": 4},
                   "uncertainty": {"pv": {"kind": "normal", "sigma_frac": 0.1}},
                   "strategy": [{"name": "tie", "close": [33]}]})
    _assert_same_network(mc.net, _reference())
    _assert_same_network(network_from_config({"network": NETWORK}), _reference())
    spec = spec_from_config({"network": NETWORK, "sampling": {"samples": 2},
                             "axis": [{"name": "capacity_mva", "values": [0.5, 1.0]}]})
    _assert_same_network(build_scenario(spec).net, _reference())
    plan = planning_study({
        "network": {"case": "ieee33", "pv": NETWORK["pv"]},
        "profiles": {"periods": 2, "load": [0.8, 1.0], "pv": [0.5, 0.0]},
        "scenarios": {"samples": 4, "count": 2}, "validation": {"samples": 0},
    })
    _assert_same_network(plan.problem.net, _reference(sop=False))
    # the sweep and the planning study refuse the [network] keys they do not use
    with pytest.raises(ConfigError, match=r"\[network\]: unknown key 'v_slack_pu'"):
        spec_from_config({"network": {**NETWORK, "v_slack_pu": 1.0},
                          "axis": [{"name": "capacity_mva", "values": [1.0]}]})
    with pytest.raises(ConfigError, match=r"\[network\]: unknown key 'sop'"):
        planning_study({"network": NETWORK})


def test_typed_monte_carlo_study_equals_the_toml_path():
    """make_study with typed objects (what the sweeps call) gives the study_from_config numbers."""
    from sopjax.montecarlo.study import build_strategies, make_study, run_study, settings_from_config
    from sopjax.montecarlo.study import study_from_config as mc_study
    from sopjax.sampling import UncertaintyModel

    unc = {"pv": {"kind": "normal", "sigma_frac": 0.1}, "load": {"kind": "normal", "sigma_frac": 0.1}}
    strategies = [{"name": "tie", "close": [33]}, {"name": "sop", "sop": [{"pair": [8, 21], "mode": "vf_i"}]}]
    cfg = {"network": NETWORK, "fault": {"open": [2]}, "montecarlo": {"samples": 16, "seed": 3},
           "uncertainty": {**unc, "pv_forecast_kw": [500, 200]}, "strategy": strategies}
    ds_toml, _ = run_study(mc_study(cfg), progress=False, plots=False)

    net = build_network(parse_network(NETWORK))
    settings, seed = settings_from_config({"samples": 16, "seed": 3}, fault_open=(2,))
    forecast = np.asarray([500.0, 200.0]) / (net.base_mva * 1e3)
    study = make_study(net, build_strategies(net, strategies, settings, forecast),
                       model=UncertaintyModel.from_dict(unc), settings=settings, seed=seed, pv_forecast_pu=forecast)
    assert study.config is None
    ds_typed, _ = run_study(study, progress=False, plots=False)
    for name in ("recovery_ratio_mean", "vmin_pu_mean", "line_loss_kw_mean", "p_any_violation"):
        np.testing.assert_array_equal(ds_typed[name].values, ds_toml[name].values)
