"""The solve report: how one problem was solved (status, objective, bound, gap, times, search effort)."""

from __future__ import annotations

import dataclasses

__all__ = ["SolveInfo"]


@dataclasses.dataclass(frozen=True)
class SolveInfo:
    """Outcome of one solve: a single solver call, or a problem's own method built on many.

    Attributes:
        status: ``"optimal"`` (proven within the gap tolerance), ``"time_limit"``
            (a feasible solution, not proven), ``"infeasible"``, ``"error"``.
        solver: solver name.
        objective: objective value of the returned solution (problem units).
        bound: best proven bound (dual bound for MIPs; = objective for proven convex optima).
        gap: relative optimality gap ``|objective - bound| / max(|objective|, 1e-9)``.
        build_s: model building, canonicalisation and solver setup time (s).
        solve_s: time spent solving (s).
        total_s: wall time of the whole solve, model building included (s).
        nodes: branch-and-bound nodes (the solver's, or the method's own), else 0.
        method: how a problem reached the result when it is more than one solver call
            (planning: ``"monolithic"``, ``"bnb"``, ``"enumerate"``, ``"fixed"``); ``""`` otherwise.
        n_socp: continuous conic solves of a structured method (0 for one MISOCP solve).
        scip_status: SCIP's own status string (SCIP solves only).
    """

    status: str
    solver: str
    objective: float
    bound: float
    gap: float
    build_s: float
    solve_s: float
    total_s: float
    nodes: int = 0
    method: str = ""
    n_socp: int = 0
    scip_status: str = ""

    @property
    def time_s(self) -> float:
        """Wall time of the whole solve (s), the same as :attr:`total_s`."""
        return self.total_s

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
