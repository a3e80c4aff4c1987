"""Stage 2 of seed 001 (normal operation, Fig. 6): the day's capacitor schedule and SOP set-points of a plan
by a cvxpy mixed-integer model, and the same model with the plan as decisions (the direct cost minimum).

:func:`build_allocation_mip` builds, for the ``T`` periods of the planning day
(:attr:`AllocationModel.day <sopjax.problems.allocation.evaluate.AllocationModel>`), from the shared
building blocks only:

* the power flow: LinDistFlow (:mod:`sopjax.solvers.formulations.lindistflow`, a MILP for HiGHS; the
  formulation of seed 001) or SOC DistFlow (:mod:`~sopjax.solvers.formulations.soc_distflow`, a MISOCP
  for SCIP), voltage limits ``EvalSettings.v_min_pu..v_max_pu`` at every bus but the substation;
* the SOPs (:mod:`sopjax.solvers.components.sop_model`): P/Q per VSC in the capacity cone of the plan
  (``n_s * module_kva`` on both VSCs, seed 001 eq. 23), converter loss ``L >= A |S|``, DC balance;
* the capacitor banks (:mod:`sopjax.solvers.components.capacitor_model`): integer connected steps
  ``0..units`` per bank and period, at most ``max_switching`` setting changes per bank and cyclic
  day (seed 001 eq. 28), step operations counted with auxiliary variables;
* the objective from :class:`~sopjax.problems.allocation.costs.AllocationCosts` through
  :func:`cost_terms` (the coefficients of :func:`~sopjax.problems.allocation.costs.plan_costs`):
  stage 2 minimizes the operation terms :data:`OPERATION_TERMS` (purchase, line and converter
  losses, emissions, CB switching); the cost minimum (:mod:`.cost_optimum`) all of
  :data:`~sopjax.problems.allocation.costs.COST_TERMS`.

Substation import: the SOC model's ``p_substation`` includes the line losses; LinDistFlow's balance
is lossless, so its import is ``p_substation`` plus the model's line-loss estimate (a piecewise-linear
under-estimate, :func:`~sopjax.solvers.formulations.lindistflow.expression_line_losses`): losses are
bought too, as in the exact evaluation. Reported costs are :func:`plan_costs` of the solution.

Differences from the GA's evaluation (:mod:`sopjax.problems.allocation.evaluate`), which
:func:`resweep_schedule` measures: the GA dispatches the SOPs by minimum losses (not minimum cost; the
two differ by purchase and emission weights only through the losses), switches every installed
capacitor step by the load-factor rule, and prices the exact power flow. Here the capacitor schedule
is optimized and the power flow is LinDistFlow or the SOC relaxation.
"""

from __future__ import annotations

import dataclasses
import math

import cvxpy as cp
import numpy as np

from sopjax.devices import add_sops
from sopjax.errors import ConfigError, SopjaxError
from sopjax.network import Network
from sopjax.problems.allocation.costs import COST_TERMS, AllocationCosts, plan_costs
from sopjax.problems.allocation.evaluate import AllocationModel
from sopjax.problems.planning.model import OBJECTIVE_SCALE
from sopjax.solvers.backends.solve import InfeasibleError, SolveInfo, SolverError, solve_problem
from sopjax.solvers.components import capacitor_model, sop_model
from sopjax.solvers.formulations import get as get_formulation
from sopjax.solvers.model import Model

__all__ = [
    "FORMULATIONS",
    "OPERATION_TERMS",
    "AllocationMIP",
    "OperationResult",
    "Stage2Settings",
    "build_allocation_mip",
    "cost_terms",
    "plan_label",
    "resweep_schedule",
    "solve_operation",
    "stage2_front",
]

FORMULATIONS = ("lindistflow", "soc")

# SCIP's feasibility tolerance for these models. The converter-loss cone ``L >= A |S|`` reaches SCIP as the
# quadratic ``L^2 >= A^2 (p^2 + q^2)``; on IEEE 33's 10 MVA base a 300 kVA VSC at A = 0.02 loses 6e-4 p.u., whose
# square (3.6e-7) is below SCIP's default tolerance of 1e-6, so converter losses were free: the cost minimum of
# configs/seed001_allocation_quick.toml installed SOPs at four sites with zero converter loss at the default and
# none at 1e-9 (experiments/seed001/cost_minimum_check.py [--scip-feastol 1e-6]; docs/allocation.md).
SCIP_PARAMS = {"numerics/feastol": 1e-9}
OPERATION_TERMS = ("purchase", "cb_switching", "line_loss", "converter_loss", "emission")
PLAN_SETS = ("front", "compromise")


@dataclasses.dataclass(frozen=True)
class Stage2Settings:
    """Options of stage 2 (the ``[stage2]`` config table).

    Attributes:
        enabled: solve stage 2 after the GA.
        formulation: ``"lindistflow"`` (MILP, HiGHS; seed 001) or ``"soc"`` (MISOCP, SCIP).
        plans: ``"front"`` (every plan of the final front) or ``"compromise"`` (the fuzzy compromise only).
        time_limit_s: solver time limit per plan (s, > 0).
        mip_gap: relative optimality gap of the solver, in [0, 1).
        solver: cvxpy solver name or ``"auto"``.
        max_switching: setting changes per bank and day (seed 001 eq. 28; the study passes
            ``allocation.capacitors.max_switching``); None: no cap.
    """

    enabled: bool = True
    formulation: str = "lindistflow"
    plans: str = "front"
    time_limit_s: float = 60.0
    mip_gap: float = 1e-4
    solver: str = "auto"
    max_switching: int | None = None

    def __post_init__(self):
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"stage2.enabled must be true or false, got {self.enabled!r}")
        if self.formulation not in FORMULATIONS:
            raise ConfigError(f"stage2.formulation must be one of {', '.join(FORMULATIONS)}, got {self.formulation!r}")
        if self.plans not in PLAN_SETS:
            raise ConfigError(f"stage2.plans must be one of {', '.join(PLAN_SETS)}, got {self.plans!r}")
        t = self.time_limit_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise ConfigError(f"stage2.time_limit_s must be a positive number of seconds, got {t!r}")
        g = self.mip_gap
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0 <= g < 1:
            raise ConfigError(f"stage2.mip_gap must lie in [0, 1), got {g!r}")
        if not isinstance(self.solver, str):
            raise ConfigError(f"stage2.solver must be a solver name, got {self.solver!r}")
        m = self.max_switching
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 0):
            raise ConfigError(f"allocation.capacitors.max_switching must be an integer >= 0, got {m!r}")


def cost_terms(costs: AllocationCosts, *, periods: int, sop_kva_total, n_sites, cb_kvar_total, import_kw,
               line_loss_kw, converter_loss_kw, cb_step_ops) -> dict:
    """The yearly cost terms of :data:`COST_TERMS` as cvxpy expressions (or numbers) of one plan.

    The coefficients of :func:`~sopjax.problems.allocation.costs.plan_costs` (its SOP terms are
    :meth:`CostModel.breakdown <sopjax.problems.planning.costs.CostModel.breakdown>`), written
    linearly so that a mixed-integer model can minimize them; ``tests/test_allocation_operation.py``
    checks that both price a solution alike.

    Args:
        costs: the economic data.
        periods: periods of the day ``T``.
        sop_kva_total: per-VSC capacity summed over the sites (kVA; both VSCs count).
        n_sites: installed SOPs.
        cb_kvar_total: installed capacitor kvar.
        import_kw, line_loss_kw, converter_loss_kw: per period (kW), (T,).
        cb_step_ops: step switching operations per day (all banks).
    """
    sop = costs.sop
    dt, days = sop.period_hours, sop.days_per_year
    inv = sop.cost_per_kva * 2.0 * sop_kva_total + sop.fixed_cost_per_site * n_sites
    per_kwh_year = days * sop.energy_price_per_kwh
    ones = np.ones(periods)
    return {
        "sop_investment": sop.crf * inv,
        "sop_operation": sop.om_fraction * inv,
        "cb_investment": costs.cb_crf * costs.cb_cost_per_kvar * cb_kvar_total,
        "purchase": days * dt * (costs.price(periods) @ import_kw),
        "cb_switching": days * costs.cb_switch_cost * cb_step_ops,
        "line_loss": per_kwh_year * dt * (ones @ line_loss_kw),
        "converter_loss": per_kwh_year * dt * (ones @ converter_loss_kw),
        "emission": days * dt * costs.emission_price_per_kg * costs.emission_kg_per_kwh * (ones @ import_kw),
    }


@dataclasses.dataclass
class AllocationMIP:
    """A built stage-2 / cost-minimum model.

    Attributes:
        m: the formulation container (``v``, ``P``, ``Q``, ``sop_*``, ``cb_steps``, ...).
        cvx: the cvxpy problem (objective scaled by ``OBJECTIVE_SCALE``).
        formulation: ``"lindistflow"`` or ``"soc"``.
        modules: SOP modules per site: numbers (given plan) or an integer variable, (sop,).
        cb_units: capacitor steps per bank: numbers or an integer variable, (cb,).
        terms: cost-term expressions (currency/year), names of :data:`COST_TERMS`.
        import_pu, line_loss_pu, converter_loss_pu: per-period expressions (T,), p.u.
        cb_ops: step operations per bank and day, (cb,) expression (or zeros).
    """

    m: Model
    cvx: cp.Problem
    formulation: str
    modules: object
    cb_units: object
    terms: dict
    import_pu: object
    line_loss_pu: object
    converter_loss_pu: object
    cb_ops: object


def _network(model: AllocationModel) -> Network:
    """The evaluation's network with the operating voltage limits and SOPs sized to the largest plan."""
    net, s, sp = model.net, model.settings, model.space
    vmin = np.full(net.n_bus, s.v_min_pu)
    vmax = np.full(net.n_bus, s.v_max_pu)
    vs = float(net.v_slack_pu)
    vmin[net.slack_bus] = min(s.v_min_pu, vs)
    vmax[net.slack_bus] = max(s.v_max_pu, vs)
    kva_max = np.asarray(sp.max_modules, float) * sp.module_kva
    net = add_sops(net, pairs=list(sp.sop_pairs), s_rated_kva=np.maximum(kva_max, 1e-9), loss=s.sop_loss)
    return net.replace(v_min_pu=vmin, v_max_pu=vmax)


def build_allocation_mip(model: AllocationModel, costs: AllocationCosts, *, formulation: str = "lindistflow",
                         plan: np.ndarray | None = None, max_switching: int | None = None) -> AllocationMIP:
    """Build the day's operation of one plan (stage 2) or, with ``plan=None``, the plan and its operation.

    Args:
        model: the batched evaluation's model (network, candidates, planning day, voltage limits,
            converter-loss coefficient).
        costs: the economic data.
        formulation: ``"lindistflow"`` or ``"soc"``.
        plan: the plan vector ``[n_1..n_S, u_1..u_C]`` (:class:`~sopjax.problems.allocation.AllocationSpace`);
            None: modules and units are integer decisions in ``0..max_modules`` / ``0..max_units``
            and the objective holds every term of :data:`COST_TERMS` (else the operation terms).
        max_switching: capacitor setting changes per bank and day (None: no cap).

    Raises:
        ConfigError: an unknown formulation or a plan outside the box (the site named).
    """
    if formulation not in FORMULATIONS:
        raise ConfigError(f"stage2.formulation must be one of {', '.join(FORMULATIONS)}, got {formulation!r}")
    sp, day = model.space, model.day
    kva = model.kva_per_pu
    T = day.periods
    net = _network(model)
    form = get_formulation(formulation)
    m = Model(net, periods=T)
    m.data.update(p_load_pu=np.asarray(day.p_load_pu, float), q_load_pu=np.asarray(day.q_load_pu, float))
    if net.pv.count:
        m.data["pv_p_pu"] = np.asarray(day.p_pv_pu, float)
    s_max_pu = np.asarray(sp.max_modules, float) * sp.module_kva / kva
    form.set_bounds(m, sop_s_pu=s_max_pu)
    form.variable_bus_voltage(m)
    form.variable_branch_power(m)
    form.variable_branch_current(m)
    form.variable_substation_power(m)

    sizing = plan is None
    if sizing:
        modules = cp.Variable(sp.n_sop, integer=True, name="sop_modules",
                              bounds=[np.zeros(sp.n_sop), np.asarray(sp.max_modules, float)])
        site = cp.Variable(sp.n_sop, boolean=True, name="sop_site")
        m.add("sop_site", modules <= cp.multiply(np.asarray(sp.max_modules, float), site))
        units = cp.Variable(sp.n_cb, integer=True, name="cb_units",
                            bounds=[np.zeros(sp.n_cb), np.asarray(sp.cb_max_units, float)]) if sp.n_cb else np.zeros(0)
        cap = modules * (sp.module_kva / kva)
        n_sites = cp.sum(site)
    else:
        x = sp.encode(np.asarray(plan, float)[: sp.n_sop] * sp.module_kva, np.asarray(plan)[sp.n_sop:])
        modules, units = x[: sp.n_sop].astype(float), x[sp.n_sop:].astype(float)
        cap = modules * sp.module_kva / kva
        n_sites = float(np.sum(modules > 0))
    sop_model.variable_sop(m, s_rated_i_pu=cap, s_rated_j_pu=cap, s_ub_pu=s_max_pu)
    form.injection_load(m)
    form.injection_pv(m)
    sop_model.constraint_sop(m)  # registers the SOP injections: before the balance
    cb_bus = np.asarray([net.bus_index(b) for b in sp.cb_buses], dtype=int)
    if sp.n_cb:
        capacitor_model.variable_cb_steps(m, bus=cb_bus, q_unit_pu=sp.cb_unit_kvar / kva,
                                          max_steps=np.asarray(sp.cb_max_units, float), units=units)
        capacitor_model.constraint_cb_switching(m, max_switching)
        cb_ops = capacitor_model.expression_cb_operations(m)
    else:
        cb_ops = np.zeros(0)
    form.constraint_source_voltage(m)
    form.constraint_power_balance(m)
    form.constraint_voltage_drop(m)
    form.constraint_branch_cone(m)

    line = form.expression_line_losses(m)
    conv = sop_model.expression_sop_losses(m)
    imp = m.var["p_substation"] + (line if formulation == "lindistflow" else 0)
    terms = cost_terms(costs, periods=T, sop_kva_total=cp.sum(modules) * sp.module_kva if sizing
                       else float(np.sum(modules)) * sp.module_kva,
                       n_sites=n_sites,
                       cb_kvar_total=(cp.sum(units) if sizing and sp.n_cb else float(np.sum(units))) * sp.cb_unit_kvar,
                       import_kw=imp * kva, line_loss_kw=line * kva, converter_loss_kw=conv * kva,
                       cb_step_ops=cp.sum(cb_ops) if sp.n_cb else 0.0)
    names = COST_TERMS if sizing else OPERATION_TERMS
    obj = sum(terms[k] for k in names)
    cvx = cp.Problem(cp.Minimize(OBJECTIVE_SCALE * obj), m.constraints())
    return AllocationMIP(m=m, cvx=cvx, formulation=formulation, modules=modules, cb_units=units, terms=terms,
                         import_pu=imp, line_loss_pu=line, converter_loss_pu=conv, cb_ops=cb_ops)


@dataclasses.dataclass
class OperationResult:
    """The day's operation of one plan from the mixed-integer model (NaN where no solution).

    Attributes:
        status: ``"optimal"``, ``"time_limit"`` (a solution, not proven), ``"infeasible"`` or ``"error"``.
        formulation: ``"lindistflow"`` or ``"soc"``.
        plan: the plan vector ``[n_1..n_S, u_1..u_C]``.
        sop_kva: per-VSC capacity per site (kVA), (sop,).
        cb_units: installed steps per bank, (cb,).
        cb_steps: connected steps per period and bank, (period, cb) int (-1 without a solution).
        sop_p_i_kw, sop_q_i_kvar, sop_p_j_kw, sop_q_j_kvar: VSC injections into their buses, (period, sop).
        vm_pu: bus voltages of the model, (period, bus).
        import_kw, line_loss_kw, converter_loss_kw: per period (kW), (period,).
        cb_step_ops: step operations per bank and day, (cb,).
        bank_switchings: setting changes per bank and day, (cb,).
        costs: :func:`plan_costs` of the solution, every name of :data:`COST_TERMS` and ``total``
            (currency/year).
        operation_cost: sum of the :data:`OPERATION_TERMS` (currency/year).
        info: the solve report (None if the solver failed before reporting).
        message: why there is no solution (empty when there is one).
    """

    status: str
    formulation: str
    plan: np.ndarray
    sop_kva: np.ndarray
    cb_units: np.ndarray
    cb_steps: np.ndarray
    sop_p_i_kw: np.ndarray
    sop_q_i_kvar: np.ndarray
    sop_p_j_kw: np.ndarray
    sop_q_j_kvar: np.ndarray
    vm_pu: np.ndarray
    import_kw: np.ndarray
    line_loss_kw: np.ndarray
    converter_loss_kw: np.ndarray
    cb_step_ops: np.ndarray
    bank_switchings: np.ndarray
    costs: dict
    operation_cost: float
    info: SolveInfo | None
    message: str = ""

    @property
    def solved(self) -> bool:
        return self.status in ("optimal", "time_limit")


def plan_label(model: AllocationModel, plan) -> str:
    """``"SOP 4-7: 200 kVA, CB 3: 100 kvar, ..."`` for messages (case bus ids)."""
    sp = model.space
    x = np.asarray(plan).astype(int)
    parts = [f"SOP {lab}: {n * sp.module_kva:g} kVA" for lab, n in zip(sp.sop_labels, x[: sp.n_sop])]
    parts += [f"CB {lab}: {u * sp.cb_unit_kvar:g} kvar" for lab, u in zip(sp.cb_labels, x[sp.n_sop:])]
    return "[" + ", ".join(parts) + "]"


def _val(x, shape=None) -> np.ndarray:
    if isinstance(x, cp.Expression):
        return np.asarray(x.value, float) if x.value is not None else np.full(shape or x.shape, np.nan)
    return np.asarray(x, float)


def extract(model: AllocationModel, costs: AllocationCosts, mip: AllocationMIP, info: SolveInfo | None,
            status: str, message: str = "") -> OperationResult:
    """The :class:`OperationResult` of a solved (or failed) :class:`AllocationMIP`."""
    sp, T, kva = model.space, model.day.periods, model.kva_per_pu
    m = mip.m
    ok = status in ("optimal", "time_limit")
    modules = np.rint(_val(mip.modules)).astype(int) if ok or not isinstance(mip.modules, cp.Expression) \
        else np.full(sp.n_sop, -1)
    units = np.rint(_val(mip.cb_units)).astype(int) if ok or not isinstance(mip.cb_units, cp.Expression) \
        else np.full(sp.n_cb, -1)
    nan = lambda *s: np.full(s, np.nan)
    if ok:
        steps = np.rint(m.value("cb_steps")).astype(int) if sp.n_cb else np.zeros((T, 0), int)
        sop = {k: m.value(f"sop_{k}") * kva for k in ("p_i", "q_i", "p_j", "q_j")}
        vm = np.sqrt(np.maximum(m.value("v"), 0.0))
        imp, line, conv = (_val(e) * kva for e in (mip.import_pu, mip.line_loss_pu, mip.converter_loss_pu))
        conv = np.broadcast_to(conv, (T,)).copy()
        ops = np.abs(steps - np.roll(steps, 1, axis=0)).sum(0)
        switch = (steps != np.roll(steps, 1, axis=0)).sum(0)
        c = plan_costs(costs, sop_kva=(modules * sp.module_kva)[None], cb_kvar=(units * sp.cb_unit_kvar)[None],
                       import_kw=imp[None], line_loss_kw=line[None], converter_loss_kw=conv[None],
                       cb_switch_ops=[ops.sum()])
        c = {k: float(v[0]) for k, v in c.items()}
    else:
        steps = np.full((T, sp.n_cb), -1)
        sop = {k: nan(T, sp.n_sop) for k in ("p_i", "q_i", "p_j", "q_j")}
        vm, imp, line, conv = nan(T, model.net.n_bus), nan(T), nan(T), nan(T)
        ops = switch = np.full(sp.n_cb, -1)
        c = {k: float("nan") for k in (*COST_TERMS, "total")}
    return OperationResult(
        status=status, formulation=mip.formulation, plan=np.concatenate([modules, units]),
        sop_kva=modules * sp.module_kva, cb_units=units, cb_steps=steps, sop_p_i_kw=sop["p_i"],
        sop_q_i_kvar=sop["q_i"], sop_p_j_kw=sop["p_j"], sop_q_j_kvar=sop["q_j"], vm_pu=vm, import_kw=imp,
        line_loss_kw=line, converter_loss_kw=conv, cb_step_ops=ops, bank_switchings=switch, costs=c,
        operation_cost=float(sum(c[k] for k in OPERATION_TERMS)), info=info, message=message)


def solve_mip(model: AllocationModel, costs: AllocationCosts, mip: AllocationMIP, *, what: str,
              time_limit_s: float | None, mip_gap: float | None, solver: str = "auto",
              raise_on_infeasible: bool = False, scip_params: dict | None = None) -> OperationResult:
    """Solve a built model; an infeasible or failed solve is a result status with a message naming ``what``.

    ``scip_params`` (SCIP only) default to :data:`SCIP_PARAMS`.

    Raises:
        InfeasibleError: when ``raise_on_infeasible`` and the model has no feasible point.
    """
    s = model.settings
    hint = (f"{what} has no operating schedule within the voltage limits [{s.v_min_pu:g}, {s.v_max_pu:g}] p.u. "
            f"({mip.formulation}); check [operation] v_min_pu / v_max_pu and allocation.capacitors.max_switching")
    try:
        info = solve_problem(mip.cvx, solver=solver, time_limit=time_limit_s, mip_gap=mip_gap,
                             raise_on_infeasible=raise_on_infeasible, infeasible_hint=hint,
                             scip_params=SCIP_PARAMS if scip_params is None else scip_params)
    except InfeasibleError:
        raise
    except SolverError as e:
        return extract(model, costs, mip, None, "error", f"{what}: {e}")
    if info.status == "infeasible":
        return extract(model, costs, mip, info, "infeasible", f"stage 2: {hint}")
    if info.status not in ("optimal", "time_limit"):
        return extract(model, costs, mip, info, "error", f"{what}: the solver returned status {info.status}")
    return extract(model, costs, mip, info, info.status)


def solve_operation(model: AllocationModel, costs: AllocationCosts, plan, *, settings: Stage2Settings = Stage2Settings(),
                    raise_on_infeasible: bool = False) -> OperationResult:
    """Stage 2 for one plan: the day's capacitor schedule and SOP set-points at minimum operation cost.

    Args:
        model: the evaluation model (network, candidates, day, voltage limits).
        costs: the economic data.
        plan: the plan vector ``[n_1..n_S, u_1..u_C]``, (n_var,).
        settings: formulation, time limit, gap, solver and the switching cap.
        raise_on_infeasible: raise :class:`~sopjax.solvers.backends.solve.InfeasibleError` (naming the plan)
            instead of returning the status ``"infeasible"``.

    Returns:
        The :class:`OperationResult` (its ``message`` names the plan when there is no solution).
    """
    mip = build_allocation_mip(model, costs, formulation=settings.formulation, plan=plan,
                               max_switching=settings.max_switching)
    return solve_mip(model, costs, mip, what=f"plan {plan_label(model, plan)}", time_limit_s=settings.time_limit_s,
                     mip_gap=settings.mip_gap, solver=settings.solver, raise_on_infeasible=raise_on_infeasible)


def resweep_schedule(model: AllocationModel, costs: AllocationCosts, plans: np.ndarray,
                     cb_steps: np.ndarray) -> dict[str, np.ndarray]:
    """The GA's evaluation (JAX SOP dispatch + exact sweep) of plans run with given capacitor schedules.

    It runs the program the GA compiled (:meth:`AllocationModel.operate_with_jacobian`, whose Jacobian is
    dropped), so that a study compiles no second evaluation program for it.

    Args:
        model: the evaluation model.
        costs: the economic data.
        plans: plan vectors, (plan, n_var).
        cb_steps: connected steps per plan, period and bank, (plan, period, cb) (e.g. stage 2's).

    Returns:
        ``cost_<term>`` and ``cost_total`` (plan,), ``operation_cost`` (plan,), ``converged`` (plan,) bool
        (every period dispatched and solved), ``vm_min``, ``vm_max`` (plan,) of the exact power flow.
    """
    sp = model.space
    plans = np.atleast_2d(np.asarray(plans))
    sop_kva, units = sp.decode(plans)
    steps = np.asarray(cb_steps, float).reshape(len(plans), model.day.periods, sp.n_cb)
    if np.any(steps < 0) or np.any(steps > units[:, None, :]):
        raise SopjaxError("capacitor schedule outside 0..installed units")
    op, _ = model.operate_with_jacobian(sop_kva, units, cb_steps=steps)  # the GA's own compiled program
    kw = model.kva_per_pu
    ops = np.abs(steps - np.roll(steps, 1, axis=1)).sum((1, 2))
    c = plan_costs(costs, sop_kva=sop_kva, cb_kvar=units * sp.cb_unit_kvar, import_kw=op.p_import * kw,
                   line_loss_kw=op.line_loss * kw, converter_loss_kw=op.converter_loss.sum(-1) * kw,
                   cb_switch_ops=ops)
    out = {f"cost_{k}": np.asarray(v) for k, v in c.items()}
    out["operation_cost"] = sum(out[f"cost_{k}"] for k in OPERATION_TERMS)
    out["converged"] = np.asarray(op.converged).all(-1)
    out["vm_min"] = np.asarray(op.vm_pu).min((1, 2))
    out["vm_max"] = np.asarray(op.vm_pu).max((1, 2))
    return out


def stage2_front(model: AllocationModel, costs: AllocationCosts, settings: Stage2Settings, X: np.ndarray,
                 ga_operation_cost: np.ndarray, plans: np.ndarray, *, progress: bool | None = None) -> dict:
    """Stage 2 for the plans ``plans`` of a front, next to the GA's evaluation of the same plans.

    Args:
        model, costs: the evaluation model and the economic data.
        settings: stage-2 options.
        X: the front's plan vectors, (plan, n_var).
        ga_operation_cost: the GA-evaluated operation cost (sum of :data:`OPERATION_TERMS`) per plan.
        plans: rows of ``X`` to solve.
        progress: a tqdm bar over the plans (None: when stderr is a terminal).

    Returns:
        dict with ``formulation``, ``plans`` (rows solved) and per front plan (NaN / ``""`` for rows not
        solved): ``status`` (str), ``message``, ``operation_cost`` (the model's), ``ga_operation_cost``,
        ``resweep_operation_cost`` (the stage-2 capacitor schedule run through the GA's evaluation:
        JAX SOP dispatch + exact sweep), ``resweep_converged``, ``cost_<term>`` (the model's), ``cb_steps``
        (plan, period, cb; -1 where unsolved), ``sop_p_i_kw``, ``sop_q_i_kvar``, ``sop_p_j_kw``,
        ``sop_q_j_kvar`` (plan, period, sop), ``solve_s``.
    """
    from tqdm.auto import tqdm

    sp, T = model.space, model.day.periods
    X = np.atleast_2d(np.asarray(X, int))
    n = len(X)
    out = {"formulation": settings.formulation, "plans": np.asarray(plans, int),
           "status": np.full(n, "", dtype=object), "message": np.full(n, "", dtype=object),
           "operation_cost": np.full(n, np.nan), "ga_operation_cost": np.asarray(ga_operation_cost, float),
           "resweep_operation_cost": np.full(n, np.nan), "resweep_converged": np.zeros(n, bool),
           "solve_s": np.full(n, np.nan), "cb_steps": np.full((n, T, sp.n_cb), -1),
           **{f"cost_{k}": np.full(n, np.nan) for k in (*COST_TERMS, "total")},
           **{k: np.full((n, T, sp.n_sop), np.nan) for k in ("sop_p_i_kw", "sop_q_i_kvar", "sop_p_j_kw", "sop_q_j_kvar")}}
    bar = tqdm(list(out["plans"]), desc=f"stage 2 ({settings.formulation})", unit="plan",
               disable=None if progress is None else not progress)
    for k in bar:
        r = solve_operation(model, costs, X[k], settings=settings)
        out["status"][k], out["message"][k] = r.status, r.message
        out["operation_cost"][k] = r.operation_cost
        out["solve_s"][k] = r.info.total_s if r.info is not None else np.nan
        out["cb_steps"][k] = r.cb_steps
        for t, v in r.costs.items():
            out[f"cost_{t}"][k] = v
        for name in ("sop_p_i_kw", "sop_q_i_kvar", "sop_p_j_kw", "sop_q_j_kvar"):
            out[name][k] = getattr(r, name)
    done = np.asarray([k for k in out["plans"] if out["status"][k] in ("optimal", "time_limit")], int)
    if done.size:
        rs = resweep_schedule(model, costs, X[done], out["cb_steps"][done])
        out["resweep_operation_cost"][done] = rs["operation_cost"]
        out["resweep_converged"][done] = rs["converged"]
    return out
