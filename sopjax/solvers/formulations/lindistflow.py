"""LinDistFlow (Baran & Wu's linearised DistFlow) with switches: the MILP variant.

Same API as :mod:`~sopjax.solvers.formulations.soc_distflow` (a problem builder
can swap the module), with the losses dropped from the flow equations:

* ``l`` is the constant 0, so the balance is lossless and the voltage drop is
  ``v_j = v_i - 2 (r P + x Q)`` (relaxed by ``(1 - alpha) dv`` on switches);
* :func:`constraint_branch_cone` imposes a branch's apparent-power rating as an
  inscribed regular polygon (conservative, linear);
* :func:`expression_line_losses` is a piecewise-linear *under*-estimate of
  ``r (P^2 + Q^2) / v_0^2`` from tangent planes, so that a loss term can still be
  weighted in the objective of a MILP;
* SOP cones (:mod:`sopjax.solvers.components.sop_model`) become polygons as well
  (``m.meta['conic'] = False``).

It is an approximation, not a relaxation: there is no relaxation gap to report;
re-check a plan with the exact power flow instead.

It is, however, a relaxation of the SOC model for *under*-voltage: for the same
topology, injections and source voltages, every SOC DistFlow point has
``v <= v_LinDistFlow`` at every bus (the exact drop on a branch is the
LinDistFlow drop plus ``|z|^2 l`` plus ``2 r`` and ``2 x`` times the losses
downstream, all non-negative). With circumscribed polygons
(``m.meta['outer_polygons']``) and no upper voltage limit, the LinDistFlow
model therefore contains every SOC-feasible restoration plan, and its optimal
restored load bounds the SOC model's from above
(:func:`sopjax.problems.restoration.solve.restored_load_bound`).
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from sopjax.solvers.formulations import common
from sopjax.solvers.formulations.common import *  # noqa: F401,F403  (re-exported API, common.__all__)
from sopjax.solvers.formulations.common import branch_sets, broadcast_periods, set_bounds
from sopjax.solvers.model import Model

NAME = "lindistflow"
EXACT = False
CONIC = False  # the model is a MILP (HiGHS)

# the shared functions of common.py plus this formulation's own
__all__ = [*common.__all__, "NAME", "CONIC", "variable_branch_current", "constraint_branch_cone",
           "constraint_current_limit", "expression_line_losses", "relaxation_gap", "polygon_le"]

# sides of the polygons that replace the disks |S| <= s (inner) and the tangents of P^2
POLYGON_SIDES = 12
TANGENTS = 6


def polygon_le(p, q, radius, sides: int = POLYGON_SIDES, inner: bool = True) -> list:
    """Linear constraints keeping ``(p, q)`` in a regular polygon approximating ``|(p, q)| <= radius``.

    ``inner=True`` inscribes the polygon (conservative: feasible points satisfy the
    disk); ``inner=False`` circumscribes it (a relaxation, used for lower bounds on
    ``|S|``). ``radius`` may be an expression (SOP sizing).
    """
    theta = np.pi * (2 * np.arange(sides) + 1) / sides
    c = np.cos(np.pi / sides) if inner else 1.0
    out = []
    for th in theta:
        out.append(np.cos(th) * p + np.sin(th) * q <= c * radius)
    return out


def polygon_ge(s, p, q, sides: int = POLYGON_SIDES) -> list:
    """``s >= |(p, q)|`` relaxed to ``s >= p cos(th) + q sin(th)`` for ``sides`` directions."""
    theta = np.pi * (2 * np.arange(sides) + 1) / sides
    return [s >= np.cos(th) * p + np.sin(th) * q for th in theta]


def variable_branch_current(m: Model):
    """No current variable: ``l`` is the constant 0 (T, branch)."""
    l = np.zeros((m.periods, m.net.n_branch))
    m.var["l"] = l
    m.formulation = NAME
    m.meta["conic"] = False
    if "p_max" not in m.bounds:
        set_bounds(m)
    return l


def constraint_branch_cone(m: Model, perspective: bool = True) -> None:
    """Branch apparent-power ratings as inscribed polygons (no cone in LinDistFlow).

    ``perspective`` is accepted for the formulations' common signature and has no
    effect: there is no cone to write in perspective form.
    """
    m.require("P", "Q")
    rate = np.asarray(m.net.rate_pu, dtype=float)
    idx = np.flatnonzero(np.isfinite(rate))
    idx = np.setdiff1d(idx, branch_sets(m)["open"])
    if idx.size:
        R = np.tile(rate[idx], (m.periods, 1))
        m.add("branch_rating", polygon_le(m.var["P"][:, idx], m.var["Q"][:, idx], R,
                                          inner=not m.meta.get("outer_polygons", False)))


def constraint_current_limit(m: Model, i_max_pu) -> None:
    """No current limit: LinDistFlow has no current variable (``l`` = 0), so ``l <= i_max^2`` always holds.

    Present for the formulations' common API (the SOC formulation adds ``l <= i_max^2``).
    """
    m.require("l")


def expression_line_losses(m: Model):
    """Piecewise-linear under-estimate of ``sum_k r_k (P_k^2 + Q_k^2) / v_0^2`` per period, (T,).

    Adds epigraph variables ``sP >= P^2``, ``sQ >= Q^2`` approximated by
    ``TANGENTS`` tangent lines each on ``[-p_max, p_max]``.
    """
    m.require("P", "Q")
    if "loss_pwl" in m.var:
        return m.var["loss_pwl"]
    T, nl = m.periods, m.net.n_branch
    sets = branch_sets(m)
    idx = np.sort(np.concatenate([sets["closed"], sets["switch"]]))
    r = np.asarray(m.net.r_pu, dtype=float)[idx]
    v0 = float(m.net.v_slack_pu) ** 2
    cons = []
    total = 0
    for name, X, bound in (("sP", m.var["P"], m.bounds["p_max"]), ("sQ", m.var["Q"], m.bounds["q_max"])):
        b = np.tile(bound[idx], (T, 1))
        s = cp.Variable((T, idx.size), name=name, nonneg=True)
        for a in np.linspace(-1, 1, TANGENTS):
            # tangent of x^2 at x = a * bound: 2 a b x - (a b)^2
            cons.append(s >= 2 * cp.multiply(a * b, X[:, idx]) - (a * b) ** 2)
        total = total + s @ (r / v0)
    m.add("loss_pwl", cons)
    m.var["loss_pwl"] = total
    _ = nl
    return total


def relaxation_gap(m: Model):
    """LinDistFlow is an approximation, not a relaxation: there is no gap (returns None)."""
    return None
