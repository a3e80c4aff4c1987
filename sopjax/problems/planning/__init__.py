"""Multi-period SOP siting and sizing under DG uncertainty (seed 000), with baselines and validation.

Pipeline: sample days (:mod:`sopjax.sampling`) -> reduce to scenarios
(:mod:`~sopjax.problems.planning.scenarios`) -> :func:`make_planning_problem` -> solve
(:mod:`sopjax.problems.planning`: SCIP MISOCP or branch-and-bound / enumeration
over SOCPs) -> baselines (:mod:`~sopjax.problems.planning.baselines`) -> out-of-sample
validation with the exact power flow (:mod:`~sopjax.problems.planning.validation`).
See docs/planning.md.
"""

from sopjax.problems.planning.costs import CostModel, PlanningInputError, capital_recovery_factor
from sopjax.problems.planning.problem import Candidate, PlanningProblem, make_planning_problem, tie_candidates
from sopjax.problems.planning.results import PlanResult
from sopjax.problems.planning.scenarios import Scenarios, kmeans, reduce_scenarios
from sopjax.problems.planning.validation import ValidationResult, validate_plan
from sopjax.solvers.backends.report import SolveInfo
from sopjax.problems.planning.model import OBJECTIVE_SCALE, PlanningModel, build_planning_model
from sopjax.problems.planning.solve import (
    METHODS,
    evaluate_plan,
    solve_bnb,
    solve_enumeration,
    solve_monolithic,
    solve_plan,
)

__all__ = [
    "Candidate", "CostModel", "PlanResult", "PlanningInputError", "PlanningProblem", "Scenarios",
    "SolveInfo",
    "ValidationResult", "capital_recovery_factor", "kmeans", "make_planning_problem", "reduce_scenarios",
    "tie_candidates", "validate_plan",
    "METHODS", "OBJECTIVE_SCALE", "PlanningModel", "build_planning_model", "evaluate_plan",
    "solve_bnb", "solve_enumeration", "solve_monolithic", "solve_plan",
]
