"""The allocation problem as a vectorized pymoo problem: the whole population in one batched call.

:class:`AllocationProblem` wraps an :class:`~sopjax.problems.allocation.evaluate.AllocationModel`:
``_evaluate(X, out)`` decodes the population, runs the jitted dispatch + exact power flow +
indices + first-order robustness for every plan x period at once
(:meth:`AllocationModel.operate_with_jacobian`), prices the operation with
:func:`~sopjax.problems.allocation.costs.plan_costs` and returns the objectives chosen from

* ``"cost"``: total yearly cost (currency/year);
* ``"offset"``: robust voltage-offset index (seed 001 eq. 5);
* ``"utilization"``: reciprocal of the robust SOP utilization ``1 / max(U_R, 0.01)`` (seed 001
  converts it to its reciprocal so that every objective is minimized);
* ``"vcpi"``: largest line VCPI of the day in normal operation;

and one inequality constraint, the number of periods whose dispatch or power flow did not
converge (an infeasible plan: no set-point meets the voltage limits), which must be 0.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.problem import Problem

from sopjax.errors import ConfigError
from sopjax.problems.allocation.costs import AllocationCosts, plan_costs
from sopjax.problems.allocation.evaluate import AllocationModel
from sopjax.problems.allocation.robust import RobustnessSettings, first_order, robust_indices

__all__ = ["OBJECTIVES", "AllocationProblem", "evaluate_plans"]

OBJECTIVES = ("cost", "offset", "utilization", "vcpi")
UTIL_FLOOR = 0.01


def evaluate_plans(model: AllocationModel, costs: AllocationCosts, robustness: RobustnessSettings,
                   X: np.ndarray) -> dict[str, np.ndarray]:
    """Everything about plans ``X`` (plan, n_var): operation summaries, costs, robustness, objectives.

    Returns:
        dict of arrays with a leading plan axis: ``sop_kva``, ``cb_units``, ``cost_<term>``,
        ``cost_total``, ``offset``, ``utilization``, ``vcpi_max``, ``radius_first_order``, ``f_r``,
        ``offset_robust``, ``utilization_robust``, ``line_loss_kwh_day``, ``failed_periods``, and
        ``objective_<name>`` for every name of :data:`OBJECTIVES`.
    """
    sop_kva, cb_units = model.space.decode(X)
    op, jac = model.operate_with_jacobian(sop_kva, cb_units)
    kw = model.kva_per_pu
    cb_kvar = cb_units * model.space.cb_unit_kvar
    c = plan_costs(costs, sop_kva=sop_kva, cb_kvar=cb_kvar, import_kw=op.p_import * kw,
                   line_loss_kw=op.line_loss * kw, converter_loss_kw=op.converter_loss.sum(-1) * kw,
                   cb_switch_ops=cb_units.sum(-1) * model.cb_ops_per_step)
    f0 = np.stack([op.offset, op.utilization], -1)
    r1 = first_order(robustness, jac, f0)
    f_r = r1 / robustness.r_ref(len(model.param_names))
    off_r, util_r = robust_indices(robustness, op.offset, op.utilization, f_r)
    out = {"sop_kva": sop_kva, "cb_units": cb_units, **{f"cost_{k}": v for k, v in c.items()},
           "offset": op.offset, "utilization": op.utilization, "vcpi_max": op.vcpi_max.max(-1),
           "radius_first_order": r1, "f_r": f_r, "offset_robust": off_r, "utilization_robust": util_r,
           "line_loss_kwh_day": op.line_loss.sum(-1) * kw * costs.sop.period_hours,
           "failed_periods": (~op.converged).sum(-1).astype(float)}
    out["objective_cost"] = out["cost_total"]
    out["objective_offset"] = off_r
    out["objective_utilization"] = 1.0 / np.maximum(util_r, UTIL_FLOOR)
    out["objective_vcpi"] = out["vcpi_max"]
    return out


class AllocationProblem(Problem):
    """pymoo problem over the integer plan vector (vectorized: ``_evaluate`` gets the population).

    Args:
        model: the batched evaluation.
        costs: economic data.
        robustness: robustness settings.
        objectives: names from :data:`OBJECTIVES` (at least two, no repeats).

    Attributes:
        records: every evaluated plan's row of :func:`evaluate_plans`, keyed by the plan tuple.
    """

    def __init__(self, model: AllocationModel, costs: AllocationCosts, robustness: RobustnessSettings,
                 objectives=("cost", "offset", "utilization")):
        objectives = tuple(objectives)
        bad = [o for o in objectives if o not in OBJECTIVES]
        if bad:
            raise ConfigError(f"ga.objectives: unknown objective {bad[0]!r}; choose from {', '.join(OBJECTIVES)}")
        if len(objectives) < 2 or len(set(objectives)) != len(objectives):
            raise ConfigError(f"ga.objectives needs at least two different objectives, got {list(objectives)}")
        sp = model.space
        super().__init__(n_var=sp.n_var, n_obj=len(objectives), n_ieq_constr=1, xl=sp.lower, xu=sp.upper,
                         vtype=int)
        self.model, self.costs, self.robustness, self.objectives = model, costs, robustness, objectives
        self.records: dict[tuple, dict] = {}

    def _evaluate(self, X, out, *args, **kwargs):
        X = np.clip(np.rint(np.asarray(X, float)), self.xl, self.xu).astype(int)
        r = evaluate_plans(self.model, self.costs, self.robustness, X)
        out["F"] = np.stack([r[f"objective_{o}"] for o in self.objectives], -1)
        out["G"] = r["failed_periods"][:, None]
        for n, x in enumerate(X):
            self.records[tuple(int(v) for v in x)] = {k: np.asarray(v[n]) for k, v in r.items()}
