"""Optimal PQ re-dispatch of strategy rows on sampled loads: the host side of ``optimal`` control.

Per sample and period the JAX dispatch (:mod:`sopjax.kernels.dispatch`) re-optimizes the set-points
of the PQ-mode SOPs within a strategy's switch states; rows that share switch states are solved in
one batched call, and a compiled program is cached per topology and voltage limits. Where the
dispatch does not converge the strategy's fixed set-points are kept and the sample is flagged.
Used by :func:`~sopjax.montecarlo.timeseries.run_timeseries`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.dispatch import DispatchInputs, compile_dispatch, dispatch_batched
from sopjax.kernels.scoring.control import ControlOptions, SetPoints, fixed_setpoints
from sopjax.network import Network
from sopjax.strategies import Strategy, compile_strategies, scoring_context

__all__ = ["optimal_setpoints", "dispatch_rows", "take_rows"]


def take_rows(tree, idx):
    """Rows ``idx`` of every leaf of ``tree`` (leading axis)."""
    return jax.tree_util.tree_map(lambda a: a[idx], tree)


_DISPATCH: dict = {}


def _dispatch_kernel(net, key: bytes, status, ctx, control: ControlOptions):
    """Jitted batched dispatch of one topology (compiled data and program cached by ``key``)."""
    tol, max_iter, stall = control.dispatch_tol, control.dispatch_max_iter, control.dispatch_stall_after
    k = (id(net), key, tol, max_iter, stall)
    if k not in _DISPATCH:
        if len(_DISPATCH) > 256:
            _DISPATCH.clear()
        data = compile_dispatch(
            net,
            status,
            v_min_pu=np.asarray(ctx.v_min_pu, float),
            v_max_pu=np.asarray(ctx.v_max_pu, float),
            allow_deenergized=True,
        )
        _DISPATCH[k] = jax.jit(
            lambda inputs: dispatch_batched(data, inputs, tol=tol, max_iter=max_iter, stall_after=stall)
        )
    return _DISPATCH[k]


def _block(control: ControlOptions, n: int) -> int:
    """Problems per dispatch call (:attr:`ControlOptions.dispatch_block`; ``None``: 256 on CPU, all elsewhere)."""
    if control.dispatch_block is not None:
        return int(control.dispatch_block)
    return 256 if jax.default_backend() == "cpu" else max(n, 1)


def _solve_in_blocks(kernel, inputs: DispatchInputs, block: int):
    """``kernel`` on ``inputs`` (problem, .) in calls of ``block`` problems, results in problem order.

    The last block is padded with copies of the last problem, so one compiled program serves all.
    """
    n = inputs[0].shape[0]
    if n <= block:
        return kernel(inputs)
    pad = -n % block
    padded = jax.tree_util.tree_map(lambda a: jnp.concatenate([a, jnp.repeat(a[-1:], pad, axis=0)]), inputs)
    parts = [kernel(jax.tree_util.tree_map(lambda a: a[s:s + block], padded)) for s in range(0, n + pad, block)]
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs)[:n], *parts)


def _dispatch_group(net, status, rows, ctx, control: ControlOptions, p, q, pv, dtype):
    """Optimal PQ set-points of compiled strategies ``rows`` (stacked, G rows) sharing the switch states
    ``status``, on samples ``p, q, pv`` (G, sample, .): one batched dispatch of G x sample problems.

    Returns (SetPoints (G, sample, sop), converged (G, sample)); the fixed set-points where not converged.
    """
    key = status.tobytes() + np.asarray(ctx.v_min_pu).tobytes() + np.asarray(ctx.v_max_pu).tobytes()
    g, n = p.shape[0], p.shape[1]
    pk = jnp.asarray(rows.pickup, dtype)[:, None, :]
    pq = np.asarray(rows.sop_is_pq)  # (G, sop)
    caps = [jnp.asarray(np.where(pq, np.asarray(c, float)[None, :], 0.0), dtype) for c in
            (net.sop.s_rated_i_pu, net.sop.s_rated_j_pu)]
    flat = lambda a: a.reshape((g * n,) + a.shape[2:])  # noqa: E731
    inputs = DispatchInputs(flat(pk * p), flat(pk * q), flat(pv),
                            *(flat(jnp.broadcast_to(c[:, None, :], (g, n, c.shape[1]))) for c in caps))
    res = _solve_in_blocks(_dispatch_kernel(net, key, status, ctx, control), inputs, _block(control, g * n))
    res = jax.tree_util.tree_map(lambda a: a.reshape((g, n) + a.shape[1:]), res)
    a_i = jnp.asarray(rows.sop_a_is_i)[:, None, :]
    conv = res.converged & jnp.all(jnp.isfinite(res.p_i), axis=-1)
    fx = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype)[:, None, :], jax.vmap(fixed_setpoints)(rows))
    use = conv[..., None] & jnp.asarray(pq)[:, None, :]
    sel = lambda new, old: jnp.where(use, new, old)  # noqa: E731
    sp = SetPoints(
        sel(jnp.where(a_i, res.p_i, res.p_j), fx.p_a),
        sel(jnp.where(a_i, res.q_i, res.q_j), fx.q_a),
        sel(jnp.where(a_i, res.q_j, res.q_i), fx.q_b),
        jnp.broadcast_to(fx.u_a, (g, n, pq.shape[1])),
    )
    return sp, conv


def dispatch_rows(net, batch, rows, ctx, control: ControlOptions, p, q, pv, t_of_row, dtype):
    """Optimal PQ set-points for ``rows``: (SetPoints (row, sample, sop), converged (row, sample)).

    Rows with the same switch states are solved in one batched dispatch call.
    """
    groups: dict[bytes, list[int]] = {}
    for k, r in enumerate(rows):
        groups.setdefault(np.asarray(batch.strategies[r].status, bool).tobytes(), []).append(k)
    parts, order = [], []
    for members in groups.values():
        rr = np.asarray(rows)[members]
        t = jnp.asarray(t_of_row[rr])
        status = np.asarray(batch.strategies[int(rr[0])].status, bool)
        rows_g = take_rows(batch.arrays, rr)
        parts.append(_dispatch_group(net, status, rows_g, ctx, control, p[t], q[t], pv[t], dtype))
        order.extend(members)
    inv = np.argsort(np.asarray(order))
    sp = SetPoints(*(jnp.concatenate(f)[inv] for f in zip(*(x[0] for x in parts))))
    return sp, jnp.concatenate([x[1] for x in parts])[inv]


def optimal_setpoints(
    net: Network,
    strategy: Strategy,
    p_load_pu,
    q_load_pu,
    p_pv_pu,
    *,
    fault_open=(),
    v_min_pu: float = 0.95,
    v_max_pu: float = 1.05,
    control: ControlOptions = ControlOptions(),
):
    """The ``optimal`` re-dispatch of a strategy's PQ-mode SOPs on given samples.

    Per sample: the JAX dispatch (:func:`~sopjax.kernels.dispatch.dispatch_batched`, minimum line
    + converter losses) on the strategy's switch states, with the picked-up sampled load, the PV
    output, the capacities of its PQ-mode SOPs (others 0) and the voltage limits; buses the
    substation does not reach drop out. Where the dispatch does not converge (e.g. no set-point
    holds the voltages in their limits) the strategy's own set-points are returned.

    Args:
        net: the network; strategy: one strategy (validated here).
        p_load_pu, q_load_pu: (sample, bus) sampled loads before pickup; p_pv_pu: (sample, pv).
        fault_open, v_min_pu, v_max_pu: as :class:`~sopjax.montecarlo.MonteCarloSettings`.
        control: dispatch tolerance and iteration limit.

    Returns:
        (:class:`~sopjax.kernels.scoring.control.SetPoints` with (sample, sop) fields in the
        strategy's a/b orientation (a = the PQ VSC), converged (sample,)).
    """
    batch = compile_strategies(net, [strategy], fault_open=fault_open)
    ctx = scoring_context(net, fault_open=fault_open, v_min_pu=v_min_pu, v_max_pu=v_max_pu)
    p, q, pv = (jnp.asarray(a, jnp.float64)[None] for a in (p_load_pu, q_load_pu, p_pv_pu))
    sp, conv = dispatch_rows(net, batch, [0], ctx, control, p, q, pv, np.zeros(1, np.int32), jnp.float64)
    return SetPoints(*(f[0] for f in sp)), conv[0]
