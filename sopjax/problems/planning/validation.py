"""Out-of-sample validation of SOP plans over many sampled days (exact power flow, JAX).

A plan is sized on a few representative days; here it is operated on many
fresh days drawn by :class:`sopjax.sampling.UncertaintyModel` and scored with
the exact backward/forward sweep (:func:`sopjax.powerflow.batched_solver`).

How the SOPs are dispatched on a sampled hour (``dispatch``):

``"optimal"``  the optimal set-points of that hour with the plan's capacities:
               the SOC dispatch of :mod:`sopjax.problems.dispatch` (minimum line +
               converter losses under the voltage limits; a DPP model
               canonicalised once, re-solved per hour by Clarabel, ~10-30 ms an
               hour). Hours are independent (SOPs store no energy), so this is
               what a controller that sees the hour's load and PV achieves, and
               it is what the planning model assumes on its scenarios: the
               out-of-sample cost then measures the error of the scenario
               reduction, not of a control rule. An hour the plan cannot keep
               within the limits falls back to the lookup set-points and is
               counted in ``dispatch_not_converged``. (The JAX interior-point
               dispatch, :func:`sopjax.kernels.dispatch.dispatch_state`, would
               batch this, but at the time of writing it did not converge on
               these plans: see docs/planning.md.)
``"lookup"``   a fixed rule from the plan itself: each sampled day is assigned
               to its nearest scenario (k-means features) and the SOPs follow
               that scenario's hourly set-points (VSC i: ``P, Q``; VSC j:
               ``Q``, its ``P`` balancing the DC link). Needs no optimisation
               at run time; shows how much a non-adaptive schedule loses.

In both cases VSC i runs in PQ mode and VSC j in VdcQ mode
(:func:`sopjax.kernels.injections.sop_pq_net_load`), so the converter losses
``A|S|`` are exact and the DC link balances. Every hour is then solved by the
sweep; voltage violations, losses and non-converged hours are counted, never
dropped.
"""

from __future__ import annotations

import dataclasses
import functools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.injections import sop_pq_net_load
from sopjax.network import SOPs
from sopjax.problems.planning.costs import PlanningInputError
from sopjax.problems.planning.problem import PlanningProblem
from sopjax.problems.planning.results import PlanResult
from sopjax.powerflow import batched_solver, make_grid
from sopjax.topology import compile_topology

__all__ = ["ValidationResult", "validate_plan", "DISPATCH_RULES"]

DISPATCH_RULES = ("optimal", "lookup")
_V_TOL = 1e-6  # p.u. tolerance on the voltage limits


@dataclasses.dataclass(frozen=True)
class ValidationResult:
    """Out-of-sample figures of one plan (costs per year, energies per day).

    Attributes:
        name: plan name.
        dispatch: dispatch rule used (``"optimal"``, ``"lookup"``, or ``"none"`` without SOPs).
        n_days: sampled days.
        costs: yearly breakdown with the *expected* loss energies of the samples.
        line_loss_kwh_day, converter_loss_kwh_day: per sampled day, (day,).
        vmin_pu, vmax_pu: lowest / highest voltage per sampled day, (day,).
        violation_hours: fraction of sample-hours with a bus outside the limits.
        violation_days: fraction of days with at least one such hour.
        not_converged: sample-hours whose power flow did not converge (counted as violations).
        dispatch_not_converged: sample-hours whose optimal dispatch did not converge
            (infeasible limits); their best-effort set-points are still scored.
        capacity_excess_kva: largest VSC loading above its capacity (0 = within capacity).
        expected_line_kwh_day, expected_converter_kwh_day: (weighted) expected daily energies.
    """

    name: str
    dispatch: str
    n_days: int
    costs: dict
    line_loss_kwh_day: np.ndarray
    converter_loss_kwh_day: np.ndarray
    vmin_pu: np.ndarray
    vmax_pu: np.ndarray
    violation_hours: float
    violation_days: float
    not_converged: int
    dispatch_not_converged: int
    capacity_excess_kva: float
    expected_line_kwh_day: float = 0.0
    expected_converter_kwh_day: float = 0.0

    @property
    def loss_kwh_day(self) -> np.ndarray:
        return self.line_loss_kwh_day + self.converter_loss_kwh_day

    def summary(self) -> dict:
        """JSON-able summary: means, quantiles and probabilities."""
        q = lambda a: {f"p{p}": float(np.percentile(a, p)) for p in (5, 50, 95)}  # noqa: E731
        return {
            "name": self.name,
            "dispatch": self.dispatch,
            "n_days": self.n_days,
            "expected_cost": float(self.costs["total"]),
            "costs": {k: float(v) for k, v in self.costs.items()},
            "line_loss_kwh_day": {"mean": float(self.expected_line_kwh_day),
                                  "std": float(self.line_loss_kwh_day.std()), **q(self.line_loss_kwh_day)},
            "converter_loss_kwh_day_mean": float(self.expected_converter_kwh_day),
            "total_loss_kwh_day": {"mean": float(self.loss_kwh_day.mean()), **q(self.loss_kwh_day)},
            "vmin_pu": float(self.vmin_pu.min()),
            "vmax_pu": float(self.vmax_pu.max()),
            "voltage_violation_probability_hour": float(self.violation_hours),
            "voltage_violation_probability_day": float(self.violation_days),
            "not_converged": int(self.not_converged),
            "dispatch_not_converged": int(self.dispatch_not_converged),
            "capacity_excess_kva": float(self.capacity_excess_kva),
        }


@functools.lru_cache(maxsize=8)
def _sweep_runner(chunk_size: int):
    """One jitted batched sweep per chunk size, so repeated validations reuse compilations."""
    return batched_solver("sweep", chunk_size=chunk_size)


@partial(jax.jit, static_argnames=("n_bus",))
def _sop_injections(bus_i, bus_j, loss_i, loss_j, p_i, q_i, q_j, *, n_bus):
    f = lambda a, b, c: sop_pq_net_load(bus_i, bus_j, loss_i, loss_j, a, b, c, n_bus)  # noqa: E731
    return jax.vmap(f)(p_i, q_i, q_j)


def _optimal_setpoints(problem: PlanningProblem, net_sop, pl, ql, ppv, s_i, s_j, fallback):
    """Optimal set-points per sample-hour: the SOC dispatch (:mod:`sopjax.problems.dispatch`, Clarabel).

    The DPP model is canonicalised once per plan and re-solved per hour. An hour
    with no feasible set-point (the plan cannot hold the voltage limits) takes
    the ``fallback`` set-points (the lookup rule) and is counted.

    Returns (p_i, q_i, q_j, converged), each (hour, sop) / (hour,).
    """
    import warnings

    from sopjax.kernels.dispatch import DispatchInfeasibleError, DispatchInputs, compile_dispatch
    from sopjax.problems.dispatch import build_dispatch, solve_dispatch

    model = build_dispatch(compile_dispatch(net_sop, problem.status))
    n = pl.shape[0]
    p_i, q_i, q_j = (np.array(a, float, copy=True) for a in fallback)
    ok = np.ones(n, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Clarabel "may be inaccurate" on near-degenerate hours
        for h in range(n):
            try:
                res, _ = solve_dispatch(model, DispatchInputs(pl[h], ql[h], ppv[h], s_i, s_j), diagnose=False)
            except DispatchInfeasibleError:
                ok[h] = False
                continue
            p_i[h], q_i[h], q_j[h] = res.p_i, res.q_i, res.q_j
    return p_i, q_i, q_j, ok


def _lookup_setpoints(problem: PlanningProblem, plan: PlanResult, p_load, p_pv, idx, s_i):
    sc = problem.scenarios
    k = sc.assign(p_load, p_pv)  # (day,)
    kva = problem.kva_per_pu
    S, T = p_load.shape[:2]
    take = lambda a: (a[k][:, :, idx] / kva).reshape(S * T, idx.size)  # noqa: E731
    p_i, q_i, q_j = take(plan.p_i_kw), take(plan.q_i_kvar), take(plan.q_j_kvar)
    mag = np.hypot(p_i, q_i)
    scale = np.where(mag > s_i[None, :], s_i[None, :] / np.maximum(mag, 1e-15), 1.0)
    return p_i * scale, q_i * scale, q_j


def validate_plan(
    problem: PlanningProblem,
    plan: PlanResult | None,
    p_load_pu,
    q_load_pu,
    p_pv_pu,
    *,
    dispatch: str = "optimal",
    name: str = "",
    chunk_size: int = 2048,
    day_weights=None,
) -> ValidationResult:
    """Operate a plan on sampled days and score it with the exact power flow.

    Args:
        problem: the planning problem (network, limits, costs, scenarios).
        plan: the plan (``None`` = no SOP).
        p_load_pu, q_load_pu: sampled bus loads, (day, period, bus).
        p_pv_pu: sampled PV output, (day, period, pv).
        dispatch: ``"optimal"`` or ``"lookup"`` (see the module doc).
        name: label of the plan.
        chunk_size: sample-hours per vectorised call.
        day_weights: probability of each day for the expected cost (default: equal),
            e.g. the scenario probabilities when scoring the representative days.

    Returns:
        :class:`ValidationResult`.

    Raises:
        PlanningInputError: shapes that do not match the problem, unknown dispatch rule.
    """
    if dispatch not in DISPATCH_RULES:
        raise PlanningInputError(f"dispatch must be one of {', '.join(DISPATCH_RULES)}, got {dispatch!r}")
    net = problem.net
    pl, ql, pv = (np.asarray(a, float) for a in (p_load_pu, q_load_pu, p_pv_pu))
    T = problem.scenarios.n_periods
    if pl.ndim != 3 or pl.shape[1:] != (T, net.n_bus) or ql.shape != pl.shape or pv.shape != pl.shape[:2] + (
        net.pv.count,
    ):
        raise PlanningInputError(
            f"validation samples must be (day, {T}, {net.n_bus}) loads and (day, {T}, {net.pv.count}) PV, "
            f"got {pl.shape}, {ql.shape}, {pv.shape}"
        )
    S = pl.shape[0]
    N = S * T
    kva = problem.kva_per_pu
    plf, qlf, pvf = pl.reshape(N, -1), ql.reshape(N, -1), pv.reshape(N, -1)
    bus = np.asarray(net.pv.bus)
    tan = np.sqrt(np.maximum(1 - np.asarray(net.pv.pf, float) ** 2, 0)) / np.asarray(net.pv.pf, float)
    p_net, q_net = plf.copy(), qlf.copy()
    np.add.at(p_net, (slice(None), bus), -pvf)
    np.add.at(q_net, (slice(None), bus), -pvf * tan)

    C = problem.n_candidates
    zeros = np.zeros((N, C))
    p_i, q_i, q_j = zeros, zeros.copy(), zeros.copy()
    s_i = s_j = np.zeros(C)
    n_disp_bad = 0
    used = "none"
    idx = np.flatnonzero(plan.site) if plan is not None else np.zeros(0, int)
    if idx.size:
        used = dispatch
        s_i = np.where(plan.site, plan.s_i_kva, 0.0) / kva
        s_j = np.where(plan.site, plan.s_j_kva, 0.0) / kva
        sp = _lookup_setpoints(problem, plan, pl, pv, idx, s_i[idx])
        if dispatch == "optimal":
            a = problem.loss[idx]
            sops = SOPs(bus_i=problem.bus_i[idx], bus_j=problem.bus_j[idx], s_rated_i_pu=s_i[idx],
                        s_rated_j_pu=s_j[idx], loss_i=a, loss_j=a.copy(), q_max_i_pu=s_i[idx],
                        q_max_j_pu=s_j[idx], q_min_i_pu=-s_i[idx], q_min_j_pu=-s_j[idx])
            net_sop = net.replace(in_service=problem.status).with_devices(sop=sops)
            *sp, ok_disp = _optimal_setpoints(problem, net_sop, plf, qlf, pvf, s_i[idx], s_j[idx], sp)
            n_disp_bad = int(np.sum(~ok_disp))
        for full, part in zip((p_i, q_i, q_j), sp):
            full[:, idx] = part  # uninstalled candidates keep zero set-points: no injection, no loss

    # fixed-size chunks (the last one padded): one compilation per problem, whatever the sample count
    topo = compile_topology(net, problem.status)
    grid = make_grid(net, topo)
    run = _sweep_runner(int(chunk_size))
    chunk = int(chunk_size)
    a_vec = np.asarray(problem.loss, float)
    out = {k: [] for k in ("vm", "ok", "line", "conv", "p_j")}
    for lo in range(0, N, chunk):
        hi = min(lo + chunk, N)
        rows = np.minimum(np.arange(lo, lo + chunk), hi - 1)
        dp, dq, p_j, loss = _sop_injections(problem.bus_i, problem.bus_j, a_vec, a_vec, p_i[rows], q_i[rows],
                                            q_j[rows], n_bus=net.n_bus)
        p_in, q_in = jnp.asarray(p_net[rows]) + dp, jnp.asarray(q_net[rows]) + dq
        res = run(topo, grid, np.asarray(net.f_bus), p_in, q_in)
        m = hi - lo
        out["vm"].append(np.asarray(res.vm_pu)[:m])
        out["ok"].append(np.asarray(res.converged)[:m])
        out["line"].append(np.asarray(res.losses_pu)[:m])
        out["conv"].append(np.asarray(loss).sum(axis=1)[:m])
        out["p_j"].append(np.asarray(p_j)[:m])
    vm, ok, line, conv, p_j = (np.concatenate(out[k]) for k in ("vm", "ok", "line", "conv", "p_j"))
    load_i = np.hypot(p_i, q_i) - s_i[None, :]
    load_j = np.hypot(p_j, q_j) - s_j[None, :]
    excess = max(float(np.max(load_i, initial=0.0)), float(np.max(load_j, initial=0.0)), 0.0) * kva
    others = np.arange(net.n_bus) != net.slack_bus
    vmin_lim = np.asarray(net.v_min_pu, float)[others]
    vmax_lim = np.asarray(net.v_max_pu, float)[others]
    bad = np.any((vm[:, others] < vmin_lim - _V_TOL) | (vm[:, others] > vmax_lim + _V_TOL), axis=1) | ~ok
    dt = problem.costs.period_hours
    line_day = (line * kva).reshape(S, T).sum(1) * dt
    conv_day = (conv * kva).reshape(S, T).sum(1) * dt
    cap = plan.capacity_kva if plan is not None else 0.0
    n_sites = plan.n_sites if plan is not None else 0
    w = np.full(S, 1.0 / S) if day_weights is None else np.asarray(day_weights, float)
    if w.shape != (S,) or np.any(w < 0) or abs(w.sum() - 1) > 1e-9:
        raise PlanningInputError(f"day_weights must be {S} probabilities summing to 1")
    costs = problem.costs.breakdown(cap, n_sites, float(w @ line_day), float(w @ conv_day))
    return ValidationResult(
        name=name,
        dispatch=used,
        n_days=S,
        costs=costs,
        line_loss_kwh_day=line_day,
        converter_loss_kwh_day=conv_day,
        vmin_pu=np.where(ok[:, None], vm, np.inf)[:, others].reshape(S, T, -1).min(axis=(1, 2)),
        vmax_pu=vm[:, others].reshape(S, T, -1).max(axis=(1, 2)),
        violation_hours=float(bad.mean()),
        violation_days=float(bad.reshape(S, T).any(axis=1).mean()),
        not_converged=int(np.sum(~ok)),
        dispatch_not_converged=n_disp_bad,
        capacity_excess_kva=excess,
        expected_line_kwh_day=float(w @ line_day),
        expected_converter_kwh_day=float(w @ conv_day),
    )
