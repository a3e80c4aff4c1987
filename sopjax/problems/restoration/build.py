"""Service restoration with SOPs and network reconfiguration: the model (seed 002, section 3.2).

Given faulted branches (isolated, forced open), choose

* switch states (radial: a spanning forest rooted at the substation and at
  Vf-mode SOP terminals, :mod:`sopjax.solvers.components.radiality`),
* load pickup (binary per bus, or per load block),
* SOP modes (Vf at either terminal, else PQ + VdcQ) and set-points,

to maximise ``eta_D * restored load - eta_L * (line + converter losses)``
(defaults 100 and 1, seed 002) subject to SOC DistFlow (or LinDistFlow),
voltage and current limits, SOP capacity/loss cones and ``U >= U_set`` at a
Vf terminal, and optionally a cap on switching operations. The periods of the
model (forecast, quantiles, scenarios) come from
:mod:`~sopjax.problems.restoration.periods`; the SOP set-points a strategy
holds are shared by all periods
(:func:`sopjax.solvers.components.sop_model.constraint_sop_shared_setpoints`).

The problem builder calls formulation functions only. Solving is
:mod:`~sopjax.problems.restoration.solve`, reading the plan
:mod:`~sopjax.problems.restoration.results`, re-checking it with the exact
power flow :mod:`~sopjax.problems.restoration.check`.
"""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np

from sopjax import graph
from sopjax.branch_model import fold_capacitors
from sopjax.errors import NothingToRestoreError, SopjaxError
from sopjax.network import Network
from sopjax.problems.restoration.periods import plan_periods
from sopjax.problems.restoration.settings import (
    RestorationSettings,
    outage_mask,
    switchable_mask,
    with_limits,
)
from sopjax.solvers import formulations
from sopjax.solvers.components import radiality, sop_model
from sopjax.solvers.model import Model
from sopjax.solvers.switched import constraint_switched_network

__all__ = ["build_restoration", "restorable_buses"]


def _check_substation(net: Network, settings: RestorationSettings, closable: np.ndarray) -> None:
    """Raise if the faults leave the substation with no closable path to any load."""
    seen = _reach(net, closable, [net.slack_bus])
    p = np.asarray(net.p_load_pu, float)
    if not np.any(seen & (p > 0)):
        labels = ", ".join(net.branch_label(net.branch_index(k)) for k in settings.faulted)
        raise SopjaxError(
            f"the fault on branch(es) {labels} cuts the substation (bus {net.bus_ids[net.slack_bus]}) off "
            "from every load: no switching can restore anything; check the faulted branches"
        )


def _reach(net: Network, closable: np.ndarray, start) -> np.ndarray:
    """Buses connected to ``start`` through closable branches, (bus,) bool."""
    adj = graph.incidence(net.n_bus, np.asarray(net.f_bus), np.asarray(net.t_bus), np.flatnonzero(closable))
    return graph.reachable(adj, start)


def _bus_list(net: Network, mask: np.ndarray) -> str:
    ids = [net.bus_ids[b] for b in np.flatnonzero(mask)]
    return ", ".join(map(str, ids[:12])) + (", ..." if len(ids) > 12 else "")


def restorable_buses(net: Network, settings: RestorationSettings, closable: np.ndarray) -> np.ndarray:
    """Buses that some plan can energize, (bus,) bool; raise if the outage area has nothing restorable.

    A bus is restorable when closable branches (in service or switchable, not forced open) join it
    to the substation, or to a terminal of an SOP (``use_sop``) whose other terminal is restorable
    (a Vf-mode island). PV alone does not energize an island (DESIGN.md). The other outage buses
    sit in blocks of fixed branches that no switch or SOP reaches: they stay de-energized.

    Raises:
        SopjaxError: the fault isolates no load (e.g. a fault on an open tie).
        NothingToRestoreError: no switch or SOP reaches any interrupted load (buses named).
    """
    outage = outage_mask(net, settings)
    p = np.asarray(net.p_load_pu, float)
    labels = ", ".join(net.branch_label(net.branch_index(k)) for k in settings.faulted)
    if not np.any(outage & (p > 0)):
        cut = f"buses {_bus_list(net, outage)} lose supply" if outage.any() else "no bus loses supply"
        raise SopjaxError(f"the fault on branch(es) {labels} interrupts no load ({cut}): nothing to restore; "
                          "check the faulted branches (an open tie switch carries no load)")
    reach = _reach(net, closable, [net.slack_bus])
    if settings.use_sop and net.sop.count:
        pairs = list(zip(np.asarray(net.sop.bus_i, int), np.asarray(net.sop.bus_j, int)))
        grew = True
        while grew:
            grew = False
            for a, b in pairs:
                for src, dst in ((a, b), (b, a)):
                    if reach[src] and not reach[dst]:
                        reach |= _reach(net, closable, [dst])
                        grew = True
    if not np.any(reach & outage & (p > 0)):
        raise NothingToRestoreError(
            f"nothing can be restored after the fault on branch(es) {labels}: no closable switch "
            f"{'or SOP ' if settings.use_sop and net.sop.count else ''}connects the outage area (buses "
            f"{_bus_list(net, outage)}) to a source; make branches switchable (switchable = ...) "
            "or let an SOP with a terminal in the outage area operate (use_sop = true)"
        )
    return reach


# --------------------------------------------------------------------------- model


def _voltage_ceiling_lin(net: Network, data: dict) -> np.ndarray:
    """A valid upper bound on LinDistFlow voltages (p.u.), (bus,).

    ``v_L`` rises above its source only through reverse flows, each at most the
    total injection ``G`` (PV, SOP, negative loads), so ``v_L <= v_src^2 + 2 G sum_k (r_k + x_k)``.
    Capacitive bus shunts and capacitor banks (total ``B = sum b+``) inject at most ``B v_L``,
    which gives ``v_L <= (v_src^2 + 2 G R) / (1 - 2 B R)`` with ``R = sum_k (r_k + x_k)``.
    """
    g = float(np.max(np.sum(np.atleast_2d(data["pv_p_pu"]), axis=-1), initial=0.0))
    g += float(np.sum(np.maximum(np.asarray(net.sop.s_rated_i_pu, float), np.asarray(net.sop.s_rated_j_pu, float))))
    g += float(np.max(np.sum(np.clip(-np.asarray(data["p_load_pu"]), 0, None), axis=-1)))
    top = max(float(net.v_slack_pu), float(np.max(net.v_max_pu))) ** 2
    b_sh = fold_capacitors(net).b_sh_pu
    b = 0.0 if b_sh is None else float(np.sum(np.clip(np.asarray(b_sh, float), 0, None)))
    r = float(np.sum(np.asarray(net.r_pu) + np.asarray(net.x_pu)))
    if 2 * b * r >= 1:
        raise SopjaxError(
            f"network {net.name!r}: capacitive shunts and capacitor banks of {b:.4g} p.u. in total on branches of "
            f"{r:.4g} p.u. total impedance leave the LinDistFlow bound model without a voltage ceiling"
        )
    v2 = (top + 2 * g * r) / (1 - 2 * b * r)
    return np.full(net.n_bus, np.sqrt(v2))


def _constraint_vdcq_partner(m: Model) -> None:
    """The VdcQ partner of a Vf terminal is fed by the substation, not by the island the Vf terminal forms.

    Without it a plan may move the partner (a healthy bus) into the Vf island, e.g. by opening the
    healthy lateral's feeder branch and closing a tie into the island: the SOP would then feed
    itself, which the exact check rejects. Per SOP, one unit of a fictitious flow ``f`` (branch,)
    goes from the substation to the partner of a Vf-mode terminal on closed branches
    (``|f| <= alpha``); radiality (one root per component) then puts the Vf root in another component.
    """
    net = m.net
    vf = (m.var.get("sop_vf_i"), m.var.get("sop_vf_j"))
    if not any(isinstance(x, cp.Expression) for x in vf):
        return
    nb, nl = net.n_bus, net.n_branch
    rows = np.flatnonzero(np.arange(nb) != net.slack_bus)
    pos = {b: r for r, b in enumerate(rows)}
    inc = np.zeros((rows.size, nl))  # inflow - outflow of each non-substation bus
    for k, (f, t) in enumerate(zip(np.asarray(net.f_bus), np.asarray(net.t_bus))):
        if t in pos:
            inc[pos[t], k] += 1.0
        if f in pos:
            inc[pos[f], k] -= 1.0
    alpha = m.var["alpha"]
    for s in range(net.sop.count):
        demand = 0.0
        for on, partner in ((vf[0], int(net.sop.bus_j[s])), (vf[1], int(net.sop.bus_i[s]))):
            if isinstance(on, cp.Expression) and partner in pos:
                e = np.zeros(rows.size)
                e[pos[partner]] = 1.0
                demand = demand + on[s] * e
        flow = cp.Variable(nl, name=f"sop_partner_flow_{s}")
        m.add("sop_partner_fed", [inc @ flow == demand, flow <= alpha, -flow <= alpha])


def build_restoration(
    net: Network, settings: RestorationSettings, *, relax: bool = False, load_bound_kw: float | None = None,
    bound_model: bool = False,
) -> tuple[Model, cp.Problem]:
    """Build the restoration model (only formulation functions are called).

    Args:
        net: the network with its PV and SOP tables.
        settings: what to restore (validated here).
        relax: build the continuous relaxation (binaries in [0, 1]).
        load_bound_kw: a proven upper bound on the restored load (kW, as ``m.obj['restored_kw']``),
            added as the valid cut ``restored_kw <= load_bound_kw``
            (:func:`restored_load_bound`).
        bound_model: build the LinDistFlow *relaxation* instead (circumscribed polygons, no
            upper voltage limit) maximising the restored load only; see :func:`restored_load_bound`.

    Returns:
        (model, cvxpy problem maximising the weighted objective in kW).

    Raises:
        SopjaxError: bad settings (named), U_set above a terminal's voltage limit,
            a fault that cuts the substation off from every load.
    """
    settings.validate(net)
    opts = settings.options
    if bound_model:
        opts = dataclasses.replace(opts, formulation="lindistflow")
    net0 = net
    net = with_limits(net, settings, margin_pu=settings.v_margin_pu)
    form = formulations.get(opts.formulation)
    data = plan_periods(net, settings)
    T = len(data["labels"])
    m = Model(net, periods=T, relax=relax)
    m.data.update(p_load_pu=data["p_load_pu"], q_load_pu=data["q_load_pu"], pv_p_pu=data["pv_p_pu"])
    m.meta["labels"] = data["labels"]
    m.meta["settings"] = settings
    m.meta["outer_polygons"] = bound_model

    forced = [net.branch_index(k) for k in (*settings.faulted, *settings.keep_open)]
    sw = switchable_mask(net, settings)
    closable = (sw | np.asarray(net.in_service, bool)).copy()
    closable[forced] = False
    _check_substation(net, settings, closable)
    # blocks of fixed branches that no switch or SOP reaches stay de-energized: their branches are
    # closed but dead, modelled as open (the radiality model orients every closed branch)
    reach = restorable_buses(net, settings, closable)
    f_bus, t_bus = np.asarray(net.f_bus), np.asarray(net.t_bus)
    dead = np.flatnonzero(closable & ~sw & (~reach[f_bus] | ~reach[t_bus]))
    m.meta["dead_branches"] = dead
    radiality.variable_branch_status(m, switchable=sw, forced_open=forced + [int(k) for k in dead])
    outage = outage_mask(net, settings)
    m.meta["outage"] = outage
    # continuous energization is exact only with oriented radiality and flow to every bus
    cont = opts.continuous_energization and opts.radiality == "spanning_forest" and opts.orientation
    radiality.variable_energized(m, fixed_on=None if settings.shed_outside else ~outage, binary=not cont)

    i_max = None
    if settings.i_max_pu is not None:
        i_max = np.broadcast_to(np.asarray(settings.i_max_pu, float), (net.n_branch,)).copy()
    use_sop = settings.use_sop and net.sop.count > 0
    form.set_bounds(m, i_max_pu=None if bound_model else i_max, loss_allowance=opts.loss_allowance,
                    big_m=opts.big_m, v_max_pu=_voltage_ceiling_lin(net, data) if bound_model else None)
    form.variable_bus_voltage(m)
    form.variable_branch_power(m)
    form.variable_branch_current(m)
    form.variable_substation_power(m)
    fixed = np.where(outage, np.nan, 1.0) if not settings.shed_outside else None
    served = form.variable_load_pickup(m, blocks=settings.load_blocks, fixed=fixed)
    form.injection_load(m, served)
    form.injection_pv(m, on=m.var["energized"])
    if use_sop:
        sop_model.variable_sop(m)
        allow_i = True if settings.shed_outside else outage[np.asarray(net.sop.bus_i)]
        allow_j = True if settings.shed_outside else outage[np.asarray(net.sop.bus_j)]
        sop_model.variable_sop_mode(m, allow_vf_i=allow_i, allow_vf_j=allow_j)
        sop_model.constraint_sop(m)
        # U_set is checked against the study's limits; the model uses it inside the planning margin
        sop_model.check_u_set(with_limits(net0, settings), settings.u_set_pu)
        u_model = np.minimum(settings.u_set_pu, np.asarray(net.v_max_pu, float)[
            np.concatenate([np.asarray(net.sop.bus_i), np.asarray(net.sop.bus_j)])].reshape(2, -1).min(axis=0))
        sop_model.constraint_sop_vf(m, u_model)
        sop_model.constraint_sop_shared_setpoints(m)
        _constraint_vdcq_partner(m)
    constraint_switched_network(m, form, opts)
    if i_max is not None:
        form.constraint_current_limit(m, i_max)
    connect = radiality.connectivity_buses(m) if opts.minimal_connectivity and not cont else None
    radiality.constraint_radiality(m, method=opts.radiality, loop_cuts=opts.loop_cuts,
                                   orientation=opts.orientation, connect=connect)
    if settings.max_switch_operations is not None:
        initial = np.asarray(net.in_service, bool).copy()
        initial[forced] = False
        initial[dead] = False  # closed but dead: not a switching operation
        radiality.constraint_switch_operations(m, initial, int(settings.max_switch_operations))

    kva = net.base_mva * 1e3
    p_load = m.per_period("p_load_pu")
    restored = cp.sum(cp.multiply(p_load, form.broadcast_periods(served, T))) / T if isinstance(
        served, cp.Expression) else float(np.sum(p_load * served)) / T
    m.obj["restored_kw"] = kva * restored
    if bound_model:
        m.obj["objective"] = m.obj["restored_kw"]
        return m, cp.Problem(cp.Maximize(m.obj["objective"]), m.constraints())
    line = cp.sum(form.expression_line_losses(m)) / T
    conv = cp.sum(sop_model.expression_sop_losses(m)) / T if use_sop else 0.0
    m.obj.update(line_losses_kw=kva * line, sop_losses_kw=kva * conv)
    if load_bound_kw is not None:
        m.add("restored_load_bound", m.obj["restored_kw"] <= float(load_bound_kw))
    objective = settings.eta_d * m.obj["restored_kw"] - settings.eta_l * (m.obj["line_losses_kw"]
                                                                          + m.obj["sop_losses_kw"])
    m.obj["objective"] = objective
    return m, cp.Problem(cp.Maximize(objective), m.constraints())
