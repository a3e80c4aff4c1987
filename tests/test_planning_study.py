"""Planning study configs and the ``sopjax plan`` command (small configs; the full study is slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sopjax.cli.main import main
from sopjax.errors import SopjaxError
from sopjax.problems.planning.costs import PlanningInputError
from sopjax.problems.planning.study import run_planning_study, study_from_config


def _config(**over) -> dict:
    cfg = {
        "title": "tiny",
        "network": {"case": "ieee33", "v_min_pu": 0.93, "v_max_pu": 1.05,
                    "pv": [{"bus": 18, "s_rated_kva": 800}, {"bus": 33, "s_rated_kva": 800}]},
        "profiles": {"periods": 4, "load": [0.6, 0.8, 1.0, 0.9], "pv": [0.0, 0.9, 0.4, 0.0]},
        "uncertainty": {"pv": {"kind": "normal", "sigma_frac": 0.3}, "load": {"sigma_frac": 0.05}},
        "scenarios": {"samples": 30, "count": 2, "seed": 0},
        "sop": {"candidates": [[18, 33], [12, 22]], "s_max_kva": 1500},
        "costs": {"cost_per_kva": 120.0},
        "baselines": {"fixed_size_kva": 500, "standard_unit_kva": 250},
        "validation": {"samples": 30, "seed": 1, "optimal_days": 1},
    }
    for key, value in over.items():
        section, _, name = key.partition("__")
        cfg[section] = {**cfg.get(section, {}), name: value} if name else value
    return cfg


def test_profile_of_wrong_length_is_named():
    with pytest.raises(SopjaxError, match=r"profiles.load has 3 periods, expected 4"):
        study_from_config(_config(profiles__load=[0.6, 0.8, 1.0]))
    with pytest.raises(SopjaxError, match=r"profiles.pv has 5 periods, expected 4"):
        study_from_config(_config(profiles__pv=[0, 0.5, 1, 0.5, 0]))


def test_config_errors_name_the_key():
    with pytest.raises(PlanningInputError, match=r"\[sop\]: unknown key 'size'"):
        study_from_config(_config(sop__size=3))
    with pytest.raises(PlanningInputError, match="costs.fixed_cost_per_site"):
        study_from_config(_config(costs__fixed_cost_per_site=-10.0))
    with pytest.raises(PlanningInputError, match=r"candidate 1 \(18, 34\).*unknown bus 34"):
        study_from_config(_config(sop__candidates=[[18, 34]]))
    with pytest.raises(PlanningInputError, match="validation.seed must differ"):
        study_from_config(_config(validation__seed=0))
    with pytest.raises(PlanningInputError, match="solver.method"):
        study_from_config(_config(solver={"method": "magic"}))


def test_small_study_end_to_end():
    study = study_from_config(_config())
    sc = study.problem.scenarios
    assert sc.n_scenarios == 2 and sc.n_periods == 4
    assert sc.probability.sum() == pytest.approx(1.0)
    res = run_planning_study(study)
    d = res.as_dict()
    json.dumps(d, default=float)  # JSON-able
    names = [r["plan"] for r in d["baselines"]]
    assert names == ["optimal", "no SOP", "fixed size", "standard units"]
    by = {r["plan"]: r for r in d["baselines"]}
    for name in ("fixed size", "standard units"):
        assert by["optimal"]["total"] <= by[name]["total"] * (1 + 1e-7)
    # out of sample: every plan scored on the same 30 fresh days; optimal dispatch on the first one
    v = res.validation
    assert v["optimal"]["lookup"].n_days == 30 and v["optimal"]["optimal"].n_days == 1
    for rules in v.values():
        for r in rules.values():
            assert r.not_converged == 0
            assert 0.0 <= r.violation_hours <= r.violation_days <= 1.0
            assert np.all(r.line_loss_kwh_day > 0)
    # the optimal hourly dispatch never does worse than the fixed lookup schedule on the same day
    opt = v["optimal"]["optimal"]
    look1 = v["optimal"]["lookup"].loss_kwh_day[0]
    assert opt.loss_kwh_day[0] <= look1 + 1e-3 or opt.violation_hours < v["optimal"]["lookup"].violation_hours


def test_cli_plan_json_and_errors(tmp_path, capsys):

    def write(cfg, name):
        lines = []
        for sec, body in cfg.items():
            if not isinstance(body, dict):
                lines.append(f"{sec} = {json.dumps(body)}")
        for sec, body in cfg.items():
            if isinstance(body, dict):
                lines.append(f"[{sec}]")
                for k, val in body.items():
                    lines.append(f"{k} = {_toml(val)}")
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    ok = write(_config(), "ok.toml")
    assert main(["plan", ok, "--json", "--no-validation"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["plan"]["solve"]["status"] == "optimal"
    keys = {"annualized_investment", "om", "converter_loss_cost", "line_loss_cost", "total"}
    assert set(out["plan"]["costs"]) >= keys

    bad = write(_config(sop__candidates=[[18, 99]]), "bad.toml")
    assert main(["plan", bad]) == 2
    err = capsys.readouterr().err
    assert "unknown bus 99" in err and err.count("\n") == 1


def _toml(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)
