"""Sampling schemes: independent uniforms (sample, dim) on (0, 1), by global sample index.

Every scheme is counter-based: row ``i`` of the design is a pure function of
``(key, i)`` (and, for LHS, the design size ``n``). A run can therefore be cut
into chunks of any size, resumed at any index, or spread over devices, and
still produce the identical numbers of the single unchunked call.

* ``"mc"`` -- plain Monte Carlo: entry ``(i, d)`` comes from the Philox4x32-10
  counter-based generator at counter ``(i, d // 4)``, keyed by two words drawn
  from ``key`` (:mod:`sopjax.sampling.philox`). Indexing by the *sample*
  (rather than folding a chunk index into the key) is what makes the rows
  independent of the chunk size.
* ``"lhs"`` -- Latin hypercube of ``n`` points, stratified over the whole
  design of ``n`` samples (:mod:`sopjax.sampling.lhs`).
* ``"sobol"`` -- Owen-scrambled Sobol' points (:mod:`sopjax.sampling.sobol`),
  one scrambling seed per dimension drawn from ``key``. Balance is best for
  ``n`` a power of two and for chunks that start at multiples of a power of two.

Distributions turn these uniforms into samples by inverse CDF, so every
distribution works with every scheme.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Integer

from sopjax.sampling.errors import UncertaintyError
from sopjax.sampling.hashing import to_unit_interval
from sopjax.sampling.lhs import lhs_uniforms
from sopjax.sampling.philox import STREAM_MC, STREAM_SOBOL_SEEDS, key_words, random_bits
from sopjax.sampling.sobol import sobol_uniforms

__all__ = ["SCHEMES", "check_scheme", "mc_uniforms", "uniforms", "uniforms_from_words", "MAX_SAMPLES"]

SCHEMES = ("mc", "lhs", "sobol")
MAX_SAMPLES = 2**32


def check_scheme(scheme: str) -> str:
    """Return ``scheme`` if it names a scheme, else raise naming the choices."""
    if scheme not in SCHEMES:
        raise UncertaintyError(f"unknown sampling scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    return scheme


def mc_uniforms(index: Integer[Array, " m"], words: Array, *, dim: int, dtype) -> Float[Array, "m dim"]:
    """Plain Monte Carlo rows ``index``: independent uniforms on (0, 1) from Philox words."""
    return to_unit_interval(random_bits(words, STREAM_MC, index, dim), dtype)


def uniforms_from_words(
    scheme: str, words: Array, start, *, count: int, n: int, dim: int, dtype
) -> Float[Array, "count dim"]:
    """:func:`uniforms` given the Philox key words (``key_words(key)``) instead of the key."""
    check_scheme(scheme)
    if not 1 <= n <= MAX_SAMPLES:
        raise UncertaintyError(f"number of samples n must be in 1..2**32, got {n}")
    dt = np.dtype(dtype)
    index = jnp.asarray(start, jnp.uint32) + jnp.arange(count, dtype=jnp.uint32)
    if dim == 0:
        return jnp.zeros((count, 0), dt)
    if scheme == "mc":
        return mc_uniforms(index, words, dim=dim, dtype=dt)
    if scheme == "lhs":
        return lhs_uniforms(index, words, n=n, dim=dim, dtype=dt)
    seeds = random_bits(words, STREAM_SOBOL_SEEDS, jnp.zeros((1,), jnp.uint32), dim)[0]
    return sobol_uniforms(index, seeds, dim=dim, n_bits=max(1, (n - 1).bit_length()), dtype=dt)


def uniforms(
    scheme: str, *, key: Array, start: Integer[Array, ""] | int, count: int, n: int, dim: int, dtype
) -> Float[Array, "count dim"]:
    """Rows ``start .. start+count-1`` of an ``n``-row design of independent uniforms.

    Args:
        scheme: ``"mc"``, ``"lhs"`` or ``"sobol"``.
        key: PRNG key (raw ``PRNGKey`` or typed ``jax.random.key``).
        start: first global row (may be traced; the caller checks the range).
        count: number of rows (static).
        n: design size (static); rows are in ``0..n-1``.
        dim: number of dimensions (static).
        dtype: float32 or float64.

    Returns:
        Uniforms (count, dim) on the open interval (0, 1).

    Raises:
        UncertaintyError: unknown scheme or ``n`` beyond 2**32.
    """
    check_scheme(scheme)
    if not 1 <= n <= MAX_SAMPLES:
        raise UncertaintyError(f"number of samples n must be in 1..2**32, got {n}")
    # only LHS depends on n itself, Sobol on its bit count, MC not at all: one
    # compilation then serves every n with the same (scheme, count, dim)
    n_key = {"lhs": n, "sobol": 1 << max(1, (n - 1).bit_length()), "mc": MAX_SAMPLES}[scheme]
    dt = np.dtype(dtype).name
    return _uniforms_jit(scheme, key_words(key), start, count=count, n=n_key, dim=dim, dtype=dt)


# jitted per (scheme, n, count, dim, dtype); ``start`` stays traced so chunks share it
_uniforms_jit = jax.jit(uniforms_from_words, static_argnames=("scheme", "n", "count", "dim", "dtype"))
