"""cvxpy model building: formulations (SOC DistFlow, LinDistFlow) separate from problems.

Formulation API: :mod:`sopjax.solvers.formulations.soc_distflow` (module docstring).
Problems: :func:`solve_reconfiguration` (minimum losses), :func:`solve_restoration`
(service restoration with SOPs and reconfiguration, seed 002). Options:
:data:`TIGHT` (default) and :data:`NAIVE` (the benchmark baseline).
"""

from sopjax.solvers.model import Model
from sopjax.solvers.naive import NAIVE
from sopjax.solvers.options import TIGHT, FormulationOptions
from sopjax.solvers.problems.reconfiguration import (
    ReconfigurationResult,
    build_reconfiguration,
    solve_reconfiguration,
)
from sopjax.solvers.problems.restoration import (
    RestorationPlan,
    RestorationSettings,
    build_restoration,
    exact_check,
    restored_load_bound,
    solve_restoration,
)
from sopjax.solvers.solve import SCIP_DEFAULTS, InfeasibleError, SolveInfo, SolverError, solve_problem

__all__ = [
    "FormulationOptions", "InfeasibleError", "Model", "NAIVE", "ReconfigurationResult", "RestorationPlan",
    "RestorationSettings", "SCIP_DEFAULTS", "SolveInfo", "SolverError", "TIGHT", "build_reconfiguration",
    "build_restoration", "exact_check", "restored_load_bound", "solve_problem", "solve_reconfiguration",
    "solve_restoration",
]
