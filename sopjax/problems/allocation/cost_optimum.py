"""The direct cost minimum over the GA's candidates (one mixed-integer model) and its agreement test.

:func:`solve_cost_minimum` builds :func:`~sopjax.problems.allocation.operation.build_allocation_mip` with
the plan as decisions: the integer module count ``n_s`` in ``0..max_modules`` per candidate SOP site
(both VSCs ``n_s * module_kva``, seed 001 eq. 23; a site binary carries ``fixed_cost_per_site``), the
integer capacitor steps ``u_c`` in ``0..max_units`` per candidate bus, and the ``T``-period operation
(SOP P/Q, connected capacitor steps with the switching cap, LinDistFlow or SOC DistFlow), minimizing
the total yearly cost of :mod:`sopjax.problems.allocation.costs` (annualized SOP and capacitor
investment, SOP O&M, purchase, line and converter losses, emissions, capacitor switching).

**Agreement within the module granularity** (:func:`agreement`). Let ``x_GA`` be the cost-minimum
plan of the GA's front (or of an exhaustive enumeration), ``x_MIP`` the plan of the direct
minimization, ``C_GA(x)`` the total yearly cost of plan ``x`` under the GA's own evaluation
(:func:`~sopjax.problems.allocation.problem.evaluate_plans`: JAX SOP dispatch, capacitor on/off rule,
exact power flow), and ``c_mod = (CRF + om_fraction) * cost_per_kva * 2 * module_kva`` the yearly
cost of one module on both VSCs. The two agree when

1. every SOP site's module count differs by at most one: ``max_s |n_GA,s - n_MIP,s| <= 1``, and
2. their GA-evaluated costs differ by at most one module's yearly cost:
   ``|C_GA(x_GA) - C_GA(x_MIP)| <= c_mod``.

Capacitor steps are reported but not part of the test: a step costs far less than a module, and the
two models schedule the banks differently (on/off rule vs optimized steps), so the step counts
legitimately differ while condition 2 still bounds what the difference costs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sopjax.problems.allocation.costs import AllocationCosts
from sopjax.problems.allocation.evaluate import AllocationModel
from sopjax.problems.allocation.operation import OperationResult, build_allocation_mip, solve_mip

__all__ = ["Agreement", "agreement", "module_cost_per_year", "solve_cost_minimum"]


def solve_cost_minimum(model: AllocationModel, costs: AllocationCosts, *, formulation: str = "soc",
                       max_switching: int | None = None, time_limit_s: float | None = 600.0,
                       mip_gap: float | None = 1e-6, solver: str = "auto",
                       scip_params: dict | None = None) -> OperationResult:
    """The plan and day's operation of minimum total yearly cost over the candidate box.

    Args:
        model: the evaluation model (network, candidates, day, voltage limits, converter loss).
        costs: the economic data.
        formulation: ``"soc"`` (MISOCP, SCIP; default, the closer to the exact power flow) or
            ``"lindistflow"`` (MILP, HiGHS).
        max_switching: capacitor setting changes per bank and day (None: no cap).
        time_limit_s: solver time limit (s); a solution found by then is returned as ``"time_limit"``.
        mip_gap: relative optimality gap.
        solver: cvxpy solver or ``"auto"``.
        scip_params: SCIP parameters (default :data:`~sopjax.problems.allocation.operation.SCIP_PARAMS`).

    Returns:
        An :class:`~sopjax.problems.allocation.operation.OperationResult`: ``plan`` is the optimal plan
        vector, ``costs`` every term of its total (the model's power flow).
    """
    mip = build_allocation_mip(model, costs, formulation=formulation, plan=None, max_switching=max_switching)
    return solve_mip(model, costs, mip, what="the cost minimum over the candidate box", time_limit_s=time_limit_s,
                     mip_gap=mip_gap, solver=solver, scip_params=scip_params)


def module_cost_per_year(model: AllocationModel, costs: AllocationCosts) -> float:
    """Yearly cost of one VSC module on both VSCs of an SOP: ``(CRF + om) * cost_per_kva * 2 * module_kva``."""
    return costs.sop.capacity_cost_per_kva_year * 2.0 * model.space.module_kva


@dataclasses.dataclass(frozen=True)
class Agreement:
    """The agreement test of two plans (module docstring).

    Attributes:
        agree: both conditions hold.
        max_module_difference: ``max_s |n_GA,s - n_MIP,s|``.
        cost_difference: ``C_GA(x_GA) - C_GA(x_MIP)`` (currency/year).
        module_cost: ``c_mod`` (currency/year).
        cb_unit_difference: ``u_GA - u_MIP`` per bank, (cb,).
    """

    agree: bool
    max_module_difference: int
    cost_difference: float
    module_cost: float
    cb_unit_difference: tuple[int, ...]


def agreement(model: AllocationModel, costs: AllocationCosts, x_ga, x_mip, cost_ga: float,
              cost_mip: float) -> Agreement:
    """Whether ``x_ga`` and ``x_mip`` agree within the module granularity (module docstring).

    Args:
        model: the evaluation model (for the space).
        costs: the economic data.
        x_ga, x_mip: plan vectors, (n_var,).
        cost_ga, cost_mip: their total yearly costs under the GA's evaluation (currency/year).
    """
    ns = model.space.n_sop
    a, b = np.asarray(x_ga, int), np.asarray(x_mip, int)
    dn = int(np.max(np.abs(a[:ns] - b[:ns]))) if ns else 0
    dc = float(cost_ga) - float(cost_mip)
    cm = module_cost_per_year(model, costs)
    return Agreement(agree=bool(dn <= 1 and abs(dc) <= cm), max_module_difference=dn, cost_difference=dc,
                     module_cost=cm, cb_unit_difference=tuple(int(v) for v in a[ns:] - b[ns:]))
