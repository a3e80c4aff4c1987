"""The multi-period SOP siting and sizing model (cvxpy), built on the shared SOC DistFlow formulation.

One model serves every solution approach. Per candidate site ``c``:

* siting ``x_c`` — boolean in the monolithic MISOCP, or continuous in
  ``[x_lo_c, x_hi_c]`` (cvxpy Parameters) for the SOCP relaxations and
  fixed-site SOCPs of branch-and-bound / enumeration (DPP: canonicalised once,
  re-solved with new bounds);
* per-VSC capacities ``S_i,c, S_j,c`` (p.u.) with ``S <= s_max x_c`` and
  optional fixed sizes through the Parameters ``s_lo <= S <= s_hi``;
* for every block ``n`` = (scenario, period), flattened scenario-major, the SOC
  DistFlow equations of :mod:`sopjax.solvers.formulations.soc_distflow` and the
  SOP model of :mod:`sopjax.solvers.components.sop_model` (DC balance, converter-loss and
  capacity cones), with the block's load and PV.

Objective (currency per year, :mod:`sopjax.problems.planning.costs`)::

    (CRF + om) [cost_per_kva * kVA(sum S) + fixed_cost_per_site * sum x]
      + days * dt * price * sum_n pi_n (line loss_n + converter loss_n) [kW]

Optional constraints: ``sum x <= max_sops``; investment ``<= budget``.
The cvxpy objective is scaled by ``OBJECTIVE_SCALE`` (thousands of currency)
for solver conditioning; reported costs are in currency.
"""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np

from sopjax.network import SOPs
from sopjax.problems.planning.problem import PlanningProblem
from sopjax.solvers.components import sop_model
from sopjax.solvers.formulations import soc_distflow as form
from sopjax.solvers.model import Model

__all__ = ["PlanningModel", "build_planning_model", "OBJECTIVE_SCALE"]

OBJECTIVE_SCALE = 1e-3  # cvxpy objective = cost / 1000 (thousands of currency per year)


@dataclasses.dataclass
class PlanningModel:
    """A built planning model.

    Attributes:
        problem: the planning problem.
        m: the formulation container (variables ``v, P, Q, l, sop_*``).
        cvx: the cvxpy problem (objective scaled by ``OBJECTIVE_SCALE``).
        integer: True if ``x`` is boolean (MISOCP), False if continuous (SOCP).
        x: siting variable (candidate,).
        s_i, s_j: per-VSC capacity variables (candidate,), p.u.
        params: ``x_lo, x_hi, s_lo_i, s_hi_i, s_lo_j, s_hi_j`` Parameters (candidate,).
        terms: cost terms (currency/year): ``capacity``, ``sites``, ``line_energy``,
            ``converter_energy``.
        line_loss_pu, converter_loss_pu: per-block losses (block,), p.u. expressions.
    """

    problem: PlanningProblem
    m: Model
    cvx: cp.Problem
    integer: bool
    x: cp.Variable
    s_i: cp.Variable
    s_j: cp.Variable
    params: dict
    terms: dict
    line_loss_pu: cp.Expression
    converter_loss_pu: cp.Expression

    def set_bounds(self, x_lo=0.0, x_hi=1.0, s_lo_kva=None, s_hi_kva=None) -> None:
        """Set the siting bounds and (optionally) fixed capacity ranges.

        Args:
            x_lo, x_hi: siting bounds in [0, 1], scalar or (candidate,).
            s_lo_kva, s_hi_kva: capacity range per VSC (kVA), scalar, (candidate,) or
                (2, candidate) for (VSC i, VSC j); default ``[0, s_max]``.
        """
        p = self.problem
        n = p.n_candidates
        kva = p.kva_per_pu
        self.params["x_lo"].value = np.broadcast_to(np.asarray(x_lo, float), (n,)).copy()
        self.params["x_hi"].value = np.broadcast_to(np.asarray(x_hi, float), (n,)).copy()
        lo = np.zeros((2, n)) if s_lo_kva is None else np.broadcast_to(np.asarray(s_lo_kva, float), (2, n))
        hi = np.broadcast_to(p.s_max_kva, (2, n)) if s_hi_kva is None else \
            np.broadcast_to(np.asarray(s_hi_kva, float), (2, n))
        for k, side in enumerate(("i", "j")):
            self.params[f"s_lo_{side}"].value = np.asarray(lo[k], float) / kva
            self.params[f"s_hi_{side}"].value = np.asarray(hi[k], float) / kva


def build_planning_model(problem: PlanningProblem, *, integer: bool) -> PlanningModel:
    """Build the siting and sizing model of ``problem``.

    Args:
        problem: the planning problem.
        integer: boolean siting (MISOCP for SCIP) or continuous siting in
            ``[x_lo, x_hi]`` (SOCP for Clarabel: relaxations and fixed-site solves).

    Returns:
        A :class:`PlanningModel` with bounds ``x in [0, 1]``, ``S in [0, s_max]``.
    """
    p = problem
    n_c = p.n_candidates
    kva = p.kva_per_pu
    s_max_pu = p.s_max_kva / kva
    sops = SOPs(
        bus_i=p.bus_i, bus_j=p.bus_j,
        s_rated_i_pu=s_max_pu, s_rated_j_pu=s_max_pu.copy(),
        loss_i=p.loss, loss_j=p.loss.copy(),
        q_max_i_pu=s_max_pu, q_max_j_pu=s_max_pu.copy(),
        q_min_i_pu=-s_max_pu, q_min_j_pu=-s_max_pu.copy(),
    )
    net = p.net.replace(in_service=p.status).with_devices(sop=sops)
    p_load, q_load, pv = p.block_loads()
    n_block = p_load.shape[0]

    m = Model(net, periods=n_block)
    m.data.update(p_load_pu=p_load, q_load_pu=q_load)
    if net.pv.count:
        m.data["pv_p_pu"] = pv
    form.set_bounds(m, sop_s_pu=s_max_pu)
    form.variable_bus_voltage(m)
    form.variable_branch_power(m)
    form.variable_branch_current(m)
    form.variable_substation_power(m)

    if integer:
        x = cp.Variable(n_c, boolean=True, name="site")
    else:
        x = cp.Variable(n_c, name="site")
    s_i = cp.Variable(n_c, name="s_rated_i", bounds=[np.zeros(n_c), s_max_pu])
    s_j = cp.Variable(n_c, name="s_rated_j", bounds=[np.zeros(n_c), s_max_pu])
    params = {name: cp.Parameter(n_c, name=name, nonneg=True)
              for name in ("x_lo", "x_hi", "s_lo_i", "s_hi_i", "s_lo_j", "s_hi_j")}
    sop_model.variable_sop(m, s_rated_i_pu=s_i, s_rated_j_pu=s_j, s_ub_pu=s_max_pu)
    form.injection_load(m)
    form.injection_pv(m)
    sop_model.constraint_sop(m)  # registers the SOP injections: must precede the power balance
    form.constraint_source_voltage(m)
    form.constraint_power_balance(m)
    form.constraint_voltage_drop(m)
    form.constraint_branch_cone(m)

    m.add("siting", [
        x >= params["x_lo"], x <= params["x_hi"],
        s_i <= cp.multiply(s_max_pu, x), s_j <= cp.multiply(s_max_pu, x),
        s_i >= params["s_lo_i"], s_i <= params["s_hi_i"],
        s_j >= params["s_lo_j"], s_j <= params["s_hi_j"],
    ])
    costs = p.costs
    invest = costs.cost_per_kva * kva * cp.sum(s_i + s_j) + costs.fixed_cost_per_site * cp.sum(x)
    if p.max_sops is not None:
        m.add("max_sops", cp.sum(x) <= p.max_sops)
    if p.budget is not None:
        m.add("budget", invest * OBJECTIVE_SCALE <= p.budget * OBJECTIVE_SCALE)

    w = p.block_weights()
    line = form.expression_line_losses(m)  # (block,)
    conv = sop_model.expression_sop_losses(m)  # (block,)
    kw = kva  # 1 p.u. = base_mva * 1000 kW
    per_kw = costs.energy_cost_per_kw_period
    terms = {
        "capacity": costs.capacity_cost_per_kva_year * kva * cp.sum(s_i + s_j),
        "sites": costs.site_cost_per_year * cp.sum(x),
        "line_energy": per_kw * kw * (w @ line),
        "converter_energy": per_kw * kw * (w @ conv),
    }
    total = terms["capacity"] + terms["sites"] + terms["line_energy"] + terms["converter_energy"]
    cvx = cp.Problem(cp.Minimize(OBJECTIVE_SCALE * total), m.constraints())
    pm = PlanningModel(p, m, cvx, integer, x, s_i, s_j, params, terms, line, conv)
    pm.set_bounds()
    return pm
