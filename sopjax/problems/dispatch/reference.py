"""Reference solve of the SOC dispatch with cvxpy, and the diagnosis of infeasible points.

:func:`solve_dispatch` solves one operating point of a
:class:`~sopjax.problems.dispatch.model.DispatchModel` (numpy in, numpy out, with
the capacity duals and the relaxation gaps); it is not differentiable and is the
reference the layer and the JAX-native kernels are checked against. When a point
is infeasible, :func:`diagnose_infeasible` softens the voltage limits to name the
bus that cannot be held inside them.
"""

from __future__ import annotations

import time
from typing import Any

import cvxpy as cp
import numpy as np

from sopjax.kernels.dispatch import (
    DispatchInfeasibleError,
    DispatchInputError,
    DispatchInputs,
    DispatchResult,
    check_inputs,
)
from sopjax.problems.dispatch.model import DispatchModel, result_from_values

__all__ = ["solve_dispatch", "diagnose_infeasible", "infeasible_message"]


def solve_dispatch(
    model: DispatchModel,
    inputs: DispatchInputs,
    *,
    solver: str = "CLARABEL",
    diagnose: bool = True,
    **solver_opts: Any,
) -> tuple[DispatchResult, dict]:
    """Solve one operating point with cvxpy (not differentiable; the reference).

    Args:
        model: from :func:`~sopjax.problems.dispatch.model.build_dispatch`.
        inputs: one sample (no batch axis).
        solver: cvxpy solver name (default Clarabel).
        diagnose: on infeasibility, solve an elastic model to name the limiting bus.
        solver_opts: passed to ``Problem.solve``.

    Returns:
        (result as numpy arrays, info dict with ``relaxation_gap`` (largest
        ``v_a l - P^2 - Q^2``), ``loss_gap`` (largest ``L - A|s|``), ``solve_time_s``, ``status``).

    Raises:
        DispatchInputError: bad inputs. DispatchInfeasibleError: no feasible set-point.
    """
    data = model.data
    batch = check_inputs(data, inputs)
    if batch:
        raise DispatchInputError(f"solve_dispatch takes one sample, got batch shape {batch}")
    model.set_parameter_values(inputs)
    t0 = time.perf_counter()
    try:
        model.problem.solve(solver=solver, **solver_opts)
    except cp.error.SolverError as e:
        raise DispatchInfeasibleError(infeasible_message(model, inputs, diagnose, str(e))) from None
    dt = time.perf_counter() - t0
    if model.problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise DispatchInfeasibleError(infeasible_message(model, inputs, diagnose, model.problem.status))
    V = {k: np.asarray(v.value, float) for k, v in model.vars.items()}
    dual_i = np.array([float(np.ravel(c.dual_value[0])[0]) for c in model.cap_i])
    dual_j = np.array([float(np.ravel(c.dual_value[0])[0]) for c in model.cap_j])
    res = result_from_values(data, V, dual_i, dual_j, np)
    v_par = np.concatenate([V["v"], [float(data.v0_sq)]])[np.asarray(data.parent_kid)]
    gap = v_par * V["l"] - V["P"] ** 2 - V["Q"] ** 2
    lgap = np.concatenate(
        [
            V["L_i"] - np.asarray(data.loss_i) * np.hypot(V["p_i"], V["q_i"]),
            V["L_j"] - np.asarray(data.loss_j) * np.hypot(V["p_j"], V["q_j"]),
        ]
    )
    info = {
        "relaxation_gap": float(np.max(np.abs(gap))),
        "loss_gap": float(np.max(np.abs(lgap))),
        "solve_time_s": dt,
        "status": model.problem.status,
    }
    return res, info


def diagnose_infeasible(model: DispatchModel, inputs: DispatchInputs) -> tuple[str, float] | None:
    """Name the limit that makes an operating point infeasible.

    Solves the dispatch with every voltage limit softened by a
    non-negative slack and minimizes the total slack; returns the most violated
    limit as (description, violation), or None if nothing needs to be violated.
    """
    data = model.data
    model.set_parameter_values(inputs)
    V = model.vars
    nk = data.n_kid
    lo, hi = cp.Variable(nk, nonneg=True), cp.Variable(nk, nonneg=True)
    keep = [c for c in model.problem.constraints if all(c is not w for w in model.v_limits)]
    keep += [V["v"] + lo >= np.asarray(data.vmin_sq), V["v"] - hi <= np.asarray(data.vmax_sq)]
    prob = cp.Problem(cp.Minimize(cp.sum(lo + hi)), keep)
    try:
        prob.solve(solver="CLARABEL")
    except cp.error.SolverError:
        return None
    if prob.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        return None
    lo_v, hi_v = np.asarray(lo.value), np.asarray(hi.value)
    k_lo, k_hi = int(np.argmax(lo_v)), int(np.argmax(hi_v))
    if max(lo_v[k_lo], hi_v[k_hi]) < 1e-7:
        return None
    if lo_v[k_lo] >= hi_v[k_hi]:
        vmin = float(np.sqrt(np.asarray(data.vmin_sq)[k_lo]))
        best = float(np.sqrt(max(np.asarray(data.vmin_sq)[k_lo] - lo_v[k_lo], 0.0)))
        return (f"{data.kid_label(k_lo)} cannot be held above v_min = {vmin:.4f} p.u. "
                f"(best reachable {best:.4f} p.u.)", float(lo_v[k_lo]))
    vmax = float(np.sqrt(np.asarray(data.vmax_sq)[k_hi]))
    best = float(np.sqrt(np.asarray(data.vmax_sq)[k_hi] + hi_v[k_hi]))
    return (f"{data.kid_label(k_hi)} cannot be held below v_max = {vmax:.4f} p.u. "
            f"(best reachable {best:.4f} p.u.)", float(hi_v[k_hi]))


def infeasible_message(model: DispatchModel, inputs: DispatchInputs, diagnose: bool, status: str,
                       sample: str = "") -> str:
    """The message of a :class:`~sopjax.kernels.dispatch.DispatchInfeasibleError`.

    Args:
        model: the dispatch model.
        inputs: the infeasible sample (no batch axis).
        diagnose: name the limiting bus with :func:`diagnose_infeasible` (one more solve).
        status: the solver's status or error text.
        sample: where in a batch the sample is (e.g. ``" in sample 3"``), or empty.
    """
    head = f"no SOP set-point satisfies the operating limits{sample} (solver: {status})"
    if not diagnose:
        return head
    found = diagnose_infeasible(model, inputs)
    if found is None:
        return head
    return f"{head}: {found[0]}"

