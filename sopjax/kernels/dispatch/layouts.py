"""How the interior-point method factorizes and solves its Newton matrices.

The iteration (:mod:`~sopjax.kernels.dispatch.ipm`) builds the symmetric ``nx x nx``
Newton matrix of every sample as a nested list ``M[a][b]`` of ``(batch,)`` arrays; a
:class:`Layout` turns it into a factor and solves with it:

* :data:`PACKED` (the batched solver): an unrolled Cholesky in elementwise
  arithmetic over the batch, packed into one array so that XLA computes it in one
  fused loop (``vmap`` of a LAPACK factorization is a call per sample). Its graph
  grows as ``nx^3``: fine for a few SOPs.
* :data:`DENSE` (the per-sample solver): the entries stacked into ``(batch, nx, nx)``
  matrices and factorized by LAPACK; its graph does not grow with ``nx``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["DENSE", "PACKED", "Layout"]


class Layout(NamedTuple):
    """A factorization of the Newton matrices: ``solve(factor(M), b)`` solves ``M x = b``.

    Attributes:
        factor: nested list ``M[a][b]`` of (batch,) arrays (symmetric positive definite) -> factor.
        solve: ``(factor, b)`` with ``b`` (nx, batch) -> ``x`` (nx, batch).
    """

    factor: Callable[[list], Any]
    solve: Callable[[Any, jax.Array], jax.Array]


def _tril(M) -> jax.Array:
    """The lower triangle of a nested-list matrix, packed row by row into one (n (n + 1) / 2, batch) array.

    Packing makes XLA compute every entry in one fused loop; left as separate
    arrays, the entries of a factor used by two solves become hundreds of tiny kernels.
    """
    return jnp.stack([M[i][j] for i in range(len(M)) for j in range(i + 1)])


def _unpack(packed, n: int) -> list:
    rows, k = [], 0
    for i in range(n):
        rows.append([packed[k + j] for j in range(i + 1)])
        k += i + 1
    return rows


def _packed_cholesky(M) -> jax.Array:
    """Packed lower Cholesky factor of ``M`` (elementwise over the batch)."""
    n = len(M)
    A = _unpack(_tril(M), n)
    L = [[None] * n for _ in range(n)]
    for j in range(n):
        d = A[j][j] - sum((L[j][q] ** 2 for q in range(j)), start=jnp.zeros_like(A[j][j]))
        L[j][j] = jnp.sqrt(d)
        inv = 1.0 / L[j][j]
        for i in range(j + 1, n):
            acc = A[i][j] - sum((L[i][q] * L[j][q] for q in range(j)), start=jnp.zeros_like(A[i][j]))
            L[i][j] = acc * inv
    return _tril(L)


def _packed_solve(packed, b) -> jax.Array:
    """Solve ``L L^T x = b`` for ``b`` (n, batch), ``L`` packed by :func:`_packed_cholesky`."""
    n = b.shape[0]
    L = _unpack(packed, n)
    y = [None] * n
    for i in range(n):
        y[i] = (b[i] - sum((L[i][q] * y[q] for q in range(i)), start=jnp.zeros_like(b[i]))) / L[i][i]
    out = [None] * n
    for i in reversed(range(n)):
        acc = y[i] - sum((L[q][i] * out[q] for q in range(i + 1, n)), start=jnp.zeros_like(b[i]))
        out[i] = acc / L[i][i]
    return jnp.stack(out)


def _dense_cholesky(M) -> jax.Array:
    """Lower Cholesky factors (batch, nx, nx) of ``M`` (LAPACK)."""
    return jnp.linalg.cholesky(jnp.moveaxis(jnp.stack([jnp.stack(row) for row in M]), -1, 0))


def _dense_solve(L, b) -> jax.Array:
    tri = jax.lax.linalg.triangular_solve
    y = tri(L, b.T[..., None], left_side=True, lower=True)
    return tri(L, y, left_side=True, lower=True, transpose_a=True)[..., 0].T


PACKED = Layout(_packed_cholesky, _packed_solve)
DENSE = Layout(_dense_cholesky, _dense_solve)
