"""Power flow at the Python boundary: validate, compile, run the batched kernels.

``solve`` runs one case (or a batch of load samples) and returns numpy arrays;
``batched_solver`` returns the jitted, vmapped kernel for repeated calls on one
topology (Monte Carlo, benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.branch_model import refer, with_capacitor_steps
from sopjax.errors import SopjaxError
from sopjax.kernels.radial import Grid, PowerFlowResult, VfCoupling, lindistflow, sweep_power_flow
from sopjax.kernels.sweep_batch import ITERATIONS, sweep_batch
from sopjax.network import Network
from sopjax.topology import Topology, compile_topology

__all__ = [
    "METHODS", "LAYOUTS", "make_grid", "batched_solver", "sample_mesh", "shard_samples", "solve", "check_loads",
    "resolve_tol",
]

METHODS: dict[str, Callable] = {"sweep": sweep_power_flow, "lindistflow": lindistflow}


def make_grid(net: Network, topo: Topology, v_source_pu: np.ndarray | None = None) -> Grid:
    """Upstream impedances of ``topo`` and source voltages (default: the slack set-point everywhere).

    Shunts and transformer ratios are referred to the sources (:func:`sopjax.branch_model.refer`);
    their fields stay ``None`` for a network without them, so its kernels compile as before.
    """
    ref = refer(net, topo)
    v = np.full(net.n_bus, float(net.v_slack_pu)) if v_source_pu is None else np.asarray(v_source_pu, float)
    return Grid(
        r_up=ref.r_up, x_up=ref.x_up, v_source=v, g_sh=ref.g_sh, b_sh=ref.b_sh, v_scale=ref.v_scale,
        va_shift=ref.va_shift,
    )


def _dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise SopjaxError(f"dtype must be float32 or float64, got {dtype}")
    return dt


def resolve_tol(tol: float | None, dtype) -> float:
    """The sweep tolerance for ``dtype``: ``None`` gives 1e-8 in float64, 1e-6 in float32.

    A tolerance below about 8 ulps of 1 p.u. cannot be met reliably (the update
    stalls at rounding level and the sweep runs to ``max_iter``), so it is refused.
    """
    dt = _dtype(dtype)
    if tol is None:
        return 1e-8 if dt == np.float64 else 1e-6
    if not tol > 0:
        raise SopjaxError(f"tol must be positive, got {tol}")
    floor = 8 * float(np.finfo(dt).eps)
    if not tol >= floor:
        raise SopjaxError(
            f"tol {tol:g} is below what {dt.name} resolves near 1 p.u. (about {floor:.1g}); "
            f"use tol >= {floor:.1g} or float64"
        )
    return float(tol)


LAYOUTS = ("auto", "vmap", "bus_major")


def _has_vf(vf) -> bool:
    return vf is not None and np.shape(vf.vf_bus)[0] > 0


def batched_solver(
    method: str = "sweep",
    *,
    tol: float = 1e-8,
    max_iter: int = 100,
    chunk_size: int | None = None,
    layout: str = "auto",
    iteration: str = "power",
) -> Callable[..., PowerFlowResult]:
    """A jitted solver ``f(topo, grid, f_bus, p, q, vf=None)`` over a leading sample axis of p, q.

    Two layouts (each sample's result independent of the others in its batch):

    * ``"vmap"``: ``jax.vmap`` of the per-sample kernel (sample-major,
      current-injection sweep).
    * ``"bus_major"``: :func:`sopjax.kernels.sweep_batch.sweep_batch`, blocks of
      samples stored ``[bus, sample]`` so that every tree step is a vector
      operation over samples (several times faster on a CPU; see
      ``docs/benchmarks.md``). Sweep only; Vf-mode SOP couplings with
      ``iteration="power"`` only. With ``iteration="current"`` it computes the
      per-sample kernel's iteration (same ``iterations`` and ``converged``, values
      equal to rounding). When JAX has several local devices (e.g.
      ``jax.config.update("jax_num_cpu_devices", 2)`` before the first
      computation), the samples are split across them.

    ``"auto"`` picks ``"bus_major"`` for the sweep (with Vf couplings only under
    ``iteration="power"``), else ``"vmap"``.

    Args:
        method: ``"sweep"`` (exact) or ``"lindistflow"``.
        tol, max_iter: sweep convergence settings.
        chunk_size: samples per vectorised chunk; chunks run in sequence
            (``lax.map``) so that the working set stays cache-sized. ``None``: one
            chunk for ``"vmap"``, a size chosen from the bus count for ``"bus_major"``.
        layout: ``"auto"``, ``"vmap"`` or ``"bus_major"``.
        iteration: bus-major iteration, ``"power"`` (default: DistFlow recursion, 6
            sweeps on IEEE 33 at 1e-8 against 8, and faster per sample on both benchmark
            feeders) or ``"current"`` (the per-sample kernel's current-injection sweep,
            same ``iterations`` as ``"vmap"``); see :mod:`sopjax.kernels.sweep_batch`.
    """
    if method not in METHODS:
        raise SopjaxError(f"unknown power-flow method {method!r}; choose from {sorted(METHODS)}")
    if not (tol > 0):
        raise SopjaxError(f"tol must be positive, got {tol}")
    if int(max_iter) < 1:
        raise SopjaxError(f"max_iter must be >= 1, got {max_iter}")
    if layout not in LAYOUTS:
        raise SopjaxError(f"unknown layout {layout!r}; choose from {list(LAYOUTS)}")
    if layout == "bus_major" and method != "sweep":
        raise SopjaxError("layout 'bus_major' exists for method 'sweep' only")
    if chunk_size is not None and int(chunk_size) < 1:
        raise SopjaxError(f"chunk_size must be >= 1, got {chunk_size}")
    if iteration not in ITERATIONS:
        raise SopjaxError(f"unknown iteration {iteration!r}; choose from {sorted(ITERATIONS)}")
    kernel = METHODS[method]
    if method == "sweep":
        kernel = partial(kernel, tol=tol, max_iter=int(max_iter))

    @jax.jit
    def run_vmap(topo, grid, f_bus, p, q, vf=None):
        one = lambda pq: kernel(topo, grid, f_bus, pq[0], pq[1], vf)  # noqa: E731
        if chunk_size is None or p.shape[0] <= chunk_size:
            return jax.vmap(one)((p, q))
        return jax.lax.map(one, (p, q), batch_size=chunk_size)

    @jax.jit
    def run_bus_major(topo, grid, f_bus, p, q, vf=None):
        def solve_block(topo, grid, f_bus, p, q, vf):
            return sweep_batch(
                topo, grid, f_bus, p, q, tol=tol, max_iter=int(max_iter), block=chunk_size, iteration=iteration,
                vf=vf,
            )  # fmt: skip

        devices = jax.local_devices()
        n_dev = len(devices)
        if n_dev == 1 or p.shape[0] < 2 * n_dev:
            return solve_block(topo, grid, f_bus, p, q, vf)
        from jax.sharding import PartitionSpec

        n_s = p.shape[0]
        pad = (-n_s) % n_dev
        p = jnp.pad(p, ((0, pad), (0, 0)))
        q = jnp.pad(q, ((0, pad), (0, 0)))
        mesh = sample_mesh()
        spec = PartitionSpec("sample")
        rep = PartitionSpec()
        sharded = jax.shard_map(
            solve_block, mesh=mesh, in_specs=(rep, rep, rep, spec, spec, rep), out_specs=spec, check_vma=False
        )
        res = sharded(topo, grid, f_bus, p, q, vf)
        return jax.tree_util.tree_map(lambda a: a[:n_s], res)

    use_bus_major = method == "sweep" and layout != "vmap"
    couples_vf = iteration == "power"  # the bus-major current-injection sweep has no Vf coupling

    def run(topo, grid, f_bus, p, q, vf=None):
        if use_bus_major and (couples_vf or not _has_vf(vf)) and np.shape(p)[0] > 0:
            return run_bus_major(topo, grid, f_bus, p, q, vf if _has_vf(vf) else None)
        if layout == "bus_major" and np.shape(p)[0] > 0:
            raise SopjaxError(
                "layout 'bus_major' with iteration 'current' does not handle Vf-mode SOP couplings; "
                "use iteration 'power', or layout 'vmap' or 'auto'"
            )
        return run_vmap(topo, grid, f_bus, p, q, vf)

    # compiled-program count, as on a jitted function (tests check it does not grow)
    run._cache_size = lambda: run_bus_major._cache_size() + run_vmap._cache_size()
    return run


def sample_mesh(n_devices: int | None = None):
    """A one-axis ``("sample",)`` mesh over the first ``n_devices`` local JAX devices (default: all)."""
    from jax.sharding import Mesh

    devices = jax.local_devices()
    return Mesh(np.asarray(devices[: n_devices or len(devices)]), ("sample",))


def shard_samples(a):
    """Place ``a`` (sample, ...) on the local JAX devices, split along the sample axis.

    The bus-major solver of :func:`batched_solver` splits the samples across the
    devices; loads already placed this way are used where they are, without the
    copy that splitting an array held by one device costs (about 10 % of a solve
    on IEEE 33). Returned unchanged with one device, or when the sample count does
    not divide evenly.
    """
    n_dev = len(jax.local_devices())
    if n_dev == 1 or np.shape(a)[0] % n_dev:
        return jnp.asarray(a)
    from jax.sharding import NamedSharding, PartitionSpec

    return jax.device_put(a, NamedSharding(sample_mesh(), PartitionSpec("sample")))


def pv_setpoint_net_load(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Net load (p, q) per bus of the PV units at their set-points; zeros without set-points, (bus,)."""
    p = np.zeros(net.n_bus)
    q = np.zeros(net.n_bus)
    if net.pv.p_set_pu is None or net.pv.count == 0:
        return p, q
    p_pv = np.asarray(net.pv.p_set_pu, float)
    pf = np.asarray(net.pv.pf, float)
    np.add.at(p, np.asarray(net.pv.bus), -p_pv)
    np.add.at(q, np.asarray(net.pv.bus), -p_pv * np.sqrt(np.maximum(1 - pf**2, 0)) / pf)
    return p, q


def check_loads(net: Network, p: np.ndarray, q: np.ndarray) -> None:
    """Raise naming the first bus whose load is not finite, or on a shape mismatch."""
    for name, arr in (("p_load", p), ("q_load", q)):
        if arr.shape[-1] != net.n_bus:
            raise SopjaxError(f"{name} has {arr.shape[-1]} buses, the network has {net.n_bus}")
        bad = ~np.isfinite(arr)
        if bad.any():
            idx = np.argwhere(bad)[0]
            bus = net.bus_ids[idx[-1]]
            where = f" in sample {idx[0]}" if arr.ndim > 1 else ""
            raise SopjaxError(f"{name} is not finite at bus {bus}{where}: {arr[tuple(idx)]}")


def solve(
    net: Network,
    *,
    status: Sequence[bool] | None = None,
    open: Sequence[int] = (),
    close: Sequence[int] = (),
    load_scale: float = 1.0,
    p_load_pu: np.ndarray | None = None,
    q_load_pu: np.ndarray | None = None,
    sources: Sequence[int] = (),
    v_source_pu: np.ndarray | None = None,
    vf: VfCoupling | None = None,
    method: str = "sweep",
    dtype="float64",
    tol: float | None = None,
    max_iter: int = 100,
    capacitors=None,
) -> tuple[PowerFlowResult, Topology]:
    """Run a power flow on ``net`` (one sample, or a batch if loads carry a leading axis).

    Args:
        net: the network.
        status: closed flag per branch; default the case statuses changed by ``open``/``close``.
        open, close: 1-based case branch numbers to open / close.
        load_scale: factor on the nominal loads (ignored when loads are given).
        p_load_pu, q_load_pu: net load (bus,) or (sample, bus); default nominal x ``load_scale``
            minus the PV units at their set-points (``net.pv.p_set_pu``, e.g. pandapower sgens).
        sources: extra source buses (0-based), e.g. Vf-mode SOP terminals.
        v_source_pu: voltage magnitude at each source, (bus,).
        vf: Vf-mode SOP coupling.
        method: ``"sweep"`` or ``"lindistflow"``.
        dtype: ``"float64"`` or ``"float32"``.
        tol, max_iter: sweep convergence settings; ``tol=None``: 1e-8 in float64,
            1e-6 in float32 (:func:`resolve_tol`).
        capacitors: connected steps of the capacitor banks, ``{bus_id: step}`` or one
            integer per bank; default the network's ``capacitor.step``. Each bank is a
            fixed susceptance ``step * q_unit`` at its bus (constant susceptance).

    Returns:
        (result as numpy arrays, topology).

    Raises:
        SopjaxError: unknown branch, non-radial topology, non-finite loads, bad settings,
            a capacitor step that is not an integer in [0, units] or names a bus without a bank.
    """
    dt = _dtype(dtype)
    tol = resolve_tol(tol, dt)
    if capacitors is not None:
        net = with_capacitor_steps(net, capacitors)
    if not np.isfinite(load_scale):
        raise SopjaxError(f"load_scale must be finite, got {load_scale}")
    if status is None:
        status = net.branch_status(open=open, close=close)
    topo = compile_topology(net, status, sources)
    p = np.asarray(net.p_load_pu) * load_scale if p_load_pu is None else np.asarray(p_load_pu, float)
    q = np.asarray(net.q_load_pu) * load_scale if q_load_pu is None else np.asarray(q_load_pu, float)
    if p_load_pu is None and q_load_pu is None:  # DG at its operating point, when the network has one
        p_pv, q_pv = pv_setpoint_net_load(net)
        p, q = p + p_pv, q + q_pv
    check_loads(net, p, q)
    single = p.ndim == 1
    p2, q2 = np.atleast_2d(p).astype(dt), np.atleast_2d(q).astype(dt)
    grid = make_grid(net, topo, v_source_pu)
    grid = jax.tree_util.tree_map(lambda a: np.asarray(a, dt), grid)
    run = batched_solver(method, tol=tol, max_iter=max_iter)
    res = run(topo, grid, np.asarray(net.f_bus), p2, q2, vf)
    res = jax.tree_util.tree_map(np.asarray, res)
    if single:
        res = jax.tree_util.tree_map(lambda a: a[0], res)
    return PowerFlowResult(*res), topo


def to_device(tree, dtype) -> object:
    """Cast the floating leaves of a pytree to ``dtype`` as JAX arrays."""
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, dtype) if np.issubdtype(np.asarray(a).dtype, np.floating) else jnp.asarray(a),
        tree,
    )
