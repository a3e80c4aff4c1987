"""Tests of sopjax.sampling: schemes, marginals, copula, profiles, chunking, validation."""

from __future__ import annotations

import math
import tomllib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import sopjax
from sopjax.kernels.injections import pv_net_load
from sopjax.sampling import (
    CommonFactor,
    CorrelationError,
    CorrelationMatrix,
    LoadNormal,
    ProfileError,
    PVBeta,
    PVForecastError,
    UncertaintyError,
    UncertaintyModel,
    beta_ppf,
    clear_sky_pv_profile,
    daily_profile,
    from_dict,
    load_profile,
    pv_forecast,
    truncated_normal_ppf,
    uniforms,
)
from sopjax.sampling.philox import mulhilo32, philox4x32
from sopjax.sampling.sobol import direction_numbers, sobol_integers, sobol_uniforms

KEY = jax.random.key(7)
F64 = np.dtype("float64")
N = 2**14  # samples of the statistical tests: one size, so compilations are shared
FC = [500.0, 250.0]  # default PV forecast (kW) of the two units


def draw(scheme, n, dim, key=KEY, start=0, count=None):
    """Scheme uniforms through the same jitted function the model uses."""
    return np.asarray(uniforms(scheme, key=key, start=start, count=count or n, n=n, dim=dim, dtype=F64))


@pytest.fixture(scope="module")
def net():
    # two PV units: 1 MVA at bus 30 (pf 0.95), 500 kVA at bus 18 (pf 1)
    return sopjax.add_pv(sopjax.ieee33(), buses=[30, 18], s_rated_kva=[1000, 500], pf=[0.95, 1.0])


def kw(net, x):
    return np.asarray(x) * 1e3 * net.base_mva


def pu(net, x_kw):
    return np.asarray(x_kw, float) / 1e3 / net.base_mva


# ---------------------------------------------------------------- schemes


def test_sobol_unscrambled_equals_scipy():
    from scipy.stats import qmc

    ref = qmc.Sobol(6, scramble=False, bits=32).random(256)
    x = sobol_integers(jnp.arange(256, dtype=jnp.uint32), jnp.asarray(direction_numbers(6)), n_bits=8)
    np.testing.assert_array_equal(np.asarray(x, np.float64) / 2.0**32, ref)


def test_sobol_scrambled_keeps_net_property_and_randomises():
    m, dim = 10, 6
    n = 2**m
    idx = jnp.arange(n, dtype=jnp.uint32)
    seeds = jax.random.bits(KEY, (dim,), jnp.uint32)
    u = np.asarray(sobol_uniforms(idx, seeds, dim=dim, n_bits=m, dtype=F64))
    assert np.all((u > 0) & (u < 1))
    # every dimension: one point per stratum of width 1/n
    cells = np.sort(np.floor(u * n).astype(int), axis=0)
    np.testing.assert_array_equal(cells, np.tile(np.arange(n)[:, None], (1, dim)))
    # dims 0 and 1 form a (0, m, 2)-net: every 2^-a x 2^-(m-a) box holds one point
    for a in range(m + 1):
        col, row = np.floor(u[:, 0] * 2**a).astype(int), np.floor(u[:, 1] * 2 ** (m - a)).astype(int)
        box = col * 2 ** (m - a) + row
        assert np.unique(box).size == n, a
    # scrambled points are not the plain sequence and depend on the seeds
    plain = np.asarray(sobol_uniforms(idx, None, dim=dim, n_bits=m, dtype=F64))
    other = np.asarray(sobol_uniforms(idx, seeds + 1, dim=dim, n_bits=m, dtype=F64))
    assert np.abs(u - plain).mean() > 0.1 and np.abs(u - other).mean() > 0.1
    # uniform marginals: the mean of each dimension is 1/2 to within the stratum width
    np.testing.assert_allclose(u.mean(axis=0), 0.5, atol=1.0 / n)


def test_philox_known_answers():
    # Random123 known-answer vectors for philox4x32-10 (counter, key -> output)
    u = jnp.uint32
    kat = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for ctr, key, out in kat:
        got = philox4x32(tuple(u(c) for c in ctr), tuple(u(k) for k in key))
        assert [int(g) for g in got] == list(out)
    # the uint32-only product (used without x64) equals the uint64 one
    a = jax.random.bits(KEY, (1000,), jnp.uint32)
    hi, lo = mulhilo32(a, 0xD2511F53)
    ref = np.asarray(a, np.uint64) * np.uint64(0xD2511F53)
    np.testing.assert_array_equal(np.asarray(hi), (ref >> np.uint64(32)).astype(np.uint32))
    np.testing.assert_array_equal(np.asarray(lo), (ref & np.uint64(0xFFFFFFFF)).astype(np.uint32))


@pytest.mark.parametrize("n", [997, 1024])
def test_lhs_stratifies_each_dimension_exactly_once(n):
    u = draw("lhs", n, 5)
    assert np.all((u > 0) & (u < 1))
    cells = np.sort(np.floor(u * n).astype(int), axis=0)
    np.testing.assert_array_equal(cells, np.tile(np.arange(n)[:, None], (1, 5)))


def test_mc_uniforms_are_uniform_and_independent():
    u = draw("mc", N, 35)
    assert np.all((u > 0) & (u < 1))
    for d in (0, 1, 34):
        assert stats.kstest(u[:, d], "uniform").pvalue > 1e-3
    c = np.corrcoef(u.T)
    assert np.abs(c - np.eye(35)).max() < 5.0 / math.sqrt(N)


# ---------------------------------------------------------------- marginals


def test_truncated_normal_ppf_matches_scipy():
    u = np.linspace(1e-6, 1 - 1e-6, 201)
    cases = np.array(
        [(0.5, 0.1, 0.0, 1.0), (0.95, 0.1, 0.0, 1.0), (0.02, 0.05, 0.0, 1.0), (1.0, 0.3, 0.0, np.inf)]
    )
    mu, sigma, lo, hi = (cases[:, i : i + 1] for i in range(4))
    got = np.asarray(jax.jit(truncated_normal_ppf)(jnp.asarray(np.tile(u, (4, 1))), mu, sigma, lo, hi))
    ref = stats.truncnorm.ppf(u[None, :], (lo - mu) / sigma, (hi - mu) / sigma, loc=mu, scale=sigma)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    # zero spread: the location, clipped
    assert float(truncated_normal_ppf(jnp.asarray([0.3]), 1.2, 0.0, 0.0, 1.0)[0]) == 1.0


def test_beta_ppf_matches_scipy():
    u = np.linspace(1e-5, 1 - 1e-5, 101)
    a = np.array([[2.0], [0.5], [30.0], [1.0]])
    b = np.array([[5.0], [0.5], [3.0], [1.0]])
    got = np.asarray(jax.jit(beta_ppf)(jnp.asarray(np.tile(u, (4, 1))), a, b))
    np.testing.assert_allclose(got, stats.beta.ppf(u[None, :], a, b), rtol=1e-9, atol=1e-12)


def test_pv_normal_truncated_moments_and_bounds(net):
    # unit 0 forecast at 95 % of its rating: the truncation at the rating is active
    p = kw(net, UncertaintyModel().sample(net, pu(net, [950.0, 250.0]), key=KEY, n=N).p_pv_pu)
    assert p.shape == (N, 2)
    assert p.min() >= 0 and np.all(p <= np.array([1000.0, 500.0]) + 1e-9)
    for k, (mu, hi) in enumerate([(950.0, 1000.0), (250.0, 500.0)]):
        sd = 0.1 * mu
        ref = stats.truncnorm((0 - mu) / sd, (hi - mu) / sd, loc=mu, scale=sd)
        assert abs(p[:, k].mean() - ref.mean()) < 4 * ref.std() / math.sqrt(N)
        assert abs(p[:, k].std() / ref.std() - 1) < 4 / math.sqrt(2 * N)
    # the truncated mean is visibly below the forecast for unit 0 (rating 0.53 sigma above)
    assert p[:, 0].mean() < 940.0
    # no atom at the rating with proper truncation
    assert np.mean(p[:, 0] >= 1000.0 - 1e-9) < 1e-3


def test_pv_clip_puts_tail_mass_on_the_rating(net):
    model = UncertaintyModel(pv=PVForecastError(sigma_frac=0.1, truncation="clip"))
    p = kw(net, model.sample(net, pu(net, [950.0, 250.0]), key=KEY, n=N).p_pv_pu)
    at_cap = np.mean(p[:, 0] >= 1000.0 - 1e-9)
    expect = 1 - stats.norm.cdf(50.0 / 95.0)  # P(N(950, 95^2) > 1000)
    assert abs(at_cap - expect) < 4 * math.sqrt(expect * (1 - expect) / N)
    assert p.max() <= 1000.0 + 1e-9


def test_pv_sigma_of_rated_and_zero_forecast(net):
    model = UncertaintyModel(pv=PVForecastError(sigma_frac=0.05, sigma_of="rated"))
    p = kw(net, model.sample(net, pu(net, [500.0, 0.0]), key=KEY, n=N).p_pv_pu)
    assert abs(p[:, 0].std() - 50.0) < 4 * 50.0 / math.sqrt(2 * N)  # 5 % of 1000 kVA, far from bounds
    # zero forecast with a rated-based sigma: half-normal with scale 25 kW
    assert p[:, 1].min() >= 0 and abs(p[:, 1].mean() - 25.0 * math.sqrt(2 / math.pi)) < 1.0
    # zero forecast with a forecast-based sigma (night): exactly zero
    night = UncertaintyModel().sample(net, pu(net, [500.0, 0.0]), key=KEY, n=N)
    assert np.all(np.asarray(night.p_pv_pu)[:, 1] == 0.0)


def test_pv_beta_moments(net):
    model = UncertaintyModel(pv=PVBeta(sigma_frac=0.2), scheme="sobol")
    p = kw(net, model.sample(net, pu(net, [600.0, 100.0]), key=KEY, n=N).p_pv_pu)
    assert p.min() >= 0 and np.all(p <= np.array([1000.0, 500.0]))
    for k, (mu, sd) in enumerate([(600.0, 120.0), (100.0, 20.0)]):
        assert abs(p[:, k].mean() - mu) < 4 * sd / math.sqrt(N)
        assert abs(p[:, k].std() / sd - 1) < 0.03
    # shape mode: p_max * Beta(2, 5), whatever the forecast
    shape = UncertaintyModel(pv=PVBeta(alpha=2.0, beta=5.0), scheme="sobol")
    q = kw(net, shape.sample(net, pu(net, [600.0, 100.0]), key=KEY, n=N).p_pv_pu)
    ref = stats.beta(2.0, 5.0)
    np.testing.assert_allclose(q.mean(axis=0), [1000 * ref.mean(), 500 * ref.mean()], rtol=0.01)
    np.testing.assert_allclose(q.std(axis=0), [1000 * ref.std(), 500 * ref.std()], rtol=0.03)


def test_load_moments_constant_power_factor(net):
    s = UncertaintyModel().sample(net, pu(net, FC), key=KEY, n=N)
    p, q = np.asarray(s.p_load_pu), np.asarray(s.q_load_pu)
    p0, q0 = np.asarray(net.p_load_pu), np.asarray(net.q_load_pu)
    loaded = p0 > 0
    f = p[:, loaded] / p0[loaded]
    np.testing.assert_allclose(q[:, loaded], f * q0[loaded], rtol=1e-12)  # same factor for P and Q
    assert np.all(p[:, ~loaded] == 0)  # the substation bus carries no load
    assert np.abs(f.mean(axis=0) - 1).max() < 4.5 * 0.05 / math.sqrt(N)
    assert np.abs(f.std(axis=0) / 0.05 - 1).max() < 4.5 / math.sqrt(2 * N)
    assert f.min() >= 0
    # load=None / pv=None: nominal loads, PV at the forecast
    fixed = UncertaintyModel(pv=None, load=None).sample(net, pu(net, FC), key=KEY, n=4)
    np.testing.assert_array_equal(fixed.p_load_pu, np.broadcast_to(p0, (4, 33)))
    np.testing.assert_array_equal(fixed.p_pv_pu, np.broadcast_to(pu(net, FC), (4, 2)))


# ---------------------------------------------------------------- correlation


def test_correlation_matrix_recovered(net):
    rng = np.random.default_rng(0)
    k = net.pv.count + net.n_bus
    w = rng.normal(size=(k, 3))
    c = w @ w.T + np.diag(rng.uniform(0.2, 1.0, k))
    d = 1 / np.sqrt(np.diag(c))
    c = c * d[:, None] * d[None, :]
    model = UncertaintyModel(correlation=CorrelationMatrix(c), scheme="sobol")
    s = model.sample(net, pu(net, FC), key=KEY, n=N)
    x = np.concatenate([np.asarray(s.p_pv_pu), np.asarray(s.p_load_pu)[:, 1:]], axis=1)
    keep = np.r_[0:2, 3:k]  # bus 0 (substation) has no load
    emp = np.corrcoef(x.T)
    # marginals are 10 sigma from their bounds, so Pearson = copula correlation
    assert np.abs(emp - c[np.ix_(keep, keep)]).max() < 0.04


def test_common_factor_correlation_under_jit_and_float32(net):
    cf = CommonFactor(rho_pv=0.6, rho_load=0.3, rho_cross=-0.5)
    model = UncertaintyModel(correlation=cf, scheme="sobol")
    fc = pu(net, FC)
    s = model.sample(net, fc, key=KEY, n=N)
    x = np.concatenate([np.asarray(s.p_pv_pu), np.asarray(s.p_load_pu)[:, 1:]], axis=1)
    emp = np.corrcoef(x.T)
    keep = np.r_[0:2, 3:35]
    ref = cf.matrix(2, 33)[np.ix_(keep, keep)]
    assert np.abs(emp - ref).max() < 0.04
    assert abs(emp[0, 1] - 0.6) < 0.03 and abs(emp[0, 5] - math.sqrt(0.18) * -0.5) < 0.03
    # under jit, in float32 (one compilation for both): the float64 rows to float32 precision
    draw32 = jax.jit(lambda k, f: model.sample(net, f, key=k, n=N, stop=32, dtype="float32"))
    s32 = draw32(KEY, jnp.asarray(fc))
    assert s32.p_pv_pu.dtype == jnp.float32 and s32.p_load_pu.dtype == jnp.float32
    np.testing.assert_allclose(s32.p_pv_pu, s.p_pv_pu[:32], rtol=1e-4)
    np.testing.assert_allclose(s32.p_load_pu, s.p_load_pu[:32], rtol=1e-4)


def test_net_load_and_xarray(net):
    s = UncertaintyModel().sample(net, pu(net, FC), key=KEY, n=N)
    # net load = load - PV injection, as the power-flow kernel helper computes it
    p, q = s.net_load(net)
    for i in (0, N - 1):
        dp, dq = pv_net_load(jnp.asarray(net.pv.bus), jnp.asarray(net.pv.pf), s.p_pv_pu[i], net.n_bus)
        np.testing.assert_allclose(p[i], s.p_load_pu[i] + dp, rtol=1e-14)
        np.testing.assert_allclose(q[i], s.q_load_pu[i] + dq, rtol=1e-14)
    ds = s.to_xarray(net)
    assert ds.p_load_kw.dims == ("sample", "bus") and list(ds.pv_bus.values) == [30, 18]
    np.testing.assert_allclose(ds.p_pv_kw.values, kw(net, s.p_pv_pu))
    np.testing.assert_allclose(ds.p_load_kw.sel(bus=18).values, kw(net, s.p_load_pu[:, 17]))


# ---------------------------------------------------------------- time series


def test_time_series_profiles_and_ar1(net):
    n = 4096
    fc = pv_forecast(net, clear_sky_pv_profile(latitude_deg=35.0), peak_frac=0.9)
    model = UncertaintyModel(load_profile="rts79_summer_weekday", time_rho=0.7, scheme="sobol")
    s = model.sample(net, fc, key=KEY, n=n)
    assert s.p_load_pu.shape == (n, 24, 33) and s.p_pv_pu.shape == (n, 24, 2) and s.has_time
    prof = load_profile("rts79_summer_weekday")
    mean_load = np.asarray(s.p_load_pu).sum(axis=2).mean(axis=0)
    np.testing.assert_allclose(mean_load, prof * float(np.sum(net.p_load_pu)), rtol=3e-3)
    pv = np.asarray(s.p_pv_pu)
    assert np.all(pv[:, :4] == 0) and np.all(pv[:, 20:] == 0)  # night
    assert np.all(pv <= np.asarray(net.pv.s_rated_pu))
    sd = 0.1 * fc[12]
    noon = stats.truncnorm(-10.0, (np.asarray(net.pv.s_rated_pu) - fc[12]) / sd, loc=fc[12], scale=sd)
    np.testing.assert_allclose(pv[:, 12].mean(axis=0), noon.mean(), rtol=2e-3)  # truncated at the rating
    # AR(1) between periods: lag-1 and lag-2 correlation of one bus's load
    x = np.asarray(s.p_load_pu)[:, :, 5] / prof[None, :]
    assert abs(np.corrcoef(x[:, 10], x[:, 11])[0, 1] - 0.7) < 0.04
    assert abs(np.corrcoef(x[:, 10], x[:, 12])[0, 1] - 0.49) < 0.04


def test_profiles():
    for name in ("rts79_winter_weekday", "residential_synthetic", "commercial_synthetic"):
        p = load_profile(name)
        assert p.shape == (24,) and p.max() == 1.0 and p.min() > 0
    assert load_profile("rts79_winter_weekday")[17] == 1.0  # RTS-79 winter weekday peak at 5-6 pm
    summer = clear_sky_pv_profile(latitude_deg=40.0, day_of_year=172)
    winter = clear_sky_pv_profile(latitude_deg=40.0, day_of_year=355)
    assert summer.max() == 1.0 and summer[0] == 0.0 and summer[23] == 0.0
    np.testing.assert_allclose(summer, summer[::-1], atol=1e-12)  # symmetric about solar noon
    assert (summer > 0).sum() > (winter > 0).sum()  # longer days in summer


# ---------------------------------------------------------------- model plumbing


@pytest.mark.parametrize("scheme", ["mc", "lhs", "sobol"])
def test_model_chunked_equals_unchunked_and_keys(net, scheme):
    model = UncertaintyModel(scheme=scheme)
    fc = pu(net, FC)
    full = model.sample(net, fc, key=KEY, n=96)
    chunks = list(model.iter_chunks(net, fc, key=KEY, n=96, chunk_size=32))
    assert [c.start for c in chunks] == [0, 32, 64]
    for name in ("p_load_pu", "q_load_pu", "p_pv_pu"):
        np.testing.assert_array_equal(np.concatenate([getattr(c, name) for c in chunks]), getattr(full, name))
    again = model.sample(net, fc, key=KEY, n=96)
    np.testing.assert_array_equal(again.p_load_pu, full.p_load_pu)
    other = model.sample(net, fc, key=jax.random.key(8), n=96)
    assert not np.any(np.asarray(other.p_pv_pu) == np.asarray(full.p_pv_pu))
    if scheme != "lhs":  # MC and Sobol rows do not depend on the design size either
        bigger = model.sample(net, fc, key=KEY, n=5000, start=32, stop=64)
        np.testing.assert_array_equal(bigger.p_pv_pu, full.p_pv_pu[32:64])


def test_from_dict_toml_round_trip():
    text = """
    [uncertainty]
    scheme = "sobol"
    load_profile = "rts79_summer_weekday"
    time_rho = 0.5
    [uncertainty.pv]
    kind = "beta"
    sigma_frac = 0.15
    [uncertainty.load]
    sigma_frac = 0.08
    [uncertainty.correlation]
    kind = "matrix"
    over = "pv"
    matrix = [[1.0, 0.4], [0.4, 1.0]]
    """
    model = from_dict(tomllib.loads(text)["uncertainty"])
    assert model.scheme == "sobol" and model.pv == PVBeta(sigma_frac=0.15)
    assert model.load == LoadNormal(sigma_frac=0.08) and model.correlation.over == "pv"
    assert from_dict(model.to_dict()) == model
    beta_shape = UncertaintyModel(pv=PVBeta(alpha=2.0, beta=5.0))
    assert from_dict(beta_shape.to_dict()) == beta_shape and PVBeta() == PVBeta(sigma_frac=0.1)
    with pytest.raises(UncertaintyError, match="not both"):
        PVBeta(sigma_frac=0.1, alpha=2.0, beta=5.0)
    off = from_dict({"pv": "none", "load": {"kind": "normal"}})
    assert off.pv is None and off.load == LoadNormal()
    assert from_dict(UncertaintyModel().to_dict()) == UncertaintyModel()


# ---------------------------------------------------------------- validation


def test_negative_sigma_is_rejected():
    with pytest.raises(UncertaintyError, match=r"PVForecastError\.sigma_frac must be >= 0"):
        PVForecastError(sigma_frac=-0.1)


def test_nan_sigma_is_rejected():
    with pytest.raises(UncertaintyError, match=r"LoadNormal\.sigma_frac must be finite"):
        LoadNormal(sigma_frac=float("nan"))


def test_rho_out_of_range_is_rejected():
    with pytest.raises(CorrelationError, match=r"CommonFactor\.rho_cross must be a correlation in \[-1, 1\]"):
        CommonFactor(rho_cross=1.5)
    with pytest.raises(CorrelationError, match=r"rho_pv must be in \[0, 1\] for a common-factor model"):
        CommonFactor(rho_pv=-0.2)
    with pytest.raises(CorrelationError, match=r"time_rho"):
        UncertaintyModel(time_rho=-1.01)


def test_correlation_matrix_not_psd_is_rejected():
    bad = [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]]
    with pytest.raises(CorrelationError, match="not positive semidefinite"):
        CorrelationMatrix(bad)


def test_correlation_matrix_not_symmetric_or_unit_diagonal_is_rejected():
    with pytest.raises(CorrelationError, match=r"not symmetric: entry \[0, 1\]"):
        CorrelationMatrix([[1.0, 0.3], [0.2, 1.0]])
    with pytest.raises(CorrelationError, match=r"matrix\[1, 1\] must be 1"):
        CorrelationMatrix([[1.0, 0.3], [0.3, 0.9]])


def test_correlation_matrix_of_wrong_size_is_rejected(net):
    model = UncertaintyModel(correlation=CorrelationMatrix([[1.0, 0.3], [0.3, 1.0]], over="all"))
    with pytest.raises(CorrelationError, match=r"the network needs 35x35 \(2 PV units \+ 33 buses\)"):
        model.sample(net, pu(net, [500.0, 250.0]), key=KEY, n=8)


def test_profile_of_wrong_length_is_rejected(net):
    with pytest.raises(ProfileError, match="has 23 periods, expected 24"):
        daily_profile([1.0] * 23, name="load profile")
    model = UncertaintyModel(load_profile=[1.0] * 12)
    fc = np.zeros((24, 2))
    with pytest.raises(ProfileError, match="load_profile has 12 periods but pv_forecast_pu has 24"):
        model.sample(net, fc, key=KEY, n=8)
    with pytest.raises(ProfileError, match=r"load_profile\[3\] must be a finite number >= 0"):
        UncertaintyModel(load_profile=[1.0, 1.0, 1.0, -0.5])
    with pytest.raises(ProfileError, match="unknown load profile 'rts'"):
        UncertaintyModel(load_profile="rts")


def test_unknown_scheme_is_rejected():
    msg = "unknown sampling scheme 'halton'; choose one of mc, lhs, sobol"
    with pytest.raises(UncertaintyError, match=msg):
        UncertaintyModel(scheme="halton")


def test_forecast_above_rating_is_rejected(net):
    msg = r"PV unit 1 \(bus 18\) is 600 kW, above the unit's rating 500 kW"
    with pytest.raises(UncertaintyError, match=msg):
        UncertaintyModel().sample(net, pu(net, [500.0, 600.0]), key=KEY, n=8)
    apparent = UncertaintyModel(pv=PVForecastError(limit="apparent"))
    msg = r"PV unit 0 \(bus 30\) is 960 kW, above the unit's rating 950 kW \(pf \* s_rated\)"
    with pytest.raises(UncertaintyError, match=msg):
        apparent.sample(net, pu(net, [960.0, 100.0]), key=KEY, n=8)


def test_bad_forecast_values_and_shapes_are_rejected(net):
    with pytest.raises(UncertaintyError, match=r"negative at PV unit 0 \(bus 30\), period 3"):
        fc = np.full((24, 2), 0.01)
        fc[3, 0] = -0.01
        UncertaintyModel().sample(net, fc, key=KEY, n=8)
    with pytest.raises(UncertaintyError, match=r"not finite at PV unit 1 \(bus 18\)"):
        UncertaintyModel().sample(net, [0.01, float("nan")], key=KEY, n=8)
    with pytest.raises(UncertaintyError, match=r"expected \(2,\) or \(time, 2\)"):
        UncertaintyModel().sample(net, [0.01], key=KEY, n=8)
    with pytest.raises(UncertaintyError, match="pv_forecast_pu is required"):
        UncertaintyModel().sample(net, key=KEY, n=8)


def test_infeasible_beta_is_rejected(net):
    with pytest.raises(UncertaintyError, match=r"PVBeta: at PV unit 0 \(bus 30\) the mean 0.99"):
        UncertaintyModel(pv=PVBeta(sigma_frac=0.2)).sample(net, pu(net, [990.0, 100.0]), key=KEY, n=8)


def test_bad_range_and_config_keys_are_rejected(net):
    with pytest.raises(UncertaintyError, match="need 0 <= start < stop <= n"):
        UncertaintyModel().sample(net, pu(net, [500.0, 250.0]), key=KEY, n=8, start=8)
    with pytest.raises(UncertaintyError, match="chunk_size must be a positive integer"):
        next(UncertaintyModel().iter_chunks(net, pu(net, [500.0, 250.0]), key=KEY, n=8, chunk_size=0))
    with pytest.raises(UncertaintyError, match=r"uncertainty\.pv: unknown key 'sigma'"):
        from_dict({"pv": {"sigma": 0.1}})
    with pytest.raises(UncertaintyError, match=r"uncertainty: unknown key 'sheme'"):
        from_dict({"sheme": "mc"})
    with pytest.raises(UncertaintyError, match="dtype must be float32 or float64"):
        UncertaintyModel().sample(net, pu(net, [500.0, 250.0]), key=KEY, n=8, dtype="float16")
