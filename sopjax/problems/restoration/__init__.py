"""Service restoration with SOPs and network reconfiguration (MISOCP, seed 002)."""

from sopjax.problems.restoration.build import (
    RestorationPlan,
    RestorationSettings,
    build_restoration,
    exact_check,
    restored_load_bound,
    solve_restoration,
)

__all__ = [
    "RestorationPlan", "RestorationSettings", "build_restoration", "exact_check", "restored_load_bound",
    "solve_restoration",
]
