"""A restoration plan read from a solved model: switches, pickup, SOP modes and set-points, losses, gaps."""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np

from sopjax.network import Network
from sopjax.problems.restoration.settings import RestorationSettings
from sopjax.solvers import formulations
from sopjax.solvers.backends.report import SolveInfo
from sopjax.solvers.model import Model
from sopjax.strategies import Strategy
from sopjax.kernels.radial_np import vdcq_power_np

__all__ = ["RestorationPlan", "extract_plan"]


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


def extract_plan(m: Model, net: Network, settings: RestorationSettings, info: SolveInfo,
                 gap_threshold: float) -> RestorationPlan:
    """The plan of a solved restoration model ``m`` (user units; ``info`` is its solve report).

    Args:
        m: the solved model (:func:`sopjax.problems.restoration.build.build_restoration`).
        net: the network the model was built on (``m.net``).
        settings: the restoration settings of the model.
        info: the solve report.
        gap_threshold: relative SOC gap above which a branch is flagged.
    """
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
