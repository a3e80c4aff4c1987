"""Monte Carlo over time with corrective SOP control (sopjax.montecarlo.timeseries)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

import sopjax
from sopjax.config import ConfigError
from sopjax.kernels.scoring.control import ControlOptions
from sopjax.montecarlo import ModelSource, MonteCarloSettings, run_montecarlo
from sopjax.montecarlo.timeseries import (
    ProfileSource,
    TimeSeriesError,
    TimeSeriesSettings,
    optimal_setpoints,
    run_timeseries,
)
from sopjax.montecarlo.timeseries_study import timeseries_study_from_config
from sopjax.sampling import LoadNormal, PVForecastError, UncertaintyModel
from sopjax.sampling.errors import ProfileError
from sopjax.strategies import Strategy, greedy_pickup

FAULT = (2,)


@pytest.fixture(scope="module")
def net():
    n = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    return sopjax.add_sops(n, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)


@pytest.fixture(scope="module")
def plans(net):
    fc = [0.05]
    tie = Strategy.build(net, "tie", open=[2], close=[33])
    vf = Strategy.build(net, "sop vf", open=[2], sops=[{"pair": [8, 21], "mode": "vf_i", "u_set_pu": 1.05}])
    pq = Strategy.build(
        net, "sop pq", open=[2], close=[35], sops=[{"pair": [8, 21], "mode": "pq", "p_kw": 0.0}]
    )
    return {s.name: greedy_pickup(net, s, p_pv_pu=fc, fault_open=[2]) for s in (tie, vf, pq)}


def _model(profile, rho=0.7):
    return UncertaintyModel(
        pv=PVForecastError(sigma_frac=0.1),
        load=LoadNormal(sigma_frac=0.1),
        load_profile=profile,
        time_rho=rho,
    )


def _renamed(s, name):
    return dataclasses.replace(s, name=name)


def test_profile_of_length_one_equals_the_one_period_engine(net, plans):
    strategies = [plans["tie"], plans["sop vf"]]
    settings = MonteCarloSettings(n_samples=24, fault_open=FAULT)
    base = UncertaintyModel(pv=PVForecastError(sigma_frac=0.1), load=LoadNormal(sigma_frac=0.1))
    one = run_montecarlo(net, strategies, ModelSource(net, base, [0.05], seed=3, n_samples=24), settings)
    ts = run_timeseries(
        net, strategies, ProfileSource(net, _model((1.0,), 0.0), [[0.05]], seed=3, n_samples=24), settings
    )
    assert ts.sizes["time"] == 1
    compared = 0
    for v in one.data_vars:
        if v not in ts or one[v].dims[:1] != ("strategy",):
            continue
        a, b = np.asarray(one[v].values), np.asarray(ts[v].isel(time=0).values)
        np.testing.assert_array_equal(a, b, err_msg=v)
        compared += 1
    assert compared > 100
    # the horizon of one period is that period (energy = power x 1 h)
    np.testing.assert_allclose(ts.energy_recovery_mean.values, one.recovery_ratio_mean.values, rtol=1e-12)
    np.testing.assert_allclose(ts.restored_kwh_mean.values, one.restored_kw_mean.values, rtol=1e-12)


N = 12  # samples of the shared runs below (one compiled block size for all of them)


def _pair_strategies(net, plans, *, p_kw=0.0, q_kvar=0.0, u_set=1.05):
    pq = Strategy.build(
        net,
        "pq",
        open=[2],
        close=[35],
        sops=[{"pair": [8, 21], "mode": "pq", "p_kw": p_kw, "q_i_kvar": q_kvar}],
        pickup=plans["sop pq"].pickup,
    )
    vf = Strategy.build(
        net,
        "vf",
        open=[2],
        pickup=plans["sop vf"].pickup,
        sops=[{"pair": [8, 21], "mode": "vf_i", "u_set_pu": u_set, "q_j_kvar": q_kvar}],
    )
    return [pq, _renamed(pq, "pq opt"), vf, _renamed(vf, "vf opt")]


CONTROLS = TimeSeriesSettings(controls=("fixed", "optimal") * 2)


def _run(net, strategies, source, ts=CONTROLS, **kw):
    settings = MonteCarloSettings(
        n_samples=N,
        fault_open=FAULT,
        chunk_size=kw.pop("chunk_size", None),
        keep_samples=kw.pop("keep_samples", False),
    )
    return run_timeseries(net, strategies, source, settings, ts, bases=["pq", "pq", "vf", "vf"], **kw)


@pytest.fixture(scope="module")
def two_period(net, plans):
    source = ProfileSource(net, _model((1.0, 0.9)), [[0.04], [0.02]], seed=1, n_samples=N)
    return _pair_strategies(net, plans), source


@pytest.fixture(scope="module")
def unchunked(net, two_period):
    return _run(net, *two_period)


def test_chunked_run_equals_unchunked(net, two_period, unchunked):
    chunked = _run(net, *two_period, chunk_size=5)
    for v in (
        "recovery_ratio_mean",
        "recovery_ratio_std",
        "recovery_ratio_quantile",
        "vm_mean",
        "energy_recovery_mean",
        "energy_recovery_std",
        "ens_kwh_mean",
        "loss_kwh_mean",
        "gain_energy_recovery_mean",
        "gain_loss_kwh_std",
        "control_failed",
        "n_valid",
        "energy_recovery_quantile",
    ):
        np.testing.assert_allclose(chunked[v].values, unchunked[v].values, rtol=1e-10, atol=1e-12, err_msg=v)
    assert unchunked.sizes["time"] == 2 and unchunked.sizes["pair"] == 2
    assert list(unchunked["pair_fixed"].values) == ["pq", "vf"]


def test_resume_after_interrupt_equals_uninterrupted(net, two_period, unchunked, tmp_path):
    ckpt = tmp_path / "run.ckpt.npz"

    def stop_after_two(k, done):
        if k == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(net, *two_period, chunk_size=5, checkpoint=ckpt, on_chunk=stop_after_two)
    assert ckpt.exists()
    resumed = _run(net, *two_period, chunk_size=5, checkpoint=ckpt)
    assert int(resumed.attrs["resumed_from_sample"]) == 10
    for v in ("recovery_ratio_mean", "energy_recovery_mean", "ens_kwh_std", "gain_energy_recovery_mean"):
        np.testing.assert_allclose(resumed[v].values, unchunked[v].values, rtol=1e-10, err_msg=v)


def test_optimal_pq_redispatch_beats_fixed_and_lowers_losses(unchunked):
    pq = unchunked.sel(pair="pq opt")
    assert float(pq.gain_energy_recovery_mean) > 0.01
    assert float(pq.gain_loss_kwh_mean) < 0
    assert int(unchunked.control_failed.sum()) == 0


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    p_kw=hst.floats(-600, 600),
    q_kvar=hst.floats(-500, 500),
    u_set=hst.floats(0.96, 1.05),
    load_scale=hst.floats(0.6, 1.1),
    seed=hst.integers(0, 1000),
)
def test_optimal_never_recovers_less_than_fixed(net, plans, p_kw, q_kvar, u_set, load_scale, seed):
    """Per sample and period, where both power flows (and the dispatch) converge."""
    strategies = _pair_strategies(net, plans, p_kw=p_kw, q_kvar=q_kvar, u_set=u_set)
    source = ProfileSource(
        net, _model((load_scale, 0.9 * load_scale)), [[0.04], [0.02]], seed=seed, n_samples=N
    )
    ds = _run(net, strategies, source, keep_samples=True)
    r = ds.recovery_ratio_sample.values  # (strategy, time, sample)
    conv = ds.converged_sample.values.astype(bool)
    for fixed, opt in ((0, 1), (2, 3)):
        both = conv[fixed] & conv[opt]
        assert both.sum() > 0
        assert np.all(r[opt][both] >= r[fixed][both] - 1e-9)


@pytest.mark.slow
def test_local_rule_and_island_shedding_by_priority(net, plans):
    vf = plans["sop vf"]
    strategies = [vf, _renamed(vf, "vf local"), plans["sop pq"], _renamed(plans["sop pq"], "pq local")]
    source = ProfileSource(net, _model((1.0,)), [[0.05]], seed=2, n_samples=N)
    settings = MonteCarloSettings(n_samples=N, fault_open=FAULT)
    runs = {
        isl: run_timeseries(
            net,
            strategies,
            source,
            settings,
            TimeSeriesSettings(controls=("fixed", "local") * 2, island_overload=isl),
            bases=["vf", "vf", "pq", "pq"],
        )
        for isl in ("shed", "priority")
    }
    shed, prio = runs["shed"], runs["priority"]
    assert float(shed.p_island_lost.sel(strategy="sop vf").max()) > 0  # the planned island trips sometimes
    assert float(prio.p_island_lost.max()) == 0.0  # shedding by priority keeps it
    assert np.all(prio.recovery_ratio_mean.values >= shed.recovery_ratio_mean.values - 1e-12)
    # the local rule supports the long feeder's voltage: recovery at least the fixed set-points' here
    assert float(prio.sel(pair="pq local").gain_energy_recovery_mean) > 0


def test_optimal_setpoints_match_the_cvxpy_dispatch(net, plans):
    from sopjax.kernels.dispatch import DispatchInputs, compile_dispatch
    from sopjax.problems.dispatch import build_dispatch, solve_dispatch

    s = _pair_strategies(net, plans)[0]
    source = ProfileSource(net, _model((0.7,)), [[0.04]], seed=5, n_samples=N)
    p, q, pv = (a[:, 0] for a in source.draw(0, N))
    sp, conv = optimal_setpoints(net, s, p, q, pv, fault_open=FAULT)
    assert np.all(np.asarray(conv))
    data = compile_dispatch(net, s.status, v_min_pu=0.95, v_max_pu=1.05, allow_deenergized=True)
    model = build_dispatch(data)
    caps = (np.asarray(net.sop.s_rated_i_pu, float), np.asarray(net.sop.s_rated_j_pu, float))
    tight = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500}
    for k in range(0, N, 4):  # 3 of the 12 samples
        ref, _ = solve_dispatch(
            model, DispatchInputs(s.pickup * p[k], s.pickup * q[k], pv[k], *caps), **tight
        )
        # VSC a is the i terminal (mode "pq"): p_a = p_i, q_a = q_i, q_b = q_j
        np.testing.assert_allclose(np.asarray(sp.p_a[k]), ref.p_i, atol=3e-4)
        np.testing.assert_allclose(np.asarray(sp.q_a[k]), ref.q_i, atol=3e-4)
        np.testing.assert_allclose(np.asarray(sp.q_b[k]), ref.q_j, atol=3e-4)
    assert np.max(np.abs(np.asarray(sp.q_a))) > 1e-3  # the dispatch does move the set-points


def test_dispatch_in_blocks_equals_one_call(net, plans):
    """A chunk's dispatch problems solved in blocks (the last one padded) equal one batched call."""
    s = _pair_strategies(net, plans)[0]
    source = ProfileSource(net, _model((0.7,)), [[0.04]], seed=5, n_samples=N)
    p, q, pv = (a[:, 0] for a in source.draw(0, N))
    one = optimal_setpoints(net, s, p, q, pv, fault_open=FAULT, control=ControlOptions(dispatch_block=N))
    blocks = optimal_setpoints(net, s, p, q, pv, fault_open=FAULT, control=ControlOptions(dispatch_block=5))
    np.testing.assert_array_equal(np.asarray(one[1]), np.asarray(blocks[1]))
    for a, b in zip(one[0], blocks[0]):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="dispatch_block"):
        ControlOptions(dispatch_block=0).validate()


# ------------------------------------------------------------------ bad input


def test_profile_of_the_wrong_length_is_refused(net, plans):
    with pytest.raises(TimeSeriesError, match="3 periods, expected 24"):
        ProfileSource(net, _model((0.8, 1.0, 0.9)), [0.05], seed=0, n_samples=4, periods=24)
    with pytest.raises(TimeSeriesError, match="load profile has 3 periods but the pv forecast has 2"):
        ProfileSource(net, _model((0.8, 1.0, 0.9)), [[0.05], [0.04]], seed=0, n_samples=4)
    source = ProfileSource(net, _model((0.8, 1.0)), [0.05], seed=0, n_samples=4)
    with pytest.raises(TimeSeriesError, match="'tie' is given per period with 3 entries; the horizon has 2"):
        run_timeseries(net, [[plans["tie"]] * 3], source, MonteCarloSettings(n_samples=4, fault_open=FAULT))


def test_negative_profile_value_is_refused(net):
    with pytest.raises(ProfileError, match=r"load_profile\[1\] must be a finite number >= 0, got -0.2"):
        _model((0.8, -0.2))
    with pytest.raises(ProfileError, match=r"pv forecast of PV unit 0\[1\] must be a finite number >= 0"):
        ProfileSource(net, _model((0.8, 1.0)), [[0.05], [-0.01]], seed=0, n_samples=4)


def test_correlation_outside_unit_interval_is_refused():
    with pytest.raises(
        sopjax.errors.SopjaxError, match=r"time_rho must be a correlation in \[-1, 1\], got 1.5"
    ):
        _model((0.8, 1.0), rho=1.5)


def test_unknown_control_policy_is_refused(net, plans):
    source = ProfileSource(net, _model((0.8, 1.0)), [0.05], seed=0, n_samples=4)
    with pytest.raises(TimeSeriesError, match="unknown control policy 'magic'"):
        run_timeseries(
            net,
            [plans["tie"]],
            source,
            MonteCarloSettings(n_samples=4, fault_open=FAULT),
            TimeSeriesSettings(controls="magic"),
        )


def _cfg(**ts):
    return {
        "network": {
            "case": "ieee33",
            "pv": [{"bus": 30, "s_rated_kva": 1000, "pf": 0.95}],
            "sop": [{"pair": [8, 21], "s_rated_kva": 2000, "loss": 0.02}],
        },
        "fault": {"open": [2]},
        "uncertainty": {"pv_forecast_kw": [500], "load_profile": [0.8, 1.0, 0.9], "time_rho": 0.5},
        "timeseries": {"periods": 3, **ts},
        "montecarlo": {"samples": 4},
        "strategy": [{"name": "tie", "close": [33], "pickup": "all"}],
    }


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["timeseries"].update(periods=24),
            "load_profile has 3 periods; \\[timeseries\\] periods = 24",
        ),
        (
            lambda c: c["timeseries"].update(pv_profile=[0.5, -1.0, 0.2]),
            "pv_profile\\[1\\] must be a finite number >= 0",
        ),
        (lambda c: c["uncertainty"].update(time_rho=-1.2), "time_rho must be a correlation in \\[-1, 1\\]"),
        (
            lambda c: c["timeseries"].update(controls=["fixed", "greedy"]),
            "controls\\[1\\] = 'greedy' is not a control",
        ),
        (
            lambda c: c["strategy"][0].update(control="best"),
            "'tie': control = 'best' is not a control policy",
        ),
    ],
)
def test_bad_timeseries_config_is_a_config_error(edit, message):
    cfg = _cfg()
    edit(cfg)
    with pytest.raises(ConfigError, match=message):
        timeseries_study_from_config(cfg)


def test_cli_exit_code_2_on_a_bad_control_policy(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(
        '[network]\ncase = "ieee33"\n[fault]\nopen = [2]\n[uncertainty]\nload_profile = [1.0, 0.9]\n'
        '[timeseries]\ncontrols = ["fixed", "psychic"]\n[[strategy]]\nname = "tie"\nclose = [33]\n'
    )
    out = subprocess.run(
        [sys.executable, "-m", "sopjax.cli.main", "montecarlo", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 2, out.stderr
    assert "psychic" in out.stderr and "Traceback" not in out.stderr
