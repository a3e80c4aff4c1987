"""The JAX-native dispatch solvers: one sample (:func:`dispatch_native`), a batch (:func:`dispatch_batched`).

Both run the interior-point iteration of :mod:`~sopjax.kernels.dispatch.ipm`, one
sample as a batch of one, so their iterates agree to round-off; derivatives are
implicit (:mod:`~sopjax.kernels.dispatch.derivatives`). A batch runs until its
slowest sample stops, so once at most ``batch // STRAGGLER_SHARE`` samples still run,
those are gathered into a batch of that size and finished there, in stages of the
same kind while a stage has more than ``MIN_STRAGGLER_BATCH`` samples (2400 problems
of the IEEE 33 allocation study: 2400 -> 300 -> 37, the same iterates as one stage,
faster: ``benchmarks/straggler_bench.py``). Failure is data:
``converged`` is False where the iteration stalls (e.g. no set-point meets the voltage
limits), ``infeasibility`` the largest violation; the Python boundary
(:mod:`sopjax.sweeps`, :func:`sopjax.problems.dispatch.layer.solve_dispatch`) raises.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.dispatch import ipm
from sopjax.kernels.dispatch.data import (DispatchData, DispatchInputError, DispatchInputs, DispatchResult,
                                          check_inputs)
from sopjax.kernels.dispatch.derivatives import dispatch_solution
from sopjax.kernels.dispatch.problem import consts, params, problem

__all__ = ["STRAGGLER_SHARE", "dispatch_batched", "dispatch_native", "dispatch_state", "dispatch_state_batch"]

# each straggler stage finishes at most batch // STRAGGLER_SHARE samples of the stage before;
# no further stage below MIN_STRAGGLER_BATCH samples (a stage is one more while loop to compile)
STRAGGLER_SHARE = 8
MIN_STRAGGLER_BATCH = 64


def dispatch_state_batch(data: DispatchData, inputs: DispatchInputs, *, tol: float = 1e-9,
                         max_iter: int = 150, sweeps: int = 3, straggler_share: int = STRAGGLER_SHARE,
                         stall_after: int = 0):
    """Run the interior-point method on a batch (one leading sample axis); no derivatives.

    Args:
        data: from :func:`~sopjax.kernels.dispatch.compile_dispatch`.
        inputs: :class:`DispatchInputs` with one leading batch axis.
        tol, max_iter, sweeps: as :func:`dispatch_native`.
        straggler_share: finish the last ``batch // straggler_share`` running samples
            in a batch of that size (0: no second stage).
        stall_after: from this iteration on, stop a sample whose primal residual stalls
            (:func:`~sopjax.kernels.dispatch.ipm.step`); 0: never (run to ``max_iter``).

    Returns:
        ``(x, z, s, l, iterations, converged, infeasibility)``, each with the sample axis first.
    """
    th = jax.tree_util.tree_map(lambda a: jax.lax.stop_gradient(a).T, params(inputs))
    dtype = jnp.result_type(th.p_load.dtype, jnp.float32)
    th = jax.tree_util.tree_map(lambda a: a.astype(dtype), th)
    k = consts(data, dtype)
    pb = problem(data, th)

    def run(pb, st, n_left: int):
        """Iterate while more than ``n_left`` samples run (a sample at ``max_iter`` stops)."""
        def body(st):
            return ipm.select(st.it >= max_iter, st, ipm.step(data, k, pb, st, tol=tol, sweeps=sweeps,
                                                                stall_after=stall_after))
        return jax.lax.while_loop(lambda st: jnp.sum(~st.stop & (st.it < max_iter)) > n_left, body, st)

    def stages(pb, st, first: bool):
        """Run until at most ``nb // straggler_share`` samples are left, then finish those
        gathered in a batch of that size; recursively while the batch has more than
        ``MIN_STRAGGLER_BATCH`` samples."""
        nb = st.it.shape[-1]
        deeper = 1 < straggler_share <= nb and (first or nb > MIN_STRAGGLER_BATCH)
        n_small = nb // straggler_share if deeper else 0
        st = run(pb, st, n_small)
        if n_small:  # the (at most n_small) running samples, gathered
            idx = jnp.argsort(st.stop | (st.it >= max_iter), stable=True)[:n_small]
            sub = stages(*jax.tree_util.tree_map(lambda a: a[..., idx], (pb, st)), False)
            st = jax.tree_util.tree_map(lambda a, b: a.at[..., idx].set(b), st, sub)
        return st

    return tuple(a.T for a in ipm.finish(data, k, pb, stages(pb, ipm.init(data, k, pb), True), sweeps))


def dispatch_state(data: DispatchData, inputs: DispatchInputs, *, tol: float = 1e-9, max_iter: int = 150,
                   sweeps: int = 3):
    """:func:`dispatch_state_batch` of one sample (no batch axes), without the batch axis."""
    one = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], inputs)
    out = dispatch_state_batch(data, one, tol=tol, max_iter=max_iter, sweeps=sweeps, straggler_share=0)
    return tuple(a[0] for a in out)


def dispatch_native(data: DispatchData, inputs: DispatchInputs, *, tol: float = 1e-9, max_iter: int = 150,
                    sweeps: int = 3, final_sweeps: int = 6) -> DispatchResult:
    """Optimal SOP dispatch of one sample, differentiable w.r.t. all of ``inputs``; ``jit``/``vmap`` it.

    Args:
        data: from :func:`~sopjax.kernels.dispatch.compile_dispatch` (static closure or argument).
        inputs: one sample (no batch axes).
        tol: tolerance on the KKT residuals and the complementarity measure (p.u.).
        max_iter: interior-point iteration limit.
        sweeps: DistFlow sweeps per iteration (warm-started); 3 make the gradient exact
            to round-off near the solution, 2 leave it ~1e-6 p.u. off for ~15 % less time.
        final_sweeps: DistFlow sweeps at the solution for the exact derivatives.

    Returns:
        :class:`DispatchResult`; ``converged`` False where ``tol`` was not met.
    """
    state = dispatch_state(data, inputs, tol=tol, max_iter=max_iter, sweeps=sweeps)
    return dispatch_solution(data, inputs, state, final_sweeps=final_sweeps)


def dispatch_batched(data: DispatchData, inputs: DispatchInputs, *, tol: float = 1e-9, max_iter: int = 150,
                     sweeps: int = 3, final_sweeps: int = 6,
                     straggler_share: int = STRAGGLER_SHARE, stall_after: int = 0) -> DispatchResult:
    """:func:`dispatch_native` of every sample of ``inputs`` (any leading batch axes), solved together.

    Args:
        straggler_share, stall_after: see :func:`dispatch_state_batch`; the others as
            :func:`dispatch_native`.
    """
    batch = check_inputs(data, inputs)
    if not batch:
        raise DispatchInputError("dispatch_batched needs inputs with a leading batch axis "
                                 "(use dispatch_native for one sample)")
    n = int(np.prod(batch))
    flat = jax.tree_util.tree_map(lambda a: jnp.reshape(a, (n, a.shape[-1])), inputs)
    state = dispatch_state_batch(data, flat, tol=tol, max_iter=max_iter, sweeps=sweeps,
                                 straggler_share=straggler_share, stall_after=stall_after)
    res = jax.vmap(lambda i, st: dispatch_solution(data, i, st, final_sweeps=final_sweeps))(flat, state)
    return jax.tree_util.tree_map(lambda a: jnp.reshape(a, (*batch, *a.shape[1:])), res)
