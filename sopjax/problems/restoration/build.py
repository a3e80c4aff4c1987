"""Service restoration with SOPs and network reconfiguration (seed 002, section 3.2).

Given faulted branches (isolated, forced open), choose

* switch states (radial: a spanning forest rooted at the substation and at
  Vf-mode SOP terminals, :mod:`sopjax.solvers.components.radiality`),
* load pickup (binary per bus, or per load block),
* SOP modes (Vf at either terminal, else PQ + VdcQ) and set-points,

to maximise ``eta_D * restored load - eta_L * (line + converter losses)``
(defaults 100 and 1, seed 002) subject to SOC DistFlow (or LinDistFlow),
voltage and current limits, SOP capacity/loss cones and ``U >= U_set`` at a
Vf terminal, and optionally a cap on switching operations.

Uncertainty (``RestorationSettings.uncertainty``): ``"forecast"`` plans for the
PV forecast; ``"quantile"`` adds the chance-constrained quantiles as extra
periods that share every decision: PV at ``mu - z sigma`` with the loads at
their aggregate upper quantile ``1 + z s sqrt(sum p_i^2) / sum p_i``
(``z = Phi^-1(confidence)``, ``s`` the load error; the exact quantile of the
total demand of independent loads, e.g. of an SOP island), and, with
``quantile_sides="both"``, PV at ``mu + z sigma`` with the loads at the lower
quantile (over-voltage); ``"scenarios"`` adds ``K`` sampled PV (and load) scenarios (the same
sampler as the Monte Carlo engine) sharing switches, pickup, SOP modes and
set-points. Period 0 is always the forecast; the SOP set-points a strategy
holds are shared by all periods (:func:`sopjax.solvers.components.sop_model.constraint_sop_shared_setpoints`).

The problem builder calls formulation functions only; :func:`solve_restoration`
solves, extracts a :class:`RestorationPlan`, reports the SOC relaxation gap
per branch, converts the plan to a :class:`sopjax.strategies.Strategy` and
re-checks it with the exact power flow (the Monte Carlo engine's kernel) at
the forecast.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import cvxpy as cp
import numpy as np
from scipy.stats import norm

from sopjax import graph
from sopjax.errors import SopjaxError
from sopjax.network import Network
from sopjax.solvers import formulations
from sopjax.solvers.components import radiality, sop_model
from sopjax.solvers.model import Model
from sopjax.solvers.switched import constraint_switched_network
from sopjax.solvers.options import TIGHT, FormulationOptions
from sopjax.solvers.backends.solve import InfeasibleError, SolveInfo, solve_problem
from sopjax.topology import compile_topology

__all__ = [
    "RestorationSettings",
    "RestorationPlan",
    "build_restoration",
    "solve_restoration",
    "plan_periods",
    "outage_mask",
    "switchable_mask",
    "UNCERTAINTY_MODES",
    "exact_check",
    "with_limits",
    "restored_load_bound",
    "restorable_buses",
]

UNCERTAINTY_MODES = ("forecast", "quantile", "scenarios")


@dataclasses.dataclass(frozen=True)
class RestorationSettings:
    """What to restore and how (model settings; solver settings go to :func:`solve_restoration`).

    Attributes:
        faulted: 1-based branches isolated by the fault (forced open).
        switchable: ``"all"`` (every branch), ``"ties"`` (the case's open branches),
            ``"none"``, or a list of 1-based branch numbers that carry a switch.
        keep_open: 1-based branches that must stay open (e.g. a tie replaced by an SOP).
        use_sop: let the network's SOPs operate (False: they stay off).
        eta_d, eta_l: weights of restored load and of losses (seed 002: 100 and 1).
        u_set_pu: minimum voltage of a Vf-mode SOP terminal (seed 002: 1.0).
        load_blocks: pickup blocks per bus (1 = binary per bus).
        max_switch_operations: cap on switches changed from the post-fault state (None = no cap).
        pv_forecast_pu: PV forecast per unit (p.u.), default each unit's rating.
        uncertainty: ``"forecast"``, ``"quantile"`` or ``"scenarios"``.
        pv_sigma_frac: PV forecast-error standard deviation, fraction of the forecast.
        load_sigma_frac: load standard deviation (fraction) in sampled scenarios.
        confidence: level of the quantile (seed 002: 0.9921).
        quantile_sides: ``"both"`` (low and high PV) or ``"low"`` (low PV only).
        scenarios: number of sampled scenarios (``"scenarios"``).
        seed: seed of the scenario sampler.
        v_min_pu, v_max_pu: voltage limits applied to every bus but the substation
            (None = the case's limits).
        i_max_pu: current limit per branch (scalar or (branch,); None = none).
        shed_outside: allow shedding loads the fault did not interrupt (default: kept).
        v_margin_pu: planning margin inside the voltage limits (p.u., default 1e-4), so that a
            plan whose SOC voltages sit on a limit is not judged in violation by the exact
            power flow over round-off (the Monte Carlo tolerance is 1e-6 p.u.).
        options: formulation options (:data:`sopjax.solvers.options.TIGHT` default,
            :data:`sopjax.solvers.options.NAIVE` for the baseline).
    """

    faulted: tuple[int, ...]
    switchable: str | tuple[int, ...] = "all"
    keep_open: tuple[int, ...] = ()
    use_sop: bool = True
    eta_d: float = 100.0
    eta_l: float = 1.0
    u_set_pu: float = 1.0
    load_blocks: int = 1
    max_switch_operations: int | None = None
    pv_forecast_pu: tuple[float, ...] | None = None
    uncertainty: str = "forecast"
    pv_sigma_frac: float = 0.10
    load_sigma_frac: float = 0.0
    confidence: float = 0.9921
    quantile_sides: str = "both"
    scenarios: int = 10
    seed: int = 0
    v_min_pu: float | None = 0.95
    v_max_pu: float | None = 1.05
    i_max_pu: float | tuple[float, ...] | None = None
    shed_outside: bool = False
    v_margin_pu: float = 1e-4
    options: FormulationOptions = TIGHT

    def validate(self, net: Network) -> None:
        """Raise :class:`SopjaxError` naming the first bad setting."""
        if not self.faulted:
            raise SopjaxError("restoration needs at least one faulted branch (faulted = [...])")
        for k in (*self.faulted, *self.keep_open):
            net.branch_index(k)
        if isinstance(self.switchable, str):
            if self.switchable not in ("all", "ties", "none"):
                raise SopjaxError(f"switchable must be 'all', 'ties', 'none' or a list of branches, got {self.switchable!r}")
        else:
            for k in self.switchable:
                net.branch_index(k)
        if not (self.eta_d > 0 and self.eta_l >= 0 and np.isfinite(self.eta_d) and np.isfinite(self.eta_l)):
            raise SopjaxError(f"eta_d must be > 0 and eta_l >= 0, got {self.eta_d}, {self.eta_l}")
        if self.uncertainty not in UNCERTAINTY_MODES:
            raise SopjaxError(f"uncertainty must be one of {UNCERTAINTY_MODES}, got {self.uncertainty!r}")
        if not (0.5 < self.confidence < 1):
            raise SopjaxError(f"confidence must lie in (0.5, 1), got {self.confidence}")
        if self.quantile_sides not in ("both", "low"):
            raise SopjaxError(f"quantile_sides must be 'both' or 'low', got {self.quantile_sides!r}")
        if not (self.pv_sigma_frac >= 0 and self.load_sigma_frac >= 0):
            raise SopjaxError("pv_sigma_frac and load_sigma_frac must be >= 0")
        if self.uncertainty == "scenarios" and int(self.scenarios) < 1:
            raise SopjaxError(f"scenarios must be >= 1, got {self.scenarios}")
        if int(self.load_blocks) < 1:
            raise SopjaxError(f"load_blocks must be >= 1, got {self.load_blocks}")
        if self.max_switch_operations is not None and int(self.max_switch_operations) < 0:
            raise SopjaxError(f"max_switch_operations must be >= 0, got {self.max_switch_operations}")
        if self.pv_forecast_pu is not None:
            fc = np.asarray(self.pv_forecast_pu, float)
            if fc.shape != (net.pv.count,):
                raise SopjaxError(f"pv_forecast needs one value per PV unit ({net.pv.count}), got {fc.size}")
            rated = np.asarray(net.pv.s_rated_pu, float)
            bad = np.flatnonzero(~np.isfinite(fc) | (fc < 0) | (fc > rated * (1 + 1e-9)))
            if bad.size:
                b = net.bus_ids[int(np.asarray(net.pv.bus)[bad[0]])]
                raise SopjaxError(f"PV forecast at bus {b} must lie in [0, rating], got {fc[bad[0]]:g} p.u.")
        for name in ("v_min_pu", "v_max_pu"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v > 0):
                raise SopjaxError(f"{name} must be a positive number, got {v}")
        if self.v_min_pu is not None and self.v_max_pu is not None and self.v_min_pu > self.v_max_pu:
            raise SopjaxError(f"v_min_pu {self.v_min_pu} exceeds v_max_pu {self.v_max_pu}")
        if not (0 <= self.v_margin_pu < 0.05):
            raise SopjaxError(f"v_margin_pu must lie in [0, 0.05), got {self.v_margin_pu}")
        if self.i_max_pu is not None:
            imax = np.asarray(self.i_max_pu, float)
            if imax.ndim and imax.shape != (net.n_branch,):
                raise SopjaxError(f"i_max_pu needs one value or one per branch ({net.n_branch}), got {imax.size}")
            bad = np.flatnonzero(~(np.broadcast_to(imax, (net.n_branch,)) > 0))
            if bad.size:
                raise SopjaxError(f"i_max_pu of branch {net.branch_label(int(bad[0]))} must be a positive number, "
                                  f"got {np.broadcast_to(imax, (net.n_branch,))[bad[0]]}")
        if self.v_min_pu is not None and self.v_max_pu is not None:
            slack = float(net.v_slack_pu)
            if not (self.v_min_pu <= slack <= self.v_max_pu):
                raise SopjaxError(f"the substation voltage {slack:g} p.u. (bus {net.bus_ids[net.slack_bus]}) lies "
                                  f"outside the voltage limits [{self.v_min_pu:g}, {self.v_max_pu:g}] p.u.; change "
                                  "v_min_pu / v_max_pu or the substation voltage (v_slack_pu)")


# --------------------------------------------------------------------------- data


def with_limits(net: Network, settings: RestorationSettings, margin_pu: float = 0.0) -> Network:
    """The network with the study's voltage limits (tightened by ``margin_pu``) on every bus but the substation."""
    vmin = np.asarray(net.v_min_pu, float).copy()
    vmax = np.asarray(net.v_max_pu, float).copy()
    others = np.arange(net.n_bus) != net.slack_bus
    if settings.v_min_pu is not None:
        vmin[others] = settings.v_min_pu
    if settings.v_max_pu is not None:
        vmax[others] = settings.v_max_pu
    vmin[others] += margin_pu
    vmax[others] -= margin_pu
    return net.replace(v_min_pu=vmin, v_max_pu=vmax)


def outage_mask(net: Network, settings: RestorationSettings) -> np.ndarray:
    """Buses de-energized by isolating the faulted (and kept-open) branches, (bus,) bool."""
    status = net.branch_status(open=list(settings.faulted) + list(settings.keep_open))
    return ~np.asarray(compile_topology(net, status).energized)


def switchable_mask(net: Network, settings: RestorationSettings) -> np.ndarray:
    """Branches that carry a switch (before removing faulted / kept-open ones), (branch,) bool."""
    sw = settings.switchable
    if isinstance(sw, str):
        if sw == "all":
            return np.ones(net.n_branch, dtype=bool)
        if sw == "ties":
            return ~np.asarray(net.in_service, dtype=bool)
        return np.zeros(net.n_branch, dtype=bool)
    mask = np.zeros(net.n_branch, dtype=bool)
    for k in sw:
        mask[net.branch_index(k)] = True
    return mask


def _forecast(net: Network, settings: RestorationSettings) -> np.ndarray:
    if settings.pv_forecast_pu is not None:
        return np.asarray(settings.pv_forecast_pu, float)
    return np.asarray(net.pv.s_rated_pu, float).copy()


def plan_periods(net: Network, settings: RestorationSettings) -> dict[str, np.ndarray | list[str]]:
    """Per-period loads and PV of the model: period 0 is the forecast.

    Returns:
        dict with ``p_load_pu``, ``q_load_pu`` (T, bus), ``pv_p_pu`` (T, pv) and ``labels`` (T,).
    """
    mu = _forecast(net, settings)
    rated = np.asarray(net.pv.s_rated_pu, float)
    p0 = np.asarray(net.p_load_pu, float)
    q0 = np.asarray(net.q_load_pu, float)
    pv = [mu]
    labels = ["forecast"]
    loads_p, loads_q = [p0], [q0]
    if settings.uncertainty == "quantile":
        z = float(norm.ppf(settings.confidence))
        sigma = settings.pv_sigma_frac * mu
        # aggregate load quantile: sum_i p_i (1 + s xi_i) <= sum_i p_i + z s sqrt(sum_i p_i^2), i.e. a
        # uniform factor 1 + delta on the loads (exact for the total, e.g. an SOP island's demand)
        pos = np.clip(p0, 0, None)
        delta = z * settings.load_sigma_frac * float(np.sqrt(np.sum(pos**2)) / max(np.sum(pos), 1e-12))
        pv.append(np.clip(mu - z * sigma, 0.0, rated))
        labels.append(f"low_pv_high_load_q{1 - settings.confidence:.4g}")
        loads_p.append(p0 * (1 + delta))
        loads_q.append(q0 * (1 + delta))
        if settings.quantile_sides == "both":
            pv.append(np.clip(mu + z * sigma, 0.0, rated))
            labels.append(f"high_pv_low_load_q{settings.confidence:.4g}")
            loads_p.append(p0 * max(1 - delta, 0.0))
            loads_q.append(q0 * max(1 - delta, 0.0))
    elif settings.uncertainty == "scenarios":
        import jax

        from sopjax.sampling import LoadNormal, PVForecastError, UncertaintyModel

        model = UncertaintyModel(
            pv=PVForecastError(sigma_frac=settings.pv_sigma_frac) if net.pv.count else None,
            load=LoadNormal(sigma_frac=settings.load_sigma_frac) if settings.load_sigma_frac > 0 else None,
            scheme="mc",
        )
        s = model.sample(net, mu, key=jax.random.key(int(settings.seed)), n=int(settings.scenarios))
        for k in range(int(settings.scenarios)):
            pv.append(np.asarray(s.p_pv_pu[k], float))
            loads_p.append(np.asarray(s.p_load_pu[k], float))
            loads_q.append(np.asarray(s.q_load_pu[k], float))
            labels.append(f"scenario_{k}")
    return {
        "p_load_pu": np.stack(loads_p),
        "q_load_pu": np.stack(loads_q),
        "pv_p_pu": np.stack(pv) if net.pv.count else np.zeros((len(labels), 0)),
        "labels": labels,
    }


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
        SopjaxError: the fault isolates no load (e.g. a fault on an open tie), or no switch or SOP
            reaches any interrupted load (buses named).
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
        raise SopjaxError(
            f"nothing can be restored after the fault on branch(es) {labels}: no closable switch "
            f"{'or SOP ' if settings.use_sop and net.sop.count else ''}connects the outage area (buses "
            f"{_bus_list(net, outage)}) to a source; make branches switchable (switchable = ...) "
            "or let an SOP with a terminal in the outage area operate (use_sop = true)"
        )
    return reach


def _diagnose_infeasible(net: Network, settings: RestorationSettings) -> str | None:
    """Why a restoration model is infeasible, if the healthy area alone explains it (else None).

    With nothing restored (outage area de-energized, SOPs off), the exact power flow of every
    planning period is checked against the study's voltage limits at the buses the fault did
    not interrupt (their loads cannot be shed unless ``shed_outside``).
    """
    from sopjax.strategies import Strategy, score_once

    netl = with_limits(net, settings)
    netl = netl.replace(rate_pu=np.ones(net.n_branch))  # branch_loading = |S| (p.u.) for the current check
    opened = list(settings.faulted) + list(settings.keep_open)
    strat = Strategy.build(netl, "post-fault", open=opened)
    imax = None if settings.i_max_pu is None else np.broadcast_to(np.asarray(settings.i_max_pu, float),
                                                                    (net.n_branch,))
    data = plan_periods(net, settings)
    vmin = np.asarray(netl.v_min_pu, float)
    vmax = np.asarray(netl.v_max_pu, float)
    for k, label in enumerate(data["labels"]):
        sc = score_once(netl, strat, p_pv_pu=data["pv_p_pu"][k], p_load_pu=data["p_load_pu"][k],
                        q_load_pu=data["q_load_pu"][k], fault_open=opened,
                        v_min_pu=float(np.min(vmin)), v_max_pu=float(np.max(vmax)))
        vm = np.asarray(sc.vm_pu, float)
        on = np.array(sc.energized, bool)
        on[net.slack_bus] = False
        low = on & (vm < vmin - 1e-9)
        high = on & (vm > vmax + 1e-9)
        for bad, side, lim in ((low, "below v_min", vmin), (high, "above v_max", vmax)):
            if bad.any():
                b = int(np.flatnonzero(bad)[np.argmax(np.abs(vm - lim)[bad])])
                return (f"infeasible before any restoration: bus {net.bus_ids[b]} of the area the fault did not "
                        f"interrupt is at {vm[b]:.4f} p.u. ({label}), {side} = {lim[b]:g} p.u. (substation "
                        f"{float(net.v_slack_pu):g} p.u.); its load cannot be shed (shed_outside = false): "
                        "relax v_min_pu / v_max_pu or change the substation voltage")
        if imax is not None:
            on_br = np.asarray(sc.branch_on, bool)
            v_f = np.maximum(np.minimum(vm[np.asarray(net.f_bus)], vm[np.asarray(net.t_bus)]), 1e-6)
            cur = np.where(on_br, np.asarray(sc.branch_loading, float) / v_f, 0.0)
            over = np.flatnonzero(cur > imax * (1 + 1e-6))
            if over.size:
                k = int(over[np.argmax(cur[over] / imax[over])])
                return (f"infeasible before any restoration: branch {net.branch_label(k)} of the area the fault "
                        f"did not interrupt carries {cur[k]:.4g} p.u. of current ({label}), above i_max_pu = "
                        f"{imax[k]:g}; its loads cannot be shed (shed_outside = false): raise i_max_pu")
    return None


# --------------------------------------------------------------------------- model


def _voltage_ceiling_lin(net: Network, data: dict) -> np.ndarray:
    """A valid upper bound on LinDistFlow voltages (p.u.), (bus,).

    ``v_L`` rises above its source only through reverse flows, each at most the
    total injection ``G`` (PV, SOP, negative loads), so ``v_L <= v_src^2 + 2 G sum_k (r_k + x_k)``.
    """
    g = float(np.max(np.sum(np.atleast_2d(data["pv_p_pu"]), axis=-1), initial=0.0))
    g += float(np.sum(np.maximum(np.asarray(net.sop.s_rated_i_pu, float), np.asarray(net.sop.s_rated_j_pu, float))))
    g += float(np.max(np.sum(np.clip(-np.asarray(data["p_load_pu"]), 0, None), axis=-1)))
    top = max(float(net.v_slack_pu), float(np.max(net.v_max_pu))) ** 2
    v2 = top + 2 * g * float(np.sum(np.asarray(net.r_pu) + np.asarray(net.x_pu)))
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
    if i_max is not None and opts.formulation == "soc":
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


def restored_load_bound(
    net: Network, settings: RestorationSettings, *, time_limit: float | None = None
) -> tuple[float, SolveInfo]:
    """A proven upper bound on the restored load of the SOC model (kW), from its LinDistFlow relaxation.

    The bound model (:func:`build_restoration` with ``bound_model=True``) has the
    same switches, pickups, SOP modes and radiality, LinDistFlow power flow with
    circumscribed SOP/rating polygons and only the lower voltage limits; it
    contains every SOC-feasible plan (see :mod:`sopjax.solvers.formulations.lindistflow`).
    It is a MILP, solved by HiGHS; the returned value is HiGHS's proven dual bound.

    Returns:
        (bound in kW, solve report).
    """
    m, prob = build_restoration(net, settings, bound_model=True)
    info = solve_problem(prob, solver="HIGHS", time_limit=time_limit, mip_gap=1e-6,
                         infeasible_hint="no plan meets the lower voltage limits even without losses")
    bound = max(info.bound, info.objective)
    # numerical safety: the cut must never exclude the true optimum
    return bound * (1 + 1e-7) + 1e-6, info


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class RestorationPlan:
    """An optimal restoration plan (user units unless a name says p.u.).

    Attributes:
        status: closed flag per branch, (branch,).
        opened, closed: 1-based branches switched relative to the post-fault state.
        open_branches: every open branch (1-based), faulted ones included.
        energized: energized flag per bus, (bus,).
        pickup: served fraction per bus, (bus,).
        sop_modes: per SOP ``"vf_i"``, ``"vf_j"``, ``"pq_i"`` or ``"off"``.
        sop_setpoints: per SOP dict of ``p_i_kw, q_i_kvar, p_j_kw, q_j_kvar, loss_kw, u_set_pu``
            (period 0, the forecast).
        restored_kw: load served in the outage area at the forecast.
        outage_kw: load interrupted by the fault.
        recovery_ratio: ``restored_kw / outage_kw``.
        served_kw: total load served at the forecast (whole network).
        line_losses_kw, sop_losses_kw: model losses at the forecast.
        objective: optimal weighted objective (kW units, averaged over periods).
        relaxation_gap: max relative SOC gap per branch over periods, (branch,) (NaN for LinDistFlow).
        gap_flagged: 1-based branches whose gap exceeds ``gap_threshold``.
        info: solver report.
        periods: labels of the model periods.
        switch_operations: number of switches changed.
    """

    status: np.ndarray
    opened: list[int]
    closed: list[int]
    open_branches: list[int]
    energized: np.ndarray
    pickup: np.ndarray
    sop_modes: list[str]
    sop_setpoints: list[dict]
    restored_kw: float
    outage_kw: float
    recovery_ratio: float
    served_kw: float
    line_losses_kw: float
    sop_losses_kw: float
    objective: float
    relaxation_gap: np.ndarray
    gap_threshold: float
    gap_flagged: list[int]
    info: SolveInfo
    periods: list[str]
    switch_operations: int
    formulation: str

    def strategy(self, net: Network, name: str = "optimised"):
        """The plan as a :class:`sopjax.strategies.Strategy` (modes, set-points, pickup)."""
        from sopjax.strategies import Strategy

        kva = net.base_mva * 1e3
        n = net.sop.count
        p = np.zeros(n)
        qi = np.zeros(n)
        qj = np.zeros(n)
        u = np.ones(n)
        for k, (mode, sp_) in enumerate(zip(self.sop_modes, self.sop_setpoints)):
            p[k] = sp_["p_i_kw"] / kva if mode == "pq_i" else 0.0
            qi[k] = sp_["q_i_kvar"] / kva
            qj[k] = sp_["q_j_kvar"] / kva
            if mode in ("vf_i", "vf_j"):
                u[k] = sp_["u_set_pu"]
        for k, mode in enumerate(self.sop_modes):
            if mode == "pq_i":
                p[k], qi[k] = _fit_capacity(net, k, p[k], qi[k], qj[k])
        pickup = np.clip(self.pickup, 0.0, 1.0)
        return Strategy.from_arrays(
            net, name, status=self.status, sop_mode=self.sop_modes or None, p_set_pu=p if n else None,
            q_i_pu=qi if n else None, q_j_pu=qj if n else None, u_set_pu=u if n else None, pickup=pickup,
            info={"source": "sopjax.solvers.restoration", "opened": self.opened, "closed": self.closed},
        )

    def as_dict(self, net: Network) -> dict:
        """JSON-able summary in case ids and kW."""
        shed = [net.bus_ids[b] for b in np.flatnonzero(self.pickup < 1 - 1e-9) if net.p_load_pu[b] > 0]
        partial = [net.bus_ids[b] for b in np.flatnonzero((self.pickup > 1e-9) & (self.pickup < 1 - 1e-9))]
        return {
            "open_branches": self.open_branches,
            "opened": self.opened,
            "closed": self.closed,
            "switch_operations": self.switch_operations,
            "de_energized_buses": [net.bus_ids[b] for b in np.flatnonzero(~self.energized)],
            "shed_buses": shed,
            "partial_buses": partial,
            "sops": [
                {"sop": f"{net.bus_ids[int(net.sop.bus_i[k])]}-{net.bus_ids[int(net.sop.bus_j[k])]}",
                 "mode": mode, **sp_}
                for k, (mode, sp_) in enumerate(zip(self.sop_modes, self.sop_setpoints))
            ],
            "restored_kw": self.restored_kw,
            "outage_kw": self.outage_kw,
            "recovery_ratio": self.recovery_ratio,
            "served_kw": self.served_kw,
            "line_losses_kw": self.line_losses_kw,
            "sop_losses_kw": self.sop_losses_kw,
            "objective": self.objective,
            "max_relaxation_gap": float(np.nanmax(self.relaxation_gap)) if self.relaxation_gap.size and not
            np.all(np.isnan(self.relaxation_gap)) else None,
            "gap_threshold": self.gap_threshold,
            "gap_flagged_branches": self.gap_flagged,
            "periods": self.periods,
            "formulation": self.formulation,
            "solver": self.info.as_dict(),
        }


def _fit_capacity(net: Network, k: int, p: float, qi: float, qj: float, rtol: float = 1e-7):
    """Shrink a PQ set-point that exceeds a VSC capacity by solver round-off (exact DC balance)."""
    from sopjax.kernels.radial_np import vdcq_power_np

    sop = net.sop
    si, sj = float(sop.s_rated_i_pu[k]), float(sop.s_rated_j_pu[k])
    ai, aj = float(sop.loss_i[k]), float(sop.loss_j[k])
    sa = float(np.hypot(p, qi))
    if sa > si * (1 - rtol):
        f = si * (1 - rtol) / sa
        p, qi, sa = p * f, qi * f, sa * f
    for _ in range(200):
        pb = vdcq_power_np(p, ai, float(np.hypot(p, qi)), aj, qj)
        if float(np.hypot(pb, qj)) <= sj * (1 - rtol):
            break
        p *= 0.999
    return p, qi


def _extract(m: Model, net: Network, settings: RestorationSettings, info: SolveInfo,
             gap_threshold: float) -> RestorationPlan:
    kva = net.base_mva * 1e3
    status = m.value("alpha") > 0.5
    status[m.meta.get("dead_branches", [])] = True  # closed but dead (unreachable blocks), not switched
    energized = m.value("energized") > 0.5
    pickup = np.clip(np.round(m.value("served") * settings.load_blocks) / settings.load_blocks, 0, 1)
    pickup = np.where(energized, pickup, 0.0)
    p0 = np.asarray(m.data["p_load_pu"])[0]
    outage = m.meta["outage"]
    restored = float(np.sum(p0 * pickup * outage)) * kva
    outage_kw = float(np.sum(p0 * outage)) * kva
    forced = [net.branch_index(k) for k in (*settings.faulted, *settings.keep_open)]
    initial = np.asarray(net.in_service, bool).copy()
    initial[forced] = False
    changed = np.flatnonzero(status != initial)
    modes, setpoints = [], []
    use_sop = "sop_p_i" in m.var
    for k in range(net.sop.count):
        if not use_sop:
            modes.append("off")
            setpoints.append({"p_i_kw": 0.0, "q_i_kvar": 0.0, "p_j_kw": 0.0, "q_j_kvar": 0.0,
                              "loss_kw": 0.0, "u_set_pu": 1.0})
            continue
        vi = float(np.asarray(m.value("sop_vf_i"))[k]) > 0.5
        vj = float(np.asarray(m.value("sop_vf_j"))[k]) > 0.5
        pi, qi = m.value("sop_p_i")[0, k], m.value("sop_q_i")[0, k]
        pj, qj = m.value("sop_p_j")[0, k], m.value("sop_q_j")[0, k]
        loss = m.value("sop_loss_i")[0, k] + m.value("sop_loss_j")[0, k]
        bi, bj = int(net.sop.bus_i[k]), int(net.sop.bus_j[k])
        v = m.value("v")[0]
        if vi:
            mode, u = "vf_i", float(np.sqrt(v[bi]))
        elif vj:
            mode, u = "vf_j", float(np.sqrt(v[bj]))
        elif energized[bi] and energized[bj] and max(abs(pi), abs(qi), abs(pj), abs(qj)) * kva > 1e-3:
            mode, u = "pq_i", 1.0
        else:
            mode, u = "off", 1.0
        modes.append(mode)
        setpoints.append({"p_i_kw": pi * kva, "q_i_kvar": qi * kva, "p_j_kw": pj * kva, "q_j_kvar": qj * kva,
                          "loss_kw": loss * kva, "u_set_pu": u})
    form = formulations.get(settings.options.formulation)
    gap = form.relaxation_gap(m)
    if gap is None:
        rel = np.full(net.n_branch, np.nan)
        flagged: list[int] = []
    else:
        rel = np.max(np.abs(gap["rel"]) * status[None, :], axis=0)
        flagged = [net.branch_numbers[k] for k in np.flatnonzero(rel > gap_threshold)]
    line = float(form.expression_line_losses(m).value[0]) * kva if isinstance(
        form.expression_line_losses(m), cp.Expression) else 0.0
    conv = float(np.sum(m.value("sop_loss_i")[0] + m.value("sop_loss_j")[0])) * kva if use_sop else 0.0
    return RestorationPlan(
        status=status,
        opened=[net.branch_numbers[k] for k in changed if not status[k]],
        closed=[net.branch_numbers[k] for k in changed if status[k]],
        open_branches=[net.branch_numbers[k] for k in np.flatnonzero(~status)],
        energized=energized,
        pickup=pickup,
        sop_modes=modes,
        sop_setpoints=setpoints,
        restored_kw=restored,
        outage_kw=outage_kw,
        recovery_ratio=restored / outage_kw if outage_kw > 0 else float("nan"),
        served_kw=float(np.sum(p0 * pickup)) * kva,
        line_losses_kw=line,
        sop_losses_kw=conv,
        objective=float(m.obj["objective"].value),
        relaxation_gap=rel,
        gap_threshold=gap_threshold,
        gap_flagged=flagged,
        info=info,
        periods=list(m.meta["labels"]),
        switch_operations=int(changed.size),
        formulation=settings.options.formulation,
    )


def solve_restoration(
    net: Network,
    settings: RestorationSettings,
    *,
    solver: str | None = None,
    time_limit: float | None = None,
    mip_gap: float | None = 1e-4,
    scip_params: dict | None = None,
    gap_threshold: float = 1e-3,
    verbose: bool = False,
) -> tuple[RestorationPlan, Model]:
    """Build, solve and extract a restoration plan.

    Args:
        net: the network with its PV and SOP tables.
        settings: the restoration settings.
        solver: ``None`` (SCIP for MISOCP, HiGHS for the LinDistFlow MILP) or a cvxpy solver name.
        time_limit: seconds.
        mip_gap: relative optimality gap (default 1e-4, Gurobi's default).
        scip_params: extra SCIP parameters.
        gap_threshold: relative SOC gap above which a branch is flagged.
        verbose: solver log.

    Returns:
        (plan, solved model).

    Raises:
        InfeasibleError: no plan meets the limits (e.g. healthy loads alone violate them).
    """
    t0 = time.perf_counter()
    bound_kw = None
    bound_info = None
    if settings.options.load_bound_cut and settings.options.formulation == "soc":
        bound_kw, bound_info = restored_load_bound(net, settings, time_limit=time_limit)
    m, prob = build_restoration(net, settings, load_bound_kw=bound_kw)
    m.meta["load_bound_kw"] = bound_kw
    m.meta["load_bound_info"] = bound_info
    try:
        info = solve_problem(
            prob, solver=solver, time_limit=time_limit, mip_gap=mip_gap, verbose=verbose, scip_params=scip_params,
            infeasible_hint="even with every interrupted load shed the limits cannot be met "
            "(check voltage limits, U_set and current limits)",
        )
    except InfeasibleError as e:
        why = _diagnose_infeasible(net, settings)
        if why is None:
            raise
        raise InfeasibleError(why) from None
    total = time.perf_counter() - t0
    info = dataclasses.replace(info, total_s=total, build_s=total - info.solve_s)
    plan = _extract(m, m.net, settings, info, gap_threshold)
    return plan, m


def exact_check(net: Network, plan: RestorationPlan, settings: RestorationSettings, *, model: Model | None = None,
                name: str = "plan") -> dict:
    """Re-check a plan with the exact sweep power flow at the forecast (the scoring kernel).

    Returns:
        dict with ``converged``, ``recovery_ratio``, ``restored_kw``, ``vmin_pu``, ``vmax_pu``,
        ``line_losses_kw``, ``sop_losses_kw``, ``voltage_violation``, ``sop_violation``,
        ``any_violation``, and the model-vs-exact differences ``dv_max_pu`` (largest voltage
        error at energized buses) and ``loss_error_kw``.
    """
    from sopjax.strategies import score_once

    netl = with_limits(net, settings)
    strat = plan.strategy(netl, name)
    fc = _forecast(net, settings)
    vmin = settings.v_min_pu if settings.v_min_pu is not None else float(np.min(netl.v_min_pu))
    vmax = settings.v_max_pu if settings.v_max_pu is not None else float(np.max(netl.v_max_pu))
    sc = score_once(netl, strat, p_pv_pu=fc, fault_open=list(settings.faulted) + list(settings.keep_open),
                    v_min_pu=vmin, v_max_pu=vmax)
    kva = net.base_mva * 1e3
    return {
        "converged": bool(sc.converged),
        "recovery_ratio": float(sc.recovery_ratio),
        "restored_kw": float(sc.restored_pu) * kva,
        "vmin_pu": float(sc.vmin_pu),
        "vmax_pu": float(sc.vmax_pu),
        "line_losses_kw": float(sc.line_loss_pu) * kva,
        "sop_losses_kw": float(sc.sop_loss_pu) * kva,
        "voltage_violation": bool(sc.voltage_violation),
        "sop_violation": bool(sc.sop_violation),
        "any_violation": bool(sc.any_violation),
        "vm_pu": np.asarray(sc.vm_pu, float),
        "loss_error_kw": float(sc.line_loss_pu) * kva - plan.line_losses_kw,
        "dv_max_pu": _voltage_error(model, sc, plan),
    }


def _voltage_error(model: Model | None, sc, plan: RestorationPlan) -> float | None:
    if model is None:
        return None
    v = np.sqrt(np.maximum(model.value("v")[0], 0.0))
    on = plan.energized & np.asarray(sc.energized, bool)
    return float(np.max(np.abs(v[on] - np.asarray(sc.vm_pu)[on]))) if on.any() else 0.0


def strategies_from_plans(net: Network, plans: Sequence[tuple[str, RestorationPlan]], settings: RestorationSettings):
    """Strategies for several named plans on the study network (with the study's voltage limits)."""
    netl = with_limits(net, settings)
    return [p.strategy(netl, name) for name, p in plans]
