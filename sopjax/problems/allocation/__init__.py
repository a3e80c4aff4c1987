"""Robust multi-objective SOP + capacitor allocation (seed 001): NSGA-II over batched JAX evaluation.

Modules, one concept each: ``encoding`` (the integer plan vector), ``costs`` (seed 001's cost terms on
the planning cost model), ``evaluate`` (dispatch + exact power flow + indices for a population in one
jitted call), ``robust`` (robustness index and robust indices), ``problem`` (the vectorized pymoo
problem), ``nsga`` (NSGA-II with checkpoints), ``selection`` (fuzzy best compromise), ``contingency``
(stage 3: SOP + demand response), ``operation`` (stage 2: the cvxpy operation model of a plan),
``cost_optimum`` (the direct cvxpy cost minimum over the candidates), ``study`` (config entry point),
``results`` (xarray, plot).
"""

from sopjax.problems.allocation.contingency import CONTINGENCY_CASES, ContingencyProblem, ContingencySettings
from sopjax.problems.allocation.cost_optimum import agreement, solve_cost_minimum
from sopjax.problems.allocation.costs import COST_TERMS, AllocationCosts, load_cut_cost, plan_costs
from sopjax.problems.allocation.encoding import AllocationSpace, make_space
from sopjax.problems.allocation.evaluate import AllocationModel, EvalSettings, OperatingDay, cb_schedule, make_model
from sopjax.problems.allocation.nsga import GAResult, GASettings, nondominated, run_nsga2
from sopjax.problems.allocation.operation import OperationResult, Stage2Settings, resweep_schedule, solve_operation
from sopjax.problems.allocation.problem import OBJECTIVES, AllocationProblem, evaluate_plans
from sopjax.problems.allocation.robust import RobustnessSettings, refine_radius, robust_indices, tolerances
from sopjax.problems.allocation.selection import best_compromise, fuzzy_membership
from sopjax.problems.allocation.study import (
    AllocationStudy, AllocationStudyResult, hypervolume_history, run_allocation_study, study_from_config,
)

__all__ = [
    "AllocationCosts", "AllocationModel", "AllocationProblem", "AllocationSpace", "AllocationStudy",
    "AllocationStudyResult", "CONTINGENCY_CASES", "COST_TERMS", "ContingencyProblem", "ContingencySettings",
    "EvalSettings", "GAResult", "OperationResult", "Stage2Settings", "agreement", "resweep_schedule",
    "solve_cost_minimum", "solve_operation", "GASettings", "OBJECTIVES", "OperatingDay", "RobustnessSettings",
    "best_compromise", "cb_schedule", "evaluate_plans", "fuzzy_membership", "hypervolume_history",
    "load_cut_cost", "make_model", "make_space", "nondominated", "plan_costs", "refine_radius",
    "robust_indices", "run_allocation_study", "run_nsga2", "study_from_config", "tolerances",
]
