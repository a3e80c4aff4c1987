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

__all__ = ["dispatch_solution"]


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
    ns = data.n_sop
    pi, qi, pj, qj = split(ns, x)
    lag, (F, _, _) = _lagrangian(data, th, x_s, z_s, l_s, final_sweeps)
    envelope = jnp.where(ok, lag - jax.lax.stop_gradient(lag), 0.0)
    return DispatchResult(
        p_i=pi, q_i=qi, p_j=pj, q_j=qj, converter_loss=-(pi + pj), line_loss=jnp.sum(data.r * fl.l),
        objective=jax.lax.stop_gradient(F) + envelope, vm_pu=bus_voltage(data, fl.v),
        cap_dual_i=z[:ns], cap_dual_j=z[ns : 2 * ns],
        converged=converged, iterations=it, infeasibility=infeas,
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _kkt_point(final_sweeps: int, data: DispatchData, x_s, z_s, s_s, l_s, ok, th: Params):
    """``(x*, z*)`` as a function of ``th``: the solver's value, the implicit-function derivative."""
    return x_s, z_s


@_kkt_point.defjvp
def _kkt_point_jvp(final_sweeps, primals, tangents):
    """Tangent of the KKT point: solve ``[H, -J^T; Z J, S] [dx; dz] = [-d(grad_x L); -Z dc]``.

    Unreduced: condensed to ``(H + J^T (Z/S) J) dx``, as in the iteration, the active
    rows are scaled by ``z / s`` up to 1e11 and the derivatives were off by up to 6 %.
    """
    data, x_s, z_s, s_s, l_s, ok, th = primals
    dth = tangents[-1]

    def kkt_rows(th, x):
        g, (_, c, _) = jax.grad(_lagrangian, argnums=2, has_aux=True)(data, th, x, z_s, l_s, final_sweeps)
        return g, c

    Hx, Jx = jax.jacfwd(lambda x: kkt_rows(th, x))(x_s)
    Hx = 0.5 * (Hx + Hx.T)
    nx, m = x_s.shape[0], z_s.shape[0]
    K = jnp.block([[Hx, -Jx.T], [z_s[:, None] * Jx, jnp.diag(s_s)]])
    K = jnp.where(ok & jnp.all(jnp.isfinite(K)), K, jnp.eye(nx + m, dtype=K.dtype))
    _, (dg, dc) = jax.jvp(lambda th: kkt_rows(th, x_s), (th,), (dth,))
    sol = jnp.linalg.solve(K, -jnp.concatenate([dg, z_s * dc]))
    dx, dz = sol[:nx], sol[nx:]
    return (x_s, z_s), (jnp.where(ok, dx, 0.0), jnp.where(ok, dz, 0.0))
