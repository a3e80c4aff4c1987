"""Monte Carlo scoring throughput and memory, side by side with the baselines (one run).

    nice python benchmarks/montecarlo_bench.py                      # 64 strategies x 100 000 samples
    nice python benchmarks/montecarlo_bench.py --samples 20000      # quicker
    nice python benchmarks/montecarlo_bench.py --memory-samples 10000000 --memory-strategies 1

Measures, on IEEE 33 with a 1 MVA PV at bus 30 and an SOP 8-21, after the
fault on branch 2-3 (seed 002):

* **sopjax Monte Carlo**: ``run_montecarlo`` of S random restoration strategies
  (random radial reconfigurations, SOP off or in Vf mode, random pickup
  masks) on N samples of the seed 002 uncertainty model: sampling, power flow,
  scoring, streaming reductions and quantile sketches, all included. Reported
  in strategy-samples per second, compile excluded (a warm-up run of one chunk
  compiles first).
* **sopjax power flow only**: the bare batched sweep (``batched_solver``, same
  sample blocks) of every strategy on the same net loads, so the cost of
  scoring is visible; and on the topologies given to power-grid-model.
* **power-grid-model**: its C++ batch power flow (all threads) on the same net
  loads for a subset of the strategies' topologies (power flow only: no
  scoring, no SOP island; de-energized islands are skipped by PGM).
* **pandapower**: ``runpp`` in a Python loop on a few hundred samples.

Then, in a fresh subprocess each (clean peak RSS), the Monte Carlo run at
``--memory-samples`` samples and at 1 % of it, printing the peak resident
memory: with chunked streaming it does not grow with the number of samples.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

import sopjax
from sopjax.errors import SopjaxError
from sopjax.montecarlo import ModelSource, MonteCarloSettings, run_montecarlo
from sopjax.strategies import Strategy, compile_strategies

from sopjax.jax_config import configure_xla

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)

FAULT = (2,)
TIES = (33, 34, 35, 36, 37)


def study_network():
    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    return sopjax.add_sops(net, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)


def random_strategies(net, count: int, seed: int = 0) -> list[Strategy]:
    """``count`` distinct valid restoration strategies: random ties closed, random branches opened to
    break loops, SOP 8-21 off or in Vf mode at bus 8, and 0-6 outage-area loads shed."""
    rng = np.random.default_rng(seed)
    outage = [b for b in list(range(3, 19)) + list(range(23, 34))]
    out, seen = [], set()
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 200 * count:
            raise RuntimeError("could not draw enough valid strategies")
        close = sorted(rng.choice(TIES, size=rng.integers(0, 4), replace=False).tolist())
        opened = sorted(set(rng.choice(np.arange(3, 33), size=len(close), replace=False).tolist()))
        sop = rng.random() < 0.5
        if not close and not sop:
            continue
        shed = sorted(rng.choice(outage, size=rng.integers(0, 7), replace=False).tolist())
        key = (tuple(close), tuple(opened), sop, tuple(shed))
        if key in seen:
            continue
        s = Strategy.build(
            net, f"s{len(out):02d}", open=[*FAULT, *opened], close=close,
            sops=[{"pair": [8, 21], "mode": "vf_i", "u_set_pu": 1.05}] if sop else [],
            pickup={"shed": shed},
        )
        try:
            compile_strategies(net, [s], fault_open=FAULT)
        except SopjaxError:
            continue
        seen.add(key)
        out.append(s)
    return out


def uncertainty_source(net, n: int, seed: int = 0):
    from sopjax.sampling import LoadNormal, PVForecastError, UncertaintyModel

    model = UncertaintyModel(pv=PVForecastError(sigma_frac=0.1), load=LoadNormal(sigma_frac=0.1))
    return ModelSource(net, model, [0.05], seed=seed, n_samples=n)


def run_sopjax(net, strategies, n, chunk, seed=0, sweep_layout="bus_major"):
    from sopjax.kernels.scoring import ScoringOptions

    opts = ScoringOptions(sweep_layout=sweep_layout)
    settings = MonteCarloSettings(n_samples=n, chunk_size=chunk, fault_open=FAULT, options=opts)
    warm = MonteCarloSettings(n_samples=min(chunk or n, n), chunk_size=chunk, fault_open=FAULT, options=opts)
    t0 = time.perf_counter()
    run_montecarlo(net, strategies, uncertainty_source(net, warm.n_samples, seed), warm, progress=False)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = run_montecarlo(net, strategies, uncertainty_source(net, n, seed), settings, progress=sys.stderr.isatty())
    seconds = time.perf_counter() - t0
    return ds, seconds, compile_s


def net_loads(net, n, seed=0):
    """The net loads (load - PV) of the first ``n`` samples, (n, bus) p.u."""
    src = uncertainty_source(net, n, seed)
    p, q, pv = (np.asarray(a) for a in src.draw(0, n))
    b = int(np.asarray(net.pv.bus)[0])
    tan = np.tan(np.arccos(float(np.asarray(net.pv.pf)[0])))
    p, q = p.copy(), q.copy()
    p[:, b] -= pv[:, 0]
    q[:, b] -= pv[:, 0] * tan
    return p, q


def run_powerflow_only(net, strategies, p, q, pv, block=64):
    """The bare batched sweep (no scoring) of each strategy on the same net loads, one topology after
    the other, in blocks of ``block`` samples like the scorer. Returns (seconds, mean sweeps)."""
    import jax

    from sopjax.powerflow import batched_solver
    from sopjax.strategies import compile_strategies

    batch = compile_strategies(net, strategies, fault_open=FAULT)
    run = batched_solver("sweep", chunk_size=block)
    f_bus = np.asarray(net.f_bus)
    b = int(np.asarray(net.pv.bus)[0])
    tan = np.tan(np.arccos(float(np.asarray(net.pv.pf)[0])))
    items = []
    for k, s in enumerate(strategies):
        a = jax.tree_util.tree_map(lambda x: x[k], batch.arrays)
        pp_, qq = p * s.pickup, q * s.pickup
        pp_[:, b] -= pv[:, 0]
        qq[:, b] -= pv[:, 0] * tan
        items.append((a.topo, a.grid, pp_, qq, a.vf))
    jax.block_until_ready(run(items[0][0], items[0][1], f_bus, items[0][2], items[0][3], items[0][4]))  # compile
    t0 = time.perf_counter()
    iters = []
    for topo, grid, pp_, qq, vf in items:
        res = jax.block_until_ready(run(topo, grid, f_bus, pp_, qq, vf))
        iters.append(float(np.mean(res.iterations)))
    return time.perf_counter() - t0, float(np.mean(iters))


def memory_child(n: int, strategies: int, chunk: int | None) -> None:
    """Run the Monte Carlo study at ``n`` samples and print the peak RSS as JSON (subprocess entry)."""
    net = study_network()
    strat = random_strategies(net, strategies)
    settings = MonteCarloSettings(n_samples=n, chunk_size=chunk, fault_open=FAULT)
    t0 = time.perf_counter()
    ds = run_montecarlo(net, strat, uncertainty_source(net, n), settings, progress=False)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB on Linux
    print(json.dumps({"samples": n, "strategies": strategies, "seconds": seconds, "peak_rss_mb": peak,
                      "quantile_method": ds.attrs["quantile_method"], "chunk_size": int(ds.attrs["chunk_size"]),
                      "recovery_ratio_mean": [float(x) for x in ds["recovery_ratio_mean"].values]}))


def measure_memory(n: int, strategies: int, chunk: int | None) -> dict:
    cmd = [sys.executable, __file__, "--memory-child", str(n), "--strategies", str(strategies)]
    if chunk:
        cmd += ["--chunk-size", str(chunk)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strategies", type=int, default=64)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--pf-samples", type=int, default=16_384, help="samples per strategy, power-flow-only runs")
    ap.add_argument("--pgm-samples", type=int, default=20_000, help="samples per topology for power-grid-model")
    ap.add_argument("--pgm-topologies", type=int, default=4)
    ap.add_argument("--pp-samples", type=int, default=200)
    ap.add_argument("--memory-samples", type=int, default=10_000_000)
    ap.add_argument("--memory-strategies", type=int, default=1)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memory_child is not None:
        memory_child(args.memory_child, args.strategies, args.chunk_size)
        return 0

    import jax

    from sopjax.bench.baselines import pandapower_loop, power_grid_model_batch
    from sopjax.montecarlo.runner import default_chunk_size

    net = study_network()
    strategies = random_strategies(net, args.strategies)
    S, N = len(strategies), args.samples
    chunk = args.chunk_size or default_chunk_size(S, N)
    print(f"IEEE 33 + PV 30 + SOP 8-21, fault on branch 2: {S} strategies x {N} samples, chunk {chunk}; "
          f"jax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} CPUs)", flush=True)

    ds, sec, compile_s = run_sopjax(net, strategies, N, chunk)
    rows = [("sopjax Monte Carlo (sample + PF + score + reduce)", S * N, sec,
             f"compile {compile_s:.1f} s excluded; {int(ds['n_failed'].sum())} failed samples")]
    ds1, sec1, compile1 = run_sopjax(net, strategies, N, chunk, sweep_layout="per_sample")
    diff = float(np.nanmax(np.abs(ds1["recovery_ratio_mean"].values - ds["recovery_ratio_mean"].values)))
    rows.append(("  the same, per-sample kernel (sweep_layout='per_sample')", S * N, sec1,
                 f"compile {compile1:.1f} s excluded; {int(ds1['n_failed'].sum())} failed samples; "
                 f"max |d mean recovery| {diff:.1e}"))

    # baselines solve the power flow only, on topologies that energize every bus without the SOP
    # (PGM and pandapower have no Vf-mode SOP island), so that all methods solve all 33 buses
    from sopjax.topology import compile_topology

    full = [s for s in strategies if not s.sop_mode.any() and compile_topology(net, s.status).energized.all()]
    full = full or strategies
    src = uncertainty_source(net, N)
    n_pf = min(args.pf_samples, N)
    p_raw, q_raw, pv_raw = (np.asarray(a) for a in src.draw(0, n_pf))
    pf_sec, pf_it = run_powerflow_only(net, strategies, p_raw, q_raw, pv_raw)
    rows.append(("sopjax power flow only, same strategies", S * n_pf, pf_sec,
                 f"batched sweep per strategy, {n_pf} samples, {pf_it:.1f} sweeps/sample (mean)"))
    p, q = net_loads(net, max(args.pgm_samples, args.pp_samples, n_pf))
    full_sec, _ = run_powerflow_only(net, full[: args.pgm_topologies], p_raw, q_raw, pv_raw)
    rows.append(("sopjax power flow only, PGM's topologies", min(args.pgm_topologies, len(full)) * n_pf,
                 full_sec, "all buses energized (no SOP island)"))

    k = min(args.pgm_topologies, len(full))
    pgm_n = args.pgm_samples
    pgm_sec = 0.0
    for s in full[:k]:
        r = power_grid_model_batch(net, p[:pgm_n], q[:pgm_n], status=s.status, method="newton_raphson")
        pgm_sec += r.seconds
    rows.append(("power-grid-model batch (PF only, newton_raphson)", k * pgm_n, pgm_sec,
                 f"{k} topologies x {pgm_n} samples, all threads"))

    pp_n = args.pp_samples
    r = pandapower_loop(net, p[:pp_n], q[:pp_n], status=full[0].status)
    rows.append(("pandapower runpp loop (PF only)", pp_n, r.seconds, f"{pp_n} samples, one topology"))

    ref = rows[0][1] / rows[0][2]
    print(f"\n{'method':<52} {'strategy-samples/s':>19} {'vs MC':>8}  notes")
    for name, count, secs, note in rows:
        rate = count / secs
        print(f"{name:<52} {rate:>19,.0f} {rate / ref:>7.2f}x  {note}")
    print(f"\nsopjax Monte Carlo: {S * N:,} strategy-samples in {sec:.1f} s "
          f"({ds.attrs['quantile_method']} quantiles)")

    if not args.skip_memory:
        small = max(1, args.memory_samples // 100)
        print(f"\npeak RSS (fresh process, {args.memory_strategies} strategies, chunked, histogram quantiles above "
              "the exact limit):", flush=True)
        for n in (small, args.memory_samples):
            m = measure_memory(n, args.memory_strategies, args.chunk_size)
            print(f"  {n:>12,} samples: peak RSS {m['peak_rss_mb']:8.1f} MB, {m['seconds']:8.1f} s, "
                  f"chunk {m['chunk_size']}, {m['quantile_method']} quantiles", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
