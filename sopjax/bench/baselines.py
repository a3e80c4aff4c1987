"""Baselines of the power-flow benchmark, each solving the same batch of load samples.

* :func:`prepare_fused` -- a hand-written backward/forward sweep in numba,
  fused per sample and parallel over samples (``prange``): the same algorithm
  (either iteration of :mod:`sopjax.kernels.sweep_batch`), start point, stopping
  rule (largest voltage update <= ``tol``) and collapse guard as sopjax, in
  scalar real arithmetic. It is the practical speed ceiling of the method on a CPU.
* :func:`power_grid_model_batch` -- power-grid-model's C++ batch power flow
  (``newton_raphson`` or ``iterative_current``) on a model built from the
  :class:`~sopjax.network.Network`; threads: all cores.
* :func:`pandapower_loop` -- pandapower ``runpp`` (Newton-Raphson) called once
  per sample.

All take per-unit loads of shape (sample, bus) and return voltage magnitudes
(sample, bus) so that the benchmark can check they did the same work.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from sopjax.network import Network
from sopjax.topology import Topology

__all__ = [
    "BaselineResult",
    "Prepared",
    "prepare_fused",
    "prepare_pgm",
    "fused_reference",
    "fused_inputs",
    "power_grid_model_batch",
    "build_pgm_input",
    "pandapower_loop",
]

_COLLAPSE_PU = 1e-2  # same guard as sopjax.kernels.radial


@dataclasses.dataclass
class BaselineResult:
    """Voltages and timing of one baseline run.

    Attributes:
        vm_pu: voltage magnitudes, (sample, bus); NaN where not computed.
        seconds: wall time of the timed part (s).
        samples: samples solved in ``seconds``.
        iterations: iterations per sample, if the method reports them.
        converged: per-sample convergence flag, if reported.
        info: extra method details (threads, method name, setup time).
    """

    vm_pu: np.ndarray
    seconds: float
    samples: int
    iterations: np.ndarray | None = None
    converged: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("inf")


# --------------------------------------------------------------------------
# fused numba reference
# --------------------------------------------------------------------------

_KERNEL = None


def _compile_kernel():
    global _KERNEL
    if _KERNEL is not None:
        return _KERNEL
    import numba
    from numba import njit, prange

    @njit(parallel=True, cache=True, fastmath=False, boundscheck=False)
    def sweep(
        p, q, order, parent, has_parent, energized, zr, zx, vsrc, tol, max_iter, vm, va, iters, conv
    ):  # pragma: no cover - compiled
        n_s, n = p.shape
        for s in prange(n_s):
            vr = np.empty(n)
            vi = np.empty(n)
            jr = np.empty(n)
            ji = np.empty(n)
            wr = np.empty(n)
            wi = np.empty(n)
            for b in range(n):
                vr[b] = vsrc[b]
                vi[b] = 0.0
            it = 0
            err = np.inf
            ok = True
            while ok and err > tol and it < max_iter:
                # load currents conj(S / V) from the previous iterate
                for b in range(n):
                    if energized[b]:
                        d = vr[b] * vr[b] + vi[b] * vi[b]
                        pb = p[s, b]
                        qb = q[s, b]
                        jr[b] = (pb * vr[b] + qb * vi[b]) / d
                        ji[b] = (pb * vi[b] - qb * vr[b]) / d
                    else:
                        jr[b] = 0.0
                        ji[b] = 0.0
                # backward: subtree sums in reverse preorder
                for k in range(n - 1, -1, -1):
                    b = order[k]
                    if has_parent[b]:
                        a = parent[b]
                        jr[a] += jr[b]
                        ji[a] += ji[b]
                # forward: W = W_parent - z J in preorder; committed only if healthy
                # (the sopjax kernel keeps the last healthy iterate)
                e = 0.0
                healthy = True
                for k in range(n):
                    b = order[k]
                    if has_parent[b]:
                        a = parent[b]
                        nr = wr[a] - (zr[b] * jr[b] - zx[b] * ji[b])
                        ni = wi[a] - (zr[b] * ji[b] + zx[b] * jr[b])
                    else:
                        nr = vsrc[b]
                        ni = 0.0
                    dr = nr - vr[b]
                    di = ni - vi[b]
                    m = math.sqrt(dr * dr + di * di)
                    if m > e or m != m:
                        e = m
                    mag = math.sqrt(nr * nr + ni * ni)
                    if not (mag > _COLLAPSE_PU) or not math.isfinite(mag):
                        healthy = False
                    wr[b] = nr
                    wi[b] = ni
                it += 1
                if healthy:
                    for b in range(n):
                        vr[b] = wr[b]
                        vi[b] = wi[b]
                    err = e
                else:
                    ok = False
                    err = np.inf
            for b in range(n):
                if energized[b]:
                    vm[s, b] = math.sqrt(vr[b] * vr[b] + vi[b] * vi[b])
                    va[s, b] = math.atan2(vi[b], vr[b])
                else:
                    vm[s, b] = 0.0
                    va[s, b] = 0.0
            iters[s] = it
            conv[s] = ok and err <= tol

    @njit(parallel=True, cache=True, fastmath=False, boundscheck=False)
    def power_summation(
        p, q, order, parent, has_parent, energized, zr, zx, vsrc, tol, max_iter, vm_out, va, iters, conv
    ):  # pragma: no cover - compiled
        # the DistFlow recursion of sopjax.kernels.sweep_batch (iteration="power"), per sample:
        # branch losses from the previous iterate, subtree sums of p + r l, path sums of the drops
        n_s, n = p.shape
        for s in prange(n_s):
            vm = np.empty(n)  # the iterate is (|V|, a, b), as in sopjax
            a = np.zeros(n)  # receiving-end flows of the branch above each bus
            b = np.zeros(n)
            w = np.empty(n)
            na = np.empty(n)
            nb = np.empty(n)
            loss = np.zeros(n)
            for k in range(n):
                vm[k] = vsrc[k]
            it = 0
            err = np.inf
            ok = True
            while ok and err > tol and it < max_iter:
                for k in range(n):
                    branch = has_parent[k] and energized[k]
                    loss[k] = (a[k] * a[k] + b[k] * b[k]) / (vm[k] * vm[k]) if branch else 0.0
                    na[k] = p[s, k] + zr[k] * loss[k] if energized[k] else 0.0
                    nb[k] = q[s, k] + zx[k] * loss[k] if energized[k] else 0.0
                for j in range(n - 1, -1, -1):  # subtree sums: sending-end flows
                    k = order[j]
                    if has_parent[k] and energized[k]:
                        na[parent[k]] += na[k]
                        nb[parent[k]] += nb[k]
                e = 0.0
                healthy = True
                for j in range(n):  # v = v_parent - 2 (r P + x Q)_sending + |z|^2 l
                    k = order[j]
                    if has_parent[k] and energized[k]:
                        nv = w[parent[k]] - 2.0 * (zr[k] * na[k] + zx[k] * nb[k]) + (
                            zr[k] * zr[k] + zx[k] * zx[k]
                        ) * loss[k]
                    else:
                        nv = vsrc[k] * vsrc[k]
                    w[k] = nv
                    nvm = math.sqrt(nv) if nv >= 0.0 else np.nan
                    if not (nvm > _COLLAPSE_PU) or not math.isfinite(nvm):
                        healthy = False
                    else:
                        m = abs(nvm - vm[k])
                        if m > e:
                            e = m
                it += 1
                if healthy:  # commit (the sopjax kernel keeps the last healthy iterate)
                    for k in range(n):
                        branch = has_parent[k] and energized[k]
                        vm[k] = math.sqrt(w[k])
                        a[k] = na[k] - zr[k] * loss[k] if branch else 0.0
                        b[k] = nb[k] - zx[k] * loss[k] if branch else 0.0
                    err = e
                else:
                    ok = False
                    err = np.inf
            # angles: V = V_parent - z conj(S_send / V_parent), in preorder
            for j in range(n):
                k = order[j]
                if energized[k]:
                    vm_out[s, k] = vm[k]
                    if has_parent[k]:
                        i = parent[k]
                        lk = (a[k] * a[k] + b[k] * b[k]) / (vm[k] * vm[k])
                        ps = a[k] + zr[k] * lk
                        qs = b[k] + zx[k] * lk
                        d = math.atan2(zr[k] * qs - zx[k] * ps, vm[i] * vm[i] - zr[k] * ps - zx[k] * qs)
                        va[s, k] = va[s, i] + (d if math.isfinite(d) else 0.0)
                    else:
                        va[s, k] = 0.0
                else:
                    vm_out[s, k] = 0.0
                    va[s, k] = 0.0
            iters[s] = it
            conv[s] = ok and err <= tol

    _KERNEL = ({"current": sweep, "power": power_summation}, numba)
    return _KERNEL


def fused_inputs(net: Network, topo: Topology, grid) -> dict:
    """The tree arrays the fused kernel needs (numpy, contiguous)."""
    return {
        "order": np.ascontiguousarray(topo.preorder, dtype=np.int64),
        "parent": np.ascontiguousarray(topo.parent, dtype=np.int64),
        "has_parent": np.ascontiguousarray(topo.has_parent, dtype=np.bool_),
        "energized": np.ascontiguousarray(topo.energized, dtype=np.bool_),
        "zr": np.ascontiguousarray(grid.r_up, dtype=np.float64),
        "zx": np.ascontiguousarray(grid.x_up, dtype=np.float64),
        "vsrc": np.ascontiguousarray(np.asarray(grid.v_source, dtype=np.float64)[np.asarray(topo.root)]),
    }


class Prepared:
    """A baseline set up for timing: ``run()`` solves every sample once (the timed
    part), ``finish(times)`` packs the last run's outputs and the timings."""

    def __init__(self, run, finish, setup_s: float):
        self.run, self._finish, self.setup_s = run, finish, setup_s

    def finish(self, times: list[float]) -> BaselineResult:
        return self._finish(times)


def prepare_fused(
    net: Network,
    topo: Topology,
    grid,
    p_pu: np.ndarray,
    q_pu: np.ndarray,
    *,
    tol: float = 1e-8,
    max_iter: int = 100,
    iteration: str = "power",
) -> Prepared:
    """Set up the fused numba sweep; the kernel compiles here (cached on disk by numba).

    ``iteration`` picks the algorithm, as in :func:`sopjax.kernels.sweep_batch.sweep_batch`:
    ``"power"`` (DistFlow recursion) or ``"current"`` (current-injection sweep).
    """
    kernels, numba = _compile_kernel()
    sweep = kernels[iteration]
    arrs = fused_inputs(net, topo, grid)
    p = np.ascontiguousarray(p_pu, dtype=np.float64)
    q = np.ascontiguousarray(q_pu, dtype=np.float64)
    n_s, n = p.shape
    vm = np.empty((n_s, n))
    va = np.empty((n_s, n))
    iters = np.empty(n_s, dtype=np.int64)
    conv = np.empty(n_s, dtype=np.bool_)

    def call(pp, qq, a, b, c, d):
        sweep(
            pp,
            qq,
            arrs["order"],
            arrs["parent"],
            arrs["has_parent"],
            arrs["energized"],
            arrs["zr"],
            arrs["zx"],
            arrs["vsrc"],
            float(tol),
            int(max_iter),
            a,
            b,
            c,
            d,
        )

    t0 = time.perf_counter()
    call(p[:2], q[:2], vm[:2], va[:2], iters[:2], conv[:2])  # compile / load from cache
    compile_s = time.perf_counter() - t0

    def finish(times):
        return BaselineResult(
            vm_pu=vm,
            seconds=float(np.median(times)),
            samples=n_s,
            iterations=iters,
            converged=conv,
            info={
                "threads": int(numba.get_num_threads()),
                "compile_s": compile_s,
                "times_s": list(times),
                "va_rad": va,
            },
        )

    return Prepared(lambda: call(p, q, vm, va, iters, conv), finish, compile_s)


def _timed(prep: Prepared, repeats: int) -> BaselineResult:
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        prep.run()
        times.append(time.perf_counter() - t0)
    return prep.finish(times)


def fused_reference(
    net: Network,
    topo: Topology,
    grid,
    p_pu: np.ndarray,
    q_pu: np.ndarray,
    *,
    tol: float = 1e-8,
    max_iter: int = 100,
    repeats: int = 3,
    iteration: str = "power",
) -> BaselineResult:
    """Solve all samples with the fused numba sweep; time = median of ``repeats`` runs.

    The first call compiles (cached on disk by numba); it is excluded from the timing.

    Args:
        net, topo, grid: the network, its topology and :func:`sopjax.make_grid` output.
        p_pu, q_pu: net load per sample and bus (p.u.), (sample, bus).
        tol, max_iter: stopping rule, as in the sopjax kernel.
        repeats: timed runs.
        iteration: ``"power"`` (DistFlow recursion) or ``"current"`` (current-injection sweep).
    """
    prep = prepare_fused(net, topo, grid, p_pu, q_pu, tol=tol, max_iter=max_iter, iteration=iteration)
    return _timed(prep, repeats)


# --------------------------------------------------------------------------
# power-grid-model
# --------------------------------------------------------------------------


def build_pgm_input(net: Network, status: np.ndarray | None = None, source_sk_va: float = 1e15):
    """power-grid-model input arrays of ``net`` and the ids of its loads.

    Nodes carry the Network's bus order (id = 0-based bus index); lines have
    ``r1``/``x1`` in ohm, ``c1 = tan1 = 0``; one constant-power ``sym_load`` per
    bus (id ``n_bus + bus``); the source at the slack has ``u_ref = v_slack_pu``
    and a very large short-circuit power ``source_sk_va`` so that its internal
    impedance is negligible (PGM's default of 1e10 VA would shift voltages by ~1e-4 pu).

    Returns:
        (input_data dict, load_ids array (bus,)).
    """
    from power_grid_model import ComponentType, DatasetType, LoadGenType, initialize_array

    nb, nl = net.n_bus, net.n_branch
    kv = np.asarray(net.base_kv, dtype=float)
    closed = np.asarray(net.in_service if status is None else status, dtype=bool)
    node = initialize_array(DatasetType.input, ComponentType.node, nb)
    node["id"] = np.arange(nb)
    node["u_rated"] = kv * 1e3
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    zbase = kv[f] ** 2 / net.base_mva
    line = initialize_array(DatasetType.input, ComponentType.line, nl)
    line["id"] = 2 * nb + 1 + np.arange(nl)
    line["from_node"] = f
    line["to_node"] = t
    line["from_status"] = closed.astype(np.int8)
    line["to_status"] = closed.astype(np.int8)
    line["r1"] = np.asarray(net.r_pu, float) * zbase
    line["x1"] = np.asarray(net.x_pu, float) * zbase
    line["c1"] = 0.0
    line["tan1"] = 0.0
    line["i_n"] = 1e6
    load = initialize_array(DatasetType.input, ComponentType.sym_load, nb)
    load["id"] = nb + np.arange(nb)
    load["node"] = np.arange(nb)
    load["status"] = 1
    load["type"] = LoadGenType.const_power
    load["p_specified"] = np.asarray(net.p_load_pu, float) * net.base_mva * 1e6
    load["q_specified"] = np.asarray(net.q_load_pu, float) * net.base_mva * 1e6
    source = initialize_array(DatasetType.input, ComponentType.source, 1)
    source["id"] = 2 * nb + 1 + nl
    source["node"] = net.slack_bus
    source["status"] = 1
    source["u_ref"] = float(net.v_slack_pu)
    source["u_ref_angle"] = 0.0
    source["sk"] = source_sk_va
    data = {
        ComponentType.node: node,
        ComponentType.line: line,
        ComponentType.sym_load: load,
        ComponentType.source: source,
    }
    return data, load["id"].copy()


def prepare_pgm(
    net: Network,
    p_pu: np.ndarray,
    q_pu: np.ndarray,
    *,
    status: np.ndarray | None = None,
    method: str = "newton_raphson",
    tol: float = 1e-8,
    max_iter: int = 100,
    threads: int = 0,
) -> Prepared:
    """Build the power-grid-model model and the batch update (not timed)."""
    import os

    from power_grid_model import (
        CalculationMethod,
        ComponentType,
        DatasetType,
        PowerGridModel,
        initialize_array,
    )

    t0 = time.perf_counter()
    data, load_ids = build_pgm_input(net, status)
    model = PowerGridModel(data, system_frequency=50.0)
    n_s, nb = p_pu.shape
    upd = initialize_array(DatasetType.update, ComponentType.sym_load, (n_s, nb))
    upd["id"] = load_ids[None, :]
    upd["status"] = 1
    upd["p_specified"] = np.asarray(p_pu, float) * net.base_mva * 1e6
    upd["q_specified"] = np.asarray(q_pu, float) * net.base_mva * 1e6
    setup_s = time.perf_counter() - t0
    calc = getattr(CalculationMethod, method)
    out = {}

    def run():
        out["r"] = model.calculate_power_flow(
            update_data={ComponentType.sym_load: upd},
            calculation_method=calc,
            error_tolerance=tol,
            max_iterations=max_iter,
            threading=threads,
            output_component_types={ComponentType.node},
        )

    def finish(times):
        node = out["r"][ComponentType.node]
        return BaselineResult(
            vm_pu=np.where(node["energized"] == 1, node["u_pu"], 0.0),
            seconds=float(np.median(times)),
            samples=n_s,
            info={
                "method": method,
                "threads": os.cpu_count() if threads == 0 else threads,
                "setup_s": setup_s,
                "times_s": list(times),
                "va_rad": np.where(node["energized"] == 1, node["u_angle"], 0.0),
            },
        )

    return Prepared(run, finish, setup_s)


def power_grid_model_batch(
    net: Network,
    p_pu: np.ndarray,
    q_pu: np.ndarray,
    *,
    status: np.ndarray | None = None,
    method: str = "newton_raphson",
    tol: float = 1e-8,
    max_iter: int = 100,
    threads: int = 0,
    repeats: int = 1,
) -> BaselineResult:
    """One power-grid-model batch calculation over all samples (median of ``repeats``).

    The model is built once (setup not timed); the timed call applies the batch
    update of every ``sym_load`` and writes only node outputs.

    Args:
        net: the network. status: closed flag per branch.
        p_pu, q_pu: net load per sample and bus (p.u.), (sample, bus).
        method: ``"newton_raphson"`` or ``"iterative_current"``.
        tol: PGM ``error_tolerance`` (largest voltage change, p.u.).
        max_iter: PGM ``max_iterations``.
        threads: PGM ``threading`` (0 = all hardware threads, -1 = sequential).
        repeats: timed runs.
    """
    prep = prepare_pgm(
        net, p_pu, q_pu, status=status, method=method, tol=tol, max_iter=max_iter, threads=threads
    )
    return _timed(prep, repeats)


# --------------------------------------------------------------------------
# pandapower loop
# --------------------------------------------------------------------------


def pandapower_loop(
    net: Network,
    p_pu: np.ndarray,
    q_pu: np.ndarray,
    *,
    status: np.ndarray | None = None,
    tolerance_mva: float = 1e-8,
    max_iteration: int = 100,
    numba: bool = True,
) -> BaselineResult:
    """pandapower ``runpp`` (Newton-Raphson) once per sample, in a Python loop.

    Only the sample loop is timed (building the net and a first warm-up call, in
    which pandapower's numba functions compile, are not); each call updates
    ``net.load.p_mw`` / ``q_mvar`` and runs ``runpp`` from a flat start.
    ``numba=True`` is pandapower's fast path.
    """
    import pandapower as pp

    from sopjax.io.pandapower_export import to_pandapower

    pnet = to_pandapower(net, status)
    bus_ids = np.asarray(net.bus_ids)
    # one load per bus (zero where the nominal load is zero) so that every sample maps 1:1
    pnet.load.drop(pnet.load.index, inplace=True)
    pp.create_loads(pnet, bus_ids, p_mw=0.0, q_mvar=0.0)
    pos = np.asarray([pnet.bus.index.get_loc(b) for b in bus_ids])
    n_s, nb = p_pu.shape
    vm = np.full((n_s, nb), np.nan)
    va = np.full((n_s, nb), np.nan)
    conv = np.zeros(n_s, dtype=bool)
    kwargs = dict(
        algorithm="nr",
        tolerance_mva=tolerance_mva,
        max_iteration=max_iteration,
        calculate_voltage_angles=True,
        init="flat",
        numba=numba,
    )
    t0 = time.perf_counter()
    pp.runpp(pnet, **kwargs)  # warm-up: pandapower's numba functions compile on the first call
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in range(n_s):
        pnet.load["p_mw"] = p_pu[s] * net.base_mva
        pnet.load["q_mvar"] = q_pu[s] * net.base_mva
        try:
            pp.runpp(pnet, **kwargs)
            conv[s] = True
        except pp.LoadflowNotConverged:
            continue
        res = pnet.res_bus
        vm[s] = np.nan_to_num(res["vm_pu"].to_numpy()[pos], nan=0.0)
        va[s] = np.radians(np.nan_to_num(res["va_degree"].to_numpy()[pos], nan=0.0))
    seconds = time.perf_counter() - t0
    return BaselineResult(
        vm_pu=vm, seconds=seconds, samples=n_s, converged=conv, info={"va_rad": va, "warmup_s": warmup_s}
    )
