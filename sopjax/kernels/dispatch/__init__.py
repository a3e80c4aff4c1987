"""JAX-native convex SOP dispatch: exact DistFlow plus a reduced-space interior-point method.

Modules, one concept each:

* :mod:`~sopjax.kernels.dispatch.data`: problem data (:func:`compile_dispatch`), inputs,
  results, validation, errors;
* :mod:`~sopjax.kernels.dispatch.flow`: the exact DistFlow fixed point;
* :mod:`~sopjax.kernels.dispatch.problem`: the problem in the SOP set-points: rows, Lagrangian;
* :mod:`~sopjax.kernels.dispatch.ipm`: the interior-point iteration (``init / step``)
  over ``(rows, batch)`` arrays;
* :mod:`~sopjax.kernels.dispatch.cholesky`: the batched Cholesky of its Newton matrices;
* :mod:`~sopjax.kernels.dispatch.derivatives`: implicit derivatives at the solution;
* :mod:`~sopjax.kernels.dispatch.solve`: the solvers, one sample and a whole batch.
"""

from sopjax.kernels.dispatch.data import (
    CAPACITY_FLOOR_PU,
    DispatchData,
    DispatchInfeasibleError,
    DispatchInputError,
    DispatchInputs,
    DispatchResult,
    check_inputs,
    compile_dispatch,
    concrete_value,
    nominal_inputs,
)
from sopjax.kernels.dispatch.derivatives import dispatch_solution, setpoint_tangents
from sopjax.kernels.dispatch.flow import distflow
from sopjax.kernels.dispatch.solve import (
    STRAGGLER_SHARE,
    dispatch_batched,
    dispatch_native,
    dispatch_state,
    dispatch_state_batch,
)

__all__ = [
    "CAPACITY_FLOOR_PU", "DispatchData", "DispatchInfeasibleError", "DispatchInputError", "DispatchInputs",
    "DispatchResult", "STRAGGLER_SHARE", "check_inputs", "compile_dispatch", "concrete_value",
    "dispatch_batched", "dispatch_native", "dispatch_solution", "dispatch_state", "dispatch_state_batch",
    "distflow", "nominal_inputs", "setpoint_tangents",
]
