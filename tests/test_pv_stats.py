"""The effective PV output distribution (sopjax.sampling.pv_stats) against the sampler's draws."""

import jax
import numpy as np
import pytest

import sopjax
from sopjax.sampling import PVBeta, PVForecastError, UncertaintyModel, pv_distribution, pv_quantile

KW = 1e4  # kW per p.u. on the 10 MVA base of the IEEE cases
N = 100_000


def draws(model, mu_kw, rated_kva, pf=0.95, n=N):
    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=rated_kva, pf=pf)
    s = UncertaintyModel(pv=model, load=None).sample(net, [mu_kw / KW], key=jax.random.key(7), n=n)
    return np.asarray(s.p_pv_pu[:, 0]) * KW


@pytest.mark.parametrize("truncation", ["clip", "inverse_cdf"])
def test_moments_and_quantiles_match_the_sampler(truncation):
    """Seed 002's N(500, 50^2) kW on a 526.3 kVA unit: ~30 % of the parent above the rating."""
    model = PVForecastError(sigma_frac=0.1, truncation=truncation)
    x = draws(model, 500.0, 526.3)
    levels = (0.0079, 0.5, 0.9921)
    d = pv_distribution(model, [500 / KW], [526.3 / KW], [0.95], levels=levels)
    assert d.mass_outside[0] == pytest.approx(0.299, abs=1e-3)
    se = x.std() / np.sqrt(N)  # ~0.12 kW
    assert d.mean[0] * KW == pytest.approx(x.mean(), abs=5 * se)
    assert d.std[0] * KW == pytest.approx(x.std(), rel=0.01)
    for lv in (0.0079, 0.5):  # (the 0.9921 quantile of "clip" sits on the atom at the rating)
        assert d.quantiles[lv][0] * KW == pytest.approx(np.quantile(x, lv), abs=2.0)
    assert x.max() <= 526.3 + 1e-6


def test_clip_keeps_the_parent_lower_quantile_and_truncation_moves_it():
    z = 2.41345  # Phi^-1(0.9921)
    clip = pv_distribution(PVForecastError(truncation="clip"), [0.05], [0.05263], [0.95])
    trunc = pv_distribution(PVForecastError(truncation="inverse_cdf"), [0.05], [0.05263], [0.95])
    assert clip.quantiles[0.0079][0] * KW == pytest.approx(500 - z * 50, abs=0.05)  # 379.3 kW
    assert trunc.quantiles[0.0079][0] * KW == pytest.approx(373.0, abs=0.1)
    assert clip.mean[0] * KW == pytest.approx(490.5, abs=0.1)
    assert trunc.mean[0] * KW == pytest.approx(475.2, abs=0.1)
    assert clip.quantiles[0.9921][0] * KW == pytest.approx(526.3, abs=1e-6)  # curtailed at the rating


def test_far_from_the_bounds_both_readings_are_the_parent():
    for t in ("clip", "inverse_cdf"):
        d = pv_distribution(PVForecastError(truncation=t), [0.05], [0.1], [0.95])
        assert d.mean[0] == pytest.approx(0.05, rel=1e-9) and d.std[0] == pytest.approx(0.005, rel=1e-6)


def test_zero_sigma_and_beta():
    d = pv_distribution(PVForecastError(sigma_frac=0.0), [0.03], [0.05], [0.95])
    assert d.mean[0] == pytest.approx(0.03) and d.std[0] == 0 and d.quantiles[0.0079][0] == pytest.approx(0.03)
    model = PVBeta(sigma_frac=0.2)
    x = draws(model, 500.0, 1000.0, n=20_000)
    d = pv_distribution(model, [500 / KW], [1000 / KW], [0.95])
    assert d.mean[0] * KW == pytest.approx(x.mean(), abs=5 * x.std() / np.sqrt(20_000))
    assert d.std[0] * KW == pytest.approx(x.std(), rel=0.03)
    assert pv_quantile(model, 0.5, [500 / KW], [1000 / KW], [0.95])[0] * KW == pytest.approx(np.median(x), abs=3.0)
    assert "clip" in pv_distribution(PVForecastError(truncation="clip"), [0.05], [0.06], [1.0]).describe(KW)[0]


def test_every_shipped_config_states_its_pv_bounds():
    """Where a config draws a normal PV error, the bound handling is explicit (docs/sampling.md)."""
    import tomllib
    from pathlib import Path

    checked = 0
    for path in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml")):
        pv = tomllib.loads(path.read_text()).get("uncertainty", {}).get("pv")
        if isinstance(pv, dict) and pv.get("kind", "normal") == "normal":
            assert pv.get("truncation") in ("clip", "inverse_cdf"), f"{path.name}: [uncertainty] pv has no truncation"
            if path.name.startswith("seed002_"):
                assert pv["truncation"] == "clip", path.name
            checked += 1
    assert checked >= 10
