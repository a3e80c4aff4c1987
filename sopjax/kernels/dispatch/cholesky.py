"""Cholesky factorization of a batch of small SPD matrices, unrolled in elementwise arithmetic.

A matrix is an ``(n, n, batch)`` array (the interior-point method's Newton matrices,
:mod:`~sopjax.kernels.dispatch.ipm`), read entry by entry. The factor is packed
into one ``(n (n + 1) / 2, batch)`` array so that XLA computes it in one fused loop
(``vmap`` of a LAPACK factorization is a call per sample; separate arrays become
hundreds of tiny kernels). The graph grows as ``n^3``, fine for ``n = 4 x sop``:
measured against the LAPACK layout it replaced, the per-sample solver ran 23 %
faster at 3 SOPs and as fast at 8, and compiled in 61 s instead of 36 s at 8 SOPs,
which the batched solver already paid.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["cho_solve", "cholesky"]


def _pack(M) -> jax.Array:
    """The lower triangle of a nested-list matrix, row by row, as one (n (n + 1) / 2, batch) array."""
    return jnp.stack([M[i][j] for i in range(len(M)) for j in range(i + 1)])


def _unpack(packed, n: int) -> list:
    """The rows of a lower triangle packed by :func:`_pack`."""
    starts = [i * (i + 1) // 2 for i in range(n)]
    return [[packed[starts[i] + j] for j in range(i + 1)] for i in range(n)]


def _dot(u, v, like) -> jax.Array:
    """``sum(u[q] * v[q])`` over two lists of (batch,) arrays, zero (like ``like``) when empty."""
    return sum((a * b for a, b in zip(u, v)), start=jnp.zeros_like(like))


def cholesky(M) -> jax.Array:
    """Packed lower Cholesky factor of the SPD ``M`` (n, n, batch; its lower triangle is read)."""
    n = M.shape[0]
    L = [[None] * n for _ in range(n)]
    for j in range(n):
        L[j][j] = jnp.sqrt(M[j, j] - _dot(L[j][:j], L[j][:j], M[j, j]))
        inv = 1.0 / L[j][j]
        for i in range(j + 1, n):
            L[i][j] = (M[i, j] - _dot(L[i][:j], L[j][:j], M[i, j])) * inv
    return _pack(L)


def cho_solve(packed, b) -> jax.Array:
    """Solve ``L L^T x = b`` for ``b`` (n, batch), ``L`` packed by :func:`cholesky`."""
    n = b.shape[0]
    L = _unpack(packed, n)
    y = []
    for i in range(n):
        y.append((b[i] - _dot(L[i][:i], y, b[i])) / L[i][i])
    x = [None] * n
    for i in reversed(range(n)):
        x[i] = (y[i] - _dot([L[q][i] for q in range(i + 1, n)], x[i + 1 :], b[i])) / L[i][i]
    return jnp.stack(x)
