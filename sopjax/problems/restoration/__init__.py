"""Service restoration with SOPs and network reconfiguration (MISOCP, seed 002).

Modules: :mod:`~.settings` (what to restore), :mod:`~.periods` (forecast, quantiles,
scenarios), :mod:`~.build` (the model), :mod:`~.solve` (solve, load bound),
:mod:`~.results` (the plan), :mod:`~.check` (exact power-flow re-check), :mod:`~.study`
(config-driven studies).
"""

from sopjax.problems.restoration.build import build_restoration, restorable_buses
from sopjax.problems.restoration.check import diagnose_infeasible, exact_check, strategies_from_plans
from sopjax.problems.restoration.periods import forecast_pu, plan_periods
from sopjax.problems.restoration.results import RestorationPlan, extract_plan
from sopjax.problems.restoration.settings import (
    UNCERTAINTY_MODES,
    RestorationSettings,
    outage_mask,
    switchable_mask,
    with_limits,
)
from sopjax.problems.restoration.solve import restored_load_bound, solve_restoration

__all__ = [
    "RestorationPlan", "RestorationSettings", "UNCERTAINTY_MODES", "build_restoration", "diagnose_infeasible",
    "exact_check", "extract_plan", "forecast_pu", "outage_mask", "plan_periods", "restorable_buses",
    "restored_load_bound", "solve_restoration", "strategies_from_plans", "switchable_mask", "with_limits",
]
