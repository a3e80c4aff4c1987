"""JAX-native convex SOP dispatch: exact DistFlow plus a reduced-space interior-point method.

:mod:`~sopjax.kernels.dispatch.native` holds the problem data, the per-sample solver and
its implicit derivatives; :mod:`~sopjax.kernels.dispatch.batched` runs the same method on
a whole batch at once.
"""

from sopjax.kernels.dispatch.batched import STRAGGLER_SHARE, dispatch_batched, dispatch_state_batch
from sopjax.kernels.dispatch.native import (
    CAPACITY_FLOOR_PU,
    DispatchData,
    DispatchInfeasibleError,
    DispatchInputError,
    DispatchInputs,
    DispatchResult,
    check_inputs,
    compile_dispatch,
    concrete_value,
    dispatch_native,
    dispatch_solution,
    dispatch_state,
    distflow,
    nominal_inputs,
)

__all__ = [
    "CAPACITY_FLOOR_PU", "DispatchData", "DispatchInfeasibleError", "DispatchInputError", "DispatchInputs", "DispatchResult",
    "STRAGGLER_SHARE", "check_inputs", "compile_dispatch", "concrete_value", "dispatch_batched", "dispatch_native",
    "dispatch_solution", "dispatch_state", "dispatch_state_batch", "distflow", "nominal_inputs",
]
