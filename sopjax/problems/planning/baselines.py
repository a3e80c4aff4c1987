"""Baselines for seed 000's relative claims: no SOP, fixed-size SOPs everywhere, standard units.

* ``no_sop``: the network as it is, scored by the exact power flow on the
  scenarios (there is nothing to decide; the SOCP would give the same losses
  when feasible, and the power flow also works when the voltage limits are not met).
* ``fixed_size``: an SOP at every candidate, every VSC of ``size_kva`` — the
  typical "install the same converter at every tie" alternative; its operation
  is optimised (one SOCP).
* ``standard_units``: the optimal sites with each VSC rounded *up* to a multiple
  of ``unit_kva`` (converters come in standard ratings; rounding up keeps the
  optimal operation feasible), capped at ``s_max_kva``; operation re-optimised.

:func:`comparison` puts the optimal plan next to them: line-loss reduction versus
no SOP (seed 000: ~15 %) and SOP-configuration-cost reduction versus the
fixed-size plan (seed 000: ~12 %).
"""

from __future__ import annotations

import numpy as np

from sopjax.problems.planning.costs import PlanningInputError
from sopjax.problems.planning.problem import PlanningProblem
from sopjax.problems.planning.results import PlanResult
from sopjax.problems.planning.validation import ValidationResult, validate_plan
from sopjax.problems.planning.solve import evaluate_plan

__all__ = ["no_sop", "fixed_size", "standard_units", "round_to_units", "plan_row", "comparison"]


def no_sop(problem: PlanningProblem) -> ValidationResult:
    """The network without SOPs on the representative days (probability-weighted), exact power flow."""
    sc = problem.scenarios
    return validate_plan(problem, None, sc.p_load_pu, sc.q_load_pu, sc.p_pv_pu, name="no SOP",
                         day_weights=sc.probability)


def fixed_size(problem: PlanningProblem, size_kva: float) -> PlanResult:
    """An SOP at every candidate with every VSC of ``size_kva``; optimal operation.

    Raises:
        PlanningInputError: a size <= 0 or above ``s_max_kva``.
        InfeasibleError: the plan cannot meet the limits.
    """
    if not np.isfinite(size_kva) or size_kva <= 0:
        raise PlanningInputError(f"baselines.fixed_size_kva must be a positive number, got {size_kva!r}")
    n = problem.n_candidates
    return evaluate_plan(problem, np.ones(n), np.full(n, float(size_kva)), np.full(n, float(size_kva)),
                         method="fixed_size")


def round_to_units(s_kva: np.ndarray, unit_kva: float, s_max_kva: np.ndarray) -> np.ndarray:
    """Round capacities up to multiples of ``unit_kva`` (zero stays zero), capped at ``s_max_kva``."""
    if not np.isfinite(unit_kva) or unit_kva <= 0:
        raise PlanningInputError(f"baselines.standard_unit_kva must be a positive number, got {unit_kva!r}")
    s = np.asarray(s_kva, float)
    up = np.ceil(s / unit_kva - 1e-9) * unit_kva
    return np.where(s > 0, np.minimum(up, s_max_kva), 0.0)


def standard_units(problem: PlanningProblem, plan: PlanResult, unit_kva: float) -> PlanResult:
    """The plan's sites with VSC sizes rounded up to standard units; operation re-optimised."""
    s_i = round_to_units(plan.s_i_kva, unit_kva, problem.s_max_kva)
    s_j = round_to_units(plan.s_j_kva, unit_kva, problem.s_max_kva)
    site = (plan.site & ((s_i > 0) | (s_j > 0))).astype(float)
    return evaluate_plan(problem, site, s_i, s_j, method="standard_units")


def plan_row(name: str, plan: PlanResult | ValidationResult) -> dict:
    """One row of the in-sample comparison table (yearly costs, daily energies)."""
    if isinstance(plan, ValidationResult):
        return {
            "plan": name, "sites": [], "capacity_kva": 0.0,
            "line_loss_kwh_day": plan.expected_line_kwh_day,
            "converter_loss_kwh_day": plan.expected_converter_kwh_day,
            **{k: float(v) for k, v in plan.costs.items()},
            "vmin_pu": float(plan.vmin_pu.min()), "vmax_pu": float(plan.vmax_pu.max()),
            "voltage_violation": bool(plan.violation_hours > 0),
        }
    return {
        "plan": name,
        "sites": [s["candidate"] for s in plan.sites()],
        "capacity_kva": plan.capacity_kva,
        "line_loss_kwh_day": plan.line_loss_kwh_day,
        "converter_loss_kwh_day": plan.converter_loss_kwh_day,
        **{k: float(v) for k, v in plan.costs.items() if k != "objective"},
        "vmin_pu": float(np.min(plan.vmin_pu)),
        "vmax_pu": float(np.max(plan.vmax_pu)),
        "voltage_violation": False,
    }


def comparison(rows: list[dict], optimal: str = "optimal") -> dict:
    """Relative figures of the optimal plan against every other row.

    Returns:
        dict with ``loss_reduction_pct`` (line-loss energy vs ``no SOP``),
        ``total_loss_reduction_pct`` (line + converter), and per baseline
        ``cost_reduction_pct`` (total yearly cost) and ``sop_cost_reduction_pct``
        (annualised investment + O&M + converter losses).
    """
    by = {r["plan"]: r for r in rows}
    opt = by[optimal]
    out: dict = {}
    base = by.get("no SOP")
    if base is not None:
        out["loss_reduction_pct"] = 100 * (1 - opt["line_loss_kwh_day"] / base["line_loss_kwh_day"])
        out["total_loss_reduction_pct"] = 100 * (
            1 - (opt["line_loss_kwh_day"] + opt["converter_loss_kwh_day"]) / base["line_loss_kwh_day"]
        )
    for name, r in by.items():
        if name == optimal:
            continue
        cut = 100 * (1 - opt["total"] / r["total"]) if r["total"] > 0 else float("nan")
        entry = {"cost_reduction_pct": cut}
        if r["sop_cost"] > 0:
            entry["sop_cost_reduction_pct"] = 100 * (1 - opt["sop_cost"] / r["sop_cost"])
        out[name] = entry
    return out
