"""Clarabel and the exact sparse adjoint as the solver context of a cvxpylayers layer.

cvxpylayers' default (diffcp) context solves each cone program of a batch with
Clarabel through diffcp and differentiates it with LSQR on the derivative operator
of Agrawal et al. (2019); for a feeder-sized problem LSQR dominates the backward
pass. :class:`ExactSolverContext` keeps cvxpylayers' canonicalization, parameter
maps, custom_vjp and result recovery, calls Clarabel directly (one solver per worker
thread, set up once per batch matrix ``A``) and differentiates with
:class:`~sopjax.problems.dispatch.cone_adjoint.BatchAdjoint` (same formula, sparse LU).
Its backward is a ``pure_callback`` with sequential vmap, so ``jax.jacrev`` works too.

cvxpylayers has no public interface for this (its ``SolverInterface`` hands a custom
solver the cvxpy problem, not the canonical data of a batch), so this module relies
on internals of cvxpylayers 1.2 (``pyproject.toml`` bounds the version;
``tests/test_cvxpylayers_internals.py`` fails loudly when one of them changes):

1. ``cvxpylayers.jax.CvxpyLayer(problem, parameters, variables)`` without ``solver``
   gives ``layer.ctx`` (``cvxpylayers.utils.parse_args.LayersContext``) with
   ``ctx.solver == "DIFFCP"`` and ``ctx.solver_ctx`` a
   ``cvxpylayers.interfaces.diffcp_if.DIFFCP_ctx``; replacing ``ctx.solver_ctx`` takes
   effect because ``CvxpyLayer._solve_with_custom_vjp`` looks it up on every call.
2. That context's attributes: ``A_structure = (indices, indptr)`` and
   ``A_shape = (m, n + 1)`` of the CSC matrix ``[-A | b]`` of the cone program
   ``min c'x, Ax + s = b, s in K``; ``b_idx``, the rows of the ``b`` column's entries
   (``indices[indptr[-2]:]``); ``dims``, the cone dimensions, turned into a
   diffcp/SCS cone dict (rows zero, non-negative, second-order, in that order) by
   ``cvxpylayers.interfaces.diffcp_if.dims_to_solver_dict``. No quadratic objective
   (``P``) for the DIFFCP solver, so ``quad_obj_values`` is ``None`` and ignored.
3. The calls it answers: ``jax_to_data(quad_obj_values, lin_obj_values, con_values)``
   with ``con_values`` the CSC values of ``[-A | b]`` (nnz, batch) and
   ``lin_obj_values`` ``[c; constant]`` (n + 1, batch), either without the batch axis
   for an unbatched call; the returned object's ``jax_solve_only(solver_args)`` ->
   ``(x (batch, n), y (batch, m))`` (forward only), ``jax_solve(solver_args)`` ->
   ``(x, y, residuals)`` (forward of a gradient) and
   ``jax_derivative(dx, dy, residuals)`` -> ``(dP=None, dq (n + 1, batch),
   dA (nnz, batch))`` with ``dA = [-(d A) in CSC order; (d b)[b_idx]]`` and
   ``dq = [d c; 0]``, the batch axis squeezed for an unbatched call.
4. ``y`` is diffcp's dual of ``Ax + s = b``; cvxpylayers reads a constraint's dual
   as a contiguous slice of it (hence one capacity cone per VSC in the model).

Every other attribute is forwarded to the stock context.
"""

from __future__ import annotations

import threading

import numpy as np
import scipy.sparse as sp

from sopjax.problems.dispatch.cone_adjoint import BatchAdjoint, KKTPattern, cone_starts, thread_map

__all__ = ["ExactSolverContext", "REQUIRED_CONTEXT_ATTRIBUTES", "check_layer_context"]

#: the attributes of cvxpylayers' ``DIFFCP_ctx`` that :class:`ExactSolverContext` reads.
REQUIRED_CONTEXT_ATTRIBUTES = ("A_structure", "A_shape", "b_idx", "dims")


def check_layer_context(layer_ctx) -> None:
    """Raise if a ``CvxpyLayer.ctx`` is not the diffcp context this module was written against.

    Raises:
        RuntimeError: naming what differs (the installed cvxpylayers changed its internals).
    """
    import cvxpylayers

    base = getattr(layer_ctx, "solver_ctx", None)
    missing = [a for a in REQUIRED_CONTEXT_ATTRIBUTES if not hasattr(base, a)]
    solver = getattr(layer_ctx, "solver", None)
    if solver != "DIFFCP" or missing:
        raise RuntimeError(
            f"cvxpylayers {getattr(cvxpylayers, '__version__', '?')}: the layer's solver is {solver!r} "
            f"and its solver context {type(base).__name__} lacks {missing}; the exact adjoint of "
            "sopjax.problems.dispatch.adjoint needs cvxpylayers 1.2's DIFFCP_ctx (use mode='lsqr' "
            "or install cvxpylayers 1.2)"
        )


def _clarabel_cones(cone_dict: dict):
    import clarabel

    bad = [k for k in ("s", "ep", "ed", "p") if cone_dict.get(k)]
    if bad:  # pragma: no cover - the dispatch model has only these cones
        raise NotImplementedError(f"cones {bad} are not supported by the fast dispatch context")
    cones = []
    if cone_dict.get("z", 0):
        cones.append(clarabel.ZeroConeT(int(cone_dict["z"])))
    if cone_dict.get("l", 0):
        cones.append(clarabel.NonnegativeConeT(int(cone_dict["l"])))
    for q in cone_dict.get("q", []):
        cones.append(clarabel.SecondOrderConeT(int(q)))
    return cones


def _clarabel_settings(settings: dict, **overrides):
    """Quiet Clarabel settings with ``settings`` then ``overrides`` applied."""
    import clarabel

    st = clarabel.DefaultSettings()
    st.verbose = False
    for k, v in {**settings, **overrides}.items():
        setattr(st, k, v)
    return st


class _Ruiz:
    """Ruiz equilibration of a cone program's ``A`` (what Clarabel does inside, done once).

    ``A_s = diag(e) A diag(d)``: ``x = d * x_s``, ``y = e * y_s``, ``s = s_s / e``; ``e``
    is constant on each second-order cone so that the scaled slack stays in the cone.
    Scalings are clipped to [1e-4, 1e4] and iterated 10 times, as Clarabel's defaults.
    """

    def __init__(self, A: sp.csc_matrix, cone_dict: dict, iters: int = 10):
        m, n = A.shape
        d, e = np.ones(n), np.ones(m)
        nz, nl, sizes, _ = cone_starts(cone_dict)
        block = np.concatenate([np.arange(nz + nl), nz + nl + np.repeat(np.arange(sizes.size), sizes)])
        As = A.tocsc(copy=True)
        for _ in range(iters):
            absA = abs(As)
            cn = np.asarray(absA.max(axis=0).todense()).ravel()
            rn = np.asarray(absA.max(axis=1).todense()).ravel()
            dc = np.clip(1.0 / np.sqrt(np.where(cn > 0, cn, 1.0)), 1e-4, 1e4)
            er = np.clip(1.0 / np.sqrt(np.where(rn > 0, rn, 1.0)), 1e-4, 1e4)
            # one factor per second-order cone (the block mean), rows of z / l cones free
            mean = np.bincount(block, er) / np.bincount(block)
            er = mean[block]
            d, e = d * dc, e * er
            As = (sp.diags(er) @ As @ sp.diags(dc)).tocsc()
        self.A, self.d, self.e = As, d, e


class ExactSolverContext:
    """Stand-in for cvxpylayers' ``DIFFCP_ctx`` of one layer: Clarabel forward, exact adjoint backward.

    Forward: the batch's canonical data is read once into arrays (no per-problem
    scipy slicing); since the dispatch's parameters all live in ``b`` (DPP), ``A``
    is one shared matrix; Clarabel solves each problem (``n_jobs`` threads).
    Backward: :class:`~sopjax.problems.dispatch.cone_adjoint.BatchAdjoint` on a fixed
    pattern with batched value computation; a batch whose ``A`` varies gets one
    pattern per problem.

    Args:
        layer_ctx: ``CvxpyLayer.ctx`` (checked by :func:`check_layer_context`).
        settings: Clarabel settings. Without ``equilibrate_enable``, one solver per
            thread is set up once per batch matrix with a Ruiz scaling computed once
            and updated with each problem's ``b`` / ``c``; with it, a fresh solver per
            problem with that setting.
        n_jobs: threads over the batch (Clarabel solves and factorizations release the GIL).
    """

    def __init__(self, layer_ctx, settings: dict, n_jobs: int):
        check_layer_context(layer_ctx)
        base = layer_ctx.solver_ctx
        self._base = base
        indices, indptr = base.A_structure
        m, np1 = base.A_shape
        self.m, self.n = m, np1 - 1
        self.nnz_a = int(indptr[-2])  # the entries of -A; the rest are b's column
        self._a_indices, self._a_indptr = indices[: self.nnz_a], indptr[:-1]
        self.b_idx_rows = np.asarray(base.b_idx)
        from cvxpylayers.interfaces.diffcp_if import dims_to_solver_dict

        self.cone_dict = dims_to_solver_dict(base.dims)
        self.n_jobs = n_jobs
        self._cones = _clarabel_cones(self.cone_dict)
        self._P0 = sp.csc_matrix((self.n, self.n))
        self._settings = _clarabel_settings(settings)
        # Clarabel's own equilibration is replaced by the same Ruiz scaling computed once
        # here (Clarabel's update(b=...) with its equilibration on does not reproduce a
        # fresh solve: capacity duals moved by up to 1e-3 relative after a different b;
        # without any equilibration the degenerate capacity-0 points lose their accuracy).
        self._reuse = "equilibrate_enable" not in settings
        self._scaled_settings = _clarabel_settings(settings, equilibrate_enable=False)
        self._local = threading.local()  # one (scaling, solver, c) per worker thread
        self.shared: dict = {}  # the batch matrix A shared by a batch: key, A, eq, pattern

    def __getattr__(self, name):
        if name == "_base":  # not set yet (e.g. while copying): no recursion
            raise AttributeError(name)
        return getattr(self._base, name)

    def matrix(self, values: np.ndarray) -> sp.csc_matrix:
        """The cone program's ``A`` from its values in the CSC order of ``A_structure``."""
        return sp.csc_matrix((values, self._a_indices, self._a_indptr), shape=(self.m, self.n))

    def jax_to_data(self, quad_obj_values, lin_obj_values, con_values) -> _Batch:
        """The batch of cone programs of cvxpylayers' evaluated parameter maps (internal 3)."""
        cv, lv = np.asarray(con_values, float), np.asarray(lin_obj_values, float)
        unbatched = cv.ndim == 1
        if unbatched:
            cv, lv = cv[:, None], lv[:, None]
        B = cv.shape[1]
        A_vals = -cv[: self.nnz_a]
        b = np.zeros((B, self.m))
        b[:, self.b_idx_rows] = cv[self.nnz_a :].T
        return _Batch(self, A_vals, b, np.ascontiguousarray(lv[:-1].T), unbatched)

    def solve_one(self, A: sp.csc_matrix, b: np.ndarray, c: np.ndarray):
        """Solve one problem; returns (x, y, s, status) in the original scaling."""
        import clarabel

        shared = self.shared
        if not (self._reuse and A is shared.get("A")):
            sol = clarabel.DefaultSolver(self._P0, c, A, b, self._cones, self._settings).solve()
            return np.asarray(sol.x), np.asarray(sol.z), np.asarray(sol.s), str(sol.status)
        eq = shared["eq"]
        cached = getattr(self._local, "solver", None)
        if cached is None or cached[0] is not eq:
            solver = clarabel.DefaultSolver(self._P0, eq.d * c, eq.A, eq.e * b, self._cones,
                                            self._scaled_settings)
            if solver.is_data_update_allowed():  # else a fresh (scaled) solver next time too
                self._local.solver = (eq, solver, c)
        else:
            _, solver, c_old = cached
            if np.array_equal(c, c_old):
                solver.update(b=eq.e * b)
            else:
                solver.update(b=eq.e * b, q=eq.d * c)
                self._local.solver = (eq, solver, c)
        sol = solver.solve()
        return (eq.d * np.asarray(sol.x), eq.e * np.asarray(sol.z), np.asarray(sol.s) / eq.e, str(sol.status))


class _Batch:
    """One batch of cone programs: what ``jax_to_data`` returns (cvxpylayers' ``DIFFCP_data``)."""

    def __init__(self, ctx: ExactSolverContext, A_vals: np.ndarray, b: np.ndarray, c: np.ndarray,
                 unbatched: bool):
        self.ctx = ctx
        self.B = b.shape[0]
        self.b, self.c = b, c
        self.originally_unbatched = unbatched
        self.shared_A = bool(np.all(A_vals == A_vals[:, :1]))
        shared = ctx.shared
        if self.shared_A:
            key = A_vals[:, 0].tobytes()
            if shared.get("key") != key:
                shared["key"] = key
                shared["A"] = ctx.matrix(A_vals[:, 0])
                shared["pattern"] = None
                shared["eq"] = _Ruiz(shared["A"], ctx.cone_dict)
            self.As = None
        else:
            self.As = [ctx.matrix(A_vals[:, i]) for i in range(self.B)]

    def _solve_all(self):
        from diffcp.cone_program import SolverError as DiffcpSolverError

        ctx = self.ctx

        def one(i):
            A = ctx.shared["A"] if self.shared_A else self.As[i]
            x, y, s_, status = ctx.solve_one(A, self.b[i], self.c[i])
            if status not in ("Solved", "AlmostSolved"):
                raise DiffcpSolverError(f"Clarabel returned status {status} for problem {i} of the batch")
            return x, y, s_

        out = thread_map(one, list(range(self.B)), ctx.n_jobs)
        return (np.stack([o[0] for o in out]), np.stack([o[1] for o in out]),
                np.stack([o[2] for o in out]))

    def jax_solve_only(self, solver_args=None):
        import jax.numpy as jnp

        x, y, _ = self._solve_all()
        return jnp.asarray(x), jnp.asarray(y)

    def jax_solve(self, solver_args=None):
        import jax.numpy as jnp

        x, y, s = self._solve_all()
        ctx, shared = self.ctx, self.ctx.shared
        if self.shared_A:
            if shared.get("pattern") is None:
                shared["pattern"] = KKTPattern(shared["A"], ctx.cone_dict)
            adj = BatchAdjoint(shared["pattern"], self.b, self.c, x, y, s, ctx.n_jobs)
        else:  # one pattern per problem
            adj = [BatchAdjoint(KKTPattern(self.As[i], ctx.cone_dict), self.b[i : i + 1], self.c[i : i + 1],
                                x[i : i + 1], y[i : i + 1], s[i : i + 1]) for i in range(self.B)]
        return jnp.asarray(x), jnp.asarray(y), adj

    def jax_derivative(self, dprimal, ddual, adj):
        import jax
        import jax.numpy as jnp

        B, n, m = self.B, self.ctx.n, self.ctx.m
        b_idx = self.ctx.b_idx_rows
        n_q, n_a = n + 1, self.ctx.nnz_a + b_idx.size

        def host(dp, dd):
            dp = np.asarray(dp, float).reshape(B, n)
            dd = np.asarray(dd, float).reshape(B, m)
            if isinstance(adj, BatchAdjoint):
                a, bb, cc = adj.vjp(dp, dd)
            else:
                res = [ad.vjp(dp[i : i + 1], dd[i : i + 1]) for i, ad in enumerate(adj)]
                a, bb, cc = (np.concatenate([r_[k] for r_ in res]) for k in range(3))
            dA = np.concatenate([-a, bb[:, b_idx]], axis=1).T
            dq = np.concatenate([cc, np.zeros((B, 1))], axis=1).T
            return dq, dA

        shapes = (
            jax.ShapeDtypeStruct((n_q, B), jnp.float64),
            jax.ShapeDtypeStruct((n_a, B), jnp.float64),
        )
        dq, dA = jax.pure_callback(host, shapes, dprimal, ddual, vmap_method="sequential")
        if self.originally_unbatched:
            dq, dA = dq[:, 0], dA[:, 0]
        return None, dq, dA
