"""A per-sample function of a sweep's sample pool, split over the local JAX devices.

With several local devices (GPUs, or host devices under
``XLA_FLAGS=--xla_force_host_platform_device_count=N``) the sweep's JAX dispatch engine
splits its Monte Carlo sample pool along the sample axis, like the Monte Carlo engine
(:mod:`sopjax.montecarlo.chunks`):

1. the pool is padded to a multiple of the device count (repeating its last sample) and
   each device gets its share;
2. each device computes the per-sample quantities (and, for the derivative, their
   forward-mode tangents) of its share, the parameters replicated; no program holds a
   collective (a sample's dispatch does not depend on the other samples);
3. the per-sample outputs are moved to the first device and a second jitted program drops
   the padding and reduces them (the Monte Carlo means).

Step 2 runs **concurrently** on accelerators (one ``jax.shard_map`` program over a
``("sample",)`` mesh, :func:`sopjax.powerflow.sample_mesh`) and **one device after the
other** on the CPU backend. Why: the interior-point dispatch's batched LU (LAPACK
``getrf`` through jaxlib's ``ParallelBatchMap``) splits a large batch into tasks on XLA's
intra-op thread pool (as many threads as cores) and blocks its thread until they finish.
Host devices running it at the same time each block a pool thread; once every pool thread
is blocked (2 devices on 2 cores) no thread is left to run the tasks, and the process hangs
(captured with a 256-sample pool: ``experiments/sweep_devices_hang_stacks.txt``, both
``tf_XLAEigen`` threads in ``BlockingCounter::Wait`` under ``lapack_dgetrf_ffi``). Host
devices share the same cores, whose intra-op pool already spreads a large batch, so the
order costs little (measured in docs/scaleout.md). Results equal the one-device run to round-off (a sample's batched solve differs
in the last bits with the batch size); see docs/scaleout.md.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from sopjax.powerflow import sample_mesh

__all__ = ["split_over_devices"]


def split_over_devices(per_sample: Callable, finish: Callable, pool: tuple, n_dev: int, *,
                       concurrent: bool | None = None) -> Callable:
    """``theta -> finish(per_sample(theta, *pool))`` with ``pool`` split over ``n_dev`` local devices.

    Args:
        per_sample: ``(theta, *pool_shard) -> pytree`` whose every leaf has the shard's
            sample axis first (``pool_shard``: each pool array's rows of one device).
        finish: reduction of the whole pool's per-sample pytree (padding removed), run on
            the first local device.
        pool: arrays with a common leading sample axis ``(n, ...)``.
        n_dev: local devices to split over (``2 <= n_dev <= len(jax.local_devices())``).
        concurrent: run the devices' shards at the same time (one ``shard_map`` program);
            default: yes except on the CPU backend, where they run one after another
            (see the module docstring).

    Returns:
        A function of ``theta`` returning ``finish``'s output.
    """
    from jax.sharding import NamedSharding, PartitionSpec

    n = int(pool[0].shape[0])
    pad = (-n) % n_dev
    padded = tuple(jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]) for a in map(jnp.asarray, pool))
    reduce = jax.jit(lambda out: finish(jax.tree_util.tree_map(lambda a: a[:n], out)))
    devices = jax.local_devices()[:n_dev]
    first = devices[0]
    if concurrent is None:
        concurrent = jax.default_backend() != "cpu"
    if concurrent:
        mesh = sample_mesh(n_dev)
        placed = tuple(jax.device_put(a, NamedSharding(mesh, PartitionSpec("sample"))) for a in padded)
        in_specs = (PartitionSpec(),) + (PartitionSpec("sample"),) * len(pool)  # theta replicated
        parts = jax.jit(jax.shard_map(per_sample, mesh=mesh, in_specs=in_specs,
                                      out_specs=PartitionSpec("sample"), check_vma=False))

        def run(theta):
            return reduce(jax.device_put(parts(theta, *placed), first))

        return run

    m = padded[0].shape[0] // n_dev
    shards = [tuple(jax.device_put(a[k * m:(k + 1) * m], d) for a in padded) for k, d in enumerate(devices)]
    part = jax.jit(per_sample)  # runs where its arguments are (compiled once per device)

    def run_one_by_one(theta):
        outs = []
        for d, shard in zip(devices, shards):
            out = jax.block_until_ready(part(jax.device_put(theta, d), *shard))  # one device at a time
            outs.append(jax.device_put(out, first))
        return reduce(jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *outs))

    return run_one_by_one
