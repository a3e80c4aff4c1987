"""Convex SOP dispatch as a cvxpy model: the reference solve and the cvxpylayers layer.

* :mod:`~sopjax.problems.dispatch.model` -- the DPP SOC problem, built once per topology.
* :mod:`~sopjax.problems.dispatch.reference` -- one operating point with cvxpy; infeasibility diagnosis.
* :mod:`~sopjax.problems.dispatch.layer` -- the batched, differentiable cvxpylayers JAX layer.
* :mod:`~sopjax.problems.dispatch.adjoint` -- its solver context (Clarabel + exact adjoint; reads
  cvxpylayers internals), on the cone-program adjoint of :mod:`~sopjax.problems.dispatch.cone_adjoint`.
"""

from sopjax.problems.dispatch.layer import DispatchLayer
from sopjax.problems.dispatch.model import DispatchModel, build_dispatch
from sopjax.problems.dispatch.reference import diagnose_infeasible, solve_dispatch

__all__ = ["DispatchModel", "build_dispatch", "solve_dispatch", "DispatchLayer", "diagnose_infeasible"]
