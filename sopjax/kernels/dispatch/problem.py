"""The dispatch problem in the SOP set-points: parameters, rows, objective, Lagrangian.

The variables are the 4 x sop set-points ``x = [p_i; q_i; p_j; q_j]`` (injections into
the AC buses); the branch flows are the exact DistFlow fixed point at ``x``
(:mod:`~sopjax.kernels.dispatch.flow`). Rows ``c(x) >= 0``, in this order (m rows)::

    cap   (2 sop)  (S^2 - |s|^2) / (2 S)                       VSC i then VSC j  } kept strictly
    dc    (sop)    -(p_i + p_j) - A_i |s_i|_h - A_j |s_j|_h     (L_i + L_j >= A|s|) } feasible
    qlim  (2 nq)   q_rel_max S - q,  q - q_rel_min S            (limits tighter than S)
    vlo   (kid)    v - v_min^2
    vhi   (kid)    v_max^2 - v
    rate  (rated)  (rate^2 - P^2 - Q^2) / (2 rate)

``|s|_h`` is ``|s|`` Huber-rounded inside ``|s| < delta`` (:func:`smoothing`); the SOP
rows are concave. Objective (converter loss ``-(p_i + p_j)`` at the DC balance):
``F(x) = sum r l - sum (p_i + p_j) + w sum (v - 1)^2``. Arrays are ``(rows, batch)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.dispatch.data import CAPACITY_FLOOR_PU, DispatchData, DispatchInputs
from sopjax.kernels.dispatch.flow import FlowConsts, FlowState, fixed_point, flow_consts

__all__ = ["Consts", "Params", "Problem", "col", "consts", "constraints", "flow", "lagrangian", "local_rows",
           "params", "problem", "row_sop", "smoothing", "sop_rows", "split"]

# Huber radius of the converter-loss norm (p.u.; at most A * delta / 2 of extra loss
# per idle VSC) and its cap as a fraction of the VSC's capacity (see smoothing)
LOSS_SMOOTHING_PU = 5e-5
LOSS_SMOOTHING_REL = 0.1


class Params(NamedTuple):
    """Parameters after flooring (what the kernel differentiates); ``(field, batch)`` in the iteration."""

    p_load: jax.Array
    q_load: jax.Array
    p_pv: jax.Array
    s_i: jax.Array
    s_j: jax.Array


def params(inputs: DispatchInputs) -> Params:
    """The :class:`Params` of ``inputs`` (capacities floored, straight-through gradient)."""
    return Params(inputs.p_load_pu, inputs.q_load_pu, inputs.p_pv_pu,
                  _floor_capacity(inputs.s_rated_i_pu), _floor_capacity(inputs.s_rated_j_pu))


def _floor_capacity(s):
    """max(s, floor) with a straight-through gradient: the right derivative at s = 0."""
    return s + jax.lax.stop_gradient(jnp.maximum(s, CAPACITY_FLOOR_PU) - s)


class Consts(NamedTuple):
    """Per-topology constants; matrices act on ``(rows, batch)`` arrays from the left."""

    flow: FlowConsts
    inc_p: jax.Array  # (kid, nx): net-load decrease at the kids per unit of x (active)
    inc_q: jax.Array  # (kid, nx): (reactive)
    Gv: jax.Array  # (kid, nx): LinDistFlow d v / d x
    GP: jax.Array  # (kid, nx): d P / d x
    GQ: jax.Array  # (kid, nx): d Q / d x
    O_t: jax.Array  # (nx (nx + 1) / 2, 3 kid): products of the columns of [GP; GQ; Gv], upper triangle


def consts(data: DispatchData, dtype) -> Consts:
    """The iteration's constants of ``data`` in ``dtype``."""
    fc = flow_consts(data, dtype)
    inc_p, inc_q = jnp.asarray(data.inc_p, dtype), jnp.asarray(data.inc_q, dtype)
    GP, GQ = -fc.T @ inc_p, -fc.T @ inc_q
    Gv = -fc.T.T @ (2 * fc.r * GP + 2 * fc.x * GQ)
    G = jnp.concatenate([GP, GQ, Gv])
    nx = G.shape[1]
    ia, ib = np.triu_indices(nx)
    # outer products, then the upper triangle's rows: XLA does not fold this into a
    # constant; folded (as from G[:, ia] * G[:, ib]), XLA splits the Newton matrix's
    # GEMM with the stacked weights into three and the iteration runs ~10 % slower
    O = (G[:, :, None] * G[:, None, :]).reshape(G.shape[0], nx * nx)
    return Consts(fc, inc_p, inc_q, Gv, GP, GQ, O.T[ia * nx + ib])


class Problem(NamedTuple):
    """What the iteration of a (sub-)batch needs besides its state (the batch is every leaf's last axis)."""

    th: Params  # (field, batch)
    base: tuple  # net loads at the kids without the SOPs, 2 x (kid, batch)


def problem(data: DispatchData, th: Params) -> Problem:
    """The :class:`Problem` of parameters ``th`` (``(field, batch)``), differentiable in ``th``."""
    dtype = th.p_load.dtype
    sel, inc_pv = jnp.asarray(data.sel, dtype), jnp.asarray(data.inc_pv, dtype)
    q_pv = th.p_pv * jnp.asarray(data.pv_tan, dtype)[:, None]
    return Problem(th, (sel @ th.p_load - inc_pv @ th.p_pv, sel @ th.q_load - inc_pv @ q_pv))


def split(ns: int, x) -> tuple:
    """``(p_i, q_i, p_j, q_j)``, each ``(sop, ...)``, from ``x`` (4 sop, ...)."""
    return tuple(x[a * ns : (a + 1) * ns] for a in range(4))


def smoothing(S):
    """Huber radius of each VSC: LOSS_SMOOTHING_PU, at most LOSS_SMOOTHING_REL x its capacity.

    Tied to the capacity so that a tiny VSC still sees its marginal loss ``A`` (a fixed
    radius made its derivative at capacity 0 4.7x the SOC model's). No gradient.
    """
    return jax.lax.stop_gradient(jnp.minimum(LOSS_SMOOTHING_PU, LOSS_SMOOTHING_REL * S))


def _huber_norm(p, q, d):
    """|(p, q)| for |s| >= d, |s|^2 / (2 d) + d / 2 inside (C^1, convex)."""
    r2 = p * p + q * q
    return jnp.where(r2 >= d * d, jnp.sqrt(jnp.maximum(r2, d * d)), r2 / (2 * d) + d / 2)


def _q_rows(data: DispatchData):
    """Reactive-limit rows: side (0: i, 1: j) and SOP index, and the column of its ``q``."""
    side, k = np.divmod(np.asarray(data.q_lim_rows, dtype=np.int32), max(data.n_sop, 1))
    return side, k, (2 * side + 1) * data.n_sop + k


def row_sop(data: DispatchData, dtype):
    """The SOP of each row of :func:`local_rows`, one-hot (rows, sop) in ``dtype``."""
    k = np.concatenate([np.tile(np.arange(data.n_sop), 3), *2 * [_q_rows(data)[1]]])
    return jnp.asarray(np.eye(data.n_sop)[k], dtype)


def col(a, dtype):
    """``a`` (n,) as a column (n, 1) in ``dtype``."""
    return jnp.asarray(a, dtype)[:, None]


def sop_rows(data: DispatchData, th: Params, x):
    """Capacity and DC-balance rows (3 sop, batch); ``x`` may have leading axes."""
    ns = data.n_sop
    pi, qi, pj, qj = (x[..., a * ns : (a + 1) * ns, :] for a in range(4))
    Ai, Aj = col(data.loss_i, x.dtype), col(data.loss_j, x.dtype)
    dc = -(pi + pj) - Ai * _huber_norm(pi, qi, smoothing(th.s_i))
    dc = dc - Aj * _huber_norm(pj, qj, smoothing(th.s_j))
    cap_i = (th.s_i**2 - pi**2 - qi**2) / (2 * th.s_i)
    return jnp.concatenate([cap_i, (th.s_j**2 - pj**2 - qj**2) / (2 * th.s_j), dc], axis=-2)


def _q_limits(data: DispatchData, th: Params, x):
    """Reactive-limit rows (2 nq, batch): ``q_rel_max S - q`` then ``q - q_rel_min S``."""
    side, kk, qcol = _q_rows(data)
    q, S = x[qcol], jnp.concatenate([th.s_i, th.s_j])[side * data.n_sop + kk]
    qmax = jnp.asarray(data.q_rel_max, x.dtype)[kk, side][:, None]
    qmin = jnp.asarray(data.q_rel_min, x.dtype)[kk, side][:, None]
    return jnp.concatenate([qmax * S - q, q - qmin * S])


def local_rows(data: DispatchData, th: Params, x):
    """The rows in closed form (3 sop + 2 nq, batch): capacity, DC balance, reactive limits.

    Each is a function of one SOP's four set-points (:func:`row_sop`).
    """
    return jnp.concatenate([sop_rows(data, th, x), _q_limits(data, th, x)])


def _grid_rows(data: DispatchData, fl: FlowState):
    """Voltage rows (2 kid, batch), then rating rows (rated, batch)."""
    rate, P, Q = col(data.rate, fl.v.dtype), fl.P[data.rate_kid], fl.Q[data.rate_kid]
    return jnp.concatenate([fl.v - col(data.vmin_sq, fl.v.dtype), col(data.vmax_sq, fl.v.dtype) - fl.v,
                            (rate**2 - P * P - Q * Q) / (2 * rate)])


def constraints(data: DispatchData, th: Params, x, fl: FlowState):
    """All rows ``c(x)`` (m, batch) at the flow ``fl`` of ``x``."""
    return jnp.concatenate([local_rows(data, th, x), _grid_rows(data, fl)])


def flow(k: Consts, pb: Problem, x, l, n: int) -> FlowState:
    """Exact DistFlow at set-points ``x`` by ``n`` sweeps from ``l`` (reverse-differentiable in ``x``)."""
    return fixed_point(k.flow, pb.base[0] - k.inc_p @ x, pb.base[1] - k.inc_q @ x, l, n)


def lagrangian(data: DispatchData, k: Consts, pb: Problem, x, z, l, n: int):
    """``(sum over the batch of F - z . c, (F, c, fl))``; ``F`` (batch,), ``c`` (m, batch)."""
    fl = flow(k, pb, x, l, n)
    pi, _, pj, _ = split(data.n_sop, x)
    F = jnp.sum(k.flow.r * fl.l, axis=0) - jnp.sum(pi + pj, axis=0)
    F = F + data.voltage_weight * jnp.sum((fl.v - 1.0) ** 2, axis=0)
    c = constraints(data, pb.th, x, fl)
    return jnp.sum(F) - jnp.sum(z * c), (F, c, fl)
