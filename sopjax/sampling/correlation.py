"""Dependence between uncertain quantities: a Gaussian copula in standard-normal space.

The scheme's independent uniforms are mapped to standard normals
``z = Phi^-1(u)``, mixed linearly so that they carry the wanted correlation,
and mapped back ``u' = Phi(z')`` before the marginals' inverse CDFs. The
marginals (truncated normal, beta, load factor) are therefore exactly those of
the independent case; the *normal-score* (Gaussian copula) correlation is the
one specified -- for normal marginals far from their bounds it is also the
Pearson correlation of the samples.

"Units" are, in this order, the PV units (``net.pv`` order) and then the
buses (load of every bus, ``0..n_bus-1``). The same unit correlation applies
in every period; ``time_rho`` (on the model) adds an AR(1) correlation
``rho**|t - s|`` between periods, so that the joint correlation is the
Kronecker product ``C_time (x) C_units``.

Two models:

* :class:`CommonFactor` -- one latent factor for PV and one for load:
  ``z_k = sqrt(rho) F + sqrt(1 - rho) e_k``. Unit pairs within PV are
  correlated by ``rho_pv``, within loads by ``rho_load``, and a PV unit with a
  load by ``sqrt(rho_pv * rho_load) * rho_cross``. O(units) work per sample.
* :class:`CorrelationMatrix` -- any valid correlation matrix over all units,
  the PV units only or the loads only (``over``); applied through its
  symmetric square root (eigendecomposition, so semidefinite matrices with
  perfectly correlated units work).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from sopjax.config.numbers import number
from sopjax.sampling.errors import CorrelationError

__all__ = ["CommonFactor", "CorrelationMatrix", "CORRELATION_MODELS", "ar1_sqrt", "check_rho"]


def check_rho(owner: str, name: str, value, *, lower: float = -1.0) -> float:
    """A correlation coefficient in ``[lower, 1]``; raise naming ``owner.name`` otherwise."""
    v = number(value, f"{owner}.{name}", error=CorrelationError)  # a string or a boolean is refused
    if not -1.0 <= v <= 1.0:
        raise CorrelationError(f"{owner}.{name} must be a correlation in [-1, 1], got {v}")
    if v < lower:
        raise CorrelationError(
            f"{owner}.{name} must be in [{lower:g}, 1] for a common-factor model, got {v} "
            "(a single factor cannot make every pair negatively correlated; use CorrelationMatrix)"
        )
    return v


def ar1_sqrt(n_time: int, rho: float) -> np.ndarray:
    """Lower-triangular ``L`` (time, time) with ``L @ L.T = [rho**|t-s|]`` (stationary AR(1))."""
    t = np.arange(n_time)
    lag = t[:, None] - t[None, :]
    scale = np.where(t == 0, 1.0, math.sqrt(max(0.0, 1.0 - rho * rho)))
    return np.where(lag >= 0, np.power(rho, np.maximum(lag, 0)) * scale[None, :], 0.0)


@dataclasses.dataclass(frozen=True)
class CommonFactor:
    """Common-factor correlation (see module doc).

    Attributes:
        rho_pv: correlation between any two PV units, in [0, 1].
        rho_load: correlation between any two bus loads, in [0, 1].
        rho_cross: correlation between the PV factor and the load factor, in
            [-1, 1]; a PV unit and a load correlate by
            ``sqrt(rho_pv * rho_load) * rho_cross``.
    """

    rho_pv: float = 0.0
    rho_load: float = 0.0
    rho_cross: float = 0.0
    kind: ClassVar[str] = "common_factor"
    n_factors: ClassVar[int] = 2

    def __post_init__(self):
        for name in ("rho_pv", "rho_load"):
            object.__setattr__(self, name, check_rho("CommonFactor", name, getattr(self, name), lower=0.0))
        object.__setattr__(self, "rho_cross", check_rho("CommonFactor", "rho_cross", self.rho_cross))

    def check(self, n_pv: int, n_bus: int) -> None:
        """Valid for any network size."""

    def apply(
        self, factors: Float[Array, "*s 2"], z_pv: Float[Array, "*s pv"], z_load: Float[Array, "*s bus"]
    ) -> tuple[Float[Array, "*s pv"], Float[Array, "*s bus"]]:
        """Correlated standard normals from independent ones (factors last axis: PV, load)."""
        f_pv = factors[..., 0:1]
        f_load = self.rho_cross * f_pv + math.sqrt(1.0 - self.rho_cross**2) * factors[..., 1:2]
        z_pv = math.sqrt(self.rho_pv) * f_pv + math.sqrt(1.0 - self.rho_pv) * z_pv
        z_load = math.sqrt(self.rho_load) * f_load + math.sqrt(1.0 - self.rho_load) * z_load
        return z_pv, z_load

    def matrix(self, n_pv: int, n_bus: int) -> np.ndarray:
        """The implied unit correlation matrix (units = PV units, then buses)."""
        c = np.empty((n_pv + n_bus, n_pv + n_bus))
        c[:n_pv, :n_pv] = self.rho_pv
        c[n_pv:, n_pv:] = self.rho_load
        c[:n_pv, n_pv:] = c[n_pv:, :n_pv] = math.sqrt(self.rho_pv * self.rho_load) * self.rho_cross
        np.fill_diagonal(c, 1.0)
        return c

    def to_dict(self) -> dict:
        return {"kind": self.kind, **dataclasses.asdict(self)}


def _validate_matrix(c: np.ndarray) -> None:
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise CorrelationError(f"CorrelationMatrix.matrix must be square, got shape {c.shape}")
    if c.shape[0] == 0:
        raise CorrelationError("CorrelationMatrix.matrix is empty")
    bad = np.argwhere(~np.isfinite(c))
    if bad.size:
        i, j = bad[0]
        raise CorrelationError(f"CorrelationMatrix.matrix[{i}, {j}] is not a finite number: {c[i, j]}")
    bad = np.flatnonzero(np.abs(np.diag(c) - 1.0) > 1e-10)
    if bad.size:
        i = bad[0]
        raise CorrelationError(f"CorrelationMatrix.matrix[{i}, {i}] must be 1 (unit diagonal), got {c[i, i]}")
    asym = np.abs(c - c.T)
    if asym.max() > 1e-10:
        i, j = np.unravel_index(int(np.argmax(asym)), c.shape)
        raise CorrelationError(
            f"CorrelationMatrix.matrix is not symmetric: entry [{i}, {j}] = {c[i, j]} "
            f"but [{j}, {i}] = {c[j, i]}"
        )
    bad = np.argwhere(np.abs(c) > 1.0 + 1e-10)
    if bad.size:
        i, j = bad[0]
        raise CorrelationError(f"CorrelationMatrix.matrix[{i}, {j}] = {c[i, j]} is outside [-1, 1]")
    lam = np.linalg.eigvalsh(c)
    if lam[0] < -1e-8:
        raise CorrelationError(
            "CorrelationMatrix.matrix is not positive semidefinite "
            f"(smallest eigenvalue {lam[0]:.4g}); the pairwise correlations are inconsistent "
            "-- e.g. A~B and B~C strongly positive but A~C negative"
        )


@dataclasses.dataclass(frozen=True)
class CorrelationMatrix:
    """A full correlation matrix over the uncertain units (see module doc).

    Attributes:
        matrix: symmetric, positive semidefinite, unit diagonal, (k, k); given
            as nested sequences or an array (stored as nested tuples).
        over: ``"all"`` (k = PV units + buses, PV first), ``"pv"`` (k = PV
            units) or ``"load"`` (k = buses).

    Raises:
        CorrelationError: naming the entry at fault, or the smallest eigenvalue
            when the matrix is not positive semidefinite.
    """

    matrix: tuple
    over: str = "all"
    kind: ClassVar[str] = "matrix"
    n_factors: ClassVar[int] = 0

    def __post_init__(self):
        if self.over not in ("all", "pv", "load"):
            raise CorrelationError(f"CorrelationMatrix.over must be 'all', 'pv' or 'load', got {self.over!r}")
        try:
            c = np.array(self.matrix, dtype=float)
        except (TypeError, ValueError):
            raise CorrelationError("CorrelationMatrix.matrix must be a square array of numbers") from None
        _validate_matrix(c)
        c = np.clip(0.5 * (c + c.T), -1.0, 1.0)  # remove rounding-level asymmetry and overshoot
        np.fill_diagonal(c, 1.0)
        object.__setattr__(self, "matrix", tuple(tuple(float(v) for v in row) for row in c))

    @property
    def size(self) -> int:
        return len(self.matrix)

    def check(self, n_pv: int, n_bus: int) -> None:
        """Raise if the matrix does not have one row per unit it covers."""
        need = {"all": n_pv + n_bus, "pv": n_pv, "load": n_bus}[self.over]
        what = {"all": f"{n_pv} PV units + {n_bus} buses", "pv": f"{n_pv} PV units", "load": f"{n_bus} buses"}
        if self.size != need:
            raise CorrelationError(
                f"CorrelationMatrix (over={self.over!r}) is {self.size}x{self.size}, "
                f"the network needs {need}x{need} ({what[self.over]})"
            )

    def sqrt(self) -> np.ndarray:
        """Symmetric square root ``S`` with ``S @ S.T = matrix`` (eigenvalues clipped at 0)."""
        lam, vec = np.linalg.eigh(np.array(self.matrix))
        return (vec * np.sqrt(np.clip(lam, 0.0, None))) @ vec.T

    def apply(
        self, factors: Float[Array, "*s 0"], z_pv: Float[Array, "*s pv"], z_load: Float[Array, "*s bus"]
    ) -> tuple[Float[Array, "*s pv"], Float[Array, "*s bus"]]:
        """Correlated standard normals from independent ones."""
        s = jnp.asarray(self.sqrt(), z_pv.dtype)
        if self.over == "pv":
            return z_pv @ s.T, z_load
        if self.over == "load":
            return z_pv, z_load @ s.T
        z = jnp.concatenate([z_pv, z_load], axis=-1) @ s.T
        n_pv = z_pv.shape[-1]
        return z[..., :n_pv], z[..., n_pv:]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "matrix": [list(r) for r in self.matrix], "over": self.over}


CORRELATION_MODELS = {"common_factor": CommonFactor, "matrix": CorrelationMatrix}
