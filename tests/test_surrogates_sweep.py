"""sopjax.surrogates.sweep: sweeps through the learned dispatch, side by side with the interior point.

A tiny DispatchNet trained for a few steps on set-points of the right scale (not a quality
model: quality figures come from benchmarks/learned_dispatch_bench.py); what is tested is
the plumbing, the exact check with its fallback, the optimality gap's sign and the
refusal of a checkpoint of another network.
"""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sopjax.cli.main import main
from sopjax.config import ConfigError
from sopjax.network_builder import build_network
from sopjax.surrogates import SurrogateError, TrainSettings, fit
from sopjax.surrogates.dispatch import DispatchNet, save_dispatch
from sopjax.surrogates.sweep import run_learned_optimization, run_learned_sweep
from sopjax.sweeps import build_scenario, spec_from_config

BASE = {
    "title": "learned sweep",
    "network": {
        "case": "ieee33",
        "pv": [{"bus": 30, "s_rated_kva": 300, "pf": 0.95}],
        "sop": [{"pair": [18, 33], "s_rated_kva": 300, "loss": 0.02}],
    },
    "dispatch": {"engine": "learned", "checkpoint": "", "compare": True},
    "uncertainty": {"load": {"kind": "normal", "sigma_frac": 0.1}},
    "sampling": {"samples": 4, "seed": 1},
    "axis": [{"name": "capacity_mva", "values": [0.1, 0.3]}],
    "quantities": ["losses_kw", "objective_kw"],
}


def _cfg(path, **dispatch):
    c = copy.deepcopy(BASE)
    c["dispatch"].update({"checkpoint": str(path), **dispatch})
    return c


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A few AdamW steps pulling the fractions toward (0.5, 0, 0): feeding from the lightly loaded end."""
    spec = spec_from_config(_cfg("unused"))
    net = build_network(spec.network)
    n_bus, n_pv, n_sop = net.n_bus, net.pv.count, net.sop.count
    model = DispatchNet(n_bus, n_pv, n_sop, width=8, depth=1, key=jax.random.key(0))
    rng = np.random.default_rng(0)
    z = rng.normal(size=(64, 2 * n_bus + n_pv + 2 * n_sop)).astype(np.float32)
    t = np.broadcast_to(np.array([[0.5], [0.0], [0.0]], np.float32), (64, 3, n_sop)).copy()
    settings = TrainSettings(steps=6, batch_size=16, learning_rate=1e-2, warmup_steps=1, eval_every=3, seed=0)
    model, _ = fit(model, lambda m, b: jnp.mean((jax.vmap(m)(b["z"]) - b["t"]) ** 2),
                   {"z": z, "t": t}, {"z": z, "t": t}, settings, progress=False)
    path = tmp_path_factory.mktemp("ld") / "d"
    c = {"n_bus": n_bus, "n_pv": n_pv, "n_sop": n_sop, "width": 8, "depth": 1}
    scales = {"p": float(np.mean(net.p_load_pu)), "pv": float(np.max(net.pv.s_rated_pu)), "s": 0.003}
    save_dispatch(path, model, c, scales, net, net.in_service)
    return path


@pytest.mark.slow  # compiles the interior point three times (fallback under jacfwd, compare): ~4 min on 2 cores
def test_learned_sweep_is_checked_and_never_beats_the_interior_point(ckpt):
    spec = spec_from_config(_cfg(ckpt))
    ds = run_learned_sweep(spec)
    assert ds.attrs["engine"] == "learned" and ds.attrs["checkpoint"] == str(ckpt)
    for q in ("losses_kw", "objective_kw", "dlosses_kw_dcapacity_mva", "losses_kw_ipm", "objective_gap_mean"):
        assert np.all(np.isfinite(ds[q].values)), q
    assert np.all(ds["ipm_failed_samples"].values == 0)
    # a feasible dispatch cannot beat the optimum (up to the interior point's tolerance)
    assert np.all(ds["objective_gap_max"].values >= ds["objective_gap_mean"].values)
    assert np.all(ds["objective_gap_mean"].values > -1e-6)
    assert np.all(ds["objective_kw"].values >= ds["objective_kw_ipm"].values - 1e-6)
    # where every sample fell back, the learned sweep is the interior point's
    full = ds["fallback_samples"].values == spec.samples
    np.testing.assert_allclose(ds["objective_kw"].values[full], ds["objective_kw_ipm"].values[full], rtol=1e-6)


@pytest.mark.slow  # compiles the interior point under reverse mode several times: minutes on 2 cores
def test_learned_optax_sizing_next_to_the_interior_point(ckpt):
    c = {k: v for k, v in _cfg(ckpt).items() if k not in ("axis", "quantities")}
    c.update(kind="optimization", optimization={"grid": {"start": 0.1, "stop": 0.3, "num": 3}, "steps": 4,
                                                "batch": 2, "init_mva": 0.2, "max_mva": 0.3})
    ds = run_learned_optimization(spec_from_config(c))
    assert ds.attrs["engine"] == "learned" and "ipm_optax_optimum_mva" in ds.attrs
    # same investment cost, losses of a feasible dispatch >= the optimum's: learned cost >= IPM cost
    assert np.all(ds["grid_cost"].values >= ds["grid_cost_ipm"].values - 1e-6)
    assert np.all(np.isfinite(ds["optax_capacity_mva"].values))


def _zero_model(path, spec):
    """A checkpoint whose set-points are all zero (the SOPs do nothing)."""
    import equinox as eqx

    net = build_network(spec.network)
    model = DispatchNet(net.n_bus, net.pv.count, net.sop.count, width=4, depth=1, key=jax.random.key(0))
    last = lambda m: (m.mlp.layers[-1].weight, m.mlp.layers[-1].bias)
    model = eqx.tree_at(last, model, replace_fn=jnp.zeros_like)
    cfg = {"n_bus": net.n_bus, "n_pv": net.pv.count, "n_sop": net.sop.count, "width": 4, "depth": 1}
    save_dispatch(path, model, cfg, {"p": 0.01, "pv": 0.01, "s": 0.01}, net, net.in_service)


def test_a_feasible_learned_sweep_compiles_no_interior_point(tmp_path):
    """Zero set-points: losses do not depend on the capacity (known answer)."""
    c = _cfg(tmp_path / "z", compare=False)
    c["baseline"] = {"load_scale": 0.8}  # the feeder alone keeps 0.9 p.u. (the sweep's v_min)
    spec = spec_from_config(c)
    _zero_model(tmp_path / "z", spec)
    ds = run_learned_sweep(spec)
    assert ds.attrs["interior_point_fallback"] == 0
    losses = ds["losses_kw"].values
    assert np.all(np.isfinite(losses)) and losses[0] == pytest.approx(losses[1], rel=1e-12)
    np.testing.assert_allclose(ds["dlosses_kw_dcapacity_mva"].values, 0.0, atol=1e-9)


@pytest.mark.slow  # compiles the interior point under forward mode and for compare: about a minute
def test_an_infeasible_repaired_sample_falls_back_to_the_interior_point(tmp_path):
    """Zero set-points leave some samples below v_min = 0.92 p.u., which the SOP can lift: those fall back."""
    c = _cfg(tmp_path / "z")
    c["dispatch"]["v_min_pu"] = 0.92
    spec = spec_from_config(c)
    _zero_model(tmp_path / "z", spec)
    ds = run_learned_sweep(spec)
    assert ds.attrs["interior_point_fallback"] == 1
    assert np.all(ds["fallback_samples"].values >= 1) and np.all(ds["ipm_failed_samples"].values == 0)
    # the fallen-back samples carry the optimum, the others zero set-points: never below the optimum
    assert np.all(ds["objective_kw"].values >= ds["objective_kw_ipm"].values - 1e-6)
    assert np.all(ds["objective_gap_mean"].values > -1e-9)


def test_checkpoint_of_another_network_is_refused_before_any_work(ckpt):
    other = _cfg(ckpt)
    other["network"]["sop"] = [{"pair": [12, 22], "s_rated_kva": 300, "loss": 0.02}]
    with pytest.raises(SurrogateError, match=r"SOP 1 is at bus \[18, 33\] in training, at bus \[12, 22\]"):
        run_learned_sweep(spec_from_config(other))
    more = _cfg(ckpt)
    more["network"]["pv"] = []
    with pytest.raises(SurrogateError, match="trained for 33 buses, 1 PV units and 1 SOPs; the network has 33, 0 and 1"):
        run_learned_sweep(spec_from_config(more))
    from sopjax.surrogates.sweep import LearnedSolver

    scn = build_scenario(spec_from_config(_cfg(ckpt)))
    closed = np.asarray(scn.net.in_service, bool).copy()
    closed[[6, 32]] = [False, True]  # open branch 7, close tie 33
    from sopjax.surrogates.dispatch import load_dispatch

    with pytest.raises(SurrogateError, match="trained with branch 7 closed; this switch configuration has it open"):
        load_dispatch(ckpt, scn.net, closed)
    assert LearnedSolver(str(ckpt)).load(scn).data is scn.data


def test_learned_engine_config_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"engine = \"learned\" needs checkpoint"):
        spec_from_config({**BASE, "dispatch": {"engine": "learned"}})
    with pytest.raises(ConfigError, match=r"checkpoint and compare apply to engine = \"learned\""):
        spec_from_config({**BASE, "dispatch": {"engine": "jax", "compare": True}})
    with pytest.raises(ConfigError, match=r"compare must be true or false"):
        spec_from_config(_cfg("x", compare="yes"))
    opt = {k: v for k, v in _cfg("x").items() if k not in ("axis", "quantities")}
    assert spec_from_config({**opt, "kind": "optimization"}).engine == "learned"
    # --engine jax overrides a learned config (its checkpoint is then unused)
    assert spec_from_config(_cfg("x"), engine="jax").engine == "jax"
    # the CLI: a missing checkpoint is one line and exit code 2
    text = (
        'quantities = ["losses_kw"]\n[network]\ncase = "ieee33"\nsop = [{ pair = [18, 33], s_rated_kva = 300 }]\n'
        f'[dispatch]\nengine = "learned"\ncheckpoint = "{tmp_path / "none"}"\n[sampling]\nsamples = 2\n'
        '[[axis]]\nname = "capacity_mva"\nvalues = [0.1]\n'
    )
    (tmp_path / "s.toml").write_text(text)
    assert main(["sweep", str(tmp_path / "s.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint at" in err[0]
