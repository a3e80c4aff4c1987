"""Run a sweep: quantities and their derivatives over a grid of parameters -> ``xarray.Dataset``.

For every grid point the dispatch quantities are Monte Carlo means over the
sample pool of the spec, each sample solved by the optimal SOP dispatch
(:func:`sopjax.kernels.dispatch.dispatch_batched`, or the cvxpylayers layer).
Their derivatives along each axis are exact derivatives of those means
(forward mode through the implicitly differentiated dispatch; reverse mode
through the layer). Restoration quantities come from the Monte Carlo engine
(:mod:`sopjax.montecarlo`); they are not differentiable (greedy pickup, binary
compliance), so their derivative is a central finite difference on the grid
(one-sided at the ends), stated in the variable's ``method`` attribute.

The dataset holds, for each quantity ``q`` and axis ``a``, ``q`` and ``dq_da``
(named ``d<quantity>_d<axis>``) on the grid's dimensions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.errors import ConfigError, SopjaxError
from sopjax.kernels.dispatch import DispatchInfeasibleError, DispatchInputs, dispatch_batched
from sopjax.montecarlo.study import Study, build_strategies, make_study, run_study
from sopjax.network import Network
from sopjax.network_builder import build_network
from sopjax.scaleout import Chunk, chunk_plan, make_executor, run_plan, worker_cached
from sopjax.strategies.strategy import StrategyError
from sopjax.sweeps.config import LARGE_SOP_KVA, PARAMETERS, QUANTITIES, RestorationSpec, SweepSpec
from sopjax.sweeps.devices import split_over_devices
from sopjax.sweeps.scenario import Scenario, build_scenario

__all__ = ["DISPATCH_QUANTITIES", "SweepJob", "dispatch_means", "point_function", "run_sweep", "sweep_point"]

DISPATCH_QUANTITIES = tuple(q for q, v in QUANTITIES.items() if v[2] == "dispatch")
#: smallest SOP capacity passed to the Monte Carlo restoration engine (kVA)
MC_CAPACITY_FLOOR_KVA = 1.0


def sample_quantities(res) -> dict:
    """Per-sample dispatch quantities (JAX arrays, sample axis first) of a batched :class:`DispatchResult`.

    In p.u. (the ``*_kw`` quantities before the factor ``kW per p.u.``; see :func:`pool_means`).
    """
    conv = jnp.sum(res.converter_loss, axis=-1)
    return {
        "losses_kw": res.line_loss + conv,
        "line_loss_kw": res.line_loss,
        "converter_loss_kw": conv,
        "vmin_pu": jnp.min(res.vm_pu, axis=-1),
        "objective_kw": res.objective,
    }


def pool_means(per_sample: dict, kw: float) -> dict:
    """Monte Carlo means over the leading sample axis of :func:`sample_quantities` (or of their
    tangents, ``(sample, axis)``), the ``*_kw`` quantities converted to kW."""
    return {q: jnp.mean(v, axis=0) * kw if q.endswith("_kw") else jnp.mean(v, axis=0)
            for q, v in per_sample.items()}


def dispatch_means(res, kw: float) -> dict:
    """Monte Carlo means (JAX scalars) of a batched :class:`DispatchResult`."""
    return pool_means(sample_quantities(res), kw)


def _solver(scn: Scenario, spec: SweepSpec) -> Callable[[DispatchInputs], object]:
    """Batched dispatch of the spec's engine: inputs with a leading sample axis -> result (one device)."""
    if spec.engine == "learned":
        raise ConfigError("engine = \"learned\" needs the learned dispatch's solver: run the sweep with "
                          "sopjax.surrogates.sweep.run_learned_sweep (what `sopjax sweep` does)")
    if spec.engine == "jax":
        data = scn.data
        return lambda i: dispatch_batched(data, i, tol=spec.tol, max_iter=spec.max_iter)
    from sopjax.problems.dispatch import DispatchLayer, build_dispatch

    return DispatchLayer(build_dispatch(scn.data))


def _split_point_functions(scn: Scenario, spec: SweepSpec, names: tuple[str, ...], n_dev: int):
    """The JAX engine's ``(value, step)`` of a grid point with the sample pool split over ``n_dev`` devices.

    ``value(theta)`` and ``step(theta)`` return what ``jit(f)`` and ``jit(jacfwd(f, has_aux=True))``
    of :func:`point_function` return on one device: each device solves (and differentiates,
    forward mode) its share of the pool, the per-sample quantities are reduced on the first
    device (:func:`sopjax.sweeps.devices.split_over_devices`).
    """
    data, kw = scn.data, scn.kw

    def per_sample(theta, p_load, q_load, p_pv):
        shard = dataclasses.replace(scn, p_load=p_load, q_load=q_load, p_pv=p_pv)
        res = dispatch_batched(data, shard.inputs({n: theta[k] for k, n in enumerate(names)}),
                               tol=spec.tol, max_iter=spec.max_iter)
        return sample_quantities(res), (res.converged, res.infeasibility)

    def finish(out):
        return pool_means(out[0], kw), out[1]

    pool = (scn.p_load, scn.q_load, scn.p_pv)
    return (split_over_devices(per_sample, finish, pool, n_dev),
            split_over_devices(jax.jacfwd(per_sample, has_aux=True), finish, pool, n_dev))


def point_function(scn: Scenario, spec: SweepSpec, names: tuple[str, ...], solve=None):
    """``f(theta) -> (dispatch means (dict), (converged, infeasibility) per sample)``.

    ``theta`` holds the values of the parameters ``names`` (the swept axes).
    """
    solve = solve or _solver(scn, spec)
    kw = scn.kw

    def f(theta):
        params = {n: theta[k] for k, n in enumerate(names)}
        res = solve(scn.inputs(params))
        return dispatch_means(res, kw), (res.converged, res.infeasibility)

    return f


def _check_converged(scn, spec, point: dict, conv, infeas, params: dict | None = None, idx=None):
    """Raise :class:`DispatchInfeasibleError` naming the point, sample and limiting bus if a sample failed.

    ``point`` labels the grid point; ``params`` / ``idx`` rebuild its inputs
    (default: ``point`` itself, all samples).
    """
    conv = np.asarray(conv)
    if conv.all():
        return
    i = int(np.flatnonzero(~conv)[0])
    where = ", ".join(f"{k}={v:g}" for k, v in point.items())
    msg = f"{where}: sample {i if idx is None else int(np.asarray(idx)[i])} of the pool"
    try:
        from sopjax.problems.dispatch import build_dispatch, solve_dispatch

        params = params if params is not None else {k: jnp.asarray(v) for k, v in point.items()}
        one = jax.tree_util.tree_map(lambda a: np.asarray(a)[i], scn.inputs(params, idx))
        solve_dispatch(build_dispatch(scn.data), one)
    except DispatchInfeasibleError as e:
        raise DispatchInfeasibleError(f"{msg}: {e}") from None
    raise DispatchInfeasibleError(
        f"{msg}: the interior-point dispatch did not converge (largest violation "
        f"{float(np.asarray(infeas)[i]):.3g} p.u.) although the SOC model is feasible; "
        "raise [dispatch] max_iter or use engine = \"cvxpylayers\""
    )


def _restoration_study(r: RestorationSpec, net: Network, pv_forecast_pu, strategy_tables) -> Study:
    """The Monte Carlo study of ``r`` on ``net`` (typed objects; no config round trip)."""
    forecast = net.pv.s_rated_pu if pv_forecast_pu is None else pv_forecast_pu
    strategies = build_strategies(net, strategy_tables, r.settings, forecast)
    return make_study(net, strategies, model=r.uncertainty, settings=r.settings, seed=r.seed,
                      pv_forecast_pu=pv_forecast_pu)


def _restoration_point(spec: SweepSpec, scn: Scenario, point: dict) -> dict:
    """Monte Carlo restoration quantities at one grid point (the reported strategy)."""
    r = spec.restoration
    p = {**scn.base, **point}
    if p.get("load_scale", 1.0) != 1.0:
        raise ConfigError("load_scale cannot differ from 1 for Monte Carlo restoration quantities")
    # the restoration engine rejects a Vf-mode SOP of zero capacity; 1 kVA stands for "none"
    sop_kva = (None if p["capacity_mva"] is None
               else max(float(p["capacity_mva"]) * 1e3, MC_CAPACITY_FLOOR_KVA))
    k = float(scn.pv_factor(p["pv_penetration"])) if p["pv_penetration"] is not None else 1.0
    net_spec = spec.network.scaled(pv_factor=k, sop_kva=sop_kva)
    net = build_network(net_spec)
    # the forecast in kW of the scaled fleet, then p.u. (the order of operations of a TOML study)
    fc_kw = [spec.pv_forecast_frac * pv.s_rated_kva * pv.pf for pv in net_spec.pv]
    forecast = np.asarray(fc_kw, float) / (net.base_mva * 1e3) if fc_kw else None
    sop_island = 1.0
    try:
        ds, _ = run_study(_restoration_study(r, net, forecast, r.strategies), progress=False, plots=False)
    except StrategyError as e:
        # A Vf-mode SOP too small for its island at the forecast (e.g. capacity 0, or
        # one that cannot absorb the island's PV surplus) cannot energize that island:
        # score the strategy with its SOP settings removed (the island stays dark).
        # Only then: an error that a large SOP does not cure (a U_set outside the bus
        # limits, an unknown SOP, a closed faulted branch) is the config's, and raised.
        reported = [s for s in r.strategies if s.get("name") == r.report]
        if not any(row.get("sop") for row in reported) or _fails_at_any_capacity(r, net_spec, forecast):
            raise
        fallback = [{k: v for k, v in s.items() if k != "sop"} for s in r.strategies]
        try:
            ds, _ = run_study(_restoration_study(r, net, forecast, fallback), progress=False, plots=False)
        except StrategyError:
            raise e from None
        sop_island = 0.0
    sub = ds.sel(strategy=r.report)
    return {
        "restored_kw": float(sub["restored_kw_mean"]),
        "recovery_ratio": float(sub["recovery_ratio_mean"]),
        "restoration_vmin_pu": float(sub["vmin_pu_mean"]),
        "restoration_loss_kw": float(sub["line_loss_kw_mean"] + sub["sop_loss_kw_mean"]),
        "restoration_sop_island": sop_island,
    }


def _fails_at_any_capacity(r: RestorationSpec, net_spec, forecast) -> bool:
    """Whether the restoration strategies fail on ``net_spec`` even with 100 MVA SOPs."""
    net = build_network(net_spec.scaled(sop_kva=LARGE_SOP_KVA))
    try:
        build_strategies(net, r.strategies, r.settings, net.pv.s_rated_pu if forecast is None else forecast)
    except StrategyError:
        return True
    return False


def _grid_derivative(values: np.ndarray, coords: list[np.ndarray], axis: int) -> np.ndarray:
    x = coords[axis]  # two or more points (a single point has no finite difference)
    return np.gradient(values, x, axis=axis, edge_order=1)


@dataclasses.dataclass(frozen=True, eq=False)
class SweepJob:
    """What a grid point needs, sent once to each worker: the spec, its scenario, a cache key."""

    spec: SweepSpec
    scenario: Scenario | None
    token: str
    solver: Callable | None = None  # solver(scenario, spec) -> batched solve (default: the spec's engine)


def _point_kernels(job: SweepJob) -> dict:
    """The scenario and jitted point functions of a job (built once per process)."""
    spec = job.spec
    scn = _job_scenario(job)
    names = tuple(a.name for a in spec.axes)
    out = {"scn": scn, "names": names, "value": None, "step": None, "devices": 1}
    if any(QUANTITIES[q][2] == "dispatch" for q in spec.quantities):
        n_dev = len(jax.local_devices())
        if spec.engine == "jax" and job.solver is None and n_dev > 1:  # the pool split over all local devices
            out["value"], out["step"] = _split_point_functions(scn, spec, names, n_dev)
            out["devices"] = n_dev
            return out
        f = point_function(scn, spec, names, None if job.solver is None else job.solver(scn, spec))
        if spec.engine in ("jax", "learned"):
            out["step"], out["value"] = jax.jit(jax.jacfwd(f, has_aux=True)), jax.jit(f)
        else:
            out["step"], out["value"] = jax.jacrev(f, has_aux=True), f
    return out


def _job_scenario(job: SweepJob) -> Scenario:
    return worker_cached(("sweep-scenario", job.token), lambda: job.scenario or build_scenario(job.spec))


def sweep_point(job: SweepJob, chunk: Chunk) -> dict:
    """Quantities and derivatives at grid point ``chunk.index`` (row-major over the axes).

    The task of the sweep's chunk plan (one point per chunk): a pure function of the
    spec and the point index, run in-process or on a Dask worker.
    """
    spec = job.spec
    k = worker_cached(("sweep", job.token), lambda: _point_kernels(job))
    scn, names = k["scn"], k["names"]
    shape = tuple(len(a.values) for a in spec.axes)
    idx = np.unravel_index(chunk.index, shape)
    point = {n: float(np.asarray(a.values, float)[i]) for n, a, i in zip(names, spec.axes, idx)}
    out = {"values": {}, "derivs": {}, "sop_island": np.nan, "devices": k["devices"]}
    if k["value"] is not None:
        theta = jnp.asarray([point[n] for n in names], jnp.float64)
        try:
            vals, (conv, infeas) = k["value"](theta)
        except DispatchInfeasibleError as e:  # the layer's own diagnosis; add the grid point
            where = ", ".join(f"{a}={v:g}" for a, v in point.items())
            raise DispatchInfeasibleError(f"{where}: {e}") from None
        _check_converged(scn, spec, point, conv, infeas)
        jac, _ = k["step"](theta)
        for q in spec.quantities:
            if QUANTITIES[q][2] == "dispatch":
                out["values"][q] = float(vals[q])
                for j, a in enumerate(names):
                    out["derivs"][(q, a)] = float(jac[q][j])
    if any(QUANTITIES[q][2] == "montecarlo" for q in spec.quantities):
        try:
            mc = _restoration_point(spec, scn, point)
        except SopjaxError as e:  # name the grid point the restoration study failed at
            where = ", ".join(f"{a}={v:g}" for a, v in point.items())
            raise type(e)(f"Monte Carlo restoration at {where}: {e}") from None
        out["values"].update({q: mc[q] for q in spec.quantities if QUANTITIES[q][2] == "montecarlo"})
        out["sop_island"] = mc["restoration_sop_island"]
    return out


def _job_token(spec: SweepSpec, scenario: Scenario | None, solver=None) -> str:
    return hashlib.sha256(pickle.dumps((spec, scenario, solver))).hexdigest()[:16]


def run_sweep(spec: SweepSpec, *, progress: bool = False, scenario: Scenario | None = None, scheduler=None,
              solver: Callable | None = None):
    """Evaluate ``spec.quantities`` and their derivatives on the grid of ``spec.axes``.

    Args:
        spec: a validated sweep spec (``kind = "sweep"``).
        progress: print one line per grid point.
        scenario: a prebuilt scenario (default: built from ``spec``).
        scheduler: where the grid points run (one chunk each): ``None`` (this process),
            ``"local:N"``, a Dask scheduler address, a ``distributed.Client`` or an executor
            (:func:`sopjax.scaleout.make_executor`); the dataset is the same.
        solver: ``solver(scenario, spec) -> solve`` (batched :class:`DispatchInputs` -> a
            :class:`DispatchResult`), a picklable function; default the spec's engine. The
            learned dispatch plugs in here (:mod:`sopjax.surrogates.sweep`).

    Returns:
        :class:`xarray.Dataset` with one dimension per axis.

    Raises:
        ConfigError: bad spec, unreachable scheduler. DispatchInfeasibleError: an operating
            point whose voltage limits no SOP set-point can meet (names the grid point, sample and bus).
    """
    import xarray as xr

    if spec.kind != "sweep":
        raise ConfigError(f"run_sweep needs kind = 'sweep', got {spec.kind!r}")
    names = tuple(a.name for a in spec.axes)
    coords = [np.asarray(a.values, float) for a in spec.axes]
    shape = tuple(c.size for c in coords)
    mc_q = [q for q in spec.quantities if QUANTITIES[q][2] == "montecarlo"]
    values = {q: np.full(shape, np.nan) for q in spec.quantities}
    derivs = {(q, a): np.full(shape, np.nan) for q in spec.quantities for a in names}
    sop_island = np.full(shape, np.nan)
    devices = 1
    job = SweepJob(spec, scenario, _job_token(spec, scenario, solver), solver)
    executor = make_executor(scheduler)
    try:
        for chunk, r in run_plan(executor, sweep_point, job, chunk_plan(int(np.prod(shape)), 1)):
            idx = np.unravel_index(chunk.index, shape)
            for q, v in r["values"].items():
                values[q][idx] = v
            for key, v in r["derivs"].items():
                derivs[key][idx] = v
            sop_island[idx] = r["sop_island"]
            devices = max(devices, r["devices"])
            if progress:
                where = ", ".join(f"{n}={coords[k][i]:g}" for k, (n, i) in enumerate(zip(names, idx)))
                print(f"  {where}: "
                      + ", ".join(f"{q}={values[q][idx]:.4g}" for q in spec.quantities), flush=True)
    finally:
        if executor is not scheduler:
            executor.close()
    scn = _job_scenario(job)  # for the attributes (already built when the points ran here)
    for q in mc_q:
        for k, a in enumerate(names):
            if coords[k].size >= 2:  # one grid point has no finite difference: no variable rather than NaN
                derivs[(q, a)] = _grid_derivative(values[q], coords, k)

    data_vars = {}
    for q in spec.quantities:
        units, long_name, source = QUANTITIES[q]
        data_vars[q] = (names, values[q], {"units": units, "long_name": long_name, "source": source})
        for a in names:
            if (q, a) not in derivs:
                continue
            method = ("implicit differentiation of the optimal dispatch (exact derivative of the sample mean)"
                      if source == "dispatch" else "finite difference on the grid (Monte Carlo quantity)")
            data_vars[f"d{q}_d{a}"] = (names, derivs[(q, a)], {
                "units": f"{units}/{PARAMETERS[a][0]}", "long_name": f"d {q} / d {a}", "method": method})
    if mc_q:
        data_vars["restoration_sop_island"] = (names, sop_island, {
            "units": "1", "long_name": "1 if the strategy's Vf-mode SOP energizes its island at the forecast, "
            "0 if it cannot (too small: the island stays dark and the strategy is scored without its SOP)"})
    ds = xr.Dataset(
        data_vars,
        coords={
            a.name: (a.name, coords[k], {"units": PARAMETERS[a.name][0], "long_name": PARAMETERS[a.name][1]})
            for k, a in enumerate(spec.axes)
        },
        attrs={**_attrs(spec, scn), "devices_per_point": devices},
    )
    return ds


def _attrs(spec: SweepSpec, scn: Scenario) -> dict:
    net = scn.net
    base = {k: ("network value" if v is None else v) for k, v in scn.base.items()}
    return {
        "title": spec.title,
        "kind": spec.kind,
        "network": net.name,
        "base_mva": net.base_mva,
        "engine": spec.engine,
        "n_samples": int(scn.p_load.shape[0]),
        "seed": int(spec.seed),
        "sops": json.dumps([[net.bus_ids[int(a)], net.bus_ids[int(b)]]
                            for a, b in zip(np.asarray(net.sop.bus_i), np.asarray(net.sop.bus_j))]),
        "pv_buses": json.dumps([net.bus_ids[int(b)] for b in np.asarray(net.pv.bus)]),
        "pv_penetration_of_config_fleet": scn.p_pv_rated_pu / scn.p_load_total_pu,
        "pv_forecast_frac": spec.pv_forecast_frac,
        "restoration_capacity_floor_kva": MC_CAPACITY_FLOOR_KVA,
        "v_min_pu": spec.v_min_pu,
        "v_max_pu": spec.v_max_pu,
        "voltage_weight": spec.voltage_weight,
        "baseline": json.dumps(base),
        "config": json.dumps(spec.config, default=str),
    }
