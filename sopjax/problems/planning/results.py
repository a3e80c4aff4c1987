"""Planning results: sites, sizes, cost breakdown, losses, solve statistics.

:class:`PlanResult` is plain numpy/python data (JSON via :meth:`PlanResult.as_dict`,
labelled arrays via :meth:`PlanResult.to_dataset`). Costs are per year in the
cost model's currency; powers in kW / kvar; energies in kWh per day.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sopjax.solvers.backends.report import SolveInfo

__all__ = ["PlanResult"]


@dataclasses.dataclass(frozen=True)
class PlanResult:
    """An SOP plan with its operation over the scenarios.

    Attributes:
        labels: candidate labels, (candidate,).
        site: True where an SOP is installed, (candidate,).
        s_i_kva, s_j_kva: VSC capacities (kVA), 0 where not installed, (candidate,).
        costs: yearly cost breakdown (see :meth:`sopjax.problems.planning.costs.CostModel.breakdown`)
            plus ``objective`` (the solver's objective in currency/year).
        probability: scenario probabilities, (scenario,).
        line_loss_kw, converter_loss_kw: losses per scenario and period, (scenario, period).
        vmin_pu, vmax_pu: lowest / highest bus voltage per scenario and period (SOCP), (scenario, period).
        p_i_kw, q_i_kvar, p_j_kw, q_j_kvar: SOP injections into their buses, (scenario, period, candidate).
        relaxation_gap: largest SOC relaxation gap ``v l - P^2 - Q^2`` (p.u.^2) of the solution.
        stats: how the plan was obtained (:class:`sopjax.solvers.backends.report.SolveInfo`).
        period_hours: period length (h).
    """

    labels: list
    site: np.ndarray
    s_i_kva: np.ndarray
    s_j_kva: np.ndarray
    costs: dict
    probability: np.ndarray
    line_loss_kw: np.ndarray
    converter_loss_kw: np.ndarray
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    p_i_kw: np.ndarray
    q_i_kvar: np.ndarray
    p_j_kw: np.ndarray
    q_j_kvar: np.ndarray
    relaxation_gap: float
    stats: SolveInfo
    period_hours: float = 1.0

    @property
    def n_sites(self) -> int:
        return int(np.sum(self.site))

    @property
    def capacity_kva(self) -> float:
        """Total installed VSC capacity, both ends of every SOP (kVA)."""
        return float(np.sum(self.s_i_kva) + np.sum(self.s_j_kva))

    @property
    def line_loss_kwh_day(self) -> float:
        """Expected line-loss energy per day (kWh)."""
        return float(self.probability @ self.line_loss_kw.sum(axis=1)) * self.period_hours

    @property
    def converter_loss_kwh_day(self) -> float:
        """Expected converter-loss energy per day (kWh)."""
        return float(self.probability @ self.converter_loss_kw.sum(axis=1)) * self.period_hours

    def sites(self) -> list[dict]:
        """Installed SOPs: label and per-VSC capacity (kVA)."""
        return [
            {"candidate": self.labels[c], "s_i_kva": float(self.s_i_kva[c]),
             "s_j_kva": float(self.s_j_kva[c])}
            for c in np.flatnonzero(self.site)
        ]

    def as_dict(self) -> dict:
        """JSON-able summary (no per-period arrays except the loss profile)."""
        return {
            "sites": self.sites(),
            "n_sites": self.n_sites,
            "capacity_kva": self.capacity_kva,
            "costs": {k: float(v) for k, v in self.costs.items()},
            "line_loss_kwh_day": self.line_loss_kwh_day,
            "converter_loss_kwh_day": self.converter_loss_kwh_day,
            "vmin_pu": float(np.min(self.vmin_pu)),
            "vmax_pu": float(np.max(self.vmax_pu)),
            "relaxation_gap": float(self.relaxation_gap),
            # time_s: the key plan reports had before SolveInfo replaced SolveStats
            "solve": {**dataclasses.asdict(self.stats), "time_s": self.stats.time_s},
        }

    def to_dataset(self):
        """The plan as an ``xarray.Dataset`` (dims: scenario, period, candidate)."""
        import xarray as xr

        dims3 = ("scenario", "period", "candidate")
        ds = xr.Dataset(
            {
                "site": ("candidate", self.site),
                "s_i_kva": ("candidate", self.s_i_kva),
                "s_j_kva": ("candidate", self.s_j_kva),
                "probability": ("scenario", self.probability),
                "line_loss_kw": (("scenario", "period"), self.line_loss_kw),
                "converter_loss_kw": (("scenario", "period"), self.converter_loss_kw),
                "vmin_pu": (("scenario", "period"), self.vmin_pu),
                "vmax_pu": (("scenario", "period"), self.vmax_pu),
                "p_i_kw": (dims3, self.p_i_kw),
                "q_i_kvar": (dims3, self.q_i_kvar),
                "p_j_kw": (dims3, self.p_j_kw),
                "q_j_kvar": (dims3, self.q_j_kvar),
            },
            coords={"candidate": list(self.labels)},
            attrs={f"cost_{k}": float(v) for k, v in self.costs.items()}
            | {"method": self.stats.method, "status": self.stats.status, "time_s": self.stats.total_s,
               "gap": self.stats.gap},
        )
        return ds
