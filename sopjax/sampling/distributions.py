"""Inverse CDFs used by the uncertainty models (pure JAX, elementwise, float32/float64).

Every function maps uniforms ``u`` in (0, 1) to samples and broadcasts its
parameters against ``u``. Degenerate parameters (zero spread) return the
location, never NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import betainc, betaln, ndtr, ndtri
from jaxtyping import Array, ArrayLike, Float

__all__ = ["normal_ppf", "truncated_normal_ppf", "beta_ppf", "beta_from_moments"]


def normal_ppf(
    u: Float[Array, "*s"], mu: Float[ArrayLike, "*s"], sigma: Float[ArrayLike, "*s"],
    lo: Float[ArrayLike, "*s"] = -jnp.inf, hi: Float[ArrayLike, "*s"] = jnp.inf,
) -> Float[Array, "*s"]:
    """N(mu, sigma**2) by inverse CDF, then **clipped** to [lo, hi].

    Clipping puts the tail probability mass on the bounds (an atom at ``lo``
    and ``hi``); the mean is biased towards the inside when a bound is close.
    """
    return jnp.clip(mu + sigma * ndtri(u), lo, hi)


def truncated_normal_ppf(
    u: Float[Array, "*s"], mu: Float[ArrayLike, "*s"], sigma: Float[ArrayLike, "*s"],
    lo: Float[ArrayLike, "*s"], hi: Float[ArrayLike, "*s"],
) -> Float[Array, "*s"]:
    """Inverse CDF of N(mu, sigma**2) truncated to [lo, hi] (a proper truncated normal).

    ``x = mu + sigma * Phi^-1(Phi(a) + u (Phi(b) - Phi(a)))`` with
    ``a = (lo - mu)/sigma``, ``b = (hi - mu)/sigma``. When that probability is
    above 1/2 the mirrored form ``mu - sigma * Phi^-1(Phi(-b) + (1-u)(Phi(-a) - Phi(-b)))``
    is used so that the upper tail keeps its precision. ``sigma == 0`` returns
    ``clip(mu, lo, hi)``. Requires ``lo < hi`` where ``sigma > 0``.

    Args:
        u: uniforms in (0, 1).
        mu, sigma: location and scale of the parent normal (sigma >= 0).
        lo, hi: truncation bounds (may be infinite).
    """
    dt = jnp.result_type(u)
    sigma = jnp.asarray(sigma, dt)
    pos = sigma > 0
    s = jnp.where(pos, sigma, jnp.ones_like(sigma))
    a = (lo - mu) / s
    b = (hi - mu) / s
    a, b = jnp.broadcast_arrays(a, b)
    pa, pb, qa, qb = ndtr(jnp.stack([a, b, -a, -b]))  # one ndtr instance
    p = pa + u * (pb - pa)
    q = qb + (1 - u) * (qa - qb)
    low = p <= 0.5
    z = ndtri(jnp.where(low, p, q))  # one ndtri instance, on the smaller tail
    x = jnp.where(low, mu + s * z, mu - s * z)
    x = jnp.clip(x, lo, hi)
    return jnp.where(pos, x, jnp.clip(mu, lo, hi)).astype(dt)


def beta_from_moments(
    mean: Float[ArrayLike, "*s"], std: Float[ArrayLike, "*s"]
) -> tuple[Float[Array, "*s"], Float[Array, "*s"]]:
    """Beta(alpha, beta) on [0, 1] with the given mean and standard deviation (method of moments).

    ``k = m (1 - m) / s**2 - 1``, ``alpha = m k``, ``beta = (1 - m) k``; valid
    when ``0 < m < 1`` and ``0 < s**2 < m (1 - m)`` (else alpha or beta <= 0).
    """
    mean = jnp.asarray(mean)
    std = jnp.asarray(std)
    k = mean * (1 - mean) / std**2 - 1
    return mean * k, (1 - mean) * k


def _beta_guess(u, a, b):
    """Starting point for the Beta quantile (the classic scheme of Numerical Recipes' ``invbetai``).

    For ``a, b >= 1`` a normal approximation (Abramowitz & Stegun 26.5.22 with
    the rational normal quantile 26.2.23); otherwise the power-law behaviour of
    the CDF near 0 and 1.
    """
    pp = jnp.where(u < 0.5, u, 1 - u)
    t = jnp.sqrt(-2 * jnp.log(pp))
    x = (2.30753 + t * 0.27061) / (1 + t * (0.99229 + t * 0.04481)) - t
    x = jnp.where(u < 0.5, -x, x)
    al = (x * x - 3) / 6
    a1, b1 = jnp.maximum(2 * a - 1, 1e-3), jnp.maximum(2 * b - 1, 1e-3)
    h = 2 / (1 / a1 + 1 / b1)
    w = x * jnp.sqrt(jnp.maximum(al + h, 0)) / h - (1 / b1 - 1 / a1) * (al + 5 / 6 - 2 / (3 * h))
    normal = a / (a + b * jnp.exp(jnp.clip(2 * w, -700, 700)))
    lna, lnb = jnp.log(a / (a + b)), jnp.log(b / (a + b))
    ta, tb = jnp.exp(a * lna) / a, jnp.exp(b * lnb) / b
    s = ta + tb
    tails = jnp.where(u < ta / s, (a * s * u) ** (1 / a), 1 - (b * s * (1 - u)) ** (1 / b))
    return jnp.where((a >= 1) & (b >= 1), normal, tails)


def beta_ppf(
    u: Float[Array, "*s"], alpha: Float[ArrayLike, "*s"], beta: Float[ArrayLike, "*s"],
    *, max_iter: int = 40,
) -> Float[Array, "*s"]:
    """Inverse CDF of Beta(alpha, beta) on [0, 1] (alpha, beta > 0; NaN otherwise).

    ``jax.scipy.special`` has no ``betaincinv``; this solves
    ``betainc(alpha, beta, x) = u`` by Halley's method from the
    :func:`_beta_guess` starting point, safeguarded by a bracket ``[lo, hi]``
    (a step that leaves it is replaced by bisection). An element stops once its
    step is below ``64 eps * x`` (about 1e-14 relative in float64, 8e-6 in
    float32); the loop ends when all have stopped (2-4 iterations typically)
    or after ``max_iter``.

    Args:
        u: uniforms in (0, 1).
        alpha, beta: shape parameters, broadcast against ``u``.
        max_iter: iteration cap.
    """
    dt = jnp.result_type(u)
    a = jnp.broadcast_to(jnp.asarray(alpha, dt), jnp.shape(u))
    b = jnp.broadcast_to(jnp.asarray(beta, dt), jnp.shape(u))
    ok = (a > 0) & (b > 0)
    a = jnp.where(ok, a, 1)
    b = jnp.where(ok, b, 1)
    lbeta = betaln(a, b)
    tiny = jnp.finfo(dt).tiny
    top = 1 - jnp.finfo(dt).epsneg
    tol = 64 * jnp.finfo(dt).eps

    def body(state):
        it, x, lo, hi, done = state
        f = betainc(a, b, x) - u
        lo = jnp.where(f < 0, x, lo)
        hi = jnp.where(f > 0, x, hi)
        pdf = jnp.exp((a - 1) * jnp.log(x) + (b - 1) * jnp.log1p(-x) - lbeta)
        r = f / pdf
        step = r / (1 - 0.5 * jnp.minimum(1.0, r * ((a - 1) / x - (b - 1) / (1 - x))))
        cand = x - step
        inside = jnp.isfinite(cand) & (cand >= lo) & (cand <= hi)
        conv = (f == 0) | (jnp.isfinite(step) & (jnp.abs(step) <= tol * x))
        new = jnp.where(inside | conv, cand, 0.5 * (lo + hi))
        new = jnp.where(done, x, jnp.clip(jnp.where(f == 0, x, new), tiny, top))
        done = done | conv
        return it + 1, new, lo, hi, done

    x0 = jnp.clip(_beta_guess(u, a, b), tiny, top).astype(dt)
    init = (0, x0, jnp.zeros_like(x0), jnp.ones_like(x0), ~ok)
    _, x, _, _, _ = jax.lax.while_loop(lambda s: (s[0] < max_iter) & ~jnp.all(s[4]), body, init)
    return jnp.where(ok, x, jnp.nan)
