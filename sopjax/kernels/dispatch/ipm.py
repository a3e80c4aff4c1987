"""The dispatch interior-point method: one ``init / step`` iteration over ``(rows, batch)`` arrays.

Primal-dual, with slacks and Mehrotra's centring (predictor for the centring
parameter, no second-order corrector), on the rows ``c(x) >= 0`` and objective ``F``
of :mod:`~sopjax.kernels.dispatch.problem`. The capacity and DC-balance rows are kept
strictly feasible by backtracking (strongly curved for small capacities); the
voltage and rating rows are reached through their slacks. The KKT residuals are
exact (one reverse pass through the DistFlow fixed point); the Newton matrix uses a
Gauss-Newton Hessian and the constant LinDistFlow sensitivities of ``P, Q, v`` to
``x`` (one GEMM of per-sample weights with a constant table), so the model only sets
the rate. Typically 15-30 iterations. One sample is a batch of one; with the batch
as the long side the reductions are GEMMs, and the SOP rows' Jacobian (two to four
nonzeros a row) is written out row by row.
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
    Consts, Params, Problem, col, constraints, flow, huber_derivatives, lagrangian, q_rows, smoothing,
    sop_rows, split,
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


def _analytic_jacobian(data: DispatchData, th: Params, x) -> tuple[list, tuple]:
    """Analytic rows' Jacobian (``rows[r]``: ``(column, value)`` pairs) and ``(A, Huber Hessian)`` per VSC."""
    ns = data.n_sop
    pi, qi, pj, qj = split(ns, x)
    hi = huber_derivatives(pi, qi, smoothing(th.s_i))
    hj = huber_derivatives(pj, qj, smoothing(th.s_j))
    Ai, Aj = col(data.loss_i, x.dtype), col(data.loss_j, x.dtype)
    (gi, _), (gj, _) = hi, hj
    rows = [[(kk, -pi[kk] / th.s_i[kk]), (ns + kk, -qi[kk] / th.s_i[kk])] for kk in range(ns)]
    rows += [[(2 * ns + kk, -pj[kk] / th.s_j[kk]), (3 * ns + kk, -qj[kk] / th.s_j[kk])] for kk in range(ns)]
    rows += [[(kk, -1.0 - Ai[kk] * gi[0][kk]), (ns + kk, -Ai[kk] * gi[1][kk]),
              (2 * ns + kk, -1.0 - Aj[kk] * gj[0][kk]), (3 * ns + kk, -Aj[kk] * gj[1][kk])]
             for kk in range(ns)]
    one = jnp.ones_like(pi[0])
    rows += [[(int(qc), sign * one)] for sign in (-1.0, 1.0) for qc in q_rows(data)[3]]  # reactive limits
    return rows, ((Ai, hi[1]), (Aj, hj[1]))


def _newton_matrix(data: DispatchData, k: Consts, th: Params, z, s, fl: FlowState, rows, hess) -> list:
    """``H + J^T D J`` (``D = z / s``) as a nested list ``M[a][b]`` of (batch,) arrays.

    Flow terms: Gauss-Newton with the LinDistFlow sensitivities (weights times the table
    ``O_t``); the analytic (SOP) rows are exact.
    """
    ns, nk = data.n_sop, data.n_kid
    nx, na = 4 * ns, len(rows)
    D = z / s
    wl = 2 * k.flow.r / fl.v_par
    wv = 2 * data.voltage_weight + D[na : na + nk] + D[na + nk : na + 2 * nk]
    flat = k.O_t @ jnp.concatenate([wl, wl, wv])  # (upper triangle, batch)
    rk = data.rate_kid
    if np.shape(rk)[0]:
        rate = col(data.rate, z.dtype)
        zr, Dr = z[-rate.shape[0] :] / rate, D[-rate.shape[0] :] / rate**2
        P, Q, GP, GQ = fl.P[rk], fl.Q[rk], k.GP[rk], k.GQ[rk]
        iu = np.triu_indices(nx)
        op = lambda A, B: (A[:, :, None] * B[:, None, :])[:, iu[0], iu[1]].T  # noqa: E731
        flat = flat + op(GP, GP) @ (zr + Dr * P * P) + op(GQ, GQ) @ (zr + Dr * Q * Q)
        flat = flat + (op(GP, GQ) + op(GQ, GP)) @ (Dr * P * Q)
    M = [[None] * nx for _ in range(nx)]
    for n, (a, b) in enumerate(zip(*np.triu_indices(nx))):
        M[a][b] = M[b][a] = flat[n]
    for r, row in enumerate(rows):
        for a, va in row:
            for b, vb in row:
                M[a][b] = M[a][b] + D[r] * va * vb
    # -sum z Hess c of the SOP rows: capacity rows -|s|^2 / (2 S), DC rows -A x Huber norm
    for side, (zc, S, (A, H)) in enumerate(((z[:ns], th.s_i, hess[0]), (z[ns : 2 * ns], th.s_j, hess[1]))):
        f = z[2 * ns : 3 * ns] * A
        for kk in range(ns):
            cols = (2 * side * ns + kk, (2 * side + 1) * ns + kk)
            for a in range(2):
                for b in range(2):
                    e = M[cols[a]][cols[b]] + zc[kk] / S[kk] if a == b else M[cols[a]][cols[b]]
                    M[cols[a]][cols[b]] = e + f[kk] * H[a][b][kk]
    return M


def _rating_jacobian(data: DispatchData, k: Consts, fl: FlowState):
    """Jacobian of the rating rows (rated, nx, batch), None without ratings."""
    rk = data.rate_kid
    if not np.shape(rk)[0]:
        return None
    rate = jnp.asarray(data.rate, fl.P.dtype)[:, None, None]
    P, Q = fl.P[rk][:, None, :], fl.Q[rk][:, None, :]
    return -(P * k.GP[rk][:, :, None] + Q * k.GQ[rk][:, :, None]) / rate


def _jmul(k: Consts, rows, Jr, dx):
    """``J dx`` (m, batch)."""
    gv = k.Gv @ dx
    an = [sum((v * dx[a] for a, v in row), start=jnp.zeros_like(dx[0])) for row in rows]
    parts = [jnp.stack(an), gv, -gv]
    if Jr is not None:
        parts.append(jnp.einsum("rxb,xb->rb", Jr, dx))
    return jnp.concatenate(parts)


def _jtmul(k: Consts, rows, Jr, y):
    """``J^T y`` (nx, batch)."""
    nk, na = k.Gv.shape[0], len(rows)
    out = k.Gv.T @ (y[na : na + nk] - y[na + nk : na + 2 * nk])
    cols = [out[a] for a in range(out.shape[0])]
    for r, row in enumerate(rows):
        for a, v in row:
            cols[a] = cols[a] + v * y[r]
    out = jnp.stack(cols)
    return out if Jr is None else out + jnp.einsum("rxb,rb->xb", Jr, y[na + 2 * nk :])


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
    zero = jnp.zeros_like(kappa)
    x0 = jnp.concatenate([-kappa, zero, -kappa, zero])
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
    rows, hess = _analytic_jacobian(data, th, st.x)
    Jr = _rating_jacobian(data, k, fl)
    M = _newton_matrix(data, k, th, st.z, s, fl, rows, hess)
    nx = len(M)
    reg = 1e-12 * (1.0 + jnp.max(jnp.stack([M[a][a] for a in range(nx)]), axis=0))
    for a in range(nx):
        M[a][a] = M[a][a] + reg
    L = cholesky(M)
    mu = jnp.sum(s * st.z, axis=0) / m
    D = st.z / s

    def direction(comp):
        # (H + J^T D J) dx = -r_d + J^T (comp / s - D (c - s)),  comp = target - s z (per row)
        dx = cho_solve(L, -rd + _jtmul(k, rows, Jr, comp / s - D * (c - s)))
        ds = c - s + _jmul(k, rows, Jr, dx)
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
    healthy = jnp.all(jnp.isfinite(new.x), axis=0) & jnp.all(jnp.isfinite(new.z), axis=0)
    healthy = healthy & jnp.all(jnp.isfinite(new.l), axis=0)
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
    nf = 3 * data.n_sop
    s = jnp.concatenate([c[:nf], st.s[nf:]])
    return st.x, st.z, s, fl.l, st.it, st.conv, jnp.maximum(0.0, -jnp.min(c, axis=0))
