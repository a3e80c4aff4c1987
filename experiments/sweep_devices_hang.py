"""Reproduce (or rule out) the XLA CPU hang of a sweep's dispatch split over two host devices.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 \
        timeout 300 python experiments/sweep_devices_hang.py MODE [POINTS] [SAMPLES]

MODE:
  one        no split (one device), the reference;
  shard_map  the pre-fix formulation: jax.shard_map of the batched dispatch over the
             ("sample",) mesh plus with_sharding_constraint(replicated) before the means,
             value and jacfwd jitted as in sopjax.sweeps.runner (one SPMD program, an
             all-gather next to the interior-point while loops);
  library    whatever sopjax.sweeps.runner does now (run_sweep; on CPU the devices' shards run one
             after the other);
  concurrent run_sweep with the shards forced to run concurrently (one shard_map program, no
             collective: the accelerator path) - hangs on CPU with a large enough pool (256
             samples; with NPROC=8 in the environment, a larger XLA intra-op pool, it ran);
  per_sample the per-sample quantities at the first point solved unsplit on one device against
             split over the devices (sopjax.sweeps.devices): their largest differences.
Prints one line per grid point and the values; a hang is killed by `timeout`. Findings, stacks
(sweep_devices_hang_stacks*.txt) and counts: docs/scaleout.md, "Several devices in one process".
"""

import sys
import time

from sopjax.jax_config import configure_xla

configure_xla()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from sopjax.kernels.dispatch import dispatch_batched  # noqa: E402
from sopjax.powerflow import sample_mesh  # noqa: E402
from sopjax.sweeps import (  # noqa: E402
    build_scenario,
    runner,  # noqa: E402
    spec_from_config,
)

CONFIG = {
    "title": "device hang reproducer",
    "network": {
        "case": "ieee33",
        "pv": [{"bus": 7, "s_rated_kva": 300, "pf": 0.95}, {"bus": 30, "s_rated_kva": 200, "pf": 0.95}],
        "sop": [{"pair": [12, 22], "s_rated_kva": 300}, {"pair": [25, 29], "s_rated_kva": 300}],
    },
    "dispatch": {"engine": "jax"},
    "uncertainty": {"pv_forecast_frac": 0.8, "pv": {"kind": "normal", "sigma_frac": 0.1},
                    "load": {"kind": "normal", "sigma_frac": 0.1}},
    "sampling": {"samples": 5, "seed": 1},
    "baseline": {"pv_penetration": 0.3},
    "axis": [{"name": "capacity_mva", "values": [0.05, 0.1, 0.2]}],
    "quantities": ["losses_kw", "vmin_pu"],
}


def shard_map_solver(scn, spec):
    """The formulation of commit f9914f9 (before the CPU opt-out)."""
    from jax.sharding import NamedSharding, PartitionSpec

    n_dev = len(jax.local_devices())
    data = scn.data
    solve = lambda i: dispatch_batched(data, i, tol=spec.tol, max_iter=spec.max_iter)  # noqa: E731
    mesh = sample_mesh(n_dev)
    smp = PartitionSpec("sample")
    sharded = jax.shard_map(solve, mesh=mesh, in_specs=smp, out_specs=smp, check_vma=False)

    def run(inputs):
        n = jax.tree_util.tree_leaves(inputs)[0].shape[0]
        pad = (-n) % n_dev
        padded = jax.tree_util.tree_map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]),
                                        inputs)
        res = jax.tree_util.tree_map(lambda a: a[:n], sharded(padded))
        return jax.lax.with_sharding_constraint(res, NamedSharding(mesh, PartitionSpec()))

    return run


def per_sample_differences(scn, spec, capacity):
    import dataclasses

    import numpy as np

    from sopjax.sweeps.devices import split_over_devices

    def per_sample(theta, p_load, q_load, p_pv):
        shard = dataclasses.replace(scn, p_load=p_load, q_load=q_load, p_pv=p_pv)
        res = dispatch_batched(scn.data, shard.inputs({"capacity_mva": theta[0]}), tol=spec.tol,
                               max_iter=spec.max_iter)
        return runner.sample_quantities(res)

    pool, theta = (scn.p_load, scn.q_load, scn.p_pv), jnp.asarray([capacity])
    one = jax.jit(per_sample)(theta, *pool)
    split = split_over_devices(per_sample, lambda o: o, pool, len(jax.local_devices()))(theta)
    for q in one:
        a, b = np.asarray(one[q]), np.asarray(split[q])
        print(f"  {q:18s} bit-equal samples {int(np.sum(a == b))}/{a.size}, largest difference "
              f"{np.max(np.abs(a - b)):.3g} p.u. ({np.max(np.abs(a - b) / np.abs(a)):.3g} relative)",
              flush=True)


def main():
    mode = sys.argv[1]
    points = [float(v) for v in sys.argv[2].split(",")] if len(sys.argv) > 2 else [0.05, 0.1, 0.2]
    samples = int(sys.argv[3]) if len(sys.argv) > 3 else CONFIG["sampling"]["samples"]
    spec = spec_from_config({**CONFIG, "axis": [{"name": "capacity_mva", "values": points}],
                             "sampling": {"samples": samples, "seed": 1}})
    print(f"jax {jax.__version__}, {len(jax.local_devices())} devices, mode {mode}, {samples} samples",
          flush=True)
    if mode == "concurrent":
        import functools

        from sopjax.sweeps import devices

        runner.split_over_devices = functools.partial(devices.split_over_devices, concurrent=True)
    if mode in ("library", "concurrent"):
        ds = runner.run_sweep(spec)
        for q in ("losses_kw", "vmin_pu"):
            print(q, ds[q].values.tolist(), ds[f"d{q}_dcapacity_mva"].values.tolist(), flush=True)
        return
    scn = build_scenario(spec)
    if mode == "per_sample":
        return per_sample_differences(scn, spec, points[0])
    solve = shard_map_solver(scn, spec) if mode == "shard_map" else None
    f = runner.point_function(scn, spec, ("capacity_mva",), solve=solve)
    value, step = jax.jit(f), jax.jit(jax.jacfwd(f, has_aux=True))
    for c in points:
        t0 = time.perf_counter()
        theta = jnp.asarray([c])
        v, _ = value(theta)
        jax.block_until_ready(v)
        print(f"  {c:g}: value done {time.perf_counter() - t0:.1f} s", flush=True)
        j, _ = step(theta)
        jax.block_until_ready(j)
        print(f"  {c:g}: jacfwd done {time.perf_counter() - t0:.1f} s  "
              f"losses {float(v['losses_kw']):.17g} d {float(j['losses_kw'][0]):.17g}", flush=True)


if __name__ == "__main__":
    main()
