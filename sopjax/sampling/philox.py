"""Counter-based random bits: Philox4x32-10 keyed from a JAX PRNG key (pure JAX, uint32 only).

Philox4x32-10 (Salmon, Moraes, Dror & Shaw, "Parallel random numbers: as easy
as 1, 2, 3", SC'11 -- the paper that also defines JAX's Threefry) maps a
128-bit counter and a 64-bit key to 128 random bits; it passes TestU01's
BigCrush and is the generator of cuRAND and many others. Being a pure function
of ``(key, counter)``, it gives every (sample, dimension) its own bits with no
state and no dependence on how a run is chunked.

Why not ``jax.random`` directly: the per-row construction
``jax.random.bits(jax.random.fold_in(key, i), (dim,))`` runs Threefry twice per
row and costs several seconds of XLA:CPU compilation for each new shape; Philox
keyed once per call by ``jax.random.bits(key, (2,))`` compiles several times
faster and produces four words per evaluation. The user-facing contract is the
same: explicit JAX keys, same key -> same numbers.

The 32x32 -> 64-bit products use uint64 when ``jax_enable_x64`` is on (sopjax
turns it on at import) and 16-bit halves otherwise; both give the same bits. It reproduces the Random123
known-answer vectors (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, UInt32

__all__ = ["philox4x32", "mulhilo32", "key_words", "random_bits", "STREAM_MC", "STREAM_LHS_KEYS", "STREAM_SOBOL_SEEDS"]

_U = jnp.uint32
_M0, _M1 = 0xD2511F53, 0xCD9E8D57  # multipliers
_W0, _W1 = 0x9E3779B9, 0xBB67AE85  # Weyl key increments
_ROUNDS = 10

# third counter word: independent streams of one key
STREAM_MC = 0
STREAM_LHS_KEYS = 1
STREAM_SOBOL_SEEDS = 2


def _mulhilo(a: UInt32[Array, "*s"], m: int) -> tuple[UInt32[Array, "*s"], UInt32[Array, "*s"]]:
    """High and low 32 bits of ``a * m``: one uint64 product when x64 is on, else 16-bit halves."""
    if jax.config.jax_enable_x64:
        p = a.astype(jnp.uint64) * jnp.uint64(m)
        return (p >> 32).astype(_U), p.astype(_U)
    return mulhilo32(a, m)


def mulhilo32(a: UInt32[Array, "*s"], m: int) -> tuple[UInt32[Array, "*s"], UInt32[Array, "*s"]]:
    """High and low 32 bits of ``a * m`` in uint32 arithmetic only (works without x64)."""
    m0, m1 = _U(m & 0xFFFF), _U(m >> 16)
    a0, a1 = a & _U(0xFFFF), a >> 16
    lo_lo = a0 * m0
    hi_lo = a1 * m0
    lo_hi = a0 * m1
    mid = (lo_lo >> 16) + (hi_lo & _U(0xFFFF)) + (lo_hi & _U(0xFFFF))
    hi = a1 * m1 + (hi_lo >> 16) + (lo_hi >> 16) + (mid >> 16)
    return hi, a * _U(m)


def philox4x32(counter, key) -> tuple:
    """Philox4x32-10 of a counter ``(c0, c1, c2, c3)`` under a key ``(k0, k1)``.

    Args:
        counter: four uint32 arrays (broadcast together).
        key: two uint32 scalars or arrays.

    Returns:
        Four uint32 arrays of the broadcast shape.
    """
    c0, c1, c2, c3 = (jnp.asarray(c, _U) for c in counter)
    c0, c1, c2, c3 = jnp.broadcast_arrays(c0, c1, c2, c3)
    k0, k1 = (jnp.asarray(k, _U) for k in key)
    for _ in range(_ROUNDS):
        hi0, lo0 = _mulhilo(c0, _M0)
        hi1, lo1 = _mulhilo(c2, _M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = k0 + _U(_W0), k1 + _U(_W1)
    return c0, c1, c2, c3


def key_words(key: Array) -> UInt32[Array, "2"]:
    """The 64-bit Philox key derived from a JAX PRNG key (raw or typed): ``jax.random.bits(key, (2,))``."""
    return jax.random.bits(key, (2,), _U)


def random_bits(
    words: UInt32[Array, "2"], stream: int, index: UInt32[Array, " m"], dim: int
) -> UInt32[Array, "m dim"]:
    """Random words for rows ``index`` and columns ``0..dim-1`` of one stream.

    Word ``(i, d)`` is word ``d % 4`` of Philox at counter ``(i, d // 4, stream, 0)``.
    """
    blocks = -(-dim // 4)
    j = jnp.arange(blocks, dtype=_U)[None, :]
    out = philox4x32((index[:, None], j, _U(stream), _U(0)), (words[0], words[1]))
    return jnp.stack(out, axis=-1).reshape(index.shape[0], 4 * blocks)[:, :dim]
