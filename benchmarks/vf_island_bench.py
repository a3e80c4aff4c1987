"""Batched power flow with a Vf-mode SOP island: bus-major DistFlow vs vmap of the per-sample kernel.

    .venv/bin/python benchmarks/vf_island_bench.py            # 20 000 samples
    .venv/bin/python benchmarks/vf_island_bench.py 100000

IEEE 33 after the fault on branch 2 (2-3); the VSC at bus 8 forms an island in Vf
mode, its VdcQ partner at bus 21 draws the island's power plus both converter
losses from the feeder. Loads scaled by 1 + 0.1 N(0, 1). Both layouts run on the
same samples, interleaved; medians of 5 runs, compile excluded.
"""

import os
import sys
import time

import jax

jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)

import numpy as np  # noqa: E402

import sopjax  # noqa: E402
from sopjax.kernels.radial import VfCoupling  # noqa: E402

from sopjax.jax_config import configure_xla  # noqa: E402

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)


def main(samples: int = 20_000) -> None:
    net = sopjax.ieee33()
    vf_bus, partner = net.bus_index(8), net.bus_index(21)
    vf = VfCoupling(
        vf_bus=np.array([vf_bus]), partner_bus=np.array([partner]), loss_vf=np.array([0.02]),
        loss_partner=np.array([0.02]), q_partner=np.array([0.0]), active=np.array([True]),
    )  # fmt: skip
    topo = sopjax.compile_topology(net, net.branch_status(open=[2]), sources=[vf_bus])
    grid = sopjax.make_grid(net, topo)
    f = 1 + 0.1 * np.random.default_rng(0).standard_normal((samples, net.n_bus))
    p, q = sopjax.shard_samples(net.p_load_pu * f), sopjax.shard_samples(net.q_load_pu * f)
    runs = {
        "vmap of the per-sample kernel (chunks of 64)": sopjax.batched_solver(layout="vmap", chunk_size=64),
        "bus-major DistFlow (default)": sopjax.batched_solver(),
    }
    out = {k: jax.block_until_ready(run(topo, grid, net.f_bus, p, q, vf)) for k, run in runs.items()}
    times = {k: [] for k in runs}
    for _ in range(5):
        for k, run in runs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(run(topo, grid, net.f_bus, p, q, vf))
            times[k].append(time.perf_counter() - t0)
    print(f"IEEE 33, Vf island at bus 8, {samples} samples, {len(jax.local_devices())} JAX devices")
    for k in runs:
        conv = np.asarray(out[k].converged).mean()
        print(f"  {k:46s} {samples / np.median(times[k]):10,.0f} samples/s   converged {conv:.1%}")
    a, b = (np.asarray(r.vm_pu) for r in out.values())
    print(f"  max |dV| between them: {np.abs(a - b).max():.1e} p.u.")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
