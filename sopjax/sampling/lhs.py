"""Latin hypercube sampling by index (pure JAX).

A Latin hypercube of ``n`` points puts, in every dimension ``d``, exactly one
point in each stratum ``[j/n, (j+1)/n)``: ``u[i, d] = (pi_d(i) + w[i, d]) / n``
with ``pi_d`` a random permutation of ``0..n-1`` and ``w`` uniform jitter.

Here ``pi_d`` is a keyed pseudo-random permutation evaluated *pointwise* (a
4-round unbalanced Feistel network on ``m`` bits with ``2**m >= n``, reduced to
``0..n-1`` by cycle walking, Black & Rogaway 2002), so point ``i`` depends only
on ``(key, n, i)``. A chunk ``[start, stop)`` is generated without
materialising the permutations and equals the same rows of the full design,
whatever the chunk size. The design size ``n`` must be fixed for the whole run:
a different ``n`` is a different design.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, UInt32

from sopjax.sampling.hashing import mix32, to_unit_interval
from sopjax.sampling.philox import STREAM_LHS_KEYS, STREAM_MC, philox4x32, random_bits

__all__ = ["feistel_permutation", "lhs_uniforms"]

_U = jnp.uint32
_ROUNDS = 4


def feistel_permutation(
    x: UInt32[Array, "*s"], round_keys: UInt32[Array, "*s 4"], n: int
) -> UInt32[Array, "*s"]:
    """Apply a keyed pseudo-random permutation of ``0..n-1`` to each element of ``x``.

    The ``m = bit_length(n - 1)`` bits are split into a high part (``ceil(m/2)``
    bits) and a low part (``floor(m/2)`` bits); four rounds alternately XOR one
    part with a keyed hash of the other (an unbalanced Feistel network, each
    round a bijection of ``0..2**m - 1``). Cycle walking maps values ``>= n``
    onward until they land in ``0..n-1``; since ``2**m < 2n`` a step leaves the
    range with probability below 1/2, and never for ``n`` a power of two.

    Args:
        x: values in ``0..n-1`` (uint32).
        round_keys: 4 round keys per element (broadcastable to ``x.shape + (4,)``).
        n: the domain size (static, ``1 <= n <= 2**32``).

    Returns:
        ``pi(x)`` with ``pi`` a bijection of ``0..n-1`` determined by the keys.
    """
    m = max(1, (n - 1).bit_length())
    lo_bits = m // 2
    lo_mask = _U((1 << lo_bits) - 1)
    hi_mask = _U((1 << (m - lo_bits)) - 1)
    keys = [round_keys[..., r] for r in range(_ROUNDS)]

    def feistel(v):
        hi, lo = v >> lo_bits, v & lo_mask
        for r, k in enumerate(keys):
            if r % 2 == 0:
                hi = hi ^ (mix32(lo ^ k) & hi_mask)
            elif lo_bits:
                lo = lo ^ (mix32(hi ^ k) & lo_mask)
        return (hi << lo_bits) | lo

    limit = _U(n - 1)
    y = feistel(x)
    if n == 1 << m:
        return y
    return jax.lax.while_loop(
        lambda v: jnp.any(v > limit), lambda v: jnp.where(v > limit, feistel(v), v), y
    )


def lhs_uniforms(
    index: UInt32[Array, " m"], words: UInt32[Array, "2"], *, n: int, dim: int, dtype
) -> Float[Array, "m dim"]:
    """Rows ``index`` of an ``n``-point Latin hypercube design in ``dim`` dimensions.

    Args:
        index: global row indices in ``0..n-1`` (uint32), (m,).
        words: Philox key words (:func:`~sopjax.sampling.philox.key_words`);
            permutation round keys and jitter come from separate streams.
        n: design size (static).
        dim: number of dimensions (static).
        dtype: float32 or float64.

    Returns:
        Uniforms (m, dim) in (0, 1); ``floor(u * n)`` is a permutation of
        ``0..n-1`` in each column when ``index`` covers ``0..n-1`` (up to
        floating-point rounding of ``(j + w) / n`` at a stratum edge, a
        probability of order 1e-13 per entry in float64).
    """
    d = jnp.arange(dim, dtype=_U)
    round_keys = jnp.stack(philox4x32((d, _U(0), _U(STREAM_LHS_KEYS), _U(0)), (words[0], words[1])), axis=-1)
    strata = feistel_permutation(
        jnp.broadcast_to(index[:, None], (index.shape[0], dim)), round_keys[None, :, :], n
    )
    jitter = to_unit_interval(random_bits(words, STREAM_MC, index, dim), dtype)
    u = (strata.astype(dtype) + jitter) / jnp.asarray(n, dtype)
    # (j + w) / n can round up to the next stratum's edge only at 1.0 itself
    return jnp.minimum(u, jnp.asarray(1.0, dtype) - jnp.finfo(dtype).epsneg)
