"""Counter-based integer helpers shared by the sampling schemes (pure JAX, uint32).

All arithmetic is on ``uint32`` and wraps around modulo 2**32, which is what the
hash functions below rely on.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, UInt32

__all__ = ["mix32", "reverse_bits32", "to_unit_interval", "unit_bits"]

_U = jnp.uint32


def mix32(x: UInt32[Array, "*shape"]) -> UInt32[Array, "*shape"]:
    """A bijective 32-bit integer hash (``lowbias32``, C. Wellons, *hash-prospector*).

    Used as the round function of the Feistel permutations behind Latin
    hypercube sampling. Bijective on uint32, good avalanche.
    """
    x = x ^ (x >> 16)
    x = x * _U(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * _U(0x846CA68B)
    return x ^ (x >> 16)


def reverse_bits32(x: UInt32[Array, "*shape"]) -> UInt32[Array, "*shape"]:
    """Reverse the 32 bits of each element (bit 0 <-> bit 31)."""
    x = ((x >> 1) & _U(0x55555555)) | ((x & _U(0x55555555)) << 1)
    x = ((x >> 2) & _U(0x33333333)) | ((x & _U(0x33333333)) << 2)
    x = ((x >> 4) & _U(0x0F0F0F0F)) | ((x & _U(0x0F0F0F0F)) << 4)
    x = ((x >> 8) & _U(0x00FF00FF)) | ((x & _U(0x00FF00FF)) << 8)
    return (x >> 16) | (x << 16)


def unit_bits(dtype) -> int:
    """How many leading bits of a uint32 map exactly onto the open unit interval in ``dtype``.

    ``k`` bits give the grid ``(j + 0.5) / 2**k``; its largest point ``1 - 2**-(k+1)``
    must be representable, so ``k = min(32, nmant)`` (23 for float32, 32 for float64).
    """
    return min(32, int(np.finfo(dtype).nmant))


def to_unit_interval(x: UInt32[Array, "*shape"], dtype) -> Float[Array, "*shape"]:
    """Map uint32 values onto the open interval (0, 1) without ever producing 0 or 1.

    Keeps the ``k = unit_bits(dtype)`` most significant bits ``j`` and returns the
    cell midpoint ``(j + 0.5) / 2**k``; every operation is exact in ``dtype``, so
    a stratum of width ``2**-m`` (``m <= k``) in the integers stays the same stratum
    in the floats and inverse CDFs never see 0 or 1.
    """
    dt = np.dtype(dtype)
    k = unit_bits(dt)
    j = (x >> _U(32 - k)) if k < 32 else x
    return (j.astype(dt) + dt.type(0.5)) * dt.type(2.0**-k)
