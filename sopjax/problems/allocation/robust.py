"""Robustness index and robust technical indices of seed 001 (eqs. 1-6) for allocation plans.

* Uncertain parameters: normalized deviations ``delta`` of the PV output and the load
  (:func:`sopjax.problems.allocation.make_model`: one PV group or one per unit, plus the load);
  ``delta_k = 1`` is the reference deviation (``robustness.pv_deviation``, ``load_deviation``).
* Objectives watched: the conventional voltage-offset index and the SOP utilization index, each
  with a tolerance ``tol_i = max(eta_i |f_i(0)|, tol_floor_i)`` (``tolerance_kind = "relative"``,
  default) or ``tol_i = eta_i`` (``"absolute"``).
* ``R_W`` (:mod:`sopjax.kernels.robustness`): radius of the largest L_p ball of ``delta`` within
  which both stay within tolerance. ``R_ref = ||(1, ..., 1)||_p`` (the acceptable uncertainty
  vector: every parameter at its reference deviation), and ``F_R = R_W / R_ref`` (eq. 4).
* Robust indices (eqs. 5-6; the equations were lost, this is the reading chosen, parameter
  ``robust_form``): ``"ratio"`` (default) scales each index by the robustness shortfall,
  ``F_offset,R = F_offset / min(1, max(F_R, fr_floor))`` and ``U_R = U * min(1, F_R)``: a plan
  robust beyond the reference deviation keeps its nominal index, a fragile one is penalized in
  proportion. ``"none"``: the conventional indices (seed 001's Case 7).

In the GA, ``R_W`` is the first-order estimate (one interior-point solve per plan and period plus
implicit derivatives); :func:`refine_radius` runs the worst-case search on the final front.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from sopjax.errors import ConfigError
from sopjax.kernels.robustness import RadiusResult, first_order_radius, worst_case_radius

__all__ = ["RobustnessSettings", "ROBUST_FORMS", "tolerances", "robust_indices", "first_order", "refine_radius"]

ROBUST_FORMS = ("ratio", "none")


@dataclasses.dataclass(frozen=True)
class RobustnessSettings:
    """Robustness options (see the module docstring).

    Attributes:
        p: norm of the ball (1, 2 or inf).
        tolerance: eta of (offset, utilization), > 0.
        tolerance_kind: ``"relative"`` or ``"absolute"``.
        tol_floor: smallest tolerance of (offset, utilization) in relative mode (absolute units).
        robust_form: ``"ratio"`` or ``"none"``.
        fr_floor: smallest F_R used in the offset penalty.
        r_max: largest radius searched (normalized units).
        bisection_steps, ascent_steps: worst-case search effort.
        pv_deviation, load_deviation: reference deviations (fractions) of ``delta = 1``.
        per_site_pv: one parameter per PV unit.
    """

    p: float = 2.0
    tolerance: tuple[float, float] = (0.1, 0.1)
    tolerance_kind: str = "relative"
    tol_floor: tuple[float, float] = (1e-4, 1e-3)
    robust_form: str = "ratio"
    fr_floor: float = 0.05
    r_max: float = 4.0
    bisection_steps: int = 10
    ascent_steps: int = 4
    pv_deviation: float = 0.2
    load_deviation: float = 0.1
    per_site_pv: bool = False

    def __post_init__(self):
        if float(self.p) not in (1.0, 2.0, math.inf):
            raise ConfigError(f"robustness.p must be 1, 2 or inf, got {self.p!r}")
        tol = np.asarray(self.tolerance, dtype=float)
        if tol.shape != (2,) or not np.all(np.isfinite(tol)) or np.any(tol <= 0):
            raise ConfigError(f"robustness.tolerance must be two numbers > 0 (offset, utilization), got {self.tolerance!r}")
        if self.tolerance_kind not in ("relative", "absolute"):
            raise ConfigError(f"robustness.tolerance_kind must be 'relative' or 'absolute', got {self.tolerance_kind!r}")
        if self.robust_form not in ROBUST_FORMS:
            raise ConfigError(f"robustness.robust_form must be one of {', '.join(ROBUST_FORMS)}, got {self.robust_form!r}")
        if not 0 < self.fr_floor <= 1:
            raise ConfigError(f"robustness.fr_floor must lie in (0, 1], got {self.fr_floor}")
        if not self.r_max > 0:
            raise ConfigError(f"robustness.r_max must be > 0, got {self.r_max}")
        if self.bisection_steps < 1 or self.ascent_steps < 0:
            raise ConfigError("robustness.bisection_steps must be >= 1 and ascent_steps >= 0")

    def r_ref(self, n_param: int) -> float:
        """Reference radius: the L_p norm of the all-ones acceptable uncertainty vector."""
        return float(n_param) ** (1.0 / float(self.p)) if math.isfinite(self.p) else 1.0


def tolerances(settings: RobustnessSettings, f0: np.ndarray) -> np.ndarray:
    """Tolerance per plan and objective (offset, utilization), (plan, 2)."""
    eta = np.asarray(settings.tolerance, float)
    f0 = np.asarray(f0, float)
    if settings.tolerance_kind == "absolute":
        return np.broadcast_to(eta, f0.shape).copy()
    return np.maximum(eta * np.abs(f0), np.asarray(settings.tol_floor, float))


def robust_indices(settings: RobustnessSettings, offset, utilization, f_r) -> tuple[np.ndarray, np.ndarray]:
    """Robust voltage offset and robust utilization (the module docstring's reading)."""
    offset, utilization, f_r = (np.asarray(a, float) for a in (offset, utilization, f_r))
    if settings.robust_form == "none":
        return offset, utilization
    return offset / np.minimum(1.0, np.maximum(f_r, settings.fr_floor)), utilization * np.minimum(1.0, f_r)


def first_order(settings: RobustnessSettings, jac: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """First-order ``R_W`` per plan from d(offset, utilization)/d(delta), (plan,)."""
    tol = tolerances(settings, f0)
    return np.asarray(first_order_radius(jax.numpy.asarray(jac), jax.numpy.asarray(tol), float(settings.p),
                                         r_max=settings.r_max))


def refine_radius(settings: RobustnessSettings, model, sop_kva: np.ndarray, cb_units: np.ndarray,
                  f0: np.ndarray) -> RadiusResult:
    """Worst-case ``R_W`` of plans by bisection + projected-gradient search with full re-dispatch.

    Args:
        model: the :class:`~sopjax.problems.allocation.evaluate.AllocationModel`.
        sop_kva, cb_units: the plans, (plan, sop) and (plan, cb).
        f0: their nominal (offset, utilization), (plan, 2).

    Returns:
        :class:`~sopjax.kernels.robustness.RadiusResult` as numpy arrays.
    """
    fun = model.index_fun(sop_kva, cb_units)
    tol = jax.numpy.asarray(tolerances(settings, f0))
    n_u = len(model.param_names)
    res = worst_case_radius(fun, tol, n_u, p=float(settings.p), r_max=settings.r_max,
                            bisection_steps=settings.bisection_steps, ascent_steps=settings.ascent_steps,
                            jac=model.index_jac_fun(sop_kva, cb_units))
    return jax.tree_util.tree_map(np.asarray, res)
