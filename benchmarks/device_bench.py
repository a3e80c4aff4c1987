"""Samples/s of the three hot kernels on whatever devices JAX sees (CPU, one GPU or several).

    nice python benchmarks/device_bench.py                          # float64, default sizes
    nice python benchmarks/device_bench.py --dtype float32          # float32 (tolerances per sopjax.powerflow.resolve_tol)
    nice python benchmarks/device_bench.py --samples 1000000 --dispatch-samples 4096   # a GPU
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python benchmarks/device_bench.py   # 2 CPU devices

On IEEE 33, with the samples split over all local devices (``jax.local_devices()``):

* **power flow**: ``batched_solver("sweep")`` (bus-major DistFlow) on ``--samples``
  random load samples placed with ``shard_samples``;
* **Monte Carlo scoring**: ``run_montecarlo`` of one restoration strategy (seed 002's
  fault, PV and SOP in Vf mode) on ``--samples`` samples, sampling and reductions
  included, in-process (chunks split over the local devices);
* **batched dispatch**: ``dispatch_batched`` (the JAX interior-point SOP dispatch, three
  SOPs) on ``--dispatch-samples`` operating points, forward only;
* **sweep**: ``run_sweep`` with the JAX engine (two SOPs, a 4-point capacity axis, the
  dispatch quantities and their forward-mode derivatives) on a pool of
  ``--dispatch-samples`` samples, split over the local devices
  (:mod:`sopjax.sweeps.devices`); samples/s counts pool samples times grid points.
  Always float64 (the sweeps' parameters are float64).

Each is compiled first, then timed ``--repeats`` times; the median is printed. No host
round trip happens inside a kernel: inputs are placed on the devices before timing and
only the results come back. On a GPU the Monte Carlo layout is ``strategy_axis="vmap"``
(one wide batch, the study config's ``layout = "auto"`` choice).
"""

from __future__ import annotations

import argparse
import statistics
import time

from sopjax.jax_config import configure_xla

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import sopjax  # noqa: E402


def median_time(fn, repeats: int) -> tuple[float, float]:
    """(compile + first run, median of ``repeats`` runs) in seconds."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def powerflow(n: int, dtype, repeats: int):
    from sopjax.powerflow import batched_solver, make_grid, resolve_tol, shard_samples
    from sopjax.topology import compile_topology

    net = sopjax.ieee33()
    topo = compile_topology(net)  # the case's switch states (tie lines open)
    grid = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), make_grid(net, topo))
    rng = np.random.default_rng(0)
    f = rng.uniform(0.7, 1.3, (n, net.n_bus))
    p = shard_samples(jnp.asarray(np.asarray(net.p_load_pu) * f, dtype))
    q = shard_samples(jnp.asarray(np.asarray(net.q_load_pu) * f, dtype))
    run = batched_solver("sweep", tol=resolve_tol(None, dtype))
    f_bus = jnp.asarray(net.f_bus)
    return median_time(lambda: run(topo, grid, f_bus, p, q).vm_pu, repeats)


def montecarlo(n: int, dtype, repeats: int):
    from sopjax.kernels.scoring import ScoringOptions
    from sopjax.montecarlo import ModelSource, MonteCarloSettings, run_montecarlo
    from sopjax.powerflow import resolve_tol
    from sopjax.sampling import LoadNormal, PVForecastError, UncertaintyModel
    from sopjax.strategies import Strategy

    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    net = sopjax.add_sops(net, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)
    strategy = Strategy.build(net, "SOP 8-21", open=[2], sops=[{"pair": [8, 21], "mode": "vf_i", "u_set_pu": 1.05}],
                              pickup={"shed": list(range(3, 18))})
    gpu = jax.default_backend() == "gpu"
    options = ScoringOptions(tol=resolve_tol(None, dtype), strategy_axis="vmap" if gpu else "map",
                             sample_block=None if gpu else 64)
    settings = MonteCarloSettings(n_samples=n, fault_open=(2,), options=options, dtype=np.dtype(dtype).name)
    model = UncertaintyModel(pv=PVForecastError(sigma_frac=0.1), load=LoadNormal(sigma_frac=0.1))

    def run():
        src = ModelSource(net, model, [0.05], seed=0, n_samples=n)
        return run_montecarlo(net, [strategy], src, settings, progress=False)["recovery_ratio_mean"].values

    return median_time(run, repeats)


def dispatch(n: int, dtype, repeats: int):
    from sopjax.kernels.dispatch import DispatchInputs, compile_dispatch, dispatch_batched, nominal_inputs
    from sopjax.powerflow import shard_samples

    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=[300, 200, 200], pf=0.95)
    net = sopjax.add_sops(net, pairs=[(12, 22), (18, 33), (25, 29)], s_rated_kva=200, loss=0.02)
    nom = nominal_inputs(net)
    rng = np.random.default_rng(0)
    f = rng.uniform(0.7, 1.3, (n, net.n_bus))
    cap = rng.uniform(0.005, 0.05, (n, 3))
    inp = DispatchInputs(nom.p_load_pu * f, nom.q_load_pu * f, nom.p_pv_pu * rng.uniform(0.0, 2.5, (n, 3)),
                         cap, cap * rng.uniform(0.8, 1.2, (n, 3)))
    inp = jax.tree_util.tree_map(lambda a: shard_samples(jnp.asarray(a, dtype)), inp)
    data = compile_dispatch(net)
    run = jax.jit(lambda i: dispatch_batched(data, i).objective)
    return median_time(lambda: run(inp), repeats)


def sweep(n: int, dtype, repeats: int):
    from sopjax.sweeps import run_sweep, spec_from_config

    spec = spec_from_config({
        "network": {"case": "ieee33", "pv": [{"bus": 7, "s_rated_kva": 300, "pf": 0.95}],
                    "sop": [{"pair": [12, 22], "s_rated_kva": 300}, {"pair": [25, 29], "s_rated_kva": 300}]},
        "dispatch": {"engine": "jax"},
        "uncertainty": {"pv": {"kind": "normal", "sigma_frac": 0.1},
                        "load": {"kind": "normal", "sigma_frac": 0.1}},
        "sampling": {"samples": n, "seed": 1},
        "axis": [{"name": "capacity_mva", "values": SWEEP_POINTS}],
        "quantities": ["losses_kw", "vmin_pu"],
    })
    return median_time(lambda: run_sweep(spec)["losses_kw"].values, repeats)  # compiled once (worker cache)


SWEEP_POINTS = [0.05, 0.1, 0.2, 0.4]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200_000, help="power-flow and Monte Carlo samples")
    ap.add_argument("--dispatch-samples", type=int, default=256, help="dispatch operating points")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip", action="append", default=[],
                    choices=("powerflow", "montecarlo", "dispatch", "sweep"))
    args = ap.parse_args()
    dtype = jnp.float64 if args.dtype == "float64" else jnp.float32
    devs = jax.local_devices()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {len(devs)} local device(s): "
          f"{', '.join(d.device_kind for d in devs)}; {args.dtype}; median of {args.repeats}")
    rows = [("power flow (IEEE 33, sweep)", "powerflow", args.samples, powerflow),
            ("Monte Carlo scoring (1 strategy)", "montecarlo", args.samples, montecarlo),
            ("batched dispatch (JAX IPM, 3 SOPs)", "dispatch", args.dispatch_samples, dispatch),
            ("sweep (JAX IPM + jacfwd, 4 points)", "sweep", args.dispatch_samples, sweep)]
    for label, key, n, fn in rows:
        if key in args.skip:
            continue
        first, t = fn(n, dtype, args.repeats)
        work = n * len(SWEEP_POINTS) if key == "sweep" else n
        print(f"  {label:36s} {n:>9,d} samples  {work / t:>12,.0f} samples/s  "
              f"(median {t:.3f} s; compile + first run {first:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
