"""Loss-minimising network reconfiguration (no fault): choose the open branches.

By default every branch of the case is switchable, in service or not. The
model is the SOC DistFlow formulation with data-derived switch bounds and
spanning-forest radiality (:mod:`sopjax.solvers.components.radiality`); the optimal
topology is re-checked with the exact sweep power flow, whose losses are the
reported ``losses_kw`` (the relaxation's own optimum is ``losses_relaxed_kw``).
"""

from __future__ import annotations

import dataclasses
import time

import cvxpy as cp
import numpy as np

from sopjax.branch_model import fold_capacitors
from sopjax.errors import SopjaxError
from sopjax.network import Network
from sopjax.solvers import formulations
from sopjax.solvers.components import radiality
from sopjax.solvers.model import Model
from sopjax.solvers.switched import constraint_switched_network
from sopjax.solvers.options import TIGHT, FormulationOptions
from sopjax.solvers.backends.solve import SolveInfo, solve_problem

__all__ = ["build_reconfiguration", "solve_reconfiguration", "reconfiguration_warm_start", "ReconfigurationResult"]


def build_reconfiguration(
    net: Network,
    *,
    options: FormulationOptions = TIGHT,
    switchable: np.ndarray | None = None,
    load_scale: float = 1.0,
    relax: bool = False,
) -> tuple[Model, cp.Problem]:
    """Build the minimum-loss reconfiguration model.

    Args:
        net: the network (PV units, if any, inject their set-point, or without one their rated
            power, at their power factor).
        options: formulation, radiality, cuts and bounds (:class:`~sopjax.solvers.options.FormulationOptions`);
            :data:`sopjax.solvers.options.NAIVE` gives the naive baseline.
        switchable: switch flag per branch (default: every branch).
        load_scale: factor on the nominal loads.
        relax: build the continuous relaxation (binaries in [0, 1]).

    Returns:
        (model, cvxpy problem minimising total line losses in p.u.).
    """
    if not np.isfinite(load_scale) or load_scale < 0:
        raise SopjaxError(f"load_scale must be a finite number >= 0, got {load_scale}")
    form = formulations.get(options.formulation)
    m = Model(net, periods=1, relax=relax)
    m.meta["load_scale"] = float(load_scale)
    m.data["p_load_pu"] = np.asarray(net.p_load_pu, float)[None] * load_scale
    m.data["q_load_pu"] = np.asarray(net.q_load_pu, float)[None] * load_scale
    if net.pv.count:
        m.data["pv_p_pu"] = pv_output_pu(net)[None]
    sw = np.ones(net.n_branch, dtype=bool) if switchable is None else np.asarray(switchable, dtype=bool)
    if sw.shape != (net.n_branch,):
        raise SopjaxError(f"switchable needs one flag per branch ({net.n_branch}), got shape {sw.shape}")
    status = np.asarray(net.in_service, dtype=bool).copy()
    if options.structure_cuts:
        fixed = radiality.closable_bridges(net, np.ones(net.n_branch, dtype=bool)) & sw
        sw = sw & ~fixed
        status |= fixed
        m.meta["fixed_bridges"] = np.flatnonzero(fixed)
    radiality.variable_branch_status(m, switchable=sw, status=status)
    radiality.variable_energized(m, fixed_on=np.ones(net.n_bus, dtype=bool))
    exporting = net.pv.count > 0 or bool(np.any(np.asarray(net.p_load_pu) < 0)) or bool(
        np.any(np.asarray(net.q_load_pu) < 0)) or capacitive(net)
    v_cap = None
    if options.voltage_ceiling and not exporting:
        v_cap = np.minimum(np.asarray(net.v_max_pu, float), float(net.v_slack_pu))
    form.set_bounds(m, loss_allowance=options.loss_allowance, big_m=options.big_m, v_max_pu=v_cap)
    form.variable_bus_voltage(m)
    form.variable_branch_power(m)
    form.variable_branch_current(m)
    form.variable_substation_power(m)
    form.injection_load(m)
    form.injection_pv(m)
    constraint_switched_network(m, form, options)
    connect = radiality.connectivity_buses(m) if options.minimal_connectivity else None
    if options.structure_cuts:
        gen = radiality.connectivity_buses(m)  # buses without a proving load, or with injections
        zero = (np.abs(np.asarray(m.data["p_load_pu"])).max(axis=0) == 0) & (
            np.abs(np.asarray(m.data["q_load_pu"])).max(axis=0) == 0)
        zero[np.asarray(net.pv.bus, dtype=int)] = False
        inner = radiality.constraint_chain_cuts(m, np.ones(net.n_bus, dtype=bool), zero_load=zero)
        if connect is not None:
            connect = connect & ~inner  # chain-inner buses are connected when their chain ends are
        _ = gen
    radiality.constraint_radiality(
        m, method=options.radiality, loop_cuts=options.loop_cuts, orientation=options.orientation,
        connect=connect,
    )
    if options.flow_direction:
        radiality.constraint_flow_direction(m)
    m.obj["line_losses"] = cp.sum(form.expression_line_losses(m))
    return m, cp.Problem(cp.Minimize(m.obj["line_losses"]), m.constraints())


def capacitive(net: Network) -> bool:
    """Whether a capacitor bank, bus shunt or line charging injects reactive power (``b > 0``).

    Such a network can push voltages above the substation's, so the voltage ceiling does not apply.
    """
    folded = fold_capacitors(net)
    return any(b is not None and bool(np.any(np.asarray(b, float) > 0)) for b in (folded.b_sh_pu, folded.b_br_pu))


def pv_output_pu(net: Network) -> np.ndarray:
    """PV active output (pv,) p.u.: the set-points where known (imported sgens), else rated power x pf."""
    if net.pv.p_set_pu is not None:
        return np.asarray(net.pv.p_set_pu, float)
    return np.asarray(net.pv.s_rated_pu, float) * np.asarray(net.pv.pf, float)


def _net_load(net: Network, load_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Net load per bus (bus,) p.u., PV at rated power and its power factor subtracted."""
    p = np.asarray(net.p_load_pu, float) * load_scale
    q = np.asarray(net.q_load_pu, float) * load_scale
    if net.pv.count:
        pv = pv_output_pu(net)
        ratio = np.sqrt(np.maximum(1 - np.asarray(net.pv.pf, float) ** 2, 0)) / np.asarray(net.pv.pf, float)
        np.add.at(p, np.asarray(net.pv.bus), -pv)
        np.add.at(q, np.asarray(net.pv.bus), -pv * ratio)
    return p, q


def reconfiguration_warm_start(m: Model) -> dict:
    """A first solution for the solver: the branch-exchange topology (:mod:`sopjax.problems.reconfiguration.heuristic`).

    Returns ``{alpha binaries: 0/1 values}`` for :func:`~sopjax.solvers.backends.solve.solve_problem`'s
    ``warm_start`` (the solver completes the continuous variables), or ``{}`` when the
    heuristic finds no radial topology within the voltage limits or nothing is switchable.
    """
    from sopjax.problems.reconfiguration.heuristic import branch_exchange

    if "alpha_sw" not in m.var or m.relax:
        return {}
    net = m.net
    scale = float(m.meta.get("load_scale", 1.0))
    p, q = _net_load(net, scale)
    sw = np.asarray(m.meta["branch_switch"], dtype=bool)
    vmax2 = np.asarray(m.bounds.get("v_max2", np.asarray(net.v_max_pu, float) ** 2))
    found = branch_exchange(net, p, q, switchable=sw, fixed_closed=np.asarray(m.meta["branch_fixed_closed"], bool),
                            v_max_pu=np.sqrt(vmax2))
    if found is None:
        return {}
    status, _ = found
    return {m.var["alpha_sw"]: status[sw].astype(float)}


@dataclasses.dataclass(frozen=True)
class ReconfigurationResult:
    """Optimal reconfiguration.

    Attributes:
        open: 1-based numbers of the open branches (sorted).
        status: closed flag per branch (branch,).
        losses_kw: exact (sweep) losses of the chosen topology.
        losses_relaxed_kw: the model's optimal loss value (SOC relaxation or PWL estimate).
        vmin_pu, vmin_bus: exact minimum voltage and its case bus id.
        max_relaxation_gap: largest relative SOC gap over branches (NaN for LinDistFlow).
        info: solver report.
    """

    open: list[int]
    status: np.ndarray
    losses_kw: float
    losses_relaxed_kw: float
    vmin_pu: float
    vmin_bus: int
    max_relaxation_gap: float
    info: SolveInfo
    formulation: str

    def as_dict(self) -> dict:
        return {
            "open": self.open,
            "losses_kw": self.losses_kw,
            "losses_relaxed_kw": self.losses_relaxed_kw,
            "vmin_pu": self.vmin_pu,
            "vmin_bus": self.vmin_bus,
            "max_relaxation_gap": self.max_relaxation_gap,
            "formulation": self.formulation,
            "status": self.info.status,
            "solver": self.info.solver,
            "solve_s": self.info.total_s,
            "gap": self.info.gap,
        }


def solve_reconfiguration(
    net: Network,
    *,
    options: FormulationOptions = TIGHT,
    switchable: np.ndarray | None = None,
    load_scale: float = 1.0,
    solver: str | None = None,
    time_limit: float | None = None,
    mip_gap: float | None = 1e-6,
    verbose: bool = False,
) -> ReconfigurationResult:
    """Build and solve the minimum-loss reconfiguration, then re-check it exactly.

    Raises:
        InfeasibleError: if no radial configuration meets the voltage limits.
    """
    from sopjax.powerflow import solve as power_flow

    t0 = time.perf_counter()
    m, prob = build_reconfiguration(net, options=options, switchable=switchable, load_scale=load_scale)
    # the warm start feeds SCIP (MISOCP); HiGHS solves the LinDistFlow MILP without it
    hints = reconfiguration_warm_start(m) if options.warm_start and m.meta["conic"] else {}
    info = solve_problem(prob, solver=solver, time_limit=time_limit, mip_gap=mip_gap, verbose=verbose,
                         infeasible_hint="no radial configuration meets the voltage limits", warm_start=hints)
    info = dataclasses.replace(info, total_s=time.perf_counter() - t0, build_s=time.perf_counter() - t0 - info.solve_s)
    status = m.value("alpha") > 0.5
    kw = net.base_mva * 1e3
    p, q = _net_load(net, load_scale)
    res, topo = power_flow(net, status=status, p_load_pu=p, q_load_pu=q)
    vm = np.where(topo.energized, res.vm_pu, np.inf)
    k = int(np.argmin(vm))
    gap = formulations.get(options.formulation).relaxation_gap(m)
    max_gap = float(np.max(np.abs(gap["rel"]))) if gap is not None else float("nan")
    return ReconfigurationResult(
        open=sorted(net.branch_numbers[i] for i in np.flatnonzero(~status)),
        status=status,
        losses_kw=float(res.losses_pu) * kw,
        losses_relaxed_kw=float(m.obj["line_losses"].value) * kw,
        vmin_pu=float(vm[k]),
        vmin_bus=net.bus_ids[k],
        max_relaxation_gap=max_gap,
        info=info,
        formulation=options.formulation,
    )
