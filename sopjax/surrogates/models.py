"""Power-flow surrogates in equinox, written for one sample (``jax.vmap`` them over a batch).

Both map the graph features of :mod:`sopjax.surrogates.features` to normalized
corrections of the LinDistFlow state: node (bus, 2) and edge (branch, 2) outputs.

* :class:`MLP` is tied to one feeder size: it flattens all node and edge inputs
  (switch states included, so it covers reconfigurations of that feeder).
* :class:`GNN` passes messages along the closed branches (both directions, shared
  weights over ``rounds`` rounds, residual node updates), so the same weights run on
  any topology and any feeder size.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from sopjax.surrogates.errors import SurrogateError
from sopjax.surrogates.features import EDGE_IN, EDGE_OUT, NODE_IN, NODE_OUT

__all__ = ["GNN", "MLP", "MODEL_KINDS", "make_model"]


def _mlp(key, d_in: int, d_out: int, width: int, depth: int) -> eqx.nn.MLP:
    return eqx.nn.MLP(d_in, d_out, width, depth, activation=jax.nn.silu, dtype=jnp.float32, key=key)


class MLP(eqx.Module):
    """Fully connected surrogate of one feeder (fixed bus and branch counts)."""

    net: eqx.nn.MLP
    n_bus: int = eqx.field(static=True)
    n_branch: int = eqx.field(static=True)

    def __init__(self, n_bus: int, n_branch: int, *, width: int = 256, depth: int = 3, key):
        d_in = n_bus * NODE_IN + n_branch * EDGE_IN
        self.net = _mlp(key, d_in, n_bus * NODE_OUT + n_branch * EDGE_OUT, width, depth)
        self.n_bus, self.n_branch = n_bus, n_branch

    def __call__(self, node, edge, f_bus, t_bus):
        nb, ne = node.shape[0], edge.shape[0]
        if (nb, ne) != (self.n_bus, self.n_branch):
            raise SurrogateError(
                f"this MLP was built for {self.n_bus} buses and {self.n_branch} branches, "
                f"the network has {nb} buses and {ne} branches (use the GNN across feeders)"
            )
        out = self.net(jnp.concatenate([node.ravel(), edge.ravel()]))
        return out[: nb * NODE_OUT].reshape(nb, NODE_OUT), out[nb * NODE_OUT :].reshape(ne, EDGE_OUT)


class GNN(eqx.Module):
    """Message passing along the feeder's closed branches; any topology, any size."""

    enc_node: eqx.nn.MLP
    enc_edge: eqx.nn.MLP
    message: eqx.nn.MLP
    update: eqx.nn.MLP
    dec_node: eqx.nn.MLP
    dec_edge: eqx.nn.MLP
    rounds: int = eqx.field(static=True)

    def __init__(self, *, width: int = 64, rounds: int = 12, key):
        k = jax.random.split(key, 6)
        w = width
        self.enc_node = _mlp(k[0], NODE_IN, w, w, 1)
        self.enc_edge = _mlp(k[1], EDGE_IN, w, w, 1)
        self.message = _mlp(k[2], 3 * w + 1, w, w, 1)
        self.update = _mlp(k[3], 2 * w, w, w, 1)
        self.dec_node = _mlp(k[4], w, NODE_OUT, w, 2)
        self.dec_edge = _mlp(k[5], 3 * w, EDGE_OUT, w, 2)
        self.rounds = int(rounds)

    def __call__(self, node, edge, f_bus, t_bus):
        closed = edge[:, 2:3]  # the closed flag (features.FeatureSet.model_inputs)
        h = jax.vmap(self.enc_node)(node)
        e = jax.vmap(self.enc_edge)(edge)
        n_bus = node.shape[0]
        ones = jnp.ones((edge.shape[0], 1), node.dtype)
        msg = jax.vmap(self.message)
        upd = jax.vmap(self.update)

        def one_round(h, _):
            down = msg(jnp.concatenate([h[f_bus], h[t_bus], e, ones], axis=1)) * closed  # f -> t
            up = msg(jnp.concatenate([h[t_bus], h[f_bus], e, -ones], axis=1)) * closed  # t -> f
            agg = jax.ops.segment_sum(down, t_bus, num_segments=n_bus) + jax.ops.segment_sum(
                up, f_bus, num_segments=n_bus
            )
            return h + upd(jnp.concatenate([h, agg], axis=1)), None

        h, _ = jax.lax.scan(one_round, h, None, length=self.rounds)
        out_e = jax.vmap(self.dec_edge)(jnp.concatenate([h[f_bus], h[t_bus], e], axis=1))
        return jax.vmap(self.dec_node)(h), out_e


MODEL_KINDS = ("mlp", "gnn")


def make_model(
    kind: str, *, n_bus: int, n_branch: int, width: int, depth: int = 3, rounds: int = 12, seed: int = 0
) -> eqx.Module:
    """A fresh model of ``kind`` (``"mlp"`` or ``"gnn"``) initialized from ``seed``."""
    key = jax.random.key(seed)
    if kind == "mlp":
        return MLP(n_bus, n_branch, width=width, depth=depth, key=key)
    if kind == "gnn":
        return GNN(width=width, rounds=rounds, key=key)
    raise SurrogateError(f"unknown model kind {kind!r}; choose from {list(MODEL_KINDS)}")
