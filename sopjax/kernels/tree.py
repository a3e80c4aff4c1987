"""O(bus) tree reductions on a :class:`~sopjax.topology.Topology`, for one sample.

Both reductions are a gather, a cumulative sum and a gather: no Python loop over
buses and no bus x bus matrix, so work and memory are O(bus) per sample and the
compiled program does not grow with the network.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Inexact

from sopjax.topology import Topology


def subtree_sum(topo: Topology, x: Inexact[Array, " bus"]) -> Inexact[Array, " bus"]:
    """Sum of ``x`` over each bus's subtree (the bus and everything downstream).

    In depth-first preorder a subtree is the contiguous slice
    ``[position, subtree_end)``, so its sum is a difference of prefix sums.
    """
    c = jnp.cumsum(x[topo.preorder])
    c = jnp.concatenate([jnp.zeros((1,), x.dtype), c])
    return c[topo.subtree_end] - c[topo.position]


def path_sum(topo: Topology, d: Inexact[Array, " bus"]) -> Inexact[Array, " bus"]:
    """Sum of ``d`` over each bus and its ancestors up to (and including) its source.

    Along the Euler tour a bus enters with +d and leaves with -d; the prefix sum
    at a bus's entry therefore holds exactly the values of its open ancestors.
    """
    signed = jnp.concatenate([d, -d])[topo.tour]
    return jnp.cumsum(signed)[topo.entry]
