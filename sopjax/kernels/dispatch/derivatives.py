"""Implicit derivatives of the dispatch at the interior-point method's solution ``(x*, z*)``, one sample.

The set-points and duals carry the implicit-function derivative of the perturbed KKT
conditions (exact Hessian of the Lagrangian of :mod:`~sopjax.kernels.dispatch.problem`,
forward-over-reverse through the converged DistFlow, in a ``custom_jvp``); the
objective the envelope-theorem one, ``dF*/dtheta = dL/dtheta`` at fixed ``(x*, z*)``,
with no linear solve (under ``jit`` a gradient of the objective alone builds no KKT
matrix). Capacities below ``CAPACITY_FLOOR_PU`` are raised to it with a
straight-through gradient; at a capacity that stops binding the set-points get one
of their one-sided derivatives (see docs/dispatch.md).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sopjax.kernels.dispatch.data import DispatchData, DispatchInputs, DispatchResult
from sopjax.kernels.dispatch.flow import bus_voltage
from sopjax.kernels.dispatch.problem import Params, consts, lagrangian, params, problem, split

__all__ = ["dispatch_solution", "setpoint_tangents"]


def _lagrangian(data: DispatchData, th: Params, x, z, l, sweeps: int):
    """The iteration's Lagrangian of one sample (a batch of one): ``(L, (F, c, fl))``, no batch axis."""
    k = consts(data, jnp.result_type(th.p_load.dtype, jnp.float32))
    pb = problem(data, jax.tree_util.tree_map(lambda a: a[:, None], th))
    lag, aux = lagrangian(data, k, pb, x[:, None], z[:, None], l[:, None], sweeps)
    return lag, jax.tree_util.tree_map(lambda a: a[..., 0], aux)


def dispatch_solution(data: DispatchData, inputs: DispatchInputs, state, *,
                      final_sweeps: int = 6) -> DispatchResult:
    """The :class:`DispatchResult` of one sample at the final ``state`` of :func:`dispatch_state`."""
    x_s, z_s, s_s, l_s, it, converged, infeas = state
    x_s, z_s, s_s, l_s = (jax.lax.stop_gradient(a) for a in (x_s, z_s, s_s, l_s))
    th = params(inputs)
    # a sample that did not converge keeps its last iterate and gets no derivative
    # (failure is data: no NaN in its outputs or gradients)
    ok = converged & jnp.all(s_s > 0)
    x, z = _kkt_point(final_sweeps, data, x_s, z_s, s_s, l_s, ok, th)
    _, (_, _, fl) = _lagrangian(data, th, x, z, l_s, final_sweeps)  # the flow at x, with its derivative
    pi, qi, pj, qj = split(ns := data.n_sop, x)
    lag, (F, _, _) = _lagrangian(data, th, x_s, z_s, l_s, final_sweeps)
    envelope = jnp.where(ok, lag - jax.lax.stop_gradient(lag), 0.0)
    return DispatchResult(p_i=pi, q_i=qi, p_j=pj, q_j=qj, converter_loss=-(pi + pj),
                          line_loss=jnp.sum(data.r * fl.l), objective=jax.lax.stop_gradient(F) + envelope,
                          vm_pu=bus_voltage(data, fl.v), cap_dual_i=z[:ns], cap_dual_j=z[ns : 2 * ns],
                          converged=converged, iterations=it, infeasibility=infeas)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _kkt_point(final_sweeps: int, data: DispatchData, x_s, z_s, s_s, l_s, ok, th: Params):
    """``(x*, z*)`` as a function of ``th``: the solver's value, the implicit-function derivative."""
    return x_s, z_s


@_kkt_point.defjvp
def _kkt_point_jvp(final_sweeps, primals, tangents):
    """Tangent of the KKT point: :func:`_kkt_tangents` of a batch of one, one direction."""
    data, *state, th = primals  # x, z, s, l, ok of one sample: a batch of one
    batch1 = functools.partial(jax.tree_util.tree_map, lambda a: a[..., None])
    dths = jax.tree_util.tree_map(lambda a: a[None, ..., None], tangents[-1])
    dx, dz = _kkt_tangents(final_sweeps, data, batch1(th), *batch1(state), dths)
    return tuple(state[:2]), (dx[0, :, 0], dz[0, :, 0])


def _kkt_tangents(final_sweeps: int, data: DispatchData, th: Params, x, z, s, l, ok, dths: Params):
    """Tangents of the KKT points of a batch in several parameter directions.

    Solves ``[H, -J^T; Z J, S] [dx; dz] = [-d(grad_x L); -Z dc]`` per sample and direction, with
    the ``nx`` rows of largest ``z / s`` kept and the others (inactive, small ``z / s``)
    eliminated by ``dz = -(z / s) (J dx + dc)``: exact, and well-conditioned, where condensing
    every row (``(H + J^T (Z/S) J) dx``) scales the active ones by up to 1e12 and was off by up
    to 6 % (duals) and 1e-4 (set-points). One ``(2 nx)``-square LU per sample serves every
    direction. ``H`` and ``J`` come from one forward-mode direction per set-point applied to
    the whole batch (its samples are independent), in the iteration's ``(rows, batch)`` layout.

    Args:
        th: parameters, ``(field, batch)``.
        x, z, s, l: the final iterate, ``(rows, batch)``.
        ok: samples with a derivative, (batch,); the others get zero tangents.
        dths: parameter tangents, ``(direction, field, batch)``.

    Returns:
        ``(dx (direction, nx, batch), dz (direction, m, batch))``.
    """
    k = consts(data, jnp.result_type(th.p_load.dtype, jnp.float32))

    def kkt_rows(th, x):
        g, (_, c, _) = jax.grad(lambda x: lagrangian(data, k, problem(data, th), x, z, l, final_sweeps),
                                has_aux=True)(x)
        return g, c

    nx, m = x.shape[0], z.shape[0]
    basis = jnp.broadcast_to(jnp.eye(nx, dtype=x.dtype)[:, :, None], (nx,) + x.shape)
    batch_first = functools.partial(jax.tree_util.tree_map, lambda a: jnp.transpose(a, (2, 1, 0)))
    Hx, Jx = batch_first(jax.vmap(lambda e: jax.jvp(lambda x: kkt_rows(th, x), (x,), (e,))[1])(basis))
    dg, dc = batch_first(jax.vmap(lambda d: jax.jvp(lambda th: kkt_rows(th, x), (th,), (d,))[1])(dths))
    D = (z / s).T
    act = jnp.argsort(-D, axis=1)[:, :min(nx, m)]  # the kept rows, (batch, k)
    D_rest = jnp.put_along_axis(D, act, 0.0, axis=1, inplace=False)
    J_a, D_a = jnp.take_along_axis(Jx, act[:, :, None], 1), jnp.take_along_axis(D, act, 1)
    M = 0.5 * (Hx + jnp.swapaxes(Hx, 1, 2)) + jnp.einsum("bri,br,brj->bij", Jx, D_rest, Jx)
    K = jnp.block([[M, jnp.swapaxes(J_a, 1, 2)], [J_a, jax.vmap(jnp.diag)(-1.0 / D_a)]])
    rhs = jnp.concatenate([-dg - jnp.einsum("bri,br,brd->bid", Jx, D_rest, dc),
                           -jnp.take_along_axis(dc, act[:, :, None], 1)], 1)
    good = (ok & jnp.all(jnp.isfinite(K), axis=(1, 2)))[:, None, None]
    sol = jax.scipy.linalg.lu_solve(jax.scipy.linalg.lu_factor(jnp.where(good, K, jnp.eye(K.shape[1]))), rhs)
    dx = jnp.where(good, sol[:, :nx], 0.0)
    dz = (-D_rest[:, :, None] * (jnp.einsum("bri,bid->brd", Jx, dx) + dc)).at[
        jnp.arange(len(D))[:, None], act].set(-sol[:, nx:])  # the kept rows: dz = -w
    return jnp.transpose(dx, (2, 1, 0)), jnp.transpose(jnp.where(good, dz, 0.0), (2, 1, 0))


def setpoint_tangents(data: DispatchData, inputs: DispatchInputs, state, d_inputs: DispatchInputs, *,
                      final_sweeps: int = 6):
    """Implicit derivatives of the set-points of a batch in several input directions.

    What ``jax.jvp`` of :func:`dispatch_solution` gives, for a whole batch and several
    directions at once: the KKT matrices are built in the batch layout and factorized
    once per sample; ``vmap`` of the one-sample ``custom_jvp`` rule builds and
    factorizes them per sample and direction.

    Args:
        data: from :func:`~sopjax.kernels.dispatch.compile_dispatch`.
        inputs: inputs with one leading batch axis.
        state: the final state of :func:`~sopjax.kernels.dispatch.dispatch_state_batch`.
        d_inputs: input tangents, ``(batch, direction, ...)``.

    Returns:
        ``(p_i, q_i, p_j, q_j)`` tangents, each ``(batch, direction, sop)``; zero where a
        sample did not converge.
    """
    x, z, s, l, _, converged, _ = (jax.lax.stop_gradient(a) for a in state)
    dths = jax.vmap(lambda d: jax.jvp(params, (inputs,), (d,))[1], in_axes=1, out_axes=2)(d_inputs)
    tr = functools.partial(jax.tree_util.tree_map, lambda a: a.T)  # to the (rows, batch) layout
    dx, _ = _kkt_tangents(final_sweeps, data, tr(params(inputs)), *tr((x, z, s, l)),
                          converged & jnp.all(s > 0, axis=1), tr(dths))
    return tuple(jnp.transpose(a, (2, 1, 0)) for a in split(data.n_sop, jnp.swapaxes(dx, 0, 1)))
