"""Block size (samples per bus-major block) of the batched sweep: CPU time per block size.

    .venv/bin/python benchmarks/block_size_bench.py ieee33 50000 64,128,250,256,500,512,1000
    .venv/bin/python benchmarks/block_size_bench.py pp:lv_schutterwald 1024 32,64,128,256

One JAX CPU device; every block size is compiled first, then the sizes are timed
in interleaved rounds. Reported: process CPU time (less sensitive than wall time
to other jobs on a shared machine) and the implied samples/s per core.
"""

import sys
import time

import jax

jax.config.update("jax_num_cpu_devices", 1)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from sopjax.bench.cases import bench_case  # noqa: E402
from sopjax.bench.powerflow_bench import make_samples  # noqa: E402
from sopjax.kernels.sweep_batch import default_block, sweep_batch  # noqa: E402
from sopjax.powerflow import make_grid  # noqa: E402
from sopjax.topology import compile_topology  # noqa: E402

from sopjax.jax_config import configure_xla  # noqa: E402

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)


def main(case: str, samples: int, blocks: list[int], rounds: int = 3) -> None:
    bc = bench_case(case)
    net = bc.net
    topo = compile_topology(net, bc.status)
    grid = make_grid(net, topo)
    p, q = make_samples(net, samples)
    args = (
        jax.tree_util.tree_map(jnp.asarray, topo),
        jax.tree_util.tree_map(jnp.asarray, grid),
        jnp.asarray(net.f_bus),
        jnp.asarray(p),
        jnp.asarray(q),
    )
    fns = {}
    for b in blocks:
        fns[b] = jax.jit(lambda *a, b=b: (lambda r: (r.vm_pu, r.iterations))(sweep_batch(*a, block=b)))
        jax.block_until_ready(fns[b](*args))
    cpu = {b: [] for b in blocks}
    for _ in range(rounds):
        for b, f in fns.items():
            t0 = time.process_time()
            jax.block_until_ready(f(*args))
            cpu[b].append(time.process_time() - t0)
    print(f"{net.name}: {net.n_bus} buses, {samples} samples, default block {default_block(net.n_bus)}")
    print(f"  {'block':>6}{'CPU s (min)':>13}{'CPU s (median)':>16}{'samples/s per core':>20}")
    for b in blocks:
        print(f"  {b:>6}{min(cpu[b]):>13.3f}{np.median(cpu[b]):>16.3f}{samples / min(cpu[b]):>20,.0f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), [int(b) for b in sys.argv[3].split(",")])
