"""Exact DistFlow (branch flow model) on a compiled dispatch tree, pure JAX.

Kid-indexed arrays (see :class:`~sopjax.kernels.dispatch.DispatchData`) with a
trailing batch axis, ``(kid, batch)``: the tree reductions are products with the
dense ``(kid, kid)`` subtree matrix, one GEMM over the batch (for the 33-119 bus
feeders dispatch is used on, the fastest tree reduction on CPU).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from sopjax.kernels.dispatch.data import DispatchData

__all__ = ["FlowConsts", "FlowState", "bus_voltage", "distflow", "fixed_point", "flow_consts", "sweep"]


class FlowConsts(NamedTuple):
    """Per-topology constants of the sweep, shaped to act on ``(kid, batch)`` arrays."""

    T: jax.Array  # (kid, kid) subtree matrix
    r: jax.Array  # (kid, 1) up-branch resistance
    x: jax.Array  # (kid, 1) up-branch reactance
    z2: jax.Array  # (kid, 1) r^2 + x^2
    v0: jax.Array  # scalar: squared substation voltage
    parent: jax.Array  # (kid,) parent's kid index, ``kid`` for the substation


def flow_consts(data: DispatchData, dtype) -> FlowConsts:
    """The sweep's constants of ``data`` in ``dtype`` (``data`` may be traced)."""
    r, x = (jnp.asarray(a, dtype)[:, None] for a in (data.r, data.x))
    return FlowConsts(jnp.asarray(data.subtree, dtype), r, x, r * r + x * x, jnp.asarray(data.v0_sq, dtype),
                      jnp.asarray(data.parent_kid))


class FlowState(NamedTuple):
    """Branch-flow state (kid-indexed, p.u.), ``(kid, batch)``."""

    P: Float[Array, "kid batch"]  # sending-end active flow on each kid's up-branch
    Q: Float[Array, "kid batch"]
    v: Float[Array, "kid batch"]  # |V|^2 at the kid
    v_par: Float[Array, "kid batch"]  # |V|^2 at the kid's parent
    l: Float[Array, "kid batch"]  # |I|^2 on the up-branch


def sweep(k: FlowConsts, pn, qn, l) -> FlowState:
    """One DistFlow sweep from ``l``: flows and voltages, then the updated ``l``.

    ``pn, qn`` are the net loads at the kids (consumption positive), ``(kid, batch)``.
    """
    nb = pn.shape[1]
    PQ = k.T @ jnp.concatenate([pn + k.r * l, qn + k.x * l], axis=1)  # P and Q in one GEMM
    P, Q = PQ[:, :nb], PQ[:, nb:]
    v = k.v0 - k.T.T @ (2.0 * (k.r * P + k.x * Q) - k.z2 * l)
    v_par = jnp.concatenate([v, jnp.broadcast_to(k.v0, (1, nb))])[k.parent]
    return FlowState(P, Q, v, v_par, (P * P + Q * Q) / v_par)


def fixed_point(k: FlowConsts, pn, qn, l, n: int) -> FlowState:
    """Exact DistFlow by ``n`` fixed-point sweeps in ``l`` from ``l``, then one more for the state.

    Unrolled (``lax.scan``) so that it is reverse-differentiable; from a warm start
    near the fixed point a few sweeps reach machine precision (the loss feedback
    contracts by roughly the per-unit voltage drop per sweep).
    """
    l, _ = jax.lax.scan(lambda l, _: (sweep(k, pn, qn, l).l, None), l, None, length=n)
    return sweep(k, pn, qn, l)


def distflow(data: DispatchData, pn, qn, l0=None, *, sweeps: int = 8) -> FlowState:
    """Exact DistFlow by ``sweeps`` fixed-point sweeps in ``l`` from ``l0`` (default 0).

    Args:
        data: from :func:`~sopjax.kernels.dispatch.compile_dispatch`.
        pn, qn: net load at the kids (consumption positive, p.u.), ``(kid,)`` or ``(kid, batch)``.
        l0: starting ``|I|^2`` (same shape), default 0.
        sweeps: fixed-point sweeps.

    Returns:
        :class:`FlowState` with the shape of ``pn``.
    """
    one = jnp.ndim(pn) == 1
    col = (lambda a: jnp.asarray(a)[:, None]) if one else jnp.asarray
    pn, qn = col(pn), col(qn)
    l = jnp.zeros_like(pn) if l0 is None else col(l0)
    fl = fixed_point(flow_consts(data, jnp.result_type(pn, jnp.float32)), pn, qn, l, sweeps)
    return FlowState(*(a[:, 0] for a in fl)) if one else fl


def bus_voltage(data: DispatchData, v_kid: Float[Array, " kid"]) -> Float[Array, " bus"]:
    """Bus voltage magnitudes (p.u.) of one sample from kid ``|V|^2``."""
    at_kid = jnp.sum(data.sel, axis=0)  # 1 at kid buses, 0 at the substation
    return (1.0 - at_kid) * jnp.sqrt(data.v0_sq) + data.sel.T @ jnp.sqrt(jnp.maximum(v_kid, 0.0))
