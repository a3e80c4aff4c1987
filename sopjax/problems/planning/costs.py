"""SOP planning cost model: annualised investment, O&M, and loss energy.

The yearly cost of a plan (seed 000: "SOP installation and operation costs as
well as network line losses") is the standard planning objective of the SOP
literature, written with explicit units::

    C_year = CRF * C_inv                                  annualised investment
           + om_fraction * C_inv                          operation & maintenance
           + days * price * sum_w pi_w sum_t dt * L_conv   converter-loss energy
           + days * price * sum_w pi_w sum_t dt * L_line   line-loss energy

    C_inv = cost_per_kva * sum (S_i + S_j) + fixed_cost_per_site * (# sites)
    CRF   = r (1 + r)^n / ((1 + r)^n - 1)    (capital recovery factor, r > 0)
          = 1 / n                            (r = 0)

with ``S_i, S_j`` the per-VSC capacities (kVA), ``pi_w`` scenario
probabilities, ``dt`` the period length (h) and ``L`` losses (kW).
"""

from __future__ import annotations

import dataclasses
import math

from sopjax.config import number, string
from sopjax.errors import ConfigError

__all__ = ["CostModel", "capital_recovery_factor", "PlanningInputError"]


# Planning input is invalid (cost, candidate, profile, scenario, solver option): the one
# config error under its old name, kept as an alias because users and tests catch it.
PlanningInputError = ConfigError


def capital_recovery_factor(discount_rate: float, lifetime_years: float) -> float:
    """Capital recovery factor: the yearly payment that repays 1 unit over the lifetime.

    Args:
        discount_rate: yearly discount rate (fraction, e.g. 0.08), in [0, 1].
        lifetime_years: equipment lifetime (years), in [1, 200].

    Returns:
        ``r (1+r)^n / ((1+r)^n - 1)``; ``1/n`` when ``r`` = 0.

    Raises:
        PlanningInputError: a rate or lifetime out of range (also where ``(1+r)^n`` would overflow).
    """
    r, n = float(discount_rate), float(lifetime_years)
    if not math.isfinite(r) or not 0 <= r <= 1:
        raise PlanningInputError(f"costs.discount_rate must be a fraction in [0, 1], got {discount_rate}")
    if not math.isfinite(n) or not 1 <= n <= 200:
        raise PlanningInputError(f"costs.lifetime_years must lie in [1, 200] years, got {lifetime_years}")
    if r == 0:
        return 1.0 / n
    # (1+r)^n - 1 through expm1/log1p: a tiny rate (e.g. 1e-300) would round (1+r)^n to 1 and divide by 0
    growth = math.expm1(n * math.log1p(r))
    return r * (1.0 + growth) / growth


@dataclasses.dataclass(frozen=True)
class CostModel:
    """Economic data of SOP planning (one currency throughout, named by ``currency``).

    Attributes:
        cost_per_kva: converter investment per kVA of VSC capacity (currency/kVA).
        fixed_cost_per_site: investment per installed SOP independent of size
            (civil works, protection, DC link) (currency/site).
        discount_rate: yearly discount rate (fraction).
        lifetime_years: SOP lifetime (years).
        om_fraction: yearly operation & maintenance cost as a fraction of the
            investment (1/year).
        energy_price_per_kwh: price of loss energy (currency/kWh).
        days_per_year: days the representative day stands for (d/year).
        period_hours: length of one period (h).
        currency: label used in reports.
    """

    cost_per_kva: float = 150.0
    fixed_cost_per_site: float = 20000.0
    discount_rate: float = 0.08
    lifetime_years: float = 20.0
    om_fraction: float = 0.01
    energy_price_per_kwh: float = 0.08
    days_per_year: float = 365.0
    period_hours: float = 1.0
    currency: str = "USD"

    def __post_init__(self):
        for name in ("discount_rate", "lifetime_years"):
            number(getattr(self, name), f"costs.{name}", error=PlanningInputError)  # a string is not a rate
        string(self.currency, "costs.currency", error=PlanningInputError)
        for name in ("cost_per_kva", "fixed_cost_per_site", "om_fraction", "energy_price_per_kwh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise PlanningInputError(f"costs.{name} must be a finite number >= 0, got {value!r}")
        for name in ("days_per_year", "period_hours"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise PlanningInputError(f"costs.{name} must be a positive number, got {value!r}")
        capital_recovery_factor(self.discount_rate, self.lifetime_years)  # validates both

    @property
    def crf(self) -> float:
        """Capital recovery factor (1/year)."""
        return capital_recovery_factor(self.discount_rate, self.lifetime_years)

    @property
    def capacity_cost_per_kva_year(self) -> float:
        """Yearly cost of one kVA of VSC capacity: ``(CRF + om) * cost_per_kva``."""
        return (self.crf + self.om_fraction) * self.cost_per_kva

    @property
    def site_cost_per_year(self) -> float:
        """Yearly cost of one site independent of size: ``(CRF + om) * fixed_cost_per_site``."""
        return (self.crf + self.om_fraction) * self.fixed_cost_per_site

    @property
    def energy_cost_per_kw_period(self) -> float:
        """Yearly cost of 1 kW of loss held for one period of the representative day."""
        return self.days_per_year * self.period_hours * self.energy_price_per_kwh

    def investment(self, capacity_kva: float, n_sites: int) -> float:
        """Total (not annualised) investment of a plan (currency)."""
        return self.cost_per_kva * float(capacity_kva) + self.fixed_cost_per_site * float(n_sites)

    def breakdown(self, capacity_kva: float, n_sites: int, line_loss_kwh_day: float,
                  converter_loss_kwh_day: float) -> dict[str, float]:
        """Yearly cost components of a plan.

        Args:
            capacity_kva: total installed VSC capacity, sum over both ends of all SOPs (kVA).
            n_sites: number of installed SOPs.
            line_loss_kwh_day: expected line-loss energy per day (kWh/day).
            converter_loss_kwh_day: expected converter-loss energy per day (kWh/day).

        Returns:
            dict with ``investment`` (total, not annualised), ``annualized_investment``,
            ``om``, ``converter_loss_cost``, ``line_loss_cost``, ``sop_cost`` (annualised
            investment + O&M + converter losses) and ``total`` (all per year).
        """
        inv = self.investment(capacity_kva, n_sites)
        annual = self.crf * inv
        om = self.om_fraction * inv
        per_kwh_year = self.days_per_year * self.energy_price_per_kwh
        conv = per_kwh_year * float(converter_loss_kwh_day)
        line = per_kwh_year * float(line_loss_kwh_day)
        return {
            "investment": inv,
            "annualized_investment": annual,
            "om": om,
            "converter_loss_cost": conv,
            "line_loss_cost": line,
            "sop_cost": annual + om + conv,
            "total": annual + om + conv + line,
        }
