"""sopjax.datasets: determinism by (seed, chunk), resume, growth, splits, layout, bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sopjax
from sopjax.cli.main import main
from sopjax.config import ConfigError
from sopjax.datasets import (
    SPLITS,
    DatasetError,
    DatasetSpec,
    batches,
    build_dataset,
    chunks_done,
    configuration_pool,
    dataset_from_config,
    edge_index,
    generate_chunk,
    load_split,
    open_store,
    store_pool,
    write_chunk,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def net():
    n = sopjax.add_pv(sopjax.ieee33(), buses=[13, 30], s_rated_kva=[200, 300], pf=0.95)
    return sopjax.add_sops(n, pairs=[(12, 22), (25, 29)], s_rated_kva=200, loss=0.02)


@pytest.fixture(scope="module")
def spec():
    return DatasetSpec(
        samples=40,
        chunk_size=16,
        seed=7,
        configurations=4,
        held_out=1,
        fault_fraction=0.2,
        split_fractions=(0.5, 0.1, 0.1, 0.15, 0.15),
        dispatch=False,
    )


@pytest.fixture(scope="module")
def pool(net, spec):
    return configuration_pool(net, spec.configurations, spec.seed)


@pytest.fixture(scope="module")
def store(net, spec, pool, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "full.zarr"
    build_dataset(net, spec, out, pool=pool, progress=False)
    return out


def _equal(a, b):
    return all(np.array_equal(a[k].values, b[k].values, equal_nan=True) for k in a.data_vars)


def test_chunk_is_a_pure_function_of_seed_and_index(net, spec, pool, store):
    c1 = generate_chunk(net, spec, pool, 1)
    assert _equal(c1, generate_chunk(net, spec, pool, 1))
    full = open_store(store).load()
    assert _equal(c1, full.sel(sample=c1["sample"].values)[list(c1.data_vars)])
    other = generate_chunk(net, DatasetSpec(**{**spec.__dict__, "seed": 8}), pool, 1)
    assert not np.array_equal(other["p_load_pu"].values, c1["p_load_pu"].values)


def test_interrupted_and_resumed_generation_equals_uninterrupted(net, spec, pool, store, tmp_path):
    out = tmp_path / "resumed.zarr"
    first = build_dataset(net, spec, out, pool=pool, progress=False, stop_after=1)
    assert first["chunks_written"] == 1
    assert chunks_done(out, spec).tolist() == [True, False, False]
    second = build_dataset(net, spec, out, pool=pool, progress=False)
    assert (second["chunks_written"], second["chunks_skipped"]) == (2, 1)
    assert _equal(open_store(out).load(), open_store(store).load())


def test_chunks_written_out_of_order_by_workers_equal_the_loop(net, spec, pool, store, tmp_path):
    out = tmp_path / "workers.zarr"
    build_dataset(net, spec, out, pool=pool, progress=False, stop_after=0)  # create the store only
    for c in (2, 0, 1):  # any order, as a Dask executor may run them
        write_chunk(net, spec, store_pool(out), out, c)
    assert chunks_done(out, spec).all()
    assert _equal(open_store(out).load(), open_store(store).load())


def test_store_grows_and_refuses_another_spec(net, spec, pool, store, tmp_path):
    small = DatasetSpec(**{**spec.__dict__, "samples": 32})
    out = tmp_path / "grow.zarr"
    build_dataset(net, small, out, pool=pool, progress=False)
    build_dataset(net, spec, out, pool=pool, progress=False)
    grown, full = open_store(out).load(), open_store(store).load()
    assert grown.sizes["sample"] == 40 and _equal(grown, full)
    with pytest.raises(DatasetError, match="seed"):
        build_dataset(net, DatasetSpec(**{**spec.__dict__, "seed": 9}), out, pool=pool, progress=False)


def test_splits_ood_topology_and_load(spec, store):
    ds = open_store(store).load()
    split, cfg, scale = ds["split"].values, ds["config_id"].values, ds["load_scale"].values
    held = np.flatnonzero(ds["config_held_out"].values)
    assert held.tolist() == [spec.configurations - 1]
    ood_t = split == SPLITS.index("ood_topology")
    assert ood_t.any() and np.isin(cfg[ood_t], held).all() and not np.isin(cfg[~ood_t], held).any()
    ood_l = split == SPLITS.index("ood_load")
    assert ood_l.any() and (scale[ood_l] >= spec.ood_load_scale[0]).all()
    assert (scale[~ood_l] <= spec.load_scale[1]).all()
    assert json.loads(ds.attrs["split_names"]) == list(SPLITS)


def test_labels_layout_and_faults(net, store):
    ds = open_store(store).load()
    assert ds.sizes == {"sample": 40, "bus": 33, "branch": 37, "sop": 2, "pv": 2, "config": 4}
    assert ds["converged"].values.all()
    faulted = ds["fault_branch"].values >= 0
    assert faulted.any()
    closed = ds["branch_closed"].values
    assert (closed.sum(1)[~faulted] == 32).all() and (closed.sum(1)[faulted] == 31).all()
    assert (ds["recovery"].values[~faulted] == 1).all() and (ds["recovery"].values[faulted] < 1).all()
    dark = ~ds["energized"].values
    assert (ds["vm_pu"].values[dark] == 0).all()
    ei = edge_index(ds["f_bus"].values, ds["t_bus"].values, closed[0])
    assert ei.shape == (2, closed[0].sum())
    assert not ds["dispatch_valid"].values.any() and np.isnan(ds["opt_objective_pu"].values).all()


def test_example_loader_needs_no_sopjax(store):
    code = (
        "import runpy, sys; sys.argv = ['x', %r, 'train']; runpy.run_path(%r, run_name='__main__'); "
        "assert not any(m == 'sopjax' or m.startswith('sopjax.') for m in sys.modules)"
        % (str(store), str(ROOT / "examples" / "load_dataset_numpy.py"))
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0, r.stderr
    assert "edge_index" in r.stdout


def test_batches_are_deterministic(store):
    ds = load_split(store, "train", variables=["p_net_pu"])
    arr = {"p": ds["p_net_pu"].values}
    a = [b["p"] for b in batches(arr, 4, seed=1, epoch=0)]
    b = [b["p"] for b in batches(arr, 4, seed=1, epoch=0)]
    c = [b["p"] for b in batches(arr, 4, seed=1, epoch=1)]
    assert len(a) == len(arr["p"]) // 4
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    with pytest.raises(DatasetError, match="unknown split 'tran'"):
        load_split(store, "tran")


def test_dispatch_labels(net, pool, tmp_path):
    spec = DatasetSpec(
        samples=8,
        chunk_size=8,
        seed=1,
        configurations=4,
        held_out=1,
        fault_fraction=0.0,
        split_fractions=(1, 0, 0, 0, 0),
        dispatch=True,
    )
    ds = generate_chunk(net, spec, pool, 0)
    assert ds["dispatch_valid"].values.all()
    ok = ds["dispatch_converged"].values
    # samples the interior point cannot solve are infeasible operating points (voltage below 0.9 p.u.
    # with the SOPs at their best), labelled as such, never silently kept
    assert ok.sum() >= 4 and (ds["opt_infeasibility_pu"].values[~ok] > 1e-3).all()
    ds = ds.isel(sample=np.flatnonzero(ok))
    obj, line = ds["opt_objective_pu"].values, ds["opt_line_loss_pu"].values
    conv = -(ds["opt_p_i_pu"].values + ds["opt_p_j_pu"].values).sum(1)  # converter losses at the DC balance
    np.testing.assert_allclose(obj, line + conv, rtol=1e-6)
    s = np.hypot(ds["opt_p_i_pu"].values, ds["opt_q_i_pu"].values)
    assert (s <= ds["s_rated_i_pu"].values * (1 + 1e-6)).all()
    assert (ds["cap_dual_i"].values >= -1e-8).all()


def test_bad_specs_name_the_field():
    with pytest.raises(DatasetError, match="samples must be an integer >= 1"):
        DatasetSpec(samples=0)
    with pytest.raises(DatasetError, match="ood_load_scale .* above the training range"):
        DatasetSpec(samples=4, load_scale=(0.5, 1.3), ood_load_scale=(1.2, 1.4))
    with pytest.raises(DatasetError, match="split_fractions"):
        DatasetSpec(samples=4, split_fractions=(0.5, 0.5, 0.5, 0, 0))


def test_config_that_yields_no_samples_exits_2(tmp_path, capsys):
    cfg = tmp_path / "d.toml"
    cfg.write_text('[network]\ncase = "ieee33"\n[dataset]\nsamples = 0\n')
    assert main(["dataset", str(cfg), "--out", str(tmp_path / "x.zarr")]) == 2
    assert "samples must be an integer >= 1" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"\[dataset\] load_scale must be a pair"):
        dataset_from_config({"network": {"case": "ieee33"}, "dataset": {"samples": 4, "load_scale": 1.0}})
    with pytest.raises(DatasetError, match="not a sopjax dataset store|no dataset store"):
        open_store(tmp_path / "nothing.zarr")
