"""Owen-scrambled Sobol points by index (pure JAX).

Point ``i`` of dimension ``d`` is a pure function of ``(i, d, seed_d)``, so any
range of indices can be generated on its own: a chunked run gives exactly the
points of an unchunked one, whatever the chunk size.

* **Sequence**: Sobol' with the Joe & Kuo (2008) direction numbers, taken from
  ``scipy.stats.qmc.Sobol`` (32 bits, up to 21201 dimensions) once on the host.
  Points are in Gray-code order, so the unscrambled points equal
  ``qmc.Sobol(d, scramble=False).random(n)`` exactly (checked in the tests).
* **Scrambling**: nested uniform (Owen) scrambling by the hash-based method of
  Burley, "Practical Hash-based Owen Scrambling", JCGT 9(4), 2020: reverse the
  bits, apply a per-dimension seeded permutation in which every bit is flipped
  by a function of the less significant bits only (here N. Vegdahl's improved
  Laine-Karras hash, 2021), reverse back. Every output bit is thus flipped by a
  function of the more significant bits: a nested scramble, which keeps the
  (t, m, s)-net properties (each of the 2**m strata of width 2**-m holds one of
  the first 2**m points, per dimension) while making every point uniform on
  (0, 1). scipy's own ``scramble=True`` uses linear matrix scrambling instead.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, UInt32

from sopjax.sampling.errors import UncertaintyError
from sopjax.sampling.hashing import reverse_bits32, to_unit_interval

__all__ = ["SOBOL_MAX_DIM", "direction_numbers", "sobol_integers", "owen_scramble", "sobol_uniforms"]

SOBOL_MAX_DIM = 21201
_U = jnp.uint32


@functools.lru_cache(maxsize=16)
def direction_numbers(dim: int) -> np.ndarray:
    """Sobol direction integers ``v[d, k]`` (uint32, shape (dim, 32)), most significant bit first.

    Raises:
        UncertaintyError: if ``dim`` exceeds the 21201 dimensions of the table.
    """
    if dim > SOBOL_MAX_DIM:
        raise UncertaintyError(
            f"the Sobol scheme supports at most {SOBOL_MAX_DIM} dimensions, this model needs {dim} "
            "(time periods x (PV units + buses)); use scheme='mc' or 'lhs'"
        )
    from scipy.stats import qmc

    engine = qmc.Sobol(max(dim, 1), scramble=False, bits=32)
    v = np.asarray(getattr(engine, "_sv", None), dtype=np.uint64)
    # scipy keeps the direction numbers in a private attribute; check them against
    # its public output so that a change in scipy fails loudly here.
    ref = np.round(engine.random(4) * 2.0**32).astype(np.uint64)
    ours = np.stack([np.zeros_like(v[:, 0]), v[:, 0], v[:, 0] ^ v[:, 1], v[:, 1]])
    if v.shape != (max(dim, 1), 32) or not np.array_equal(ref, ours):
        raise RuntimeError(
            "scipy.stats.qmc.Sobol changed its internals; sopjax cannot read direction numbers"
        )
    return v[:dim].astype(np.uint32)


def sobol_integers(
    index: UInt32[Array, " n"], v: UInt32[Array, "dim 32"], n_bits: int = 32
) -> UInt32[Array, "n dim"]:
    """Unscrambled Sobol points as 32-bit integers, Gray-code order (scipy's order).

    Args:
        index: point indices, (n,).
        v: direction integers, (dim, 32).
        n_bits: only the lowest ``n_bits`` bits of the indices are used
            (static; ``max(index) < 2**n_bits``).
    """
    g = index ^ (index >> 1)

    def step(k, x):
        bit = ((g >> k.astype(_U)) & _U(1)).astype(bool)[:, None]
        return x ^ jnp.where(bit, v[None, :, k], _U(0))

    return jax.lax.fori_loop(0, n_bits, step, jnp.zeros((index.shape[0], v.shape[0]), _U))


def _permute(x: UInt32[Array, "*s"], seed: UInt32[Array, "*s"]) -> UInt32[Array, "*s"]:
    """Vegdahl's Laine-Karras-style hash: bit k flipped by a function of bits < k and the seed."""
    x = x ^ (x * _U(0x3D20ADEA))
    x = x + seed
    x = x * ((seed >> 16) | _U(1))
    x = x ^ (x * _U(0x05526C56))
    return x ^ (x * _U(0x53A22864))


def owen_scramble(x: UInt32[Array, "n dim"], seeds: UInt32[Array, " dim"]) -> UInt32[Array, "n dim"]:
    """Nested uniform (Owen) scrambling of 32-bit points, one seed per dimension (Burley 2020)."""
    return reverse_bits32(_permute(reverse_bits32(x), seeds[None, :]))


def sobol_uniforms(
    index: UInt32[Array, " n"], seeds: UInt32[Array, " dim"] | None, *, dim: int, n_bits: int, dtype
) -> Float[Array, "n dim"]:
    """Scrambled (or, with ``seeds=None``, plain) Sobol uniforms on the open interval (0, 1).

    Args:
        index: global point indices (uint32), (n,).
        seeds: per-dimension scrambling seeds (uint32), (dim,); ``None`` = unscrambled.
        dim: number of dimensions (static).
        n_bits: index bits to use (static, ``max(index) < 2**n_bits``).
        dtype: float32 or float64.

    Returns:
        Uniforms (n, dim), mapped to cell midpoints by
        :func:`~sopjax.sampling.hashing.to_unit_interval`.
    """
    v = jnp.asarray(direction_numbers(dim))
    x = sobol_integers(index, v, n_bits)
    if seeds is not None:
        x = owen_scramble(x, seeds)
    return to_unit_interval(x, dtype)
