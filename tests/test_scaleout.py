"""Scale-out: chunk plans, ordered merging, the Dask executor (LocalCluster), faults, resume, zarr output.

The Dask tests share one LocalCluster of 2 worker processes and a small run (2 strategies,
96 samples in chunks of 12) so that each worker compiles one small program.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sopjax
from sopjax.errors import ConfigError, SopjaxError
from sopjax.montecarlo import ArraySource, MonteCarloSettings, run_montecarlo
from sopjax.scaleout import InProcessExecutor, chunk_plan, make_executor, run_plan
from sopjax.strategies import Strategy

ROOT = Path(__file__).resolve().parents[1]
N, CHUNK = 96, 12
SOP_VF = [{"pair": [8, 21], "mode": "vf_i", "u_set_pu": 1.05}]


def make_net():
    n = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    return sopjax.add_sops(n, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)


def make_strategies(net):
    return [
        Strategy.build(net, "tie 8-21", open=[2], close=[33], pickup={"shed": [3, 4, 13, 14, 15, 16, 17, 18]}),
        Strategy.build(net, "SOP 8-21", open=[2], sops=SOP_VF, pickup={"shed": list(range(3, 18))}),
    ]


def make_source(net):
    rng = np.random.default_rng(3)
    p0, q0 = np.asarray(net.p_load_pu), np.asarray(net.q_load_pu)
    f = np.clip(rng.normal(1.0, 0.1, (N, 33)), 0, None)
    f[5] *= 15.0  # one voltage collapse: a failed sample is counted, not lost
    pv = np.clip(rng.normal(0.05, 0.005, (N, 1)), 0, 0.1)
    return ArraySource(p0 * f, q0 * f, pv, nominal=(p0, q0, np.array([0.05])))


@pytest.fixture(scope="module")
def net():
    return make_net()


@pytest.fixture(scope="module")
def strategies(net):
    return make_strategies(net)


@pytest.fixture(scope="module")
def source(net):
    return make_source(net)


SETTINGS = MonteCarloSettings(n_samples=N, chunk_size=CHUNK, fault_open=(2,))


@pytest.fixture(scope="module")
def reference(net, strategies, source):
    return run_montecarlo(net, strategies, source, SETTINGS, progress=False)


def assert_same(ds, ref):
    for name, var in ref.data_vars.items():
        if name.endswith("_sample"):
            continue
        np.testing.assert_array_equal(ds[name].values, var.values, err_msg=name)


# ------------------------------------------------------------------ plans and ordering (no Dask)
def test_chunk_plan_covers_every_item_once():
    plan = chunk_plan(50, 12, start=12)
    assert [(c.index, c.start, c.stop) for c in plan] == [(0, 12, 24), (1, 24, 36), (2, 36, 48), (3, 48, 50)]
    for bad in (0, -3, 2.5):
        with pytest.raises(SopjaxError, match="chunk size must be an integer >= 1"):
            chunk_plan(10, bad)


class ReversedExecutor(InProcessExecutor):
    """Computes every chunk, then delivers them last first (as a cluster may); counts tasks."""

    description = "reversed"

    def __init__(self):
        self.ran = []

    def imap_unordered(self, task, job, chunks):
        out = []
        for c in chunks:
            self.ran.append(c.start)
            out.append((c, task(job, c)))
        yield from reversed(out)


def test_run_plan_hands_results_back_in_plan_order():
    ex = ReversedExecutor()
    seen = []
    got = list(run_plan(ex, lambda job, c: c.start * job, 10, chunk_plan(7, 2),
                        on_arrival=lambda c, r, ahead: seen.append((c.index, ahead))))
    assert [r for _, r in got] == [0, 20, 40, 60]
    assert seen == [(3, True), (2, True), (1, True), (0, False)]


def test_default_executor_imports_no_dask():
    code = ("import sys; from sopjax.scaleout import make_executor; "
            "import sopjax.montecarlo, sopjax.sweeps, sopjax.datasets; "
            "e = make_executor(None); print(e.description, any(m.split('.')[0] in ('dask', 'distributed') "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.stdout.split() == ["in-process", "False"], out.stderr


def test_out_of_order_chunks_merge_to_the_same_aggregates_and_a_killed_driver_skips_them(
        net, strategies, source, reference, tmp_path):
    ckpt = tmp_path / "run.ckpt.npz"

    def die(k, done):  # the driver "dies" after merging the first chunk; the others finished ahead
        raise KeyboardInterrupt

    first = ReversedExecutor()
    with pytest.raises(KeyboardInterrupt):
        run_montecarlo(net, strategies, source, SETTINGS, checkpoint=ckpt, on_chunk=die, scheduler=first,
                       progress=False)
    assert len(first.ran) == N // CHUNK
    assert len(list(Path(str(ckpt) + ".chunks").glob("*.npz"))) == N // CHUNK - 1
    again = ReversedExecutor()
    ks = []
    ds = run_montecarlo(net, strategies, source, SETTINGS, checkpoint=ckpt, scheduler=again, progress=False,
                        on_chunk=lambda k, done: ks.append(k))
    assert again.ran == [N]  # nothing recomputed but the forecast row
    assert ks == list(range(1, N // CHUNK)) and ds.attrs["resumed_from_sample"] == CHUNK
    assert not Path(str(ckpt) + ".chunks").exists()
    assert_same(ds, reference)


def test_samples_stream_to_a_zarr_store(net, strategies, source, reference, tmp_path):
    import xarray as xr

    store = tmp_path / "samples.zarr"
    ds = run_montecarlo(net, strategies, source, SETTINGS, samples_out=store, progress=False)
    assert "vm_sample" not in ds and ds.attrs["samples_store"] == str(store)
    assert_same(ds, reference)
    lazy = xr.open_zarr(store)
    assert lazy["vm_sample"].chunks is not None  # lazy (dask-backed), not loaded
    assert lazy["vm_sample"].shape == (2, N, 33) and lazy["chunk_done"].values.all()
    ok = lazy["converged_sample"].values.astype(bool)
    r = lazy["recovery_ratio_sample"].values
    for s in range(2):
        assert float(reference["recovery_ratio_mean"][s]) == pytest.approx(r[s][ok[s]].mean(), rel=1e-12)
    assert int(reference["n_failed"].sum()) == int((~ok).sum()) > 0


def test_chunk_size_zero_is_refused_on_the_command_line(capsys):
    from sopjax.cli.main import main

    assert main(["montecarlo", str(ROOT / "configs/ieee33_restoration_mc.toml"), "--chunk-size", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--chunk-size" in err[0] and "got '0'" in err[0]


def test_unreachable_scheduler_is_a_clear_error_within_the_timeout(capsys):
    t = time.perf_counter()
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        make_executor("tcp://127.0.0.1:9", timeout_s=2)
    assert time.perf_counter() - t < 20
    from sopjax.cli.main import main

    assert main(["montecarlo", str(ROOT / "configs/ieee33_restoration_mc.toml"),
                 "--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Dask scheduler" in err[0]
    with pytest.raises(ConfigError, match="local:N"):
        make_executor("local:zero")


# ------------------------------------------------------------------- several devices, one process
TWO_DEVICES = """
import sys
sys.path.insert(0, {tests!r})
import jax, numpy as np
from test_scaleout import SETTINGS, make_net, make_source, make_strategies
from sopjax.montecarlo import run_montecarlo
assert len(jax.local_devices()) == 2, jax.local_devices()
net = make_net()
ds = run_montecarlo(net, make_strategies(net), make_source(net), SETTINGS, progress=False)
assert ds.attrs["devices_per_chunk"] == 2
np.savez({out!r}, **{{k: v.values for k, v in ds.data_vars.items() if v.dtype != object}})
"""


def run_on_two_devices(script: str, tmp_path, **fmt) -> dict:
    out = tmp_path / "two_devices.npz"
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"}
    res = subprocess.run([sys.executable, "-c", script.format(tests=str(ROOT / "tests"), out=str(out), **fmt)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def test_two_local_devices_give_the_one_device_results(reference, tmp_path):
    got = run_on_two_devices(TWO_DEVICES, tmp_path)
    assert set(got) == {k for k, v in reference.data_vars.items() if v.dtype != object}
    for name, values in got.items():
        np.testing.assert_array_equal(values, reference[name].values, err_msg=name)


# ------------------------------------------------------------------------- Dask LocalCluster
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


def test_two_dask_workers_give_the_in_process_aggregates(net, strategies, source, reference, client, tmp_path):
    from sopjax.scaleout.cache import cache_stats

    store = tmp_path / "dask_samples.zarr"
    ks = []
    ds = run_montecarlo(net, strategies, source, SETTINGS, scheduler=client, samples_out=store, progress=False,
                        on_chunk=lambda k, done: ks.append(k))
    assert ks == list(range(N // CHUNK))
    assert ds.attrs["executor"].startswith("dask (2 workers")
    assert_same(ds, reference)
    stats = client.run(cache_stats)
    assert sum(s["builds"] + s["hits"] for s in stats.values()) == N // CHUNK
    assert all(s["builds"] <= 1 for s in stats.values())  # each worker prepared (and compiled) once
    import xarray as xr

    assert xr.open_zarr(store)["chunk_done"].values.all()


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(net, strategies, client):
    # 40 chunks of the same 12-sample block (no new compile); at most 6 in flight at a time
    n = 40 * CHUNK
    rng = np.random.default_rng(5)
    p0, q0 = np.asarray(net.p_load_pu), np.asarray(net.q_load_pu)
    f = np.clip(rng.normal(1.0, 0.1, (n, 33)), 0, None)
    src = ArraySource(p0 * f, q0 * f, np.clip(rng.normal(0.05, 0.005, (n, 1)), 0, 0.1),
                      nominal=(p0, q0, np.array([0.05])))
    settings = MonteCarloSettings(n_samples=n, chunk_size=CHUNK, fault_open=(2,))
    ref = run_montecarlo(net, strategies, src, settings, progress=False)
    pids = client.run(os.getpid)
    killed = []

    def kill_a_worker(k):
        if k == 0:  # SIGKILL a worker process, preferably one running a chunk; 39 chunks still to come
            busy = [w for w, tasks in client.processing().items() if tasks] or sorted(pids)
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    ks = []
    ds = run_montecarlo(net, strategies, src, settings, scheduler=client, progress=False,
                        on_chunk=lambda k, done: (kill_a_worker(k), ks.append(k)))
    assert killed and ks == list(range(40))  # every chunk merged once, in order
    assert int(ds["n_valid"].sum() + ds["n_failed"].sum()) == 2 * n
    assert_same(ds, ref)
    client.wait_for_workers(2, timeout=120)


def test_a_worker_with_another_sopjax_version_is_refused(client):
    from sopjax.scaleout.dask import DaskExecutor

    def set_version(v):
        import sopjax

        sopjax.__version__ = v

    client.run(set_version, "0.0.0-other")
    try:
        with pytest.raises(ConfigError, match=r"runs sopjax 0\.0\.0-other, the driver"):
            DaskExecutor(client, owned=False)
    finally:
        client.run(set_version, sopjax.__version__)


# ----------------------------------------------------------------------------------- sweeps
@pytest.mark.slow  # each worker builds the cvxpylayers dispatch layer (about a minute on 2 shared cores)
def test_sweep_points_on_two_dask_workers_give_the_in_process_dataset(client):
    from test_sweeps import BASE  # the sweep tests' small config (cvxpylayers engine, 3 samples)

    from sopjax.sweeps import run_sweep, spec_from_config

    spec = spec_from_config(BASE)
    ref = run_sweep(spec)
    ds = run_sweep(spec, scheduler=client)
    for name, var in ref.data_vars.items():
        np.testing.assert_array_equal(ds[name].values, var.values, err_msg=name)


@pytest.mark.slow  # starts its own LocalCluster and compiles the study on each worker
def test_cli_scheduler_local_gives_the_in_process_summary(tmp_path, capsys):
    import json

    from sopjax.cli.main import main

    cfg = str(ROOT / "configs/ieee33_restoration_mc.toml")
    assert main(["montecarlo", cfg, "--samples", "300", "--chunk-size", "100", "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)
    store = tmp_path / "s.zarr"
    assert main(["montecarlo", cfg, "--samples", "300", "--chunk-size", "100", "--json", "--scheduler", "local:2",
                 "--samples-out", str(store)]) == 0
    assert json.loads(capsys.readouterr().out) == ref
    assert store.exists()


# ------------------------------------------------------------------------- Monte Carlo over time
T_N, T_CHUNK = 16, 4  # samples of the runs over time, in 4 chunks of 4


def timeseries_run(full: bool):
    """3 periods. ``full``: 4 strategies under the fixed, local and optimal (PQ re-dispatch) policies;
    else 3 strategies that compile only the fixed-set-point kernel ("tie local" has no SOP to control,
    but it is paired with "tie", so the paired gains are computed)."""
    from sopjax.montecarlo import ProfileSource, TimeSeriesSettings
    from sopjax.sampling import LoadNormal, PVForecastError, UncertaintyModel

    net = make_net()
    tie, vf = make_strategies(net)
    model = UncertaintyModel(pv=PVForecastError(sigma_frac=0.1), load=LoadNormal(sigma_frac=0.1),
                             load_profile=(1.0, 0.9, 0.8), time_rho=0.5)
    source = ProfileSource(net, model, [[0.04], [0.05], [0.02]], seed=4, n_samples=T_N)
    if full:
        pq = Strategy.build(net, "SOP pq", open=[2], close=[35],
                            sops=[{"pair": [8, 21], "mode": "pq", "p_kw": 0.0}], pickup={"shed": list(range(3, 18))})
        strategies = [tie, vf, pq, dataclasses.replace(pq, name="SOP pq opt")]
        controls, bases = ("fixed", "local", "fixed", "optimal"), ["tie", "vf", "pq", "pq"]
    else:
        strategies = [tie, dataclasses.replace(tie, name="tie local"), vf]
        controls, bases = ("fixed", "local", "fixed"), ["tie", "tie", "vf"]
    ts = TimeSeriesSettings(controls=controls)
    settings = MonteCarloSettings(n_samples=T_N, chunk_size=T_CHUNK, fault_open=(2,))
    return net, strategies, source, settings, ts, bases


def check_timeseries_on_dask(client, tmp_path, full: bool):
    import xarray as xr

    from sopjax.montecarlo import run_timeseries

    net, strategies, source, settings, ts, bases = timeseries_run(full)
    n_s = len(strategies)
    ref = run_timeseries(net, strategies, source, settings, ts, bases=bases, progress=False,
                         samples_out=tmp_path / "ref.zarr")
    ckpt, ks = tmp_path / "dask.ckpt.npz", []

    def die(k, done):  # the driver dies after merging the first chunk
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_timeseries(net, strategies, source, settings, ts, bases=bases, progress=False, scheduler=client,
                       samples_out=tmp_path / "dask.zarr", checkpoint=ckpt, on_chunk=die)
    ds = run_timeseries(net, strategies, source, settings, ts, bases=bases, progress=False, scheduler=client,
                        samples_out=tmp_path / "dask.zarr", checkpoint=ckpt, on_chunk=lambda k, done: ks.append(k))
    assert ks == list(range(1, T_N // T_CHUNK)) and ds.attrs["resumed_from_sample"] == T_CHUNK
    assert ds.attrs["executor"].startswith("dask (2 workers")
    assert ds.sizes["time"] == 3 and ds.sizes["pair"] == 1
    assert_same(ds, ref)
    a, b = xr.open_zarr(tmp_path / "ref.zarr").load(), xr.open_zarr(tmp_path / "dask.zarr").load()
    assert a["vm_sample"].dims == ("strategy", "time", "sample", "bus")
    assert a["vm_sample"].shape == (n_s, 3, T_N, 33) and b["chunk_done"].values.all()
    for name in a.data_vars:
        np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=name)
    ok = a["converged_sample"].values.astype(bool)
    r = a["recovery_ratio_sample"].values
    for s in range(n_s):
        for t in range(3):
            assert float(ref["recovery_ratio_mean"][s, t]) == pytest.approx(r[s, t][ok[s, t]].mean(), rel=1e-12)


def test_timeseries_on_two_dask_workers_gives_the_in_process_dataset_and_samples(client, tmp_path):
    check_timeseries_on_dask(client, tmp_path, full=False)


@pytest.mark.slow  # compiles the local rule, the U_set search and the batched dispatch on each worker (5-8 min here)
def test_timeseries_with_every_control_policy_on_two_dask_workers(client, tmp_path):
    check_timeseries_on_dask(client, tmp_path, full=True)


# ----------------------------------------------------------------------------------- datasets
def dataset_case():
    from sopjax.datasets import DatasetSpec

    spec = DatasetSpec(samples=48, chunk_size=4, seed=7, configurations=3, held_out=1, fault_fraction=0.2,
                       split_fractions=(0.6, 0.1, 0.1, 0.1, 0.1), dispatch=False)
    return make_net(), spec


@pytest.fixture(scope="module")
def dataset_reference(tmp_path_factory):
    from sopjax.datasets import build_dataset, open_store

    net, spec = dataset_case()
    out = tmp_path_factory.mktemp("dataset") / "in_process.zarr"
    info = build_dataset(net, spec, out, progress=False)
    assert info["executor"] == "in-process"
    return open_store(out).load()


def assert_same_store(path, ref):
    from sopjax.datasets import open_store

    ds = open_store(path).load()
    assert set(ds.data_vars) == set(ref.data_vars) and ds.attrs.keys() == ref.attrs.keys()
    for name, var in ref.data_vars.items():
        np.testing.assert_array_equal(ds[name].values, var.values, err_msg=name)  # NaN == NaN here
    assert {k for k in ref.attrs if ds.attrs[k] != ref.attrs[k]} <= {"created_utc"}


def test_dataset_chunks_on_two_dask_workers_write_the_in_process_store_and_resume(
        client, dataset_reference, tmp_path):
    from sopjax.datasets import build_dataset, chunks_done

    net, spec = dataset_case()
    out = tmp_path / "dask.zarr"

    def die(c):  # the driver dies after the first chunk arrives; others are in flight or queued
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset(net, spec, out, progress=False, scheduler=client, on_chunk=die)
    done = chunks_done(out, spec)
    assert 1 <= done.sum() < spec.n_chunks
    arrived = []
    info = build_dataset(net, spec, out, progress=False, scheduler=client, on_chunk=arrived.append)
    assert info["chunks_skipped"] >= done.sum()  # a chunk running when the driver died may have finished
    assert info["chunks_written"] + info["chunks_skipped"] == spec.n_chunks
    assert len(arrived) == info["chunks_written"] and not set(arrived) & set(np.flatnonzero(done).tolist())
    assert chunks_done(out, spec).all()
    assert_same_store(out, dataset_reference)


def test_dataset_with_a_worker_killed_mid_run_writes_every_chunk_once(client, dataset_reference, tmp_path):
    from sopjax.datasets import build_dataset, chunks_done

    net, spec = dataset_case()
    pids = client.run(os.getpid)
    killed, arrived = [], []

    def kill_a_worker(c):
        arrived.append(c)
        if len(arrived) == 1:  # SIGKILL a worker process, preferably one writing a chunk
            busy = [w for w, tasks in client.processing().items() if tasks] or sorted(pids)
            os.kill(pids[busy[0]], signal.SIGKILL)
            killed.append(busy[0])

    info = build_dataset(net, spec, tmp_path / "killed.zarr", progress=False, scheduler=client,
                         on_chunk=kill_a_worker)
    assert killed and sorted(arrived) == list(range(spec.n_chunks))  # each chunk delivered once
    assert info["samples_written"] == spec.samples
    assert chunks_done(tmp_path / "killed.zarr", spec).all()
    assert_same_store(tmp_path / "killed.zarr", dataset_reference)
    client.wait_for_workers(2, timeout=120)


# ------------------------------------------------------------------ bad input on the new paths
@pytest.mark.parametrize("argv, message", [
    (["dataset", "configs/ieee33_dataset.toml", "--out", "{tmp}/d.zarr", "--scheduler", "tcp://127.0.0.1:9",
      "--scheduler-timeout", "1"], "cannot reach the Dask scheduler at 'tcp://127.0.0.1:9' within 1 s"),
    (["dataset", "configs/ieee33_dataset.toml", "--out", "{tmp}/d.zarr", "--scheduler", "local:0"],
     "write local:N with N >= 1"),
    (["dataset", "configs/ieee33_dataset.toml", "--out", "{tmp}/d.zarr", "--scheduler", "tcp://somehost"],
     "write a scheduler address as tcp://HOST:PORT"),
    (["dataset", "{tmp}/chunk0.toml", "--out", "{tmp}/d.zarr"], "chunk_size must be an integer >= 1"),
    (["montecarlo", "configs/ieee33_restoration_day.toml", "--scheduler", "tcp://127.0.0.1:9",
      "--scheduler-timeout", "1"], "cannot reach the Dask scheduler"),
    (["montecarlo", "configs/ieee33_restoration_day.toml", "--scheduler", "local:x"], "write local:N"),
    (["montecarlo", "configs/ieee33_restoration_day.toml", "--chunk-size", "0"], "got '0'"),
    (["sweep", "configs/sop_capacity_optimization.toml", "--scheduler", "local:2"],
     "the optax optimization runs in-process"),
])
def test_bad_scale_out_input_on_dataset_timeseries_and_sweep_is_one_line_exit_2(argv, message, tmp_path, capsys,
                                                                                monkeypatch):
    from sopjax.cli.main import main

    monkeypatch.chdir(ROOT)
    (tmp_path / "chunk0.toml").write_text('[network]\ncase = "ieee33"\n[dataset]\nsamples = 8\nchunk_size = 0\n')
    t = time.perf_counter()
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert time.perf_counter() - t < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "d.zarr").exists()  # nothing written before the error


def test_dataset_cli_on_a_running_scheduler_writes_the_in_process_store(client, dataset_reference, tmp_path,
                                                                        capsys):
    from sopjax.cli.main import main
    from sopjax.datasets import open_store

    cfg = tmp_path / "d.toml"  # the network and spec of dataset_case()
    cfg.write_text(
        '[network]\ncase = "ieee33"\npv = [{ bus = 30, s_rated_kva = 1000, pf = 0.95 }]\n'
        'sop = [{ pair = [8, 21], s_rated_kva = 2000, loss = 0.02 }]\n'
        "[dataset]\nsamples = 48\nchunk_size = 4\nseed = 7\nconfigurations = 3\nheld_out = 1\n"
        "fault_fraction = 0.2\ndispatch = false\n"
        "splits = { train = 0.6, val = 0.1, test = 0.1, ood_topology = 0.1, ood_load = 0.1 }\n")
    out = tmp_path / "cli.zarr"
    assert main(["dataset", str(cfg), "--out", str(out), "--no-progress",
                 "--scheduler", client.scheduler.address]) == 0
    assert "(dask (2 workers at tcp://" in capsys.readouterr().out
    ds = open_store(out).load()
    assert ds.attrs["network_fingerprint"] == dataset_reference.attrs["network_fingerprint"]
    assert ds.attrs["spec"] == dataset_reference.attrs["spec"]
    for name, var in dataset_reference.data_vars.items():
        np.testing.assert_array_equal(ds[name].values, var.values, err_msg=name)


SPLIT_POOL = """
import jax, jax.numpy as jnp, numpy as np
from sopjax.sweeps.devices import split_over_devices
shards = []

def per_sample(theta, x, w):  # a while loop per sample (Newton for sqrt(theta0 x)), as the dispatch's
    shards.append(x.shape[0])
    def body(c):
        return 0.5 * (c[0] + theta[0] * x / c[0]), c[1] + 1
    y, _ = jax.lax.while_loop(lambda c: c[1] < 30, body, (jnp.ones_like(x), 0))
    return {{"y": y * w[:, 0], "z": jnp.sin(theta[1] * x)}}, (x > 1.0, jnp.arange(x.shape[0]))

def finish(out):
    return {{k: jnp.mean(v, axis=0) for k, v in out[0].items()}}, out[1]

rng = np.random.default_rng(0)
pool = (jnp.asarray(rng.uniform(0.5, 2.0, 7)), jnp.asarray(rng.uniform(0.5, 2.0, (7, 3))))
theta = jnp.asarray([2.0, 0.3])
res = {{}}
for name, fn in (("value", per_sample), ("jac", jax.jacfwd(per_sample, has_aux=True))):
    ref = jax.jit(lambda t: finish(fn(t, *pool)))(theta)  # the same function unsplit, on one device
    runs = {{"ref": ref}}
    for concurrent in (True, False):  # one shard_map program; one device after the other (the CPU default)
        split = split_over_devices(fn, finish, pool, 2, concurrent=concurrent)
        runs[f"got{{int(concurrent)}}"] = split(theta)
    for tag, tree in runs.items():
        leaves = jax.tree_util.tree_leaves(tree)
        res.update({{f"{{name}}_{{tag}}_{{i}}": np.asarray(a) for i, a in enumerate(leaves)}})
assert split_over_devices(per_sample, finish, pool, 2).__name__ == "run_one_by_one"  # the CPU default
np.savez({out!r}, shards=np.asarray(shards), **res)
"""


def test_a_pool_split_over_two_devices_gives_the_one_device_reduction(tmp_path):
    # sopjax.sweeps.devices: each device runs its share (a while loop and its forward-mode
    # tangents), concurrently or one device after the other, and the per-sample outputs are
    # reduced on the first device; the padding sample (7 -> 8) is dropped. Equal to round-off
    # (XLA compiles the split and the unsplit batch differently; one ulp seen), the aux exactly.
    got = run_on_two_devices(SPLIT_POOL, tmp_path)
    assert set(got["shards"].tolist()) == {4, 7}  # traced on 4-sample shards; the reference on 7
    for name in ("value", "jac"):  # leaves: mean y, mean z, x > 1, position in the shard
        for run in ("got0", "got1"):
            for i in (0, 1):
                np.testing.assert_allclose(got[f"{name}_{run}_{i}"], got[f"{name}_ref_{i}"],
                                           rtol=1e-14, atol=0)
            np.testing.assert_array_equal(got[f"{name}_{run}_2"], got[f"{name}_ref_2"])
            np.testing.assert_array_equal(got[f"{name}_{run}_3"], [0, 1, 2, 3, 0, 1, 2])  # 4 + 3, no padding
    assert got["jac_got0_0"].shape == (2,) and got["jac_got0_0"][0] > 0 and got["jac_got0_1"][0] == 0


TWO_DEVICE_SWEEP = """
import json
import numpy as np
from sopjax.sweeps import run_sweep, spec_from_config
ds = run_sweep(spec_from_config(json.load(open({cfg!r}))))
assert ds.attrs["devices_per_point"] == 2, ds.attrs["devices_per_point"]
np.savez({out!r}, **{{k: v.values for k, v in ds.data_vars.items()}})
"""


@pytest.mark.slow  # compiles the interior-point dispatch and its JVP per device (150-425 s here)
def test_jax_engine_sweep_on_two_local_devices_gives_the_one_device_results(tmp_path):
    # the JAX dispatch engine's 5-sample pool split 3 + 3 (one padding sample) over two host
    # devices; values and forward-mode derivatives against the one-device run of this process.
    # Equal to round-off, not bit for bit: the batched interior-point solve of a sample differs in
    # the last bits with the batch's size (XLA vectorizes the batch axis). Seen: values 4.4e-16,
    # derivatives up to 4.4e-14 relative (dvmin_pu_dcapacity_mva).
    import json

    from test_sweeps import BASE

    from sopjax.sweeps import run_sweep, spec_from_config

    config = {**BASE, "dispatch": {"engine": "jax"}, "sampling": {"samples": 5, "seed": 1},
              "axis": [{"name": "capacity_mva", "values": [0.05, 0.2]}]}
    (tmp_path / "sweep.json").write_text(json.dumps(config))
    got = run_on_two_devices(TWO_DEVICE_SWEEP, tmp_path, cfg=str(tmp_path / "sweep.json"))
    ref = run_sweep(spec_from_config(config))
    assert ref.attrs["devices_per_point"] == 1
    assert set(got) == set(ref.data_vars) and len(got) == 4
    for name, values in got.items():
        np.testing.assert_allclose(values, ref[name].values, rtol=1e-12, atol=0, err_msg=name)
