"""Load uncertainty: a random multiplier per bus (and period) on the nominal load."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import Array, Float

from sopjax.sampling.distributions import normal_ppf, truncated_normal_ppf
from sopjax.sampling.pv import check_choice, check_fraction

__all__ = ["LoadNormal", "LOAD_MODELS"]


@dataclasses.dataclass(frozen=True)
class LoadNormal:
    """Bus load = nominal load x factor, ``factor ~ N(1, sigma_frac**2)``, kept >= 0.

    The same factor scales a bus's P and Q (constant power factor), as in the
    reference studies (seed 002 draws each load with a standard deviation of
    10 % of its value). Loads of different buses are independent unless a
    correlation model says otherwise; zero-load buses stay at zero.

    Attributes:
        sigma_frac: standard deviation of the factor (fraction of the nominal
            load, default 0.05).
        truncation: ``"clip"`` (default): ``max(0, 1 + sigma_frac * z)``; the
            atom at 0 has probability ``Phi(-1/sigma_frac)`` (about 1e-89 at
            5 %, 3e-7 at 20 %), so the draw is, to all practical purposes, the
            plain normal. ``"inverse_cdf"``: a proper normal truncated to
            ``[0, inf)`` by inverse CDF.
    """

    sigma_frac: float = 0.05
    truncation: str = "clip"
    kind: ClassVar[str] = "normal"

    def __post_init__(self):
        object.__setattr__(self, "sigma_frac", check_fraction("LoadNormal", "sigma_frac", self.sigma_frac))
        check_choice("LoadNormal", "truncation", self.truncation, ("clip", "inverse_cdf"))

    def factor(self, u: Float[Array, "*s"]) -> Float[Array, "*s"]:
        """The load multiplier for uniforms ``u`` (>= 0, mean 1 up to the truncation)."""
        one = jnp.ones_like(u)
        if self.truncation == "clip":
            return normal_ppf(u, one, self.sigma_frac, 0.0, jnp.inf)
        return truncated_normal_ppf(u, one, self.sigma_frac, 0.0, jnp.inf)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}


LOAD_MODELS = {"normal": LoadNormal}
