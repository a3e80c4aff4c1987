"""cvxpy model building, independent of any one problem.

* :mod:`~sopjax.solvers.model` -- the :class:`Model` container (variables by name, constraints);
* :mod:`~sopjax.solvers.formulations` -- SOC DistFlow and LinDistFlow (variables, constraints);
* :mod:`~sopjax.solvers.components` -- the SOP model, radiality, data-derived bounds;
* :mod:`~sopjax.solvers.switched` -- the switched-network constraint group shared by problems;
* :mod:`~sopjax.solvers.options` -- formulation options: :data:`TIGHT` (default), :data:`NAIVE`;
* :mod:`~sopjax.solvers.backends` -- solving a built model (Clarabel, HiGHS, SCIP) and its report.

This layer imports only the base layer (errors, network, topology); the problems
(:mod:`sopjax.problems`) are built from it.
"""

from sopjax.solvers.backends.solve import SCIP_DEFAULTS, InfeasibleError, SolveInfo, SolverError, solve_problem
from sopjax.solvers.model import Model
from sopjax.solvers.options import NAIVE, TIGHT, FormulationOptions

__all__ = [
    "FormulationOptions", "InfeasibleError", "Model", "NAIVE", "SCIP_DEFAULTS", "SolveInfo", "SolverError",
    "TIGHT", "solve_problem",
]
