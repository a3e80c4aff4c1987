"""Restoration settings (what to restore and how) and the network data they fix.

:class:`RestorationSettings` names the fault, the switches, the objective weights,
the uncertainty treatment and the formulation options; :func:`with_limits`,
:func:`outage_mask` and :func:`switchable_mask` read what they imply for a network.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sopjax.errors import SopjaxError
from sopjax.network import Network
from sopjax.solvers.options import TIGHT, FormulationOptions
from sopjax.topology import compile_topology

__all__ = ["UNCERTAINTY_MODES", "RestorationSettings", "with_limits", "outage_mask", "switchable_mask"]

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
        pv_sigma_frac: PV forecast-error standard deviation, fraction of the forecast
            (used when ``pv_model`` is None).
        pv_model: the PV output model the scorer samples (:class:`~sopjax.sampling.PVForecastError`
            or :class:`~sopjax.sampling.PVBeta`); the quantile and scenario periods use its bounded
            distribution (its ``truncation``), so that planning and scoring share one distribution.
            None: ``PVForecastError(sigma_frac=pv_sigma_frac)`` (the sampler's default truncation).
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
    pv_model: object | None = None
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
        if self.pv_model is not None and not callable(getattr(self.pv_model, "ppf", None)):
            raise SopjaxError(f"pv_model must be a PV output model (PVForecastError, PVBeta) or None, got {self.pv_model!r}")
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
