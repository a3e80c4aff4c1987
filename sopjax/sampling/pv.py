"""PV output uncertainty: marginal distributions of a PV unit's active power.

Both models turn uniforms into active power (per unit on the network base)
between 0 and the unit's limit ``p_max``:

* ``limit="s_rated"`` (default): ``p_max = s_rated`` -- "truncated to [0, rated]".
* ``limit="apparent"``: ``p_max = pf * s_rated``, so that the apparent power
  ``p / pf`` injected at the unit's power factor (:func:`~sopjax.kernels.injections.pv_net_load`)
  never exceeds the inverter rating.

The forecast ``mu`` (the expected output before truncation) comes with the
call, per unit and optionally per period, and must lie in ``[0, p_max]``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from sopjax.sampling.distributions import beta_from_moments, beta_ppf, normal_ppf, truncated_normal_ppf
from sopjax.config.numbers import number
from sopjax.sampling.errors import UncertaintyError

__all__ = ["PVForecastError", "PVBeta", "PV_MODELS", "check_fraction", "check_choice"]

_LIMITS = ("s_rated", "apparent")


def check_fraction(owner: str, name: str, value, *, upper: float | None = None) -> float:
    """A finite, non-negative float (a sigma fraction); raise naming ``owner.name`` otherwise."""
    v = number(value, f"{owner}.{name}", error=UncertaintyError)  # a string or a boolean is refused
    if v < 0:
        raise UncertaintyError(f"{owner}.{name} must be >= 0 (a standard deviation), got {v}")
    if upper is not None and v > upper:
        raise UncertaintyError(f"{owner}.{name} must be <= {upper}, got {v}")
    return v


def check_choice(owner: str, name: str, value, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; raise naming ``owner.name`` otherwise."""
    if not isinstance(value, str) or value not in choices:
        raise UncertaintyError(
            f"{owner}.{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )
    return value


def p_max_pu(limit: str, s_rated_pu, pf):
    """Upper bound of a unit's active power for the ``limit`` convention (see module doc)."""
    return s_rated_pu * pf if limit == "apparent" else s_rated_pu


@dataclasses.dataclass(frozen=True)
class PVForecastError:
    """PV output = forecast + normal forecast error, bounded to ``[0, p_max]``.

    ``P ~ N(mu, sigma**2)`` restricted to ``[0, p_max]`` with ``mu`` the forecast
    and ``sigma = sigma_frac * mu`` (``sigma_of="forecast"``, seed 002: 10 % of
    500 kW = 50 kW) or ``sigma = sigma_frac * s_rated`` (``sigma_of="rated"``).
    A zero forecast (night) gives zero output when ``sigma_of="forecast"``.

    Attributes:
        sigma_frac: standard deviation as a fraction (default 0.1).
        sigma_of: ``"forecast"`` or ``"rated"``: what ``sigma_frac`` multiplies.
        truncation: ``"inverse_cdf"`` (default): a proper truncated normal drawn
            by inverse CDF -- no atoms at the bounds, the mean shifts inward when
            a bound is within a few sigma; ``"clip"``: draw the untruncated normal
            and clip to the bounds (mass piles up at 0 and ``p_max``; the mean of
            the clipped draw is what many papers report).
        limit: ``"s_rated"`` or ``"apparent"`` (see module doc).
    """

    sigma_frac: float = 0.1
    sigma_of: str = "forecast"
    truncation: str = "inverse_cdf"
    limit: str = "s_rated"
    kind: ClassVar[str] = "normal"

    def __post_init__(self):
        sigma = check_fraction("PVForecastError", "sigma_frac", self.sigma_frac)
        object.__setattr__(self, "sigma_frac", sigma)
        check_choice("PVForecastError", "sigma_of", self.sigma_of, ("forecast", "rated"))
        check_choice("PVForecastError", "truncation", self.truncation, ("inverse_cdf", "clip"))
        check_choice("PVForecastError", "limit", self.limit, _LIMITS)

    def ppf(
        self, u: Float[Array, "*s pv"], forecast_pu: Float[Array, "*s pv"],
        s_rated_pu: Float[Array, " pv"], pf: Float[Array, " pv"],
    ) -> Float[Array, "*s pv"]:
        """Active power (p.u.) for uniforms ``u``, broadcast against the forecast."""
        hi = p_max_pu(self.limit, s_rated_pu, pf)
        base = forecast_pu if self.sigma_of == "forecast" else s_rated_pu
        sigma = self.sigma_frac * base
        if self.truncation == "clip":
            return normal_ppf(u, forecast_pu, sigma, 0.0, hi)
        return truncated_normal_ppf(u, forecast_pu, sigma, jnp.zeros_like(hi), hi)

    def check(self, forecast_pu, s_rated_pu, pf, label) -> None:
        """Nothing beyond the model's range check: every forecast in [0, p_max] is valid."""

    def std_pu(self, forecast_pu, s_rated_pu, pf):
        """Standard deviation of the *parent* normal, p.u. (before truncation)."""
        return self.sigma_frac * (forecast_pu if self.sigma_of == "forecast" else s_rated_pu)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}


@dataclasses.dataclass(frozen=True)
class PVBeta:
    """PV output = ``p_max * X`` with ``X ~ Beta(alpha, beta)`` on [0, 1].

    Two parameterisations:

    * **moments** (default; ``sigma_frac`` defaults to 0.1): ``alpha, beta`` per unit and period from the mean
      ``m = forecast / p_max`` and the standard deviation
      ``s = sigma_frac * m`` (``sigma_of="forecast"``) or ``s = sigma_frac``
      (``sigma_of="rated"``), by the method of moments. Needs
      ``s**2 < m (1 - m)``; the sample call raises naming the unit and period
      otherwise. ``m = 0``, ``m = 1`` or ``s = 0`` give the deterministic ``m``.
    * **shape**: fixed ``alpha`` and ``beta`` (both given, no ``sigma_frac``):
      the forecast is then only used for its shape and the range check; the
      output is ``p_max * Beta(alpha, beta)`` in every period.

    Attributes:
        sigma_frac: standard deviation fraction (moments mode); ``None`` means 0.1
            in moments mode and must stay ``None`` in shape mode.
        sigma_of: ``"forecast"`` or ``"rated"`` (moments mode).
        alpha, beta: shape parameters (shape mode), > 0.
        limit: ``"s_rated"`` or ``"apparent"``.
    """

    sigma_frac: float | None = None
    sigma_of: str = "forecast"
    alpha: float | None = None
    beta: float | None = None
    limit: str = "s_rated"
    kind: ClassVar[str] = "beta"

    def __post_init__(self):
        shape = self.alpha is not None or self.beta is not None
        if shape:
            if self.alpha is None or self.beta is None:
                raise UncertaintyError(
                    "PVBeta needs both alpha and beta (shape mode), or neither (moments mode)"
                )
            if self.sigma_frac is not None:
                raise UncertaintyError(
                    "PVBeta: give either sigma_frac (moments mode) or alpha and beta (shape mode), not both"
                )
            for name in ("alpha", "beta"):
                v = check_fraction("PVBeta", name, getattr(self, name))
                if v <= 0:
                    raise UncertaintyError(f"PVBeta.{name} must be > 0, got {v}")
                object.__setattr__(self, name, v)
        else:
            sigma = 0.1 if self.sigma_frac is None else self.sigma_frac
            object.__setattr__(self, "sigma_frac", check_fraction("PVBeta", "sigma_frac", sigma))
        check_choice("PVBeta", "sigma_of", self.sigma_of, ("forecast", "rated"))
        check_choice("PVBeta", "limit", self.limit, _LIMITS)

    @property
    def shape_mode(self) -> bool:
        return self.alpha is not None

    def moments(self, forecast_pu, s_rated_pu, pf):
        """(mean, std) of ``X = P / p_max`` in moments mode, broadcast like the forecast."""
        hi = p_max_pu(self.limit, s_rated_pu, pf)
        safe = jnp.where(hi > 0, hi, 1)
        m = jnp.where(hi > 0, forecast_pu / safe, 0)
        s = self.sigma_frac * (m if self.sigma_of == "forecast" else jnp.where(hi > 0, 1.0, 0.0))
        return m, s

    def check(self, forecast_pu, s_rated_pu, pf, label) -> None:
        """Raise naming the unit/period (``label(flat_index)``) whose moments no Beta can match."""
        if self.shape_mode:
            return
        m, s = (np.asarray(v, dtype=float) for v in self.moments(forecast_pu, s_rated_pu, pf))
        m, s = np.broadcast_arrays(m, s)
        bad = np.flatnonzero(((m > 0) & (m < 1) & (s > 0) & (s**2 >= m * (1 - m))).ravel())
        if bad.size:
            k = bad[0]
            mk, sk = m.ravel()[k], s.ravel()[k]
            raise UncertaintyError(
                f"PVBeta: at {label(k)} the mean {mk:.4g} of P/p_max and std {sk:.4g} admit no Beta "
                f"distribution (need std**2 < mean*(1-mean), i.e. std < {np.sqrt(mk * (1 - mk)):.4g}); "
                "lower sigma_frac or the forecast"
            )

    def ppf(
        self, u: Float[Array, "*s pv"], forecast_pu: Float[Array, "*s pv"],
        s_rated_pu: Float[Array, " pv"], pf: Float[Array, " pv"],
    ) -> Float[Array, "*s pv"]:
        """Active power (p.u.) for uniforms ``u``, broadcast against the forecast."""
        hi = p_max_pu(self.limit, s_rated_pu, pf)
        if self.shape_mode:
            return hi * beta_ppf(u, self.alpha, self.beta)
        m, s = self.moments(forecast_pu, s_rated_pu, pf)
        m, s = jnp.broadcast_arrays(m, s)
        random = (m > 0) & (m < 1) & (s > 0)
        a, b = beta_from_moments(jnp.where(random, m, 0.5), jnp.where(random, s, 0.1))
        x = beta_ppf(u, a, b)
        return hi * jnp.where(random, x, m)

    def to_dict(self) -> dict:
        d = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        return {"kind": self.kind, **d}


PV_MODELS = {"normal": PVForecastError, "beta": PVBeta}
