"""Datasets and power-flow surrogates: generation throughput, accuracy vs the exact kernel, speed ratios.

    python benchmarks/surrogate_bench.py throughput [chunks]     # labelled samples/s (fresh store)
    python benchmarks/surrogate_bench.py accuracy                # MLP / GNN / LinDistFlow errors per split
    python benchmarks/surrogate_bench.py speed [batch] [rounds]  # surrogate vs exact sweep, per sample

``accuracy`` and ``speed`` need the stores and checkpoints of docs/surrogates.md
(results/ieee33_dataset.zarr, results/ieee69_dataset.zarr, results/ieee33_mlp, results/ieee33_gnn).
Errors are against the exact kernel's labels on energized buses / closed branches, in p.u.
and kW; "LinDistFlow" is the prior alone (what the models correct).
"""

import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import jax
import numpy as np

from sopjax.jax_config import configure_xla

configure_xla()

from sopjax.datasets import (
    DatasetSpec,
    build_dataset,
    dataset_from_config,
    exact_kernel,
    load_split,
    open_store,
    sample_topologies,
)
from sopjax.surrogates import feature_set, load_power_flow, power_flow_errors
from sopjax.surrogates.study import PF_VARS

S33, S69 = "results/ieee33_dataset.zarr", "results/ieee69_dataset.zarr"


def throughput(chunks: int = 4) -> None:
    cfg = tomllib.loads(Path("configs/ieee33_dataset.toml").read_text())
    net, spec, _ = dataset_from_config(cfg)
    for dispatch in (False, True):
        s = DatasetSpec(**{**spec.__dict__, "samples": chunks * spec.chunk_size, "dispatch": dispatch})
        tmp = Path(tempfile.mkdtemp()) / "d.zarr"
        t0 = time.perf_counter()
        first = build_dataset(net, s, tmp, progress=False, stop_after=1)  # includes compilation
        rest = build_dataset(net, s, tmp, progress=False)
        total = time.perf_counter() - t0
        shutil.rmtree(tmp.parent)
        print(
            f"IEEE 33, chunk {s.chunk_size}, dispatch labels {'on' if dispatch else 'off'}: first chunk "
            f"{first['seconds']:.1f} s (compilation), then {rest['samples_per_s']:.1f} labelled samples/s over "
            f"{rest['samples_written']} samples; {s.samples / total:.1f} samples/s overall incl. the pool"
        )


def accuracy() -> None:
    rows = []
    mlp, gnn = load_power_flow("results/ieee33_mlp"), load_power_flow("results/ieee33_gnn")
    for store, models in ((S33, (("MLP", mlp), ("GNN", gnn))), (S69, (("GNN", gnn),))):
        ds = open_store(store)
        for split in ("test", "ood_topology", "ood_load"):
            fs = feature_set(load_split(ds, split, variables=list(PF_VARS[:-2])))
            _, em = fs.masks()
            lin = {"vm": fs.v_lin, "va": fs.th_lin, "p_from": fs.p_lin * em, "q_from": fs.q_lin * em}
            for name, st in (("LinDistFlow", lin), *((n, m.predict(fs)) for n, m in models)):
                rows.append((ds.attrs["case"], split, name, power_flow_errors(fs, st)))
    print(
        f"{'case':<8}{'split':<14}{'model':<12}{'samples':>8}{'Vm MAE':>10}{'Vm max':>10}{'P MAE kW':>10}"
        f"{'P max kW':>10}{'loss MAE kW':>12}{'loss max kW':>12}{'max resid':>10}"
    )
    for case, split, name, m in rows:
        print(
            f"{case:<8}{split:<14}{name:<12}{m['samples']:>8}{m['vm_mae_pu']:>10.2e}{m['vm_max_pu']:>10.2e}"
            f"{m['p_mae_kw']:>10.3f}{m['p_max_kw']:>10.2f}{m['loss_mae_kw']:>12.3f}{m['loss_max_kw']:>12.2f}"
            f"{m['residual_max_pu']:>10.1e}"
        )


def speed(batch: int = 1024, rounds: int = 5) -> None:
    from sopjax.datasets import dataset_network
    from sopjax.surrogates.features import lindistflow_kernel
    from sopjax.surrogates.powerflow import batch_arrays, predict_kernel

    ds = load_split(S33, "test", variables=list(PF_VARS[:-2]))
    ds = ds.isel(sample=np.resize(np.arange(ds.sizes["sample"]), batch))
    net = dataset_network(ds)
    p, q = ds["p_net_pu"].values, ds["q_net_pu"].values
    topo, grid = sample_topologies(net, ds["branch_closed"].values)  # host side, shared by all paths
    f_bus = np.asarray(net.f_bus)
    exact = exact_kernel(1e-10, 100)
    lin = lindistflow_kernel(net.n_bus)
    fs = feature_set(ds, net=net)
    print(f"IEEE 33 test samples, batch {batch}, per-sample topologies; {jax.devices()[0].platform}")
    for name in ("mlp", "gnn"):
        sur = load_power_flow(f"results/ieee33_{name}")
        b = {k: jax.numpy.asarray(v) for k, v in batch_arrays(fs, sur.norm, labels=False).items()}
        run = predict_kernel(sur.kind)

        def surrogate():
            r = lin(topo, grid, f_bus, p, q)  # the prior is part of the surrogate's cost
            return r, run(sur.model, sur.norm, b, fs.f_bus, fs.t_bus)

        calls = {
            "exact sweep (vmap, tol 1e-10)": lambda: exact(topo, grid, f_bus, p, q),
            f"{name.upper()} + LinDistFlow prior": surrogate,
        }
        for f in calls.values():
            jax.block_until_ready(f())
        t = {k: [] for k in calls}
        for _ in range(rounds):
            for k, f in calls.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f())
                t[k].append((time.perf_counter() - t0) / batch)
        med = {k: float(np.median(v)) for k, v in t.items()}
        for k, v in med.items():
            print(f"  {k:<34} {v * 1e6:9.2f} us/sample")
        a, s = med.values()
        print(f"  ratio exact / surrogate: {a / s:.2f}x")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "accuracy"
    {"throughput": throughput, "accuracy": accuracy, "speed": speed}[what](*(int(a) for a in sys.argv[2:]))
