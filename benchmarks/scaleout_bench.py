"""Scale-out: Monte Carlo strategy-samples/s in-process vs 1 and 2 Dask workers, and the Dask overhead.

    nice python benchmarks/scaleout_bench.py                       # 1 strategy, 8 chunks of the default size
    nice python benchmarks/scaleout_bench.py --chunks 4 --repeats 3
    nice python benchmarks/scaleout_bench.py --peak 1000000,10000000,100000000   # driver memory, Dask path
    python benchmarks/scaleout_bench.py --peak 100000000 --checkpoint-dir results/peak   # resumable

Setup: IEEE 33 with a 1 MVA PV at bus 30 and an SOP 8-21 after the fault on branch 2-3 (seed 002),
one restoration strategy (SOP 8-21 in Vf mode), the seed 002 uncertainty model, the default
chunk size (65 536 strategy-samples per chunk). Every configuration runs once to compile
(in-process: the driver; Dask: each worker, whose compiled kernels stay in its process) and
is then timed ``--repeats`` times; medians are printed.

* **strategy-samples/s**: in-process (``scheduler=None``), ``local:1`` and ``local:2`` (a
  ``LocalCluster`` of single-threaded worker processes on this machine).
* **scheduling overhead per chunk**: with one Dask worker, the wall time minus the time the
  worker spent computing chunk tasks (Dask's task stream), per chunk and as a share of the
  compute: what Dask adds (task submission, moving the job and the chunk's reductions, the
  ordered merge, idle gaps). Also printed: (Dask with 1 worker - in-process) / chunks, which
  includes the run-to-run noise of a shared machine.

``--peak N1,N2,...`` runs the Dask path (``--workers``, default 2) once per sample count,
each in a fresh driver process, and prints the driver's peak resident memory
(``ru_maxrss``): it is bounded by the chunk, not by the sample count. The LocalCluster's
scheduler runs in the driver process, so its memory is included; the workers' is not.
With ``--checkpoint-dir`` each count checkpoints after every merged chunk and a rerun of the
same command resumes it (the line then says from which sample; the peak is that driver's).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

from sopjax.jax_config import configure_xla

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)

import sopjax  # noqa: E402
from sopjax.montecarlo import ModelSource, MonteCarloSettings, default_chunk_size, run_montecarlo  # noqa: E402
from sopjax.strategies import Strategy  # noqa: E402

FAULT = (2,)


def study():
    """(net, [one strategy]) of the seed 002 restoration study."""
    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    net = sopjax.add_sops(net, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)
    sop = [{"pair": [8, 21], "mode": "vf_i", "u_set_pu": 1.05}]
    return net, [Strategy.build(net, "SOP 8-21", open=list(FAULT), sops=sop, pickup={"shed": list(range(3, 18))})]


def source(net, n: int, seed: int = 0):
    from sopjax.sampling import LoadNormal, PVForecastError, UncertaintyModel

    model = UncertaintyModel(pv=PVForecastError(sigma_frac=0.1), load=LoadNormal(sigma_frac=0.1))
    return ModelSource(net, model, [0.05], seed=seed, n_samples=n)


def run(net, strategies, n: int, chunk: int, scheduler, progress: bool = False, checkpoint=None):
    settings = MonteCarloSettings(n_samples=n, chunk_size=chunk, fault_open=FAULT)
    t0 = time.perf_counter()
    ds = run_montecarlo(net, strategies, source(net, n), settings, scheduler=scheduler, progress=progress,
                        checkpoint=checkpoint)
    return time.perf_counter() - t0, ds


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def throughput(args) -> None:
    from sopjax.scaleout import make_executor

    net, strategies = study()
    chunk = args.chunk or default_chunk_size(len(strategies), 1 << 40)
    n = args.chunks * chunk
    print(f"IEEE 33, {len(strategies)} strategy, {n} samples in {args.chunks} chunks of {chunk} "
          f"(default chunk size: {default_chunk_size(len(strategies), 1 << 40)}), {args.repeats} timed runs each, "
          f"{os.cpu_count()} CPUs")
    rows = {}
    reference = None
    for label, sched in (("in-process", None), ("dask local:1", "local:1"), ("dask local:2", "local:2")):
        ex = make_executor(sched)
        try:
            t0 = time.perf_counter()
            run(net, strategies, chunk * min(2, args.chunks), chunk, ex)  # compile (each worker, once)
            warm = time.perf_counter() - t0
            times, busy = [], []
            for _ in range(args.repeats):
                if sched is None:
                    t, ds = run(net, strategies, n, chunk, ex)
                else:  # the workers' compute time of the chunk tasks, from Dask's task stream
                    from distributed import get_task_stream

                    with get_task_stream(client=ex.client) as stream:
                        t, ds = run(net, strategies, n, chunk, ex)
                    busy.append(sum(ss["stop"] - ss["start"] for task in stream.data for ss in task["startstops"]
                                    if ss["action"] == "compute" and "sopjax-chunk" in task["key"]))
                times.append(t)
        finally:
            ex.close()
        same = None
        if reference is None:
            reference = ds
        else:
            same = all(np.array_equal(ds[k].values, reference[k].values, equal_nan=True)
                       for k in reference.data_vars if reference[k].dtype != object)
        rows[label] = statistics.median(times)
        if label == "dask local:1":
            # one worker: the wall time not spent computing chunks is what Dask adds
            idle = [(t - b) / args.chunks for t, b in zip(times, busy)]
            share = [(t - b) / b for t, b in zip(times, busy)]
        print(f"  {label:14s} {n * len(strategies) / rows[label]:>12,.0f} strategy-samples/s   median "
              f"{rows[label]:7.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}; warm-up {warm:.1f} s)"
              + ("" if same is None else f"   aggregates identical to in-process: {same}"))
    base = rows["in-process"]
    over = (rows["dask local:1"] - base) / args.chunks
    print(f"  speed-up 2 workers / 1 worker: {rows['dask local:1'] / rows['dask local:2']:.2f}x; "
          f"2 workers / in-process: {base / rows['dask local:2']:.2f}x")
    print(f"  scheduling overhead per chunk, local:1 wall - its chunks' compute time (task stream): median "
          f"{statistics.median(idle) * 1e3:.0f} ms = {100 * statistics.median(share):.1f} % of the compute "
          f"(runs: {', '.join(f'{100 * x:.1f} %' for x in share)})")
    print(f"  (local:1 - in-process wall time, per chunk: {over * 1e3:.0f} ms = "
          f"{100 * over / (base / args.chunks):.1f} % of an in-process chunk of {1e3 * base / args.chunks:.0f} ms; "
          "includes run-to-run noise of the shared machine)")


def peak(args) -> None:
    counts = [int(float(x)) for x in args.peak.split(",")]
    print(f"driver peak memory, Dask path (local:{args.workers}), 1 strategy, default chunk size; "
          "one fresh driver process per count")
    for n in counts:
        cmd = [sys.executable, __file__, "--one-peak", str(n), "--workers", str(args.workers)]
        if args.checkpoint_dir:
            cmd += ["--checkpoint-dir", args.checkpoint_dir]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:])
            raise SystemExit(out.returncode)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {r['samples']:>13,d} samples: {r['seconds']:9.1f} s, {r['rate']:>10,.0f} strategy-samples/s, "
              f"{r['chunks']} chunks, peak driver RSS {r['peak_mib']:.0f} MiB (before the run {r['start_mib']:.0f} MiB), "
              f"recovery_ratio_mean {r['recovery_ratio_mean']:.6f}, n_failed {r['n_failed']}"
              + (f", resumed from sample {r['resumed_from']:,d}" if r["resumed_from"] else ""), flush=True)


def one_peak(args) -> None:
    net, strategies = study()
    chunk = default_chunk_size(1, 1 << 40)
    start = rss_mib()
    ckpt = os.path.join(args.checkpoint_dir, f"peak_{args.one_peak}.npz") if args.checkpoint_dir else None
    t, ds = run(net, strategies, args.one_peak, chunk, f"local:{args.workers}", progress=sys.stderr.isatty(),
                checkpoint=ckpt)
    print(json.dumps({"samples": args.one_peak, "seconds": t, "rate": args.one_peak / t, "peak_mib": rss_mib(),
                      "start_mib": start, "chunks": -(-args.one_peak // chunk),
                      "recovery_ratio_mean": float(ds["recovery_ratio_mean"][0]),
                      "n_failed": int(ds["n_failed"][0]), "resumed_from": int(ds.attrs.get("resumed_from_sample", 0))}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chunks", type=int, default=8, help="chunks per timed run (default 8)")
    ap.add_argument("--chunk", type=int, default=None, help="samples per chunk (default: the default chunk size)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (default 3)")
    ap.add_argument("--peak", metavar="N1,N2,...", help="driver peak memory of the Dask path at these sample counts")
    ap.add_argument("--workers", type=int, default=2, help="Dask workers for --peak (default 2)")
    ap.add_argument("--checkpoint-dir", help="--peak: checkpoint each count here; a rerun resumes it")
    ap.add_argument("--one-peak", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_peak:
        one_peak(args)
    elif args.peak:
        peak(args)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
