"""Full 24-period IEEE 33 planning studies (slow: minutes; run with ``-m slow``)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from sopjax.problems.planning.study import run_planning_study, study_from_config
from sopjax.problems.planning import solve_plan

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ieee33_planning.toml"

pytestmark = pytest.mark.slow


def _study(count: int, validation: int = 0):
    with open(CONFIG, "rb") as f:
        cfg = tomllib.load(f)
    cfg["scenarios"]["count"] = count
    cfg["validation"] = {**cfg["validation"], "samples": validation, "optimal_days": min(validation, 5)}
    return study_from_config(cfg)


def test_ieee33_24_periods_monolithic_and_structured_agree():
    problem = _study(1).problem
    bnb = solve_plan(problem, "bnb")
    enum = solve_plan(problem, "enumerate")
    mono = solve_plan(problem, "monolithic", time_limit=1800)
    assert bnb.stats.status == enum.stats.status == mono.stats.status == "optimal"
    assert (bnb.site == enum.site).all() and (bnb.site == mono.site).all()
    assert enum.costs["total"] == pytest.approx(bnb.costs["total"], rel=1e-6)
    assert mono.costs["total"] == pytest.approx(bnb.costs["total"], rel=1e-4)


def test_ieee33_config_study():
    res = run_planning_study(_study(4, validation=20))
    plan = res.plan
    assert plan.stats.status == "optimal" and plan.n_sites >= 1
    assert plan.relaxation_gap < 1e-6
    by = {r["plan"]: r for r in res.rows}
    assert by["no SOP"]["voltage_violation"] and not by["optimal"]["voltage_violation"]
    assert by["optimal"]["total"] <= min(by["fixed size"]["total"], by["standard units"]["total"])
    assert res.comparison["loss_reduction_pct"] > 0
    v = res.validation["optimal"]["lookup"]
    assert v.n_days == 20 and v.not_converged == 0
    assert np.all(np.isfinite(v.loss_kwh_day))
