"""Minimum-loss network reconfiguration (MISOCP or MILP), warm-started by branch exchange."""

from sopjax.problems.reconfiguration.build import (
    ReconfigurationResult,
    build_reconfiguration,
    solve_reconfiguration,
)

__all__ = ["ReconfigurationResult", "build_reconfiguration", "solve_reconfiguration"]
