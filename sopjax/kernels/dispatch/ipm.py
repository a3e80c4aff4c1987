"""The dispatch interior-point method: one ``init / step`` iteration over ``(rows, batch)`` arrays.

Primal-dual, with slacks and Mehrotra's centring (predictor for the centring
parameter, no second-order corrector), on the rows ``c(x) >= 0`` and objective ``F``
of :mod:`~sopjax.kernels.dispatch.problem`. The capacity and DC-balance rows are kept
strictly feasible by backtracking (strongly curved for small capacities); the
voltage and rating rows are reached through their slacks. The KKT residuals are
exact (one reverse pass through the DistFlow fixed point); the Newton matrix uses a
Gauss-Newton Hessian and the constant LinDistFlow sensitivities of ``P, Q, v`` to
``x`` (one GEMM of per-sample weights with a constant table), so the model only sets
the rate; the closed-form SOP rows enter with their exact derivatives (forward-mode
AD, per SOP). Typically 15-30 iterations. One sample is a batch of one; with the batch
as the long side the reductions are GEMMs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.dispatch.cholesky import cho_solve, cholesky
from sopjax.kernels.dispatch.data import DispatchData
from sopjax.kernels.dispatch.flow import FlowState
from sopjax.kernels.dispatch.problem import (
    Consts, Params, Problem, col, constraints, flow, lagrangian, local_rows, row_sop, sop_rows,
)

__all__ = ["State", "finish", "init", "select", "step"]

# the start draws at most this fraction of the total active load per VSC (see init)
START_DRAW_FRAC = 0.01
# centring target >= this x KKT residual (see step)
MU_RESIDUAL = 1e-3
# backtracking factors tried on the SOP rows
_SHRINK = 0.5 ** np.arange(16)
# stall test (see step): the primal residual is compared every STALL_WINDOW iterations and
# must fall below STALL_RATIO x its value at the last comparison
STALL_WINDOW = 10
STALL_RATIO = 0.9


def _local_derivatives(data: DispatchData, th: Params, x):
    """Jacobian ``J`` (rows, batch, 4) and Hessians ``H`` (rows, batch, 4, 4) of :func:`local_rows`.

    Each row depends on its own SOP's four set-points only, so moving set-point ``a``
    of every SOP at once gives each row's partial derivative in its SOP's ``a``: all
    rows' derivatives in 4 (Jacobian) and 16 (Hessians) forward directions, whatever
    the SOP count. ``a`` runs over ``p_i, q_i, p_j, q_j``.
    """
    ns = data.n_sop
    f = lambda u: local_rows(data, th, x + jnp.repeat(u, ns)[:, None])  # noqa: E731
    u = jnp.zeros(4, x.dtype)
    return jax.jacfwd(f)(u), jax.jacfwd(jax.jacfwd(f))(u)


def _newton_matrix(data: DispatchData, k: Consts, z, s, fl: FlowState, J, H, Jr):
    """``H + J^T D J`` (``D = z / s``), (nx, nx, batch).

    Flow terms: Gauss-Newton with the LinDistFlow sensitivities (weights times the table
    ``O_t``; a rating row's curvature ``-(P^2 + Q^2) / (2 rate)`` is ``1 / rate`` on its
    branch's ``P`` and ``Q``); the local rows are exact.
    """
    ns, nk, na = data.n_sop, data.n_kid, J.shape[0]
    nx, D = 4 * ns, z / s
    wl = (2 * k.flow.r / fl.v_par).at[data.rate_kid].add(z[na + 2 * nk :] / col(data.rate, z.dtype))
    wv = 2 * data.voltage_weight + D[na : na + nk] + D[na + nk : na + 2 * nk]
    # the table holds the upper triangle: index it symmetrically
    tri = np.zeros((nx, nx), int)
    tri[np.triu_indices(nx)] = tri.T[np.triu_indices(nx)] = np.arange(nx * (nx + 1) // 2)
    M = (k.O_t @ jnp.concatenate([wl, wl, wv]))[tri]  # (nx, nx, batch)
    M = M + jnp.einsum("rab,rcb->acb", Jr * D[na + 2 * nk :, None], Jr)  # rating rows' J^T D J
    # local rows: D J J^T - z Hess c, summed per SOP; block diagonal in the SOPs
    W = D[:na, :, None, None] * J[..., :, None] * J[..., None, :] - z[:na, :, None, None] * H
    W = jnp.einsum("rk,rnab->akbn", row_sop(data, z.dtype), W)  # (4, sop, 4, batch)
    return M + (W[:, :, :, None] * jnp.eye(ns, dtype=z.dtype)[:, None, :, None]).reshape(nx, nx, -1)


def _rating_jacobian(data: DispatchData, k: Consts, fl: FlowState):
    """Jacobian of the rating rows (rated, nx, batch), LinDistFlow sensitivities of ``P, Q``."""
    rk, rate = data.rate_kid, col(data.rate, fl.P.dtype)[:, None]
    return -(fl.P[rk][:, None] * k.GP[rk][:, :, None] + fl.Q[rk][:, None] * k.GQ[rk][:, :, None]) / rate


def _jmul(data: DispatchData, k: Consts, J, Jr, dx):
    """``J dx`` (m, batch); linear in ``dx`` (its transpose is ``J^T y``)."""
    gv = k.Gv @ dx
    # dx_row[r, :, a]: step of set-point a of row r's SOP
    dx_row = jnp.einsum("rk,akn->rna", row_sop(data, dx.dtype), dx.reshape(4, data.n_sop, -1))
    local = jnp.sum(J * dx_row, axis=-1)
    return jnp.concatenate([local, gv, -gv, jnp.einsum("rxb,xb->rb", Jr, dx)])


def _max_step(v, dv):
    """Per sample, the largest alpha in (0, 1] with v + alpha dv >= 0 (v > 0); rows on axis 0."""
    ratio = jnp.where(dv < 0, -v / jnp.where(dv < 0, dv, -1.0), jnp.inf)
    return jnp.minimum(1.0, jnp.min(ratio, axis=0))


class State(NamedTuple):
    """Iterate of a batch."""

    x: jax.Array  # (nx, batch) set-points
    s: jax.Array  # (m, batch) slacks
    z: jax.Array  # (m, batch) multipliers
    l: jax.Array  # (kid, batch) |I|^2 (warm start of the sweeps)
    it: jax.Array  # (batch,) iterations
    stop: jax.Array  # (batch,) converged or broken down
    conv: jax.Array  # (batch,) KKT tolerances met
    mark: jax.Array  # (batch,) primal residual at the last stall test


def select(mask, a, b):
    """``a`` where ``mask`` (batch,), else ``b`` (the batch is the last axis of every leaf)."""
    return jax.tree_util.tree_map(lambda u, v: jnp.where(mask, u, v), a, b)


def init(data: DispatchData, k: Consts, pb: Problem) -> State:
    """A start strictly feasible for the SOP rows: no reactive power, both VSCs draw ``kappa``.

    ``kappa = min(S_min / 2, START_DRAW_FRAC * total load)``: any ``0 < kappa < S_min`` is
    feasible, and the load cap keeps large capacities from starting at a draw that
    collapses the voltages (S_min / 2 = 2.5 MW per VSC diverged).
    """
    th, nf = pb.th, 3 * data.n_sop
    nb = th.p_load.shape[-1]
    load = jnp.maximum(jnp.sum(jnp.abs(th.p_load), axis=0), 1e-3)
    kappa = jnp.minimum(0.5 * jnp.minimum(th.s_i, th.s_j), START_DRAW_FRAC * load)
    x0 = jnp.concatenate([-kappa, 0 * kappa, -kappa, 0 * kappa])
    fl0 = flow(k, pb, x0, jnp.zeros((data.n_kid, nb), x0.dtype), 8)
    c0 = constraints(data, th, x0, fl0)
    s0 = jnp.concatenate([c0[:nf], jnp.maximum(c0[nf:], 1e-3)])
    z0 = 1e-3 / jnp.maximum(s0, 1e-3)
    return State(x0, s0, z0, fl0.l, jnp.zeros(nb, jnp.int32), jnp.zeros(nb, bool), jnp.zeros(nb, bool),
                 jnp.full(nb, jnp.inf, x0.dtype))


def step(data: DispatchData, k: Consts, pb: Problem, st: State, *, tol: float, sweeps: int,
         stall_after: int = 0) -> State:
    """One interior-point update of every running sample (stopped samples stay as they are).

    With ``stall_after > 0``, from that iteration on a sample stops unconverged when its
    primal residual fell by less than ``1 - STALL_RATIO`` over the last ``STALL_WINDOW``
    iterations: with no set-point inside the voltage limits the residual stays put while
    the multipliers grow, and such a sample would otherwise run to ``max_iter``.
    """
    th, nf = pb.th, 3 * data.n_sop
    grad = jax.value_and_grad(lagrangian, argnums=3, has_aux=True)
    (_, (_, c, fl)), rd = grad(data, k, pb, st.x, st.z, st.l, sweeps)
    m = c.shape[0]
    s = jnp.concatenate([c[:nf], st.s[nf:]])  # the SOP rows' slacks are the rows themselves
    J, Jr = _local_derivatives(data, th, st.x), _rating_jacobian(data, k, fl)
    M = _newton_matrix(data, k, st.z, s, fl, *J, Jr)
    diag = np.diag_indices(M.shape[0])  # a ridge 1e-12 x its largest diagonal entry
    L = cholesky(M.at[diag].add(1e-12 * (1.0 + jnp.max(M[diag], axis=0))))
    jmul = lambda dx: _jmul(data, k, J[0], Jr, dx)  # noqa: E731
    jtmul = lambda y: jax.linear_transpose(jmul, st.x)(y)[0]  # noqa: E731
    mu = jnp.sum(s * st.z, axis=0) / m
    D = st.z / s

    def direction(comp):
        # (H + J^T D J) dx = -r_d + J^T (comp / s - D (c - s)),  comp = target - s z (per row)
        dx = cho_solve(L, -rd + jtmul(comp / s - D * (c - s)))
        ds = c - s + jmul(dx)
        return dx, ds, comp / s - D * ds

    # predictor (affine scaling)
    _, dsa, dza = direction(-s * st.z)
    ap, ad = _max_step(s, dsa), _max_step(st.z, dza)
    sigma = jnp.clip((jnp.sum((s + ap * dsa) * (st.z + ad * dza), axis=0) / m / mu) ** 3, 0.0, 1.0)
    # corrector: Mehrotra's centring without his second-order term (which made nearly
    # idle VSCs oscillate); a target above a fraction of the KKT residual keeps the
    # iterate from freezing at the boundary while the residuals are still large
    e_d = jnp.max(jnp.abs(rd), axis=0)
    e_p = jnp.max(jnp.abs(c - s), axis=0)
    mu_target = jnp.maximum(sigma * mu, jnp.minimum(mu, MU_RESIDUAL * jnp.maximum(e_d, e_p)))
    # materialized: fused into the backtracking, the solve would be redone per trial step
    dx, ds, dz = jax.lax.optimization_barrier(direction(mu_target - s * st.z))
    tau = jnp.maximum(0.95, 1.0 - mu)
    ap = jnp.minimum(1.0, tau * _max_step(s, ds))
    ad = jnp.minimum(1.0, tau * _max_step(st.z, dz))
    # backtrack until the SOP rows stay strictly feasible, only where the full step is not
    floor = (1.0 - tau) * c[:nf]
    ok = jnp.all(sop_rows(data, th, st.x + ap * dx) >= floor, axis=0)
    ap = jax.lax.cond(jnp.all(ok), lambda: ap, lambda: _backtrack(data, th, st.x, dx, ap, floor))
    conv = (e_d <= tol) & (e_p <= tol) & (mu <= tol) & jnp.isfinite(mu)
    test = (st.it % STALL_WINDOW == 0) if stall_after else jnp.zeros_like(conv)
    stalled = test & (st.it >= stall_after) & (e_p > STALL_RATIO * st.mark) & ~conv
    mark = jnp.where(test, e_p, st.mark)
    new = State(st.x + ap * dx, jnp.maximum(s + ap * ds, 1e-300), jnp.maximum(st.z + ad * dz, 1e-300),
                fl.l, st.it + 1, conv, conv, mark)
    healthy = jnp.all(jnp.isfinite(jnp.concatenate([new.x, new.z, new.l])), axis=0)
    # keep the converged (or last healthy) iterate
    old = st._replace(s=s, it=st.it + 1, stop=jnp.ones_like(conv), conv=conv)
    return select(st.stop, st, select(conv | ~healthy | stalled, old, new))


def _backtrack(data: DispatchData, th: Params, x, dx, ap, floor):
    """The first of ``ap``, ``ap / 2``, ... ``ap / 2^15`` that keeps the SOP rows above ``floor`` (else 0)."""
    alphas = ap[None, :] * jnp.asarray(_SHRINK, ap.dtype)[:, None]  # (try, batch)
    ok = jnp.all(sop_rows(data, th, x[None] + alphas[:, None, :] * dx[None]) >= floor[None], axis=1)
    first = jnp.take_along_axis(alphas, jnp.argmax(ok, axis=0)[None], 0)[0]
    return jnp.where(jnp.any(ok, axis=0), first, 0.0)


def finish(data: DispatchData, k: Consts, pb: Problem, st: State, sweeps: int):
    """``(x, z, s, l, iterations, converged, infeasibility)``, batch last: ``l`` and the SOP
    slacks refreshed by ``2 x sweeps`` sweeps, the largest violation (p.u.)."""
    fl = flow(k, pb, st.x, st.l, 2 * sweeps)
    c = constraints(data, pb.th, st.x, fl)
    s = jnp.concatenate([c[: 3 * data.n_sop], st.s[3 * data.n_sop :]])
    return st.x, st.z, s, fl.l, st.it, st.conv, jnp.maximum(0.0, -jnp.min(c, axis=0))
