"""sopjax.surrogates: residuals, models, training determinism, checkpoints, learned dispatch, bad input.

Tiny models and a few steps only; quality figures come from benchmarks/surrogate_bench.py.
"""


import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sopjax
from sopjax.config import ConfigError
from sopjax.datasets import DatasetError, DatasetSpec, build_dataset, load_split
from sopjax.kernels.dispatch import DispatchInputs, compile_dispatch, nominal_inputs
from sopjax.surrogates import (
    SurrogateError,
    TrainSettings,
    batch_arrays,
    distflow_residuals,
    feature_set,
    fit,
    fit_normalizer,
    load_power_flow,
    make_loss,
    make_model,
    parse_train_config,
    power_flow_errors,
    train_power_flow,
)
from sopjax.surrogates.dispatch import (
    DispatchNet,
    LearnedDispatch,
    dispatch_checked,
    evaluate_setpoints,
    repair,
)
from sopjax.surrogates.train import mean_loss

PF_VARS = ["p_net_pu", "q_net_pu", "branch_closed", "vm_pu", "va_rad", "p_from_pu", "q_from_pu", "losses_pu"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=[300], pf=0.95)
    net = sopjax.add_sops(net, pairs=[(12, 22)], s_rated_kva=200, loss=0.02)
    spec = DatasetSpec(
        samples=64,
        chunk_size=32,
        seed=5,
        configurations=3,
        held_out=1,
        fault_fraction=0.1,
        split_fractions=(0.6, 0.2, 0.1, 0.05, 0.05),
        dispatch=False,
    )
    out = tmp_path_factory.mktemp("sur") / "d.zarr"
    build_dataset(net, spec, out, progress=False)
    return out


@pytest.fixture(scope="module")
def train_fs(store):
    return feature_set(load_split(store, "train", variables=PF_VARS))


def _residuals(fs, st):
    nm, em = fs.masks()
    return jax.vmap(
        lambda vm, p, q, pn, qn, a, b: distflow_residuals(
            vm, p, q, pn, qn, f_bus=fs.f_bus, t_bus=fs.t_bus, r=fs.r, x=fs.x, node_mask=a, edge_mask=b
        ).max_abs()
    )(st["vm"], st["p_from"], st["q_from"], fs.p_net, fs.q_net, nm, em)


def test_distflow_residual_is_zero_on_exact_solutions(train_fs):
    fs = train_fs
    exact = {"vm": fs.vm, "va": fs.va, "p_from": fs.p_from, "q_from": fs.q_from}
    assert float(np.max(_residuals(fs, exact))) < 1e-9
    m = power_flow_errors(fs, exact)
    assert m["vm_max_pu"] == 0 and m["loss_max_kw"] < 1e-6 and m["residual_max_pu"] < 1e-9
    bumped = {**exact, "p_from": fs.p_from * 1.01}
    assert float(np.min(np.max(np.abs(_residuals(fs, bumped))))) > 1e-6


def test_features_refuse_nan(store):
    ds = load_split(store, "train", variables=PF_VARS)
    ds["p_net_pu"].values[1, 4] = np.nan
    with pytest.raises(DatasetError, match=r"p_net_pu is not finite at sample \d+, bus 5"):
        feature_set(ds)


def _settings(**kw):
    return TrainSettings(
        **{
            "steps": 12,
            "batch_size": 8,
            "learning_rate": 3e-3,
            "warmup_steps": 2,
            "eval_every": 6,
            "patience": 5,
            "seed": 3,
            **kw,
        }
    )


def test_training_is_deterministic_and_lowers_the_loss(store, train_fs):
    val = feature_set(load_split(store, "val", variables=PF_VARS))
    norm = fit_normalizer(train_fs)
    loss = make_loss(train_fs, norm)
    tr, va = batch_arrays(train_fs, norm), batch_arrays(val, norm)
    m0 = make_model("mlp", n_bus=33, n_branch=37, width=16, depth=1, seed=3)
    before = mean_loss(loss, m0, va, 8)
    a, hist = fit(m0, loss, tr, va, _settings(), progress=False)
    b, _ = fit(m0, loss, tr, va, _settings(), progress=False)
    la, lb = (
        jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_array)),
        jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_array)),
    )
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))
    assert min(hist["val_loss"]) < before


def test_gnn_runs_on_any_feeder_and_mlp_refuses_another_size(store, train_fs):
    gnn = make_model("gnn", n_bus=0, n_branch=0, width=8, rounds=2, seed=0)
    norm = fit_normalizer(train_fs)
    node, edge = train_fs.model_inputs(norm)
    on, oe = gnn(
        jnp.asarray(node[0], jnp.float32), jnp.asarray(edge[0], jnp.float32), train_fs.f_bus, train_fs.t_bus
    )
    assert on.shape == (33, 2) and oe.shape == (37, 2)
    n69 = sopjax.ieee69()
    f, t = np.asarray(n69.f_bus), np.asarray(n69.t_bus)
    on, oe = gnn(jnp.zeros((69, 6), jnp.float32), jnp.zeros((f.size, 5), jnp.float32), f, t)
    assert on.shape == (69, 2) and oe.shape == (f.size, 2)
    mlp = make_model("mlp", n_bus=33, n_branch=37, width=8, depth=1)
    with pytest.raises(SurrogateError, match="built for 33 buses and 37 branches, the network has 69 buses"):
        mlp(jnp.zeros((69, 6)), jnp.zeros((f.size, 5)), f, t)


def test_checkpoint_reload_gives_equal_predictions_and_refuses_another_kind(store, train_fs, tmp_path):
    model_cfg = {"kind": "gnn", "width": 8, "depth": 1, "rounds": 2}
    sur, _ = train_power_flow(
        store, model_cfg, _settings(steps=4, eval_every=2, physics_weight=0.5), tmp_path / "g", progress=False
    )
    back = load_power_flow(tmp_path / "g")
    p1, p2 = sur.predict(train_fs), back.predict(train_fs)
    assert all(np.array_equal(p1[k], p2[k]) for k in p1)
    from sopjax.surrogates import checkpoint
    from sopjax.surrogates.dispatch import load_dispatch

    with pytest.raises(SurrogateError, match="holds a 'gnn' model, expected 'dispatch'"):
        load_dispatch(tmp_path / "g", sopjax.ieee33())
    mlp = make_model("mlp", n_bus=33, n_branch=37, width=8, depth=1)
    checkpoint.save(
        tmp_path / "m", "mlp", mlp, {"n_bus": 33, "n_branch": 37, "width": 8, "depth": 2, "rounds": 2}
    )
    with pytest.raises(SurrogateError, match="does not fit a 'mlp' model"):
        load_power_flow(tmp_path / "m")


def test_physics_term_adds_to_the_loss(train_fs):
    norm = fit_normalizer(train_fs)
    b = {k: jnp.asarray(v[:8]) for k, v in batch_arrays(train_fs, norm).items()}
    m = make_model("gnn", n_bus=33, n_branch=37, width=8, rounds=2)
    assert float(make_loss(train_fs, norm, 1.0)(m, b)) > float(make_loss(train_fs, norm, 0.0)(m, b))


@pytest.fixture(scope="module")
def dispatch_case():
    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=[300], pf=0.95)
    net = sopjax.add_sops(net, pairs=[(12, 22), (25, 29)], s_rated_kva=200, loss=0.02)
    return net, compile_dispatch(net)


def test_repair_satisfies_the_sop_constraints_and_differentiates(dispatch_case):
    net, data = dispatch_case
    rng = np.random.default_rng(0)
    nom = nominal_inputs(net)
    n = 16
    cap = rng.uniform(0.005, 0.05, (n, 2))
    inp = DispatchInputs(
        np.tile(nom.p_load_pu, (n, 1)),
        np.tile(nom.q_load_pu, (n, 1)),
        np.tile(nom.p_pv_pu, (n, 1)),
        cap,
        cap * rng.uniform(0.5, 1.5, (n, 2)),
    )
    inp = jax.tree_util.tree_map(jnp.asarray, inp)
    raw = [jnp.asarray(rng.uniform(-0.2, 0.2, (n, 2))) for _ in range(3)]  # far outside the capacities
    r = evaluate_setpoints(data, inp, repair(data, inp, *raw))
    sop_rows = np.asarray(r["rows"])[:, : 3 * 2]  # capacity i, capacity j, DC balance
    assert sop_rows.min() > -1e-6
    ld = LearnedDispatch(
        DispatchNet(33, 1, 2, width=8, depth=1, key=jax.random.key(0)), (0.01, 0.1, 0.02), data
    )
    g = jax.grad(lambda s: jnp.sum(ld(inp._replace(s_rated_i_pu=s))["objective"]))(inp.s_rated_i_pu)
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)
    chk = dispatch_checked(ld, inp)  # an untrained model: whatever is infeasible falls back to the IPM
    assert chk["feasible"].all() and chk["x"].shape == (n, 8)
    with pytest.raises(SurrogateError, match="p_load_pu must be \\(batch, 33\\)"):
        ld.check(inp._replace(p_load_pu=inp.p_load_pu[:, :30]))
    with pytest.raises(SurrogateError, match="p_pv_pu is not finite"):
        ld.check(inp._replace(p_pv_pu=inp.p_pv_pu.at[2, 0].set(jnp.nan)))


def test_train_config_errors():
    base = {"data": {"dataset": "x.zarr"}, "model": {"kind": "gnn"}, "output": {"checkpoint": "c"}}
    assert parse_train_config(base)["model"]["rounds"] == 12
    with pytest.raises(ConfigError, match=r"\[model\] kind must be one of"):
        parse_train_config({**base, "model": {"kind": "transformer"}})
    with pytest.raises(ConfigError, match=r"\[training\].*batch_size must be an integer >= 1"):
        parse_train_config({**base, "training": {"batch_size": 0}})
    with pytest.raises(SurrogateError, match="fewer than batch_size"):
        fit(
            make_model("gnn", n_bus=0, n_branch=0, width=4, rounds=1),
            lambda m, b: 0.0,
            {"a": np.zeros((3, 1))},
            {"a": np.zeros((3, 1))},
            _settings(batch_size=8),
            progress=False,
        )


def test_evaluation_reports_violation_calibration_and_writes_plots(store, train_fs, tmp_path):
    from sopjax.surrogates import PowerFlowSurrogate
    from sopjax.surrogates.study import evaluate_store, validation_errors

    model = make_model("mlp", n_bus=33, n_branch=37, width=8, depth=1, seed=0)  # untrained: the plumbing
    sur = PowerFlowSurrogate(model, fit_normalizer(train_fs), "mlp", {})
    val_err = validation_errors(sur, store)
    assert val_err.ndim == 1 and val_err.size > 0
    per = evaluate_store(sur, store, splits=("test",), val_errors=val_err, plots=tmp_path)
    c = per["test"]["calibration"]
    assert c["events"] > 0 and sum(c["bus"].values()) == c["events"] == sum(c["table"]["count"])
    assert 0.0 <= c["brier"] <= 1.0 and 0.0 <= c["ece"] <= 1.0
    assert {p.name for p in tmp_path.iterdir()} == {"ieee33_test_mlp_parity.png", "ieee33_mlp_reliability.png"}
    base = {"data": {"dataset": "x.zarr"}, "model": {"kind": "mlp"}, "output": {"checkpoint": "c"}}
    assert parse_train_config({**base, "evaluate": {"plots": "figs"}})["plots"] == "figs"
    with pytest.raises(ConfigError, match=r"\[evaluate\] plots must be a directory path"):
        parse_train_config({**base, "evaluate": {"plots": 3}})


@pytest.mark.slow  # a training and three splits' compilations: about a minute on 2 cores
def test_train_config_reports_violation_calibration_and_writes_plots(store, tmp_path):
    from sopjax.surrogates import train_from_config

    cfg = {
        "data": {"dataset": str(store)},
        "model": {"kind": "mlp", "width": 8, "depth": 1},
        "training": {"steps": 4, "batch_size": 8, "eval_every": 2, "warmup_steps": 1},
        "output": {"checkpoint": str(tmp_path / "m")},
        "evaluate": {"plots": str(tmp_path / "plots")},
    }
    res = train_from_config(cfg, progress=False)
    per = res["metrics"][str(store)]
    assert per and all(m["calibration"]["events"] > 0 for m in per.values())
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert "ieee33_mlp_reliability.png" in names
    assert {f"ieee33_{s}_mlp_parity.png" for s in per} <= names


def test_residuals_take_shunts_and_features_refuse_a_network_with_them(store):
    import dataclasses

    from sopjax.branch_model import bus_shunts
    from sopjax.powerflow import solve

    net = sopjax.ieee33()
    g, b = np.zeros(net.n_bus), np.zeros(net.n_bus)
    g[9], b[19] = 0.002, 0.01  # buses 10 and 20
    for branch in (False, True):  # bus shunts, then also pi-model line charging on every branch
        extra = {"g_br_pu": np.zeros(net.n_branch), "b_br_pu": np.full(net.n_branch, 0.002)} if branch else {}
        sh = dataclasses.replace(net, g_sh_pu=g, b_sh_pu=b, **extra)
        res, topo = solve(sh, tol=1e-12)
        y = bus_shunts(sh, topo)
        nm = np.asarray(topo.energized, float)
        nm[sh.slack_bus] = 0.0
        kw = dict(f_bus=np.asarray(sh.f_bus), t_bus=np.asarray(sh.t_bus), r=np.asarray(sh.r_pu),
                  x=np.asarray(sh.x_pu), node_mask=nm, edge_mask=np.asarray(topo.branch_active, float))
        args = (res.vm_pu, res.p_from_pu, res.q_from_pu, np.asarray(sh.p_load_pu), np.asarray(sh.q_load_pu))
        assert float(distflow_residuals(*args, **kw, g_sh=y.real, b_sh=y.imag).max_abs()) < 1e-12
        assert float(distflow_residuals(*args, **kw).max_abs()) > 1e-3  # without the shunts: wrong
    ds = load_split(store, "test", variables=PF_VARS)
    with pytest.raises(SurrogateError, match=r"bus 10 has a shunt \(g = 0.002, b = 0 p.u.\)"):
        feature_set(ds, net=dataclasses.replace(net, g_sh_pu=g, b_sh_pu=b))
