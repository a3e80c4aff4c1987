"""sopjax.surrogates.calibration and .plots: violation probabilities, reliability, Brier, ECE, figures.

Synthetic inputs with answers known by hand; no model, no JAX compilation.
"""

import numpy as np
import pytest

from sopjax.surrogates.calibration import (
    brier_score,
    calibration_report,
    confusion_counts,
    expected_calibration_error,
    reliability_table,
    violation_probability,
)
from sopjax.surrogates.plots import learned_sweep_plot, parity_plot, reliability_diagram


def test_violation_probability_counts_the_calibration_errors_past_each_limit():
    errors = np.array([-0.02, -0.01, 0.0, 0.01, 0.02])  # exact - predicted
    # 0.96 + e < 0.95 needs e < -0.01: one error of five (-0.02); -0.01 lands on the limit (complies)
    # 1.04 + e > 1.05 needs e > 0.01: one (0.02); 1.00 is 5 std away on both sides: 0
    p = violation_probability(np.array([[0.96, 1.00, 1.04, 0.90, 0.94]]), errors)
    np.testing.assert_allclose(p, [[0.2, 0.0, 0.2, 1.0, 0.8]])
    # a band narrower than the error spread adds both tails
    np.testing.assert_allclose(violation_probability(1.0, errors, 0.995, 1.005), 0.8)
    with pytest.raises(ValueError, match="finite calibration error"):
        violation_probability(1.0, [np.nan])
    with pytest.raises(ValueError, match="below v_max"):
        violation_probability(1.0, [0.0], 1.05, 0.95)


def test_reliability_table_brier_and_ece_on_a_hand_computed_case():
    prob = np.array([0.05, 0.05, 0.05, 0.05, 0.95, 0.95, 0.55, 0.55])
    hit = np.array([0, 0, 0, 1, 1, 1, 0, 0], bool)
    t = reliability_table(prob, hit, bins=10)
    assert t["count"].tolist() == [4, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    np.testing.assert_allclose(t["observed"][[0, 5, 9]], [0.25, 0.0, 1.0])
    np.testing.assert_allclose(t["mean_prob"][[0, 5, 9]], [0.05, 0.55, 0.95])
    assert np.isnan(t["observed"][1])
    # Brier: (3 * 0.05^2 + 0.95^2 + 2 * 0.05^2 + 2 * 0.55^2) / 8
    assert brier_score(prob, hit) == pytest.approx((5 * 0.0025 + 0.9025 + 2 * 0.3025) / 8)
    # ECE: (4 * |0.25 - 0.05| + 2 * |0 - 0.55| + 2 * |1 - 0.95|) / 8
    assert expected_calibration_error(prob, hit) == pytest.approx((0.8 + 1.1 + 0.1) / 8)
    assert confusion_counts(prob, hit, 0.5) == {"tp": 2, "fp": 2, "fn": 1, "tn": 3}
    # the last bin is closed at 1
    assert reliability_table([1.0], [True], bins=4)["count"].tolist() == [0, 0, 0, 1]


def test_calibrated_errors_give_a_small_ece_and_a_perfect_predictor_no_miss():
    rng = np.random.default_rng(0)
    n, b = 4000, 8
    v_exact = rng.uniform(0.92, 1.0, (n, b))
    sigma = 0.005
    v_pred = v_exact + rng.normal(0, sigma, (n, b))  # the surrogate's error
    calib = rng.normal(0, sigma, 20000)  # errors of the same distribution from another set
    mask = np.ones((n, b), bool)
    mask[:, 0] = False  # the slack bus does not count
    rep = calibration_report(v_pred, v_exact, mask, calib)
    assert rep["events"] == n * (b - 1)
    assert rep["violations"] == int(np.sum(v_exact[:, 1:] < 0.95))
    assert rep["ece"] < 0.02  # calibrated by construction
    assert rep["brier"] < 0.5 * rep["base_rate"] * (1 - rep["base_rate"])  # beats the base rate
    # errors ten times too small: over-confident, so ECE grows
    over = calibration_report(v_pred, v_exact, mask, calib / 10)
    assert over["ece"] > 2 * rep["ece"]
    # a perfect predictor with zero errors misses nothing and raises no false alarm
    exact = calibration_report(v_exact, v_exact, mask, [0.0])
    assert exact["bus"]["fn"] == exact["bus"]["fp"] == exact["sample"]["fn"] == 0
    assert exact["brier"] == 0.0
    assert sum(rep["sample"].values()) == n


def test_plots_are_written(tmp_path):
    rng = np.random.default_rng(1)
    vm = rng.uniform(0.9, 1.0, (5, 4))
    p = rng.normal(0, 0.01, (5, 3))
    path = parity_plot(
        {"vm": vm, "p_from": p},
        {"vm": vm + 1e-4, "p_from": p * 1.01},
        np.ones((5, 4)),
        np.ones((5, 3)),
        tmp_path / "parity.png",
        base_mva=10.0,
        title="test",
    )
    t = reliability_table(rng.uniform(0, 1, 100), rng.uniform(0, 1, 100) < 0.5, bins=5)
    rel = reliability_diagram({"a": t, "b": t}, tmp_path / "rel.png", title="test")
    import xarray as xr

    x = np.array([0.1, 0.2, 0.3])
    ds = xr.Dataset(
        {k: ("capacity_mva", v) for k, v in (("losses_kw", x + 1), ("losses_kw_ipm", x + 0.99),
                                             ("objective_gap_mean", x / 100), ("objective_gap_max", x / 50),
                                             ("ms_ipm", x))},
        coords={"capacity_mva": x},
    )
    sweep = learned_sweep_plot(ds, tmp_path / "sweep.png")
    assert learned_sweep_plot(ds.drop_vars("losses_kw_ipm"), tmp_path / "none.png") is None
    for f in (path, rel, sweep):
        data = f.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 200_000
