"""SOP siting and sizing solvers: the cvxpy model, SCIP bridge, monolithic and structured solves."""

from sopjax.solvers.planning.model import OBJECTIVE_SCALE, PlanningModel, build_planning_model
from sopjax.solvers.planning.scip_backend import FastSCIP
from sopjax.solvers.planning.solve import (
    METHODS,
    evaluate_plan,
    solve_bnb,
    solve_enumeration,
    solve_monolithic,
    solve_plan,
)

__all__ = [
    "FastSCIP", "METHODS", "OBJECTIVE_SCALE", "PlanningModel", "build_planning_model", "evaluate_plan",
    "solve_bnb", "solve_enumeration", "solve_monolithic", "solve_plan",
]
