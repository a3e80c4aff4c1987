"""Sweeps through the learned SOP dispatch, side by side with the interior point (``engine = "learned"``).

``sopjax sweep`` with ``[dispatch] engine = "learned"`` and ``checkpoint = PATH`` evaluates
every grid point of the sweep (:func:`sopjax.sweeps.run_sweep`) with the learned dispatch
of the checkpoint instead of the interior point: model, repair and one exact DistFlow
(:class:`~sopjax.surrogates.dispatch.LearnedDispatch`), with its derivatives along the
axes by forward mode through all of it. Every sample is checked: one whose repaired
set-points violate a row of the sweep's dispatch problem (voltage limits of the sweep
included) is re-solved by the interior point inside the same program (``lax.cond``, so
only batches that need it pay), and the reported quantities never rest on an infeasible
point. The fallback is compiled only when needed: the sweep runs first without it, and
if any sample of any point is infeasible after repair it is rerun with it
(``interior_point_fallback`` attribute). With ``compare = true`` each grid point is also solved by the interior point on the
same samples: ``<quantity>_ipm`` next to each dispatch quantity, the per-sample optimality
gap ``(F_learned - F_ipm) / F_ipm`` (mean and max over the samples the interior point
solves), the fallback count and both paths' times.

An optimization config (``kind = "optimization"``) runs the grid search and the optax
sizing of :func:`sopjax.sweeps.optimize.optimize_capacity` through the same checked solve
(:func:`run_learned_optimization`; gradients by reverse mode through model, repair and
flow), and with ``compare`` the interior point's grid search and sizing next to it.

The checkpoint must fit the sweep's network: the same case, bus count, PV and SOP buses
and switch configuration (:func:`~sopjax.surrogates.dispatch.check_network`); capacities
outside the training range are extrapolation (the dataset's ``sop_capacity_kva``).
"""

from __future__ import annotations

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.dispatch import DispatchInfeasibleError, DispatchResult, dispatch_batched
from sopjax.surrogates.dispatch import LearnedDispatch, load_dispatch
from sopjax.sweeps.config import QUANTITIES, SweepSpec
from sopjax.sweeps.runner import dispatch_means, run_sweep
from sopjax.sweeps.scenario import Scenario, build_scenario

__all__ = ["LearnedSolver", "checked_solve", "learned_result", "run_learned_optimization", "run_learned_sweep"]


def learned_result(n_sop: int, r: dict) -> DispatchResult:
    """A :class:`DispatchResult` of :func:`~sopjax.surrogates.dispatch.evaluate_setpoints`'s output.

    ``converged`` is the exact check's feasibility, ``infeasibility`` its largest violation,
    ``iterations`` 0 (a learned point), the capacity duals 0 (the model has none).
    """
    x, ns = r["x"], n_sop
    n = x.shape[0]
    zeros = jnp.zeros((n, ns), x.dtype)
    return DispatchResult(
        p_i=x[:, :ns],
        q_i=x[:, ns : 2 * ns],
        p_j=x[:, 2 * ns : 3 * ns],
        q_j=x[:, 3 * ns :],
        converter_loss=r["converter_loss"],
        line_loss=r["line_loss"],
        objective=r["objective"],
        vm_pu=r["vm_pu"],
        cap_dual_i=zeros,
        cap_dual_j=zeros,
        converged=r["feasible"],
        iterations=jnp.zeros(n, jnp.int32),
        infeasibility=r["violation"],
    )


def checked_solve(ld: LearnedDispatch, *, tol: float = 1e-9, max_iter: int = 150, fallback: bool = True):
    """``solve(inputs) -> DispatchResult``: the learned dispatch, the interior point where it is infeasible.

    Pure JAX (jit- and forward-mode-differentiable). Samples that fell back carry the
    interior point's result and iteration count (``iterations > 0``); learned ones ``0``.
    With ``fallback = False`` no interior point is compiled: infeasible samples come back
    with ``converged = False`` (the sweep then raises, and :func:`run_learned_sweep` reruns
    with the fallback).
    """

    def solve(inp):
        res = learned_result(ld.data.n_sop, ld(inp))
        if not fallback:
            return res
        bad = ~res.converged

        def with_ipm(res):
            ref = dispatch_batched(ld.data, inp, tol=tol, max_iter=max_iter)
            ref = ref._replace(iterations=jnp.maximum(ref.iterations, 1).astype(jnp.int32))

            def pick(a, b):
                return jnp.where(bad.reshape(bad.shape + (1,) * (a.ndim - 1)), b.astype(a.dtype), a)

            return jax.tree_util.tree_map(pick, res, ref)

        return jax.lax.cond(jnp.any(bad), with_ipm, lambda r: r, res)

    return solve


@dataclasses.dataclass(frozen=True)
class LearnedSolver:
    """The picklable ``solver(scenario, spec)`` of :func:`sopjax.sweeps.run_sweep` for a checkpoint."""

    checkpoint: str
    fallback: bool = True

    def load(self, scn: Scenario) -> LearnedDispatch:
        """The checkpoint's dispatch on the scenario's network, data and switch configuration (checked)."""
        return load_dispatch(self.checkpoint, scn.net, np.asarray(scn.net.in_service, bool), data=scn.data)

    def __call__(self, scn: Scenario, spec: SweepSpec):
        return checked_solve(self.load(scn), tol=spec.tol, max_iter=spec.max_iter, fallback=self.fallback)


def _learned_first(run):
    """``run(fallback)`` without the interior-point fallback; rerun with it if a sample was infeasible.

    Compiling the fallback (the interior point under forward or reverse mode) costs minutes;
    most sweeps never need it. Returns ``(result, whether the fallback was needed)``.
    """
    try:
        return run(False), False
    except DispatchInfeasibleError:
        return run(True), True


def run_learned_sweep(spec: SweepSpec, *, progress: bool = False, scenario: Scenario | None = None, scheduler=None):
    """A sweep through the learned dispatch of ``spec.checkpoint`` (and the interior point if ``spec.compare``).

    Returns:
        the :func:`~sopjax.sweeps.run_sweep` dataset, attributes ``checkpoint`` and
        ``seconds_learned`` (the sweep, compilation included); with ``compare``: for each
        dispatch quantity ``q`` also ``q_ipm``, and per point ``objective_gap_mean``,
        ``objective_gap_max`` (relative), ``fallback_samples``, ``ipm_failed_samples``,
        ``ms_learned``, ``ms_ipm`` (wall time of the point's batch, after compilation).

    Raises:
        SurrogateError: the checkpoint does not fit the sweep's network (before any work).
    """
    scn = scenario or build_scenario(spec)
    solver = LearnedSolver(spec.checkpoint)
    ld = solver.load(scn)  # refuses a checkpoint of another network before any work
    t0 = time.perf_counter()
    ds, used = _learned_first(lambda fb: run_sweep(spec, progress=progress, scenario=scn, scheduler=scheduler,
                                                   solver=dataclasses.replace(solver, fallback=fb)))
    ds.attrs["seconds_learned"] = time.perf_counter() - t0
    ds.attrs["checkpoint"] = spec.checkpoint
    ds.attrs["interior_point_fallback"] = int(used)
    if spec.compare:
        _compare(ds, spec, scn, ld)
    return ds


def _compare(ds, spec: SweepSpec, scn: Scenario, ld: LearnedDispatch) -> None:
    """Add the interior point's quantities and the per-point gap to ``ds`` (in place)."""
    names = tuple(a.name for a in spec.axes)
    shape = tuple(len(a.values) for a in spec.axes)
    learned = eqx.filter_jit(lambda ld, inp: learned_result(ld.data.n_sop, ld(inp)))
    ipm = jax.jit(lambda inp: dispatch_batched(scn.data, inp, tol=spec.tol, max_iter=spec.max_iter))
    qs = [q for q in spec.quantities if QUANTITIES[q][2] == "dispatch"]
    out = {f"{q}_ipm": np.full(shape, np.nan) for q in qs}
    extra = ("objective_gap_mean", "objective_gap_max", "fallback_samples", "ipm_failed_samples",
             "ms_learned", "ms_ipm")
    out.update({k: np.full(shape, np.nan) for k in extra})
    for flat in range(int(np.prod(shape))):
        idx = np.unravel_index(flat, shape)
        params = {n: jnp.asarray(float(a.values[i])) for n, a, i in zip(names, spec.axes, idx)}
        inp = scn.inputs(params)
        times = {}
        for key, f in (("learned", lambda: learned(ld, inp)), ("ipm", lambda: ipm(inp))):
            jax.block_until_ready(f())  # compiled on the first point
            t = time.perf_counter()
            times[key] = jax.block_until_ready(f()), time.perf_counter() - t
        (rl, tl), (ri, ti) = times["learned"], times["ipm"]
        means = dispatch_means(ri, scn.kw)
        for q in qs:
            out[f"{q}_ipm"][idx] = float(means[q])
        ok = np.asarray(ri.converged)
        back = ~np.asarray(rl.converged)  # infeasible after repair: the interior point's answer is used
        obj = np.where(back, np.asarray(ri.objective), np.asarray(rl.objective))
        fl, fi = obj[ok], np.asarray(ri.objective)[ok]
        gap = (fl - fi) / fi
        out["objective_gap_mean"][idx] = float(gap.mean()) if gap.size else np.nan
        out["objective_gap_max"][idx] = float(gap.max()) if gap.size else np.nan
        out["fallback_samples"][idx] = int(np.sum(back))
        out["ipm_failed_samples"][idx] = int(np.sum(~ok))
        out["ms_learned"][idx], out["ms_ipm"][idx] = 1e3 * tl, 1e3 * ti
    attrs = {
        "objective_gap_mean": ("1", "mean over samples of (F_learned - F_ipm) / F_ipm"),
        "objective_gap_max": ("1", "largest (F_learned - F_ipm) / F_ipm over the samples"),
        "fallback_samples": ("1", "samples re-solved by the interior point (repaired point infeasible)"),
        "ipm_failed_samples": ("1", "samples the interior point did not solve (left out of the gap)"),
        "ms_learned": ("ms", "learned dispatch + repair + exact DistFlow of the point's batch (wall; no fallback)"),
        "ms_ipm": ("ms", "interior-point dispatch of the point's batch (wall)"),
    }
    for q in qs:
        u, long_name, _ = QUANTITIES[q]
        attrs[f"{q}_ipm"] = (u, f"{long_name} (interior point)")
    for k, v in out.items():
        ds[k] = (names, v, {"units": attrs[k][0], "long_name": attrs[k][1]})


#: attributes of an optimization dataset repeated for the interior point (``ipm_<name>``)
_OPT_ATTRS = ("grid_optimum_mva", "grid_optimum_cost", "optax_optimum_mva", "optax_optimum_cost",
              "optax_optimum_losses_kw", "grid_seconds", "optax_seconds", "within_one_grid_step")


def run_learned_optimization(spec: SweepSpec, *, progress: bool = False, scenario: Scenario | None = None):
    """Grid search and optax sizing through the learned dispatch (and the interior point if ``spec.compare``).

    Returns:
        :func:`~sopjax.sweeps.optimize.optimize_capacity`'s dataset; with ``compare`` also
        ``grid_cost_ipm``, ``grid_losses_kw_ipm``, ``optax_capacity_mva_ipm`` and the
        attributes ``ipm_<name>`` (optima, costs, seconds) of the interior point's run.

    Raises:
        SurrogateError: the checkpoint does not fit the network (before any work).
    """
    from sopjax.sweeps.optimize import optimize_capacity

    scn = scenario or build_scenario(spec)
    solver = LearnedSolver(spec.checkpoint)
    solver.load(scn)  # refuses a checkpoint of another network before any work
    ds, used = _learned_first(lambda fb: optimize_capacity(spec, progress=progress, scenario=scn,
                                                           solver=dataclasses.replace(solver, fallback=fb)))
    ds.attrs["checkpoint"] = spec.checkpoint
    ds.attrs["interior_point_fallback"] = int(used)
    if spec.compare:
        ref = optimize_capacity(dataclasses.replace(spec, engine="jax", checkpoint=None, compare=False),
                                progress=progress, scenario=scn)
        for k in _OPT_ATTRS:
            ds.attrs[f"ipm_{k}"] = ref.attrs[k]
        for v in ("grid_cost", "grid_losses_kw", "optax_capacity_mva"):
            ds[f"{v}_ipm"] = ref[v].assign_attrs(long_name=ref[v].attrs.get("long_name", v) + " (interior point)")
    return ds
