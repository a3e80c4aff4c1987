"""The SOC dispatch as a differentiable JAX layer (cvxpylayers), batched over operating points.

:class:`DispatchLayer` canonicalizes a
:class:`~sopjax.problems.dispatch.model.DispatchModel` once with ``cvxpylayers``
and maps :class:`~sopjax.kernels.dispatch.DispatchInputs` to a
:class:`~sopjax.kernels.dispatch.DispatchResult` of JAX arrays. By default it solves
with Clarabel and differentiates with the exact sparse adjoint
(:mod:`sopjax.problems.dispatch.adjoint`); ``mode="lsqr"`` keeps cvxpylayers' stock
diffcp path. Infeasible points are re-solved on the host with the reference
(:mod:`sopjax.problems.dispatch.reference`) to name the sample and the bus.
"""

from __future__ import annotations

import cvxpy as cp

from sopjax.kernels.dispatch import (
    DispatchInfeasibleError,
    DispatchInputError,
    DispatchInputs,
    DispatchResult,
    check_inputs,
    concrete_value,
)
from sopjax.problems.dispatch.adjoint import ExactSolverContext
from sopjax.problems.dispatch.model import DispatchModel, result_from_values
from sopjax.problems.dispatch.reference import infeasible_message, solve_dispatch

__all__ = ["DispatchLayer"]


class DispatchLayer:
    """Differentiable batched SOP dispatch: a ``cvxpylayers`` JAX layer over :class:`DispatchModel`.

    The problem is canonicalized once at construction. Calling the layer with
    :class:`~sopjax.kernels.dispatch.DispatchInputs` (with or without one leading
    batch axis) returns a :class:`~sopjax.kernels.dispatch.DispatchResult` of JAX
    arrays that ``jax.grad`` / ``jax.jacrev`` differentiate by implicit
    differentiation of the cone program. Not ``jit``-able: the solver runs on the host.

    Args:
        model: the dispatch model.
        mode: ``"exact"`` (default): Clarabel and the exact sparse adjoint of
            :mod:`~sopjax.problems.dispatch.adjoint` (also supports ``jax.jacrev``);
            ``"lsqr"`` / ``"dense"``: cvxpylayers' stock diffcp context with Clarabel and that diffcp
            derivative mode (the naive baseline of benchmarks/dispatch_bench.py;
            it does not detect infeasibility and supports ``jax.grad`` only).
        n_jobs: threads over the batch (Clarabel solves and adjoint factorizations; both
            release the GIL, so this buys wall time where cores are free, not CPU time).
        solver_args: Clarabel settings (e.g. ``{"tol_gap_rel": 1e-9}``). By default one
            solver per thread is set up once per batch matrix, with a Ruiz scaling
            computed once; giving ``equilibrate_enable`` switches to a fresh Clarabel
            solver per problem with that setting.
    """

    def __init__(self, model: DispatchModel, *, mode: str = "exact", n_jobs: int = 1,
                 solver_args: dict | None = None):
        from cvxpylayers.jax import CvxpyLayer

        if mode not in ("exact", "lsqr", "dense", "lsmr"):
            raise DispatchInputError(f"unknown layer mode {mode!r}; choose exact, lsqr, dense or lsmr")
        if int(n_jobs) < 1:
            raise DispatchInputError(f"n_jobs must be >= 1, got {n_jobs}")
        self.model = model
        self.mode = mode
        V = model.vars
        self._names = ["p_i", "q_i", "p_j", "q_j", "L_i", "L_j", "l", "v"]
        variables = [V[n] for n in self._names]
        variables += [c.dual_variables[0] for c in model.cap_i + model.cap_j]
        self.layer = CvxpyLayer(model.problem, parameters=list(model.params.values()), variables=variables)
        if mode == "exact":
            ctx = self.layer.ctx
            ctx.solver_ctx = ExactSolverContext(ctx, dict(solver_args or {}), int(n_jobs))
            self.solver_args = {}
            self.derivative_args = {}
        else:
            # diffcp's solve-only path rejects derivative options, so they are added
            # per call, only when the inputs are being differentiated
            self.solver_args = {"solve_method": "Clarabel", "n_jobs_forward": int(n_jobs)}
            self.solver_args.update(solver_args or {})
            self.derivative_args = {"mode": mode, "n_jobs_backward": int(n_jobs)}

    def __call__(self, inputs: DispatchInputs) -> DispatchResult:
        import jax
        import jax.numpy as jnp
        from diffcp.cone_program import SolverError as DiffcpSolverError

        data = self.model.data
        batch = check_inputs(data, inputs)
        if len(batch) > 1:
            raise DispatchInputError(f"the cvxpylayers dispatch takes at most one batch axis, got {batch}")
        params = [jnp.asarray(p, jnp.float64) for p in self.model.param_values(inputs)]
        args = dict(self.solver_args)
        if any(isinstance(p, jax.core.Tracer) for p in params):
            args.update(self.derivative_args)
        try:
            out = self.layer(*params, solver_args=args)
        except (DiffcpSolverError, cp.error.SolverError, RuntimeError) as e:
            raise DispatchInfeasibleError(self._explain(inputs, batch, str(e))) from None
        nv, ns = len(self._names), data.n_sop
        V = dict(zip(self._names, out[:nv]))
        duals = [jnp.reshape(d, batch) for d in out[nv:]]
        dual_i = jnp.stack(duals[:ns], axis=-1)
        dual_j = jnp.stack(duals[ns:], axis=-1)
        return result_from_values(data, V, dual_i, dual_j, jnp)

    def _explain(self, inputs: DispatchInputs, batch: tuple, err: str) -> str:
        """Find the infeasible sample (host-side re-solve) and name its limiting bus."""
        vals = [concrete_value(a) for a in inputs]
        if any(v is None for v in vals):
            return f"no SOP set-point satisfies the operating limits (solver: {err})"
        samples = range(batch[0]) if batch else [None]
        for i in samples:
            one = DispatchInputs(*(v if i is None else v[i] for v in vals))
            try:
                solve_dispatch(self.model, one, diagnose=False)
            except DispatchInfeasibleError:
                where = "" if i is None else f" in sample {i}"
                return infeasible_message(self.model, one, True, "infeasible", where)
        return f"the cone solver failed (solver: {err})"

