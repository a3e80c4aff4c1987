"""The JAX-native dispatch solvers: one sample (:func:`dispatch_native`), a batch (:func:`dispatch_batched`).

Both run the one interior-point iteration of :mod:`~sopjax.kernels.dispatch.ipm`;
the per-sample solver is the batched one on a batch of one (with the LAPACK
:data:`~sopjax.kernels.dispatch.layouts.DENSE` layout, whose graph does not grow
with the number of SOPs), so their iterates agree to round-off. Derivatives are
implicit (:mod:`~sopjax.kernels.dispatch.derivatives`).

A batch runs until its slowest sample stops. So that a few slow samples do not set
the pace of the whole batch, :func:`dispatch_state_batch` runs in two stages: once
at most ``batch // STRAGGLER_SHARE`` samples are still running, those are gathered
into a batch of that size and finished there.

Failure is data: ``converged`` is False where the iteration stalls, e.g. because no
set-point satisfies the voltage limits; ``infeasibility`` carries the largest
constraint violation. The Python boundary (:mod:`sopjax.sweeps`,
:func:`sopjax.problems.dispatch.layer.solve_dispatch`) raises, naming the bus.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.dispatch import ipm
from sopjax.kernels.dispatch.data import (
    DispatchData, DispatchInputError, DispatchInputs, DispatchResult, check_inputs,
)
from sopjax.kernels.dispatch.derivatives import dispatch_solution
from sopjax.kernels.dispatch.layouts import DENSE, PACKED, Layout
from sopjax.kernels.dispatch.problem import consts, params, problem

__all__ = ["STRAGGLER_SHARE", "dispatch_batched", "dispatch_native", "dispatch_state", "dispatch_state_batch"]

# the second stage finishes at most batch // STRAGGLER_SHARE samples
STRAGGLER_SHARE = 8


def _take(tree, idx):
    return jax.tree_util.tree_map(lambda a: a[..., idx], tree)


def _put(tree, idx, part):
    return jax.tree_util.tree_map(lambda a, b: a.at[..., idx].set(b), tree, part)


def dispatch_state_batch(data: DispatchData, inputs: DispatchInputs, *, tol: float = 1e-9,
                         max_iter: int = 150, sweeps: int = 3, straggler_share: int = STRAGGLER_SHARE,
                         layout: Layout = PACKED):
    """Run the interior-point method on a batch (one leading sample axis); no derivatives.

    Args:
        data: from :func:`sopjax.kernels.dispatch.compile_dispatch`.
        inputs: :class:`DispatchInputs` with one leading batch axis.
        tol, max_iter, sweeps: as :func:`dispatch_state`.
        straggler_share: finish the last ``batch // straggler_share`` running samples in a
            batch of that size (0: no second stage).
        layout: factorization of the Newton matrices (:mod:`~sopjax.kernels.dispatch.layouts`).

    Returns:
        ``(x, z, s, l, iterations, converged, infeasibility)``, each with the sample axis first.
    """
    th = jax.tree_util.tree_map(lambda a: jax.lax.stop_gradient(a).T, params(inputs))
    dtype = jnp.result_type(th.p_load.dtype, jnp.float32)
    th = jax.tree_util.tree_map(lambda a: a.astype(dtype), th)
    k = consts(data, dtype)
    pb = problem(data, th)
    st = ipm.init(data, k, pb)

    def body(pb, st):
        return ipm.step(data, k, layout, pb, st, tol=tol, sweeps=sweeps)

    nb = th.p_load.shape[-1]
    n_small = nb // straggler_share if straggler_share else 0
    if n_small < 1 or n_small >= nb:
        st = jax.lax.while_loop(lambda st: jnp.any(~st.stop) & (jnp.max(st.it) < max_iter),
                                lambda st: body(pb, st), st)
    else:
        # stage 1: the whole batch, while more than n_small samples run
        running = lambda st: jnp.sum(~st.stop & (st.it < max_iter))  # noqa: E731
        st = jax.lax.while_loop(lambda st: running(st) > n_small, lambda st: body(pb, st), st)
        # stage 2: the (at most n_small) running samples, gathered
        idx = jnp.argsort(st.stop | (st.it >= max_iter), stable=True)[:n_small]
        sub_pb, sub = _take(pb, idx), _take(st, idx)
        sub = sub._replace(stop=sub.stop | (sub.it >= max_iter))
        sub = jax.lax.while_loop(lambda s: jnp.any(~s.stop & (s.it < max_iter)),
                                 lambda s: ipm.select(s.it >= max_iter, s, body(sub_pb, s)), sub)
        st = _put(st, idx, sub)
    out = ipm.finish(data, k, pb, st, sweeps)
    return tuple(a.T for a in out)


def dispatch_state(data: DispatchData, inputs: DispatchInputs, *, tol: float = 1e-9, max_iter: int = 150,
                   sweeps: int = 3):
    """Run the interior-point method for one sample; no derivatives (see :func:`dispatch_native`).

    :func:`dispatch_state_batch` on a batch of one, with the :data:`DENSE` layout.

    Returns:
        ``(x, z, s, l, iterations, converged, infeasibility)`` of the final iterate.
    """
    one = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], inputs)
    out = dispatch_state_batch(data, one, tol=tol, max_iter=max_iter, sweeps=sweeps, straggler_share=0,
                               layout=DENSE)
    return tuple(a[0] for a in out)


def dispatch_native(data: DispatchData, inputs: DispatchInputs, *, tol: float = 1e-9, max_iter: int = 150,
                    sweeps: int = 3, final_sweeps: int = 6) -> DispatchResult:
    """Optimal SOP dispatch of one sample, differentiable w.r.t. all of ``inputs``.

    Pure JAX: ``jit`` it (``data`` may be a static closure or an argument) and
    ``vmap`` it over samples (:func:`dispatch_batched` solves a whole batch faster).
    Derivatives are implicit (:mod:`~sopjax.kernels.dispatch.derivatives`).

    Args:
        data: from :func:`~sopjax.kernels.dispatch.compile_dispatch`.
        inputs: one sample (no batch axes; ``vmap`` for batches).
        tol: tolerance on the KKT residuals and the complementarity measure (p.u.).
        max_iter: interior-point iteration limit.
        sweeps: DistFlow sweeps per iteration (warm-started).
        final_sweeps: DistFlow sweeps at the solution for the exact derivatives.

    Returns:
        :class:`DispatchResult`; ``converged`` False flags a sample that did not
        meet ``tol`` (e.g. infeasible voltage limits), ``infeasibility`` its largest violation.
    """
    state = dispatch_state(data, inputs, tol=tol, max_iter=max_iter, sweeps=sweeps)
    return dispatch_solution(data, inputs, state, final_sweeps=final_sweeps)


def dispatch_batched(data: DispatchData, inputs: DispatchInputs, *, tol: float = 1e-9, max_iter: int = 150,
                     sweeps: int = 3, final_sweeps: int = 6,
                     straggler_share: int = STRAGGLER_SHARE) -> DispatchResult:
    """Optimal SOP dispatch of a batch: :func:`dispatch_native` for every sample, solved
    together (same results, derivatives and failure flags).

    Args:
        data: from :func:`sopjax.kernels.dispatch.compile_dispatch`.
        inputs: :class:`DispatchInputs` with leading batch axes (any number, at least one).
        tol, max_iter, final_sweeps: as :func:`dispatch_native`.
        sweeps: DistFlow sweeps per iteration (warm-started). The default 3 makes each
            iteration's gradient exact to round-off near the solution; 2 leave the solution
            ~1e-6 p.u. from the exact KKT point for ~15 % less time per iteration.
        straggler_share: see :func:`dispatch_state_batch`.

    Returns:
        :class:`~sopjax.kernels.dispatch.DispatchResult` with the inputs' batch axes.
    """
    batch = check_inputs(data, inputs)
    if not batch:
        raise DispatchInputError("dispatch_batched needs inputs with a leading batch axis "
                                 "(use dispatch_native for one sample)")
    n = int(np.prod(batch))
    flat = jax.tree_util.tree_map(lambda a: jnp.reshape(a, (n, a.shape[-1])), inputs)
    state = dispatch_state_batch(data, flat, tol=tol, max_iter=max_iter, sweeps=sweeps,
                                 straggler_share=straggler_share)
    res = jax.vmap(lambda i, st: dispatch_solution(data, i, st, final_sweeps=final_sweeps))(flat, state)
    return jax.tree_util.tree_map(lambda a: jnp.reshape(a, (*batch, *a.shape[1:])), res)
