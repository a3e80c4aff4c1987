"""Datasets and power-flow surrogates: generation throughput, accuracy vs the exact kernel, speed ratios.

    python benchmarks/surrogate_bench.py throughput [chunks]     # labelled samples/s (fresh store)
    python benchmarks/surrogate_bench.py accuracy [DIR]          # errors, violation calibration, plots (PNG in DIR)
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
from sopjax.surrogates import feature_set, load_power_flow
from sopjax.surrogates.evaluate import split_report, voltage_errors
from sopjax.surrogates.plots import reliability_diagram
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


def _lindistflow(fs):
    _, em = fs.masks()
    return {"vm": fs.v_lin, "va": fs.th_lin, "p_from": fs.p_lin * em, "q_from": fs.q_lin * em}


def accuracy(plots: str = "results/plots") -> None:
    """Error table, violation calibration table, parity plots and reliability diagrams (PNG in ``plots``)."""
    Path(plots).mkdir(parents=True, exist_ok=True)
    rows = []
    mlp, gnn = load_power_flow("results/ieee33_mlp"), load_power_flow("results/ieee33_gnn")
    val = feature_set(load_split(S33, "val", variables=list(PF_VARS[:-2])))
    # calibration errors: each predictor's own errors on the IEEE 33 validation split
    val_err = {"LinDistFlow": voltage_errors(val, _lindistflow(val))}
    val_err.update({n: voltage_errors(val, m.predict(val)) for n, m in (("MLP", mlp), ("GNN", gnn))})
    for store, models in ((S33, (("MLP", mlp), ("GNN", gnn))), (S69, (("GNN", gnn),))):
        ds = open_store(store)
        case = ds.attrs["case"]
        tables = {}
        for split in ("test", "ood_topology", "ood_load"):
            fs = feature_set(load_split(ds, split, variables=list(PF_VARS[:-2])))
            for name, st in (("LinDistFlow", _lindistflow(fs)), *((n, m.predict(fs)) for n, m in models)):
                plot = None if name == "LinDistFlow" else Path(plots) / f"{case}_{split}_{name.lower()}_parity.png"
                title = f"{case}, {split} split, {name} ({fs.n_samples} samples)"
                m = split_report(fs, st, val_errors=val_err[name], plot=plot, title=title)
                rows.append((case, split, name, m))
                tables.setdefault(name, {})[split] = m["calibration"]["table"]
        for name, _ in models:
            reliability_diagram(
                tables[name],
                Path(plots) / f"{case}_{name.lower()}_reliability.png",
                title=f"{case}, {name}: P(V outside [0.95, 1.05] p.u.), IEEE 33 validation errors",
            )
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
    print(
        "\nviolation calibration: P(V outside [0.95, 1.05] p.u.) per (sample, bus) from the predictor's IEEE 33 "
        "validation errors; decisions at p >= 0.5; 'point': V_pred outside the band, no error model"
    )
    print(
        f"{'case':<8}{'split':<14}{'model':<12}{'events':>8}{'viol.':>7}{'Brier':>10}{'ECE':>10}{'FN bus':>8}"
        f"{'FP bus':>8}{'FN smp':>8}{'viol smp':>9}{'FN point':>9}{'FP point':>9}"
    )
    for case, split, name, m in rows:
        c = m["calibration"]
        vs = c["sample"]["tp"] + c["sample"]["fn"]
        print(
            f"{case:<8}{split:<14}{name:<12}{c['events']:>8}{c['violations']:>7}{c['brier']:>10.2e}"
            f"{c['ece']:>10.2e}{c['bus']['fn']:>8}{c['bus']['fp']:>8}{c['sample']['fn']:>8}{vs:>9}"
            f"{c['point']['fn']:>9}{c['point']['fp']:>9}"
        )
    print("\nreliability tables (bins of predicted probability: events, observed frequency)")
    for case, split, name, m in rows:
        t = m["calibration"]["table"]
        cells = [
            f"[{lo:.1f},{hi:.1f}) {n} {obs:.2f}" for lo, hi, n, obs in zip(t["lo"], t["hi"], t["count"], t["observed"]) if n
        ]
        print(f"  {case} {split} {name}: " + "; ".join(cells))
    print(f"\nfigures in {plots}/")


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
    args = sys.argv[2:]
    if what == "accuracy":
        accuracy(*args)
    else:
        {"throughput": throughput, "speed": speed}[what](*(int(a) for a in args))
