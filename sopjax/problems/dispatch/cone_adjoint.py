"""The exact sparse adjoint of a batch of cone programs sharing one matrix ``A``.

For ``min c'x  s.t.  Ax + s = b, s in K`` solved to ``(x, y, s)``, the derivative
of the solution map is the one of Agrawal et al. (2019), "Differentiating through
a cone program" (what diffcp implements): the adjoint solves ``M^T r = dz`` with
``M`` the derivative of the homogeneous embedding's residual map. diffcp solves it
with LSQR, which needs hundreds of iterations at an interior-point solution of a
feeder-sized problem (``M`` is ill-conditioned there). Here ``M`` is assembled
from a fixed sparsity pattern (:class:`KKTPattern`, built once per ``A``), its
values for the whole batch are computed at once with numpy, and each problem is
factorized once (SuperLU on its sparse core), falling back to the bordered
matrix and then LSQR only if it is numerically singular (:class:`BatchAdjoint`).

This module is plain numpy / scipy on the cone program; it knows nothing of
cvxpy or cvxpylayers (:mod:`sopjax.problems.dispatch.adjoint` connects it to them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["BatchAdjoint", "KKTPattern", "cone_starts", "thread_map"]


def thread_map(fn: Callable, items: list, n_jobs: int) -> list:
    """``[fn(i) for i in items]`` on up to ``n_jobs`` threads (for work that releases the GIL)."""
    if n_jobs > 1 and len(items) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(n_jobs, len(items))) as pool:
            return list(pool.map(fn, items))
    return [fn(i) for i in items]


def cone_starts(cone_dict: dict):
    """(n_zero, n_nonneg, SOC sizes, SOC first rows) of a diffcp/SCS cone dict (rows in that order)."""
    nz, nl = int(cone_dict.get("z", 0)), int(cone_dict.get("l", 0))
    sizes = np.asarray(cone_dict.get("q", []), dtype=int)
    starts = nz + nl + np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) if sizes.size else sizes
    return nz, nl, sizes, starts



def _dproj_pattern(cone_dict: dict):
    """(rows, cols) of :func:`_dproj_dual_batch`'s entries, in its value order."""
    nz, nl, sizes, starts = cone_starts(cone_dict)
    rows, cols = [np.arange(nz + nl)], [np.arange(nz + nl)]
    for q in np.unique(sizes):
        st = starts[sizes == q]
        r, c = np.meshgrid(np.arange(q), np.arange(q), indexing="ij")
        rows.append((st[:, None, None] + r).ravel())
        cols.append((st[:, None, None] + c).ravel())
    return np.concatenate(rows), np.concatenate(cols)



def _dproj_dual_batch(V: np.ndarray, cone_dict: dict) -> np.ndarray:
    """Derivative of the projection onto the dual cone K* at each point of ``V`` (batch, m).

    Block-diagonal; returns its entry values (batch, nnz) in the order of
    :func:`_dproj_pattern`'s (rows, cols), which depend only on the cones (full
    blocks for the SOCs). Zero cone: its dual is the free cone (identity).
    Non-negative orthant: 0/1 diagonal. Second-order cone ``(t, x)``: identity
    inside, zero in the polar cone, else
    ``1/2 [[1, u^T], [u, (1 + t/|x|) I - (t/|x|) u u^T]]`` with ``u = x/|x|``.
    """
    B = V.shape[0]
    nz, nl, sizes, starts = cone_starts(cone_dict)
    vals = [np.ones((B, nz)), (V[:, nz : nz + nl] > 0).astype(float)]
    for q in np.unique(sizes):
        st = starts[sizes == q]
        W = V[:, st[:, None] + np.arange(q)]  # (B, k, q)
        t, X = W[..., 0], W[..., 1:]
        nx = np.linalg.norm(X, axis=-1)
        safe = np.where(nx > 0, nx, 1.0)
        U = X / safe[..., None]
        ratio = t / safe
        Bm = np.zeros(W.shape + (q,))
        Bm[..., 0, 0] = 1.0
        Bm[..., 0, 1:] = U
        Bm[..., 1:, 0] = U
        Bm[..., 1:, 1:] = ((1.0 + ratio)[..., None, None] * np.eye(q - 1)
                           - ratio[..., None, None] * U[..., :, None] * U[..., None, :])
        Bm *= 0.5
        Bm[nx <= t] = np.eye(q)
        Bm[nx <= -t] = 0.0
        vals.append(Bm.reshape(B, -1))
    return np.concatenate(vals, axis=1)



class KKTPattern:
    """The fixed sparsity pattern of the adjoint system of one canonical problem.

    cvxpylayers' DPP canonicalization puts every parameter of the dispatch into
    ``b``: ``A`` and the cone sizes are the same for every problem of a batch, so
    the pattern of ``M^T`` of :class:`BatchAdjoint` (with full second-order-cone
    blocks in ``D``) is fixed.
    It is built once; per problem only values are computed, for the whole batch at
    once (numpy), and each problem is factorized from its CSC values without any
    per-problem sparse-matrix assembly.

    What is factorized is the core ``R`` of ``M^T`` without the row and column of
    the homogeneous variable ``tau``::

        M^T = [[R, a], [g^T, 0]],   a = [-c; -D b],   g = [c; b],
        R = [[0, -A^T], [D A, I - D]]

    and the bordered system ``[[M^T, z], [z^T, 0]]`` of :class:`BatchAdjoint` is
    solved exactly by eliminating ``tau`` and the border multiplier (a 2 x 2
    system, three solves with ``R``). ``R`` has no dense row or column, so its LU
    has about a third of the fill of the bordered matrix. If ``R`` is singular the
    full bordered matrix is factorized instead.
    """

    def __init__(self, A: sp.csc_matrix, cone_dict: dict):
        m, n = A.shape
        self.m, self.n, self.N = m, n, n + m + 1
        self.cone_dict = cone_dict
        Acoo = A.tocoo()
        order = np.lexsort((Acoo.row, Acoo.col))  # CSC order: cvxpylayers' dA layout
        ra, ca, va = Acoo.row[order], Acoo.col[order], Acoo.data[order]
        self.ra, self.ca = ra, ca
        dr, dc = _dproj_pattern(cone_dict)
        self.dr, self.dc = dr, dc
        # DA = D A: values linear in D's values, DA_vals = D_vals @ G (G: nnz(D) x nnz(DA))
        Ar = A.tocsr()
        cnt = np.diff(Ar.indptr)[dc]
        e_rep = np.repeat(np.arange(dr.size), cnt)
        a_idx = np.concatenate([np.arange(Ar.indptr[k], Ar.indptr[k + 1]) for k in dc]) if dr.size else dc
        key = dr[e_rep].astype(np.int64) * n + Ar.indices[a_idx]
        uk, inv = np.unique(key, return_inverse=True)
        self.da_row, self.da_col = (uk // n).astype(np.int64), (uk % n).astype(np.int64)
        self.G = sp.csr_matrix((Ar.data[a_idx], (e_rep, inv)), shape=(dr.size, uk.size))
        # Db = D b: Db = (D_vals * b[:, dc]) @ R
        self.Rb = sp.csr_matrix((np.ones(dr.size), (np.arange(dr.size), dr)), shape=(dr.size, m))
        self.neg_a = -va
        ar_m = np.arange(m)
        self.core = self._csc_map([ca, n + self.da_row, n + ar_m, n + dr],
                                  [n + ra, self.da_col, n + ar_m, n + dc], n + m)
        N = self.N
        ar_n, ar_N = np.arange(n), np.arange(N)
        self.full = self._csc_map(
            [ca, ar_n, n + self.da_row, n + ar_m, n + dr, n + ar_m, np.full(n, N - 1), np.full(m, N - 1),
             ar_N, np.full(N, N)],
            [n + ra, np.full(n, N - 1), self.da_col, n + ar_m, n + dc, np.full(m, N - 1), ar_n, n + ar_m,
             np.full(N, N), ar_N], N + 1)

    @staticmethod
    def _csc_map(parts_r, parts_c, size):
        """(S, indices, indptr): CSC values = entry values @ S (duplicates summed)."""
        rows, cols = np.concatenate(parts_r), np.concatenate(parts_c)
        key = cols.astype(np.int64) * size + rows
        uk, inv = np.unique(key, return_inverse=True)
        S = sp.csr_matrix((np.ones(rows.size), (np.arange(rows.size), inv)), shape=(rows.size, uk.size))
        indptr = np.searchsorted(uk // size, np.arange(size + 1)).astype(np.int32)
        return S, (uk % size).astype(np.int32), indptr

    def values(self, b, c, x, y, s):
        """Per batch: CSC values of ``R`` (batch, nnz(R)), ``D`` values, ``D b``."""
        B = x.shape[0]
        Dv = _dproj_dual_batch(y - s, self.cone_dict)
        DA = np.asarray(self.G.T @ Dv.T).T
        Db = np.asarray(self.Rb.T @ (Dv * b[:, self.dc]).T).T
        V = np.concatenate([np.broadcast_to(self.neg_a, (B, self.neg_a.size)), DA, np.ones((B, self.m)), -Dv],
                           axis=1)
        return np.ascontiguousarray(np.asarray(self.core[0].T @ V.T).T), Dv, Db

    def full_matrix(self, b, c, x, y, s, Dv, Db) -> sp.csc_matrix:
        """The bordered matrix ``[[M^T, z], [z^T, 0]]`` of one problem (the fallback)."""
        zz = np.concatenate([x, y - s, [1.0]])
        DA = self.G.T @ Dv
        V = np.concatenate([self.neg_a, -c, DA, np.ones(self.m), -Dv, -Db, c, b, zz, zz])
        S, indices, indptr = self.full
        return sp.csc_matrix((S.T @ V, indices, indptr), shape=(self.N + 1, self.N + 1))



def _block_apply_t(pat: KKTPattern, Dv: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """D^T dy for a batch (D symmetric block-diagonal given by its pattern values)."""
    out = np.zeros_like(dy)
    np.add.at(out, (slice(None), pat.dc), Dv * dy[:, pat.dr])
    return out



class BatchAdjoint:
    """Adjoint derivatives of a batch of cone programs ``min c'x, Ax + s = b, s in K`` sharing ``A``.

    With the homogeneous embedding's residual map (Agrawal et al. 2019) the
    adjoint solves ``M^T r = dz`` where, with ``D = D Pi_{K*}(y - s)`` (symmetric)::

        M^T = [[0,    -A^T,  -c  ],
               [D A,  I - D, -D b],
               [c^T,  b^T,    0  ]]

    The embedding is homogeneous, so ``M z = 0`` at ``z = (x, y - s, 1)``; ``dz`` is
    orthogonal to ``z`` by construction and every solution gives the same
    derivative. The bordered matrix ``[[M^T, z], [z^T, 0]]`` is nonsingular; its
    solution is computed through the sparse core ``R`` (see :class:`KKTPattern`);
    diffcp uses least squares for the same reason.
    """

    def __init__(self, pat: KKTPattern, b, c, x, y, s, n_jobs: int = 1):
        self.pat, self.b, self.c, self.x, self.y, self.s = pat, b, c, x, y, s
        self._fac: dict[int, Any] = {}
        self._vals = None
        self.n_jobs = n_jobs

    def _prepare(self):
        if self._vals is None:
            self._vals, self._Dv, self._Db = self.pat.values(self.b, self.c, self.x, self.y, self.s)

    def _factor(self, i: int):
        """Factorize problem i: ``("core", lu, u1, u2, g, zr, E)`` or ``("full", lu_or_matrix)``."""
        pat = self.pat
        self._prepare()
        S, indices, indptr = pat.core
        R = sp.csc_matrix((self._vals[i], indices, indptr), shape=(pat.N - 1, pat.N - 1))
        x, y, s, c, b = self.x[i], self.y[i], self.s[i], self.c[i], self.b[i]
        a = np.concatenate([-c, -self._Db[i]])
        g = np.concatenate([c, b])
        zr = np.concatenate([x, y - s])
        fac = None
        try:
            lu = spla.splu(R)
            u1, u2 = lu.solve(a), lu.solve(zr)
            E = np.array([[-g @ u1, 1.0 - g @ u2], [1.0 - zr @ u1, -zr @ u2]])
            if np.all(np.isfinite(E)) and np.linalg.cond(E) < 1e12:
                fac = ("core", lu, u1, u2, g, zr, E)
        except RuntimeError:  # R singular: factorize the bordered matrix
            pass
        if fac is None:
            K = pat.full_matrix(b, c, x, y, s, self._Dv[i], self._Db[i])
            try:
                fac = ("full", spla.splu(K))
            except RuntimeError:  # degenerate beyond the embedding's scaling: least squares
                fac = ("lsqr", K[: pat.N, : pat.N])
        self._fac[i] = fac
        return fac

    def _solve(self, i: int, dz: np.ndarray) -> np.ndarray:
        """A solution r of ``M^T r = dz`` (the bordered system's, ``z . r = 0``)."""
        fac = self._fac[i] if i in self._fac else self._factor(i)
        if fac[0] == "core":
            _, lu, u1, u2, g, zr, E = fac
            u0 = lu.solve(dz[:-1])
            r_tau, lam = np.linalg.solve(E, [dz[-1] - g @ u0, -zr @ u0])
            return np.concatenate([u0 - r_tau * u1 - lam * u2, [r_tau]])
        if fac[0] == "full":
            return fac[1].solve(np.concatenate([dz, [0.0]]))[:-1]
        return spla.lsqr(fac[1], dz, atol=1e-12, btol=1e-12)[0]

    def vjp(self, dx: np.ndarray, dy: np.ndarray):
        """(dA (batch, nnz(A)) in A's CSC order, db (batch, m), dc (batch, n)) for cotangents (batch, n/m)."""
        pat = self.pat
        n, m, B = pat.n, pat.m, dx.shape[0]
        self._prepare()
        Dt_dy = _block_apply_t(pat, self._Dv, dy)
        dw = -(np.sum(self.x * dx, axis=1) + np.sum(self.y * dy, axis=1))
        dz = np.concatenate([dx, Dt_dy, dw[:, None]], axis=1)
        r = np.zeros_like(dz)
        todo = [i for i in range(B) if np.any(dz[i])]

        # SuperLU releases the GIL, so threads overlap the factorizations
        for i, ri in zip(todo, thread_map(lambda i: self._solve(i, dz[i]), todo, self.n_jobs)):
            r[i] = ri
        pz = np.concatenate([self.x, self.y, np.ones((B, 1))], axis=1)
        rows, cols = pat.ra, pat.ca
        dA = pz[:, cols] * r[:, rows + n] - pz[:, n + rows] * r[:, cols]
        db = pz[:, n : n + m] * r[:, -1:] - r[:, n : n + m]
        dc = pz[:, :n] * r[:, -1:] - r[:, :n]
        return dA, db, dc

