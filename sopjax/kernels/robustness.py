"""Worst-case sensitivity region (Gunawan & Azarm 2004; seed 001 eqs. 1-4), pure JAX, batched.

For a design with objectives ``f(delta)`` of normalized parameter deviations ``delta`` (one row
per design, ``delta = 0`` the nominal point), the worst-case sensitivity region is the largest
L_p ball ``||delta||_p <= R_W`` inside which every objective deviates by at most its
tolerance::

    R_W = min ||delta||_p   s.t.   max_i |f_i(delta) - f_i(0)| / tol_i >= 1

Two estimates, both batched over designs (the leading axis of ``delta``):

* :func:`first_order_radius`: linearize ``f`` at 0: ``R_i = tol_i / ||grad f_i||_q`` with ``q``
  the dual exponent of ``p`` (``1/p + 1/q = 1``), ``R_W = min_i R_i``. Exact for affine ``f``.
* :func:`worst_case_radius`: bisection on the radius with an inner projected-gradient
  maximization of the worst normalized deviation ``g(delta) = max_i |f_i(delta) - f_i(0)| / tol_i``
  over the ball, started from the first-order worst directions. The ball of the returned
  radius holds no point the search found with ``g > 1``; the next bisection radius above
  holds one (or it is ``r_max``).

Derivatives are forward-mode (``jax.jvp``, one per uncertain parameter), so ``f`` may contain
``lax.while_loop`` solvers (the power-flow sweep, the dispatch IPM with implicit derivatives).
Supported ``p``: 1, 2 and ``inf``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["RadiusResult", "dual_exponent", "lp_norm", "project_ball", "jacobian_fwd", "first_order_radius",
           "worst_deviation", "worst_case_radius"]

Fun = Callable[[Float[Array, "design param"]], Float[Array, "design objective"]]
# delta -> (objectives, their Jacobian (design, objective, param))
JacFun = Callable[[Float[Array, "design param"]], tuple[Float[Array, "design objective"], Array]]


class RadiusResult(NamedTuple):
    """Worst-case radius of each design.

    Attributes:
        radius: refined radius R_W (normalized deviation units), (design,).
        first_order: first-order estimate, (design,).
        worst_delta: the worst deviation found at the first radius above ``radius``, (design, param).
        worst_ratio: ``g`` at ``worst_delta`` (> 1 unless the radius hit ``r_max``), (design,).
    """

    radius: Float[Array, " design"]
    first_order: Float[Array, " design"]
    worst_delta: Float[Array, "design param"]
    worst_ratio: Float[Array, " design"]


def dual_exponent(p: float) -> float:
    """``q`` with ``1/p + 1/q = 1`` (``p`` in {1, 2, inf})."""
    p = float(p)
    if p not in (1.0, 2.0, math.inf):
        raise ValueError(f"p must be 1, 2 or inf, got {p}")
    return math.inf if p == 1.0 else (1.0 if p == math.inf else 2.0)


def lp_norm(x: Float[Array, "*batch n"], p: float) -> Float[Array, "*batch"]:
    """The L_p norm over the last axis (``p`` in {1, 2, inf})."""
    if p == math.inf:
        return jnp.max(jnp.abs(x), -1)
    if p == 1:
        return jnp.sum(jnp.abs(x), -1)
    return jnp.sqrt(jnp.sum(x * x, -1))


def _project_l1(x, r):
    """Euclidean projection of rows of ``x`` onto ``||.||_1 <= r`` (Duchi et al. 2008)."""
    a = jnp.abs(x)
    u = -jnp.sort(-a, axis=-1)
    css = jnp.cumsum(u, -1)
    k = jnp.arange(1, x.shape[-1] + 1, dtype=x.dtype)
    cond = u - (css - r[..., None]) / k > 0
    rho = jnp.sum(cond, -1)
    theta = (jnp.take_along_axis(css, jnp.maximum(rho - 1, 0)[..., None], -1)[..., 0] - r) / jnp.maximum(rho, 1)
    proj = jnp.sign(x) * jnp.maximum(a - jnp.maximum(theta, 0.0)[..., None], 0.0)
    return jnp.where((jnp.sum(a, -1) <= r)[..., None], x, proj)


def project_ball(x: Float[Array, "*batch n"], r: Float[Array, "*batch"], p: float) -> Float[Array, "*batch n"]:
    """Project each row of ``x`` onto the L_p ball of radius ``r`` (Euclidean projection)."""
    if p == math.inf:
        return jnp.clip(x, -r[..., None], r[..., None])
    if p == 1:
        return _project_l1(x, r)
    n = lp_norm(x, 2)
    return x * jnp.minimum(1.0, r / jnp.maximum(n, 1e-300))[..., None]


def jacobian_fwd(fun: Fun, delta: Float[Array, "design param"]):
    """``(f(delta), J)`` with ``J[d, i, k] = d f_i / d delta_k`` of design ``d`` (one JVP per parameter).

    ``fun`` must treat designs independently (row ``d`` of the output depends on row ``d`` only).
    """
    n_u = delta.shape[-1]
    eye = jnp.eye(n_u, dtype=delta.dtype)
    tangents = jnp.broadcast_to(eye[:, None, :], (n_u, *delta.shape))
    f0 = fun(delta)
    cols = jax.vmap(lambda t: jax.jvp(fun, (delta,), (t,))[1])(tangents)  # (param, design, objective)
    return f0, jnp.moveaxis(cols, 0, -1)


def _steepest(grad, p):
    """The unit-L_p-ball direction maximizing ``grad . d`` (the dual-norm maximizer), per row."""
    if p == math.inf:
        return jnp.sign(grad)
    if p == 1:
        k = jnp.argmax(jnp.abs(grad), -1)
        return jax.nn.one_hot(k, grad.shape[-1], dtype=grad.dtype) * jnp.sign(
            jnp.take_along_axis(grad, k[..., None], -1))
    return grad / jnp.maximum(lp_norm(grad, 2), 1e-300)[..., None]


def first_order_radius(jac: Float[Array, "*batch objective param"], tol: Float[Array, "*batch objective"],
                       p: float, *, r_max: float = math.inf) -> Float[Array, "*batch"]:
    """First-order worst-case radius ``min_i tol_i / ||grad f_i||_q`` (capped at ``r_max``).

    Args:
        jac: objective gradients w.r.t. the normalized deviations, (*batch, objective, param).
        tol: tolerance of each objective (> 0, objective units), (*batch, objective).
        p: the ball's norm (1, 2 or inf).
        r_max: cap for designs insensitive to every parameter.
    """
    g = lp_norm(jac, dual_exponent(p))
    r = jnp.where(g > 0, tol / jnp.where(g > 0, g, 1.0), jnp.inf)
    return jnp.minimum(jnp.min(r, -1), r_max)


def worst_deviation(fun: Fun, f0, tol, r, p, start, *, steps: int, step: float = 0.5, jac: JacFun | None = None):
    """Projected-gradient ascent of ``g(delta) = max_i |f_i - f0_i| / tol_i`` over ``||delta||_p <= r``.

    Args:
        fun: batched objectives, ``delta (design, param) -> (design, objective)``.
        f0: nominal objectives, (design, objective). tol: tolerances, (design, objective).
        r: radius per design, (design,). p: norm. start: initial deviations, (design, param).
        steps: ascent steps; a step that does not increase ``g`` is rejected and the step size halved.
        step: initial step as a fraction of ``r``.
        jac: ``delta -> (f, J)`` as :func:`jacobian_fwd` of ``fun`` (default), e.g. one that
            shares work between the parameter directions.

    Returns:
        ``(delta, g)`` of the best point found, (design, param) and (design,).
    """
    value_and_jac = jac or functools.partial(jacobian_fwd, fun)

    def ratio(f):
        return jnp.max(jnp.abs(f - f0) / tol, -1)

    def body(_, carry):
        d, gd, eta = carry
        f, J = value_and_jac(d)
        i = jnp.argmax(jnp.abs(f - f0) / tol, -1)
        sgn = jnp.sign(jnp.take_along_axis(f - f0, i[:, None], -1))
        grad = sgn * jnp.take_along_axis(J, i[:, None, None], 1)[:, 0, :]
        trial = project_ball(d + (eta * r)[:, None] * _steepest(grad, p), r, p)
        gt = ratio(fun(trial))
        better = gt > gd
        return (jnp.where(better[:, None], trial, d), jnp.where(better, gt, gd),
                jnp.where(better, eta, 0.5 * eta))

    d0 = project_ball(start, r, p)
    carry = (d0, ratio(fun(d0)), jnp.full(r.shape, step, d0.dtype))
    d, gd, _ = jax.lax.fori_loop(0, steps, body, carry)
    return d, gd


@functools.lru_cache(maxsize=32)
def _programs(fun: Fun, jac: JacFun | None, n_param: int, p: float, r_max: float, ascent_steps: int, dtype):
    """The jitted nominal step and inner search of :func:`worst_case_radius` (cached per ``fun``)."""

    @jax.jit
    def nominal(tol):
        f0, J = (jac or functools.partial(jacobian_fwd, fun))(jnp.zeros((tol.shape[0], n_param), dtype))
        return f0, J, first_order_radius(J, tol, p, r_max=r_max)

    @jax.jit
    def search(r, f0, tol, starts):
        def one(start):
            return worst_deviation(fun, f0, tol, r, p, start * r[:, None], steps=ascent_steps, jac=jac)
        ds, gs = jax.vmap(one, in_axes=1, out_axes=1)(starts)  # (design, start, param), (design, start)
        k = jnp.argmax(gs, -1)
        return jnp.take_along_axis(ds, k[:, None, None], 1)[:, 0], jnp.take_along_axis(gs, k[:, None], 1)[:, 0]

    return nominal, search


def worst_case_radius(fun: Fun, tol: Float[Array, "design objective"], n_param: int, *, p: float = 2.0,
                      r_max: float = 4.0, bisection_steps: int = 10, ascent_steps: int = 4,
                      dtype=jnp.float64, jac: JacFun | None = None) -> RadiusResult:
    """Refined worst-case radius of every design: bisection on the radius, inner ascent per radius.

    The inner search starts, at each radius, from the first-order worst direction of every
    objective in both signs (``2 x objective`` starts) and keeps the best. The bisection is a
    Python loop around one jitted search, so ``fun`` is traced a fixed, small number of times
    (compile time matters when ``fun`` holds an interior-point solver); do not ``jit`` the caller.

    Args:
        fun: batched objectives, ``delta (design, param) -> (design, objective)``; ``delta = 0`` nominal.
        tol: tolerance per objective (> 0), (design, objective).
        n_param: number of uncertain parameters.
        p: norm of the ball (1, 2 or inf).
        r_max: largest radius searched (designs robust beyond it get ``r_max``).
        bisection_steps: bisection halvings of ``[0, r_max]`` (resolution ``r_max / 2^steps``).
        ascent_steps: projected-gradient steps of each inner search.
        dtype: float type of ``delta``.
        jac: ``delta -> (f, J)``, ``J`` (design, objective, param); default
            :func:`jacobian_fwd` of ``fun``.

    Returns:
        :class:`RadiusResult` (JAX arrays).
    """
    tol = jnp.asarray(tol, dtype)
    n_d = tol.shape[0]
    nominal, search = _programs(fun, jac, n_param, float(p), float(r_max), int(ascent_steps), jnp.dtype(dtype))
    f0, jac, r1 = nominal(tol)
    dirs = _steepest(jac, p)  # (design, objective, param)
    starts = jnp.concatenate([dirs, -dirs], 1)  # (design, 2F, param)

    hi = jnp.full((n_d,), r_max, dtype)
    wd, wg = search(hi, f0, tol, starts)
    ok_at_max = wg <= 1.0
    lo = jnp.zeros((n_d,), dtype)
    for _ in range(bisection_steps):
        mid = 0.5 * (lo + hi)
        d, g = search(mid, f0, tol, starts)
        bad = g > 1.0
        lo, hi = jnp.where(bad, lo, mid), jnp.where(bad, mid, hi)
        wd, wg = jnp.where(bad[:, None], d, wd), jnp.where(bad, g, wg)
    radius = jnp.where(ok_at_max, r_max, lo)
    return RadiusResult(radius=radius, first_order=r1, worst_delta=wd, worst_ratio=wg)
