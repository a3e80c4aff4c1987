"""A per-sample function of a sweep's sample pool, split over the local JAX devices.

With several local devices (GPUs, or host devices under
``XLA_FLAGS=--xla_force_host_platform_device_count=N``) the sweep's JAX dispatch engine
splits its Monte Carlo sample pool along the sample axis, like the Monte Carlo engine
(:mod:`sopjax.montecarlo.chunks`):

1. the pool is padded to a multiple of the device count (repeating its last sample) and
   placed once, split over a ``("sample",)`` mesh (:func:`sopjax.powerflow.sample_mesh`);
2. one jitted ``jax.shard_map`` program computes the per-sample quantities (and, for the
   derivative, their forward-mode tangents) of each device's share; the parameters are
   replicated, and the program holds **no collective** (a sample's dispatch does not
   depend on the other samples);
3. the per-sample outputs are moved to the first device (a transfer outside any program)
   and a second jitted program drops the padding and reduces them (the Monte Carlo means).

Why two programs and not one sharded program with an all-gather before the means: that
program (the interior-point while loops of two host devices next to an all-gather) hung once
on XLA's CPU backend (jaxlib 0.10.2); it was not reproduced since
(``experiments/sweep_devices_hang.py``), but no program here holds a collective. Results
equal the one-device run to round-off (a sample's batched solve differs in the last bits
with the batch size); see docs/scaleout.md.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from sopjax.powerflow import sample_mesh

__all__ = ["split_over_devices"]


def split_over_devices(per_sample: Callable, finish: Callable, pool: tuple, n_dev: int) -> Callable:
    """``theta -> finish(per_sample(theta, *pool))`` with ``pool`` split over ``n_dev`` local devices.

    Args:
        per_sample: ``(theta, *pool_shard) -> pytree`` whose every leaf has the shard's
            sample axis first (``pool_shard``: each pool array's rows of one device).
        finish: reduction of the whole pool's per-sample pytree (padding removed), run on
            the first local device.
        pool: arrays with a common leading sample axis ``(n, ...)``.
        n_dev: local devices to split over (``2 <= n_dev <= len(jax.local_devices())``).

    Returns:
        A function of ``theta`` (replicated on every device) returning ``finish``'s output.
    """
    from jax.sharding import NamedSharding, PartitionSpec

    mesh = sample_mesh(n_dev)
    n = int(pool[0].shape[0])
    pad = (-n) % n_dev
    split = NamedSharding(mesh, PartitionSpec("sample"))
    placed = tuple(jax.device_put(jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), split)
                   for a in map(jnp.asarray, pool))
    in_specs = (PartitionSpec(),) + (PartitionSpec("sample"),) * len(pool)  # theta replicated, the pool split
    parts = jax.jit(jax.shard_map(per_sample, mesh=mesh, in_specs=in_specs, out_specs=PartitionSpec("sample"),
                                  check_vma=False))
    reduce = jax.jit(lambda out: finish(jax.tree_util.tree_map(lambda a: a[:n], out)))
    first = jax.local_devices()[0]

    def run(theta):
        return reduce(jax.device_put(parts(theta, *placed), first))

    return run
