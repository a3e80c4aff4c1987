"""Multi-period SOP siting and sizing under DG uncertainty (seed 000), with baselines and validation.

Pipeline: sample days (:mod:`sopjax.sampling`) -> reduce to scenarios
(:mod:`~sopjax.planning.scenarios`) -> :func:`make_planning_problem` -> solve
(:mod:`sopjax.solvers.planning`: SCIP MISOCP or branch-and-bound / enumeration
over SOCPs) -> baselines (:mod:`~sopjax.planning.baselines`) -> out-of-sample
validation with the exact power flow (:mod:`~sopjax.planning.validation`).
See docs/planning.md.
"""

from sopjax.planning.costs import CostModel, PlanningInputError, capital_recovery_factor
from sopjax.planning.problem import Candidate, PlanningProblem, make_planning_problem, tie_candidates
from sopjax.planning.results import PlanResult, SolveStats
from sopjax.planning.scenarios import Scenarios, kmeans, reduce_scenarios
from sopjax.planning.validation import ValidationResult, validate_plan

__all__ = [
    "Candidate", "CostModel", "PlanResult", "PlanningInputError", "PlanningProblem", "Scenarios",
    "SolveStats",
    "ValidationResult", "capital_recovery_factor", "kmeans", "make_planning_problem", "reduce_scenarios",
    "tie_candidates", "validate_plan",
]
