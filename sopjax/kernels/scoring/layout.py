"""Execution layout of scoring: :func:`score_sample` over strategies x samples.

The layout changes speed only: per sample, the scores do not depend on the
other samples or strategies of the batch (:func:`score_batch`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from sopjax.kernels.scoring.arrays import ScoringContext, StrategyArrays
from sopjax.kernels.scoring.options import ScoringOptions
from sopjax.kernels.scoring.sample import SampleScore, net_load, score_flow, score_sample
from sopjax.kernels.sweep_batch import sweep_batch

__all__ = ["blocked_map", "score_batch", "score_strategy"]


def blocked_map(f, xs, block: int):
    """``jax.vmap(f)`` over the leading axis of ``xs`` evaluated in blocks of ``block`` (a ``lax.scan``).

    Equivalent to ``jax.lax.map(f, xs, batch_size=block)``, which in JAX 0.10 flattens the
    stacked blocks with ``reshape(-1, *rest)``: an output with a zero-size trailing axis
    (e.g. the SOP fields of a network without SOPs, shape ``(sample, 0)``) makes that reshape
    divide by zero. Here every reshape names its sizes.
    """
    leaves = jax.tree_util.tree_leaves(xs)
    n = leaves[0].shape[0]
    nb, rem = divmod(n, block)
    vf = jax.vmap(f)
    head = nb * block
    outs = []
    if nb:
        blocks = jax.tree_util.tree_map(lambda x: x[:head].reshape((nb, block) + x.shape[1:]), xs)
        _, ys = jax.lax.scan(lambda c, x: (c, vf(x)), None, blocks)
        outs.append(jax.tree_util.tree_map(lambda y: y.reshape((head,) + y.shape[2:]), ys))
    if rem:
        outs.append(vf(jax.tree_util.tree_map(lambda x: x[head:], xs)))
    if len(outs) == 1:
        return outs[0]
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b], axis=0), *outs)


def score_batch(
    ctx: ScoringContext,
    st: StrategyArrays,
    p_load_pu: Float[Array, "sample bus"],
    q_load_pu: Float[Array, "sample bus"],
    p_pv_pu: Float[Array, "sample pv"],
    options: ScoringOptions = ScoringOptions(),
) -> SampleScore:
    """:func:`score_sample` over stacked strategies x samples: outputs (strategy, sample, ...).

    Layout (``options.strategy_axis``, ``options.sample_block``): a vmapped
    ``while_loop`` iterates until its slowest lane converges, so one sample near
    voltage collapse (100 sweeps) would hold back a whole batch that needs 8.
    ``"map"`` therefore loops over strategies (``lax.map``) and vmaps samples in
    blocks of ``sample_block`` (:func:`blocked_map`): a slow lane only
    holds back its own block, and the blocks stay cache-sized. ``"vmap"`` vmaps
    strategies too (one wide batch: the better choice on a GPU).

    With ``"map"`` and the exact sweep, the power flow of a strategy's samples is
    by default one bus-major batched call (``options.sweep_layout``): the net loads
    are formed per sample, :func:`~sopjax.kernels.sweep_batch.sweep_batch` solves
    them (Vf-mode islands included), and :func:`score_flow` scores each sample.
    Per sample, the results do not depend on the other samples of the chunk.
    """
    if options.sweep_layout not in ("bus_major", "per_sample"):
        raise ValueError(f"sweep_layout must be 'bus_major' or 'per_sample', got {options.sweep_layout!r}")
    def one(s, layout):
        opts = dataclasses.replace(options, sweep_layout=layout)
        return score_strategy(ctx, s, p_load_pu, q_load_pu, p_pv_pu, opts)

    if options.strategy_axis == "vmap":
        return jax.vmap(lambda s: one(s, "per_sample"))(st)
    if options.strategy_axis != "map":
        raise ValueError(f"strategy_axis must be 'map' or 'vmap', got {options.strategy_axis!r}")
    return jax.lax.map(lambda s: one(s, options.sweep_layout), st)

def score_strategy(
    ctx: ScoringContext,
    s: StrategyArrays,
    p_load_pu: Float[Array, "sample bus"],
    q_load_pu: Float[Array, "sample bus"],
    p_pv_pu: Float[Array, "sample pv"],
    options: ScoringOptions = ScoringOptions(),
) -> SampleScore:
    """One strategy ``s`` (no leading axis) on a set of samples: outputs (sample, ...).

    The exact sweep with ``options.sweep_layout == "bus_major"`` solves all samples in one
    bus-major batched call (:func:`~sopjax.kernels.sweep_batch.sweep_batch`, Vf-mode islands
    included) and scores each sample from its result (:func:`score_flow`); otherwise
    :func:`score_sample` is vmapped in blocks of ``options.sample_block``.
    """
    if options.method == "sweep" and options.sweep_layout == "bus_major":
        p_net, q_net = jax.vmap(lambda p, q, pv: net_load(ctx, s, p, q, pv))(p_load_pu, q_load_pu, p_pv_pu)
        res = sweep_batch(s.topo, s.grid, ctx.f_bus, p_net, q_net, tol=options.tol, max_iter=options.max_iter,
                          vf=s.vf)
        return jax.vmap(lambda p, r: score_flow(ctx, s, p, r, options))(p_load_pu, res)
    f = lambda x: score_sample(ctx, s, x[0], x[1], x[2], options)  # noqa: E731
    if options.sample_block is None or options.sample_block >= p_load_pu.shape[0]:
        return jax.vmap(f)((p_load_pu, q_load_pu, p_pv_pu))
    return blocked_map(f, (p_load_pu, q_load_pu, p_pv_pu), options.sample_block)
