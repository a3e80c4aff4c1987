"""Cost terms of seed 001 section III on top of the planning cost model.

The SOP terms (annualized investment with the capital recovery factor, yearly operation cost
as a fraction of the investment, converter-loss and line-loss energy) are
:class:`sopjax.problems.planning.CostModel`'s: :func:`plan_costs` calls its ``breakdown``. This
module adds what seed 001 has beyond seed 000, all per year::

    C_CB,inv  = CRF(r, n_CB) * c_CB * Q_CB              capacitor investment (eq. 15)
    C_buy     = D * sum_t price_t * dt * P_sub,t          power purchase from the substation
    C_CB,sw   = D * c_sw * (switching operations per day) capacitor drop-cut cost (eq. 33)
    C_emis    = D * c_CO2 * e * sum_t dt * P_sub,t        emissions of substation import (eq. 36)
    C_cut     = c_cut * sum_t dt * sum_i lambda_i P_i,t   load-cut cost of demand response (eq. 42)

with ``D`` days per year. Seed 001 counts power purchase *and* network loss (eqs. 29, 34), so the
loss energy is priced twice (once inside the import); the paper's sum is kept, and both terms
are reported apart so that a user can drop one.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from sopjax.errors import ConfigError
from sopjax.problems.planning.costs import CostModel, capital_recovery_factor

__all__ = ["AllocationCosts", "COST_TERMS", "plan_costs", "load_cut_cost"]

COST_TERMS = ("sop_investment", "sop_operation", "cb_investment", "purchase", "cb_switching", "line_loss",
              "converter_loss", "emission")


@dataclasses.dataclass(frozen=True)
class AllocationCosts:
    """Economic data of SOP + capacitor allocation (one currency).

    Attributes:
        sop: the SOP cost model (``cost_per_kva`` per kVA of VSC, ``fixed_cost_per_site``,
            ``discount_rate``, ``lifetime_years``, ``om_fraction`` = seed 001's annual SOP
            operation cost coefficient, ``energy_price_per_kwh`` = loss price, ``days_per_year``,
            ``period_hours``).
        cb_cost_per_kvar: capacitor investment (currency/kvar).
        cb_lifetime_years: capacitor lifetime (years), with ``sop.discount_rate``.
        cb_switch_cost: cost of one switching operation of one bank step (currency).
        purchase_price_per_kwh: substation energy price, a scalar or one per period (currency/kWh).
        emission_kg_per_kwh: carbon intensity of substation import (kg/kWh).
        emission_price_per_kg: carbon price (currency/kg).
        load_cut_cost_per_kwh: demand-response load-cut cost (currency/kWh).
    """

    sop: CostModel = CostModel()
    cb_cost_per_kvar: float = 25.0
    cb_lifetime_years: float = 15.0
    cb_switch_cost: float = 1.0
    purchase_price_per_kwh: float | tuple[float, ...] = 0.08
    emission_kg_per_kwh: float = 0.5
    emission_price_per_kg: float = 0.02
    load_cut_cost_per_kwh: float = 0.5

    def __post_init__(self):
        for name in ("cb_cost_per_kvar", "cb_switch_cost", "emission_kg_per_kwh", "emission_price_per_kg",
                     "load_cut_cost_per_kwh"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"costs.{name} must be a finite number >= 0, got {v!r}")
        price = np.atleast_1d(np.asarray(self.purchase_price_per_kwh, dtype=float))
        if not np.all(np.isfinite(price)) or np.any(price < 0):
            raise ConfigError(f"costs.purchase_price_per_kwh must be finite and >= 0, got {self.purchase_price_per_kwh!r}")
        capital_recovery_factor(self.sop.discount_rate, self.cb_lifetime_years)  # validates the lifetime

    @property
    def cb_crf(self) -> float:
        """Capital recovery factor of a capacitor bank (1/year)."""
        return capital_recovery_factor(self.sop.discount_rate, self.cb_lifetime_years)

    def price(self, periods: int) -> np.ndarray:
        """Purchase price per period (currency/kWh), (periods,)."""
        p = np.atleast_1d(np.asarray(self.purchase_price_per_kwh, dtype=float))
        if p.size == 1:
            return np.full(periods, float(p[0]))
        if p.size != periods:
            raise ConfigError(f"costs.purchase_price_per_kwh has {p.size} values, the study has {periods} periods")
        return p


def plan_costs(costs: AllocationCosts, *, sop_kva: np.ndarray, cb_kvar: np.ndarray, import_kw: np.ndarray,
               line_loss_kw: np.ndarray, converter_loss_kw: np.ndarray, cb_switch_ops: np.ndarray,
               weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Yearly cost terms of plans (seed 001 eqs. 13-15, 29-36).

    Args:
        costs: the economic data.
        sop_kva: per-VSC capacity of each SOP site (kVA; both VSCs equal), (plan, sop).
        cb_kvar: installed capacitor kvar per site, (plan, cb).
        import_kw, line_loss_kw, converter_loss_kw: substation import and losses (kW),
            (plan, period[, scenario]).
        cb_switch_ops: switching operations of all bank steps per day, (plan,).
        weights: scenario probabilities when the last axis is a scenario axis (default: none).

    Returns:
        One array (plan,) per name of :data:`COST_TERMS`, plus ``total`` (currency/year).
    """
    sop_kva = np.atleast_2d(np.asarray(sop_kva, float))
    dt, days = costs.sop.period_hours, costs.sop.days_per_year

    def per_period(a):
        a = np.asarray(a, float)
        return a if weights is None else np.tensordot(a, np.asarray(weights, float), axes=([-1], [0]))

    imp, line, conv = per_period(import_kw), per_period(line_loss_kw), per_period(converter_loss_kw)
    out = {k: np.zeros(sop_kva.shape[0]) for k in COST_TERMS}
    for n, kva in enumerate(sop_kva):
        b = costs.sop.breakdown(capacity_kva=2.0 * float(np.sum(kva)), n_sites=int(np.sum(kva > 0)),
                                line_loss_kwh_day=float(np.sum(line[n]) * dt),
                                converter_loss_kwh_day=float(np.sum(conv[n]) * dt))
        out["sop_investment"][n] = b["annualized_investment"]
        out["sop_operation"][n] = b["om"]
        out["line_loss"][n] = b["line_loss_cost"]
        out["converter_loss"][n] = b["converter_loss_cost"]
    price = costs.price(imp.shape[-1])
    out["cb_investment"] = costs.cb_crf * costs.cb_cost_per_kvar * np.sum(np.atleast_2d(cb_kvar), -1)
    out["purchase"] = days * dt * np.sum(imp * price, -1)
    out["cb_switching"] = days * costs.cb_switch_cost * np.asarray(cb_switch_ops, float)
    out["emission"] = days * dt * costs.emission_price_per_kg * costs.emission_kg_per_kwh * np.sum(imp, -1)
    out["total"] = sum(out[k] for k in COST_TERMS)
    return out


def load_cut_cost(costs: AllocationCosts, cut_kw: np.ndarray, *, hours: float) -> np.ndarray:
    """Load-cut cost of demand response held for ``hours`` (seed 001 eq. 42), currency.

    Args:
        cut_kw: load reduction (kW), (..., bus) summed over the last axis.
        hours: duration of the reduction (h).
    """
    return costs.load_cut_cost_per_kwh * hours * np.sum(np.asarray(cut_kw, float), -1)
