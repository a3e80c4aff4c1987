"""Batched evaluation of allocation plans: dispatch, exact power flow and indices in one jitted call.

For a population of plans (per-VSC SOP capacities, capacitor steps) over the ``T`` periods of
the planning day, one call runs

1. **SOP set-points**: the JAX-native convex dispatch (:func:`sopjax.kernels.dispatch.dispatch_batched`,
   SOC DistFlow, minimum line + converter losses, voltage limits) for every plan x period. It is
   the dispatch rule because it is the operating policy seed 001's stage 2 optimizes (loss
   minimization under voltage limits), it takes the per-plan capacities as inputs (no recompile
   per plan), and its implicit derivatives give the robustness gradients. A plan with no module
   at a site has that SOP at capacity ~0 (``CAPACITY_FLOOR_PU``).
2. **Capacitor schedule** (documented simple rule): every installed step is connected in the
   periods whose load factor is at least ``cb_on_threshold`` of the day's peak and disconnected
   otherwise, i.e. two switching operations per step and day. Stage 2
   (:mod:`sopjax.problems.allocation.operation`) optimizes the schedule with a MILP instead.
3. **Exact power flow**: the batched backward/forward sweep (:func:`sopjax.powerflow.batched_solver`)
   at the dispatched set-points gives voltages, flows, losses and the substation import.
4. **Indices** (:mod:`sopjax.kernels.indices`): voltage offset, SOP utilization, line VCPI.

Uncertainty enters as normalized deviations ``delta`` (one row per plan) of the PV output and the
load: ``pv_t = pv_forecast_t * (1 + delta @ pv_map)``, ``load_t = load_t * (1 + delta @ load_map)``;
``pv_map`` / ``load_map`` hold the reference deviations (e.g. 0.2 = 20 % for ``delta`` = 1). The SOPs
are re-dispatched at every deviation (the operator re-optimizes; capacitor steps stay scheduled).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.devices import add_sops
from sopjax.errors import ConfigError
from sopjax.kernels.dispatch import (
    CAPACITY_FLOOR_PU, DispatchInputs, compile_dispatch, dispatch_batched, dispatch_solution, setpoint_tangents,
)
from sopjax.kernels.dispatch.solve import dispatch_state_batch
from sopjax.kernels.indices import OFFSET_NORMS, line_vcpi, sop_utilization_index, voltage_offset_index
from sopjax.kernels.injections import pv_net_load
from sopjax.network import Network
from sopjax.powerflow import batched_solver, make_grid
from sopjax.problems.allocation.encoding import AllocationSpace
from sopjax.topology import compile_topology

__all__ = ["OperatingDay", "EvalSettings", "AllocationModel", "Operation", "make_model", "cb_schedule"]


@dataclasses.dataclass(frozen=True)
class OperatingDay:
    """The planning day (forecast values, per unit).

    Attributes:
        p_load_pu, q_load_pu: bus load per period, (period, bus).
        p_pv_pu: PV forecast per period, (period, pv).
    """

    p_load_pu: np.ndarray
    q_load_pu: np.ndarray
    p_pv_pu: np.ndarray

    @property
    def periods(self) -> int:
        return int(self.p_load_pu.shape[0])


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """Evaluation options.

    Attributes:
        v_min_pu, v_max_pu: operating voltage limits of the dispatch (p.u.).
        sop_loss: converter loss coefficient A of every VSC.
        cb_on_threshold: load factor (of the day's peak) from which capacitor steps are on.
        offset_norm: voltage-offset reading (:data:`sopjax.kernels.indices.OFFSET_NORMS`).
        dispatch_tol: interior-point tolerance (1e-7: every plan of the IEEE 33 study converges;
            1e-9 leaves a few at the iteration limit with no gain in the losses beyond 1e-5 kW).
        dispatch_max_iter: interior-point iteration limit.
        gradient: how the GA's first-order robustness gets d(offset, utilization)/d(delta):
            ``"jvp"`` (exact: one interior-point solve per plan and period, then the
            set-points' implicit derivatives in every parameter direction from one KKT
            matrix per problem, :func:`~sopjax.kernels.dispatch.setpoint_tangents`, and
            forward mode through the sweep) or ``"fd"`` (forward differences of step
            ``fd_step`` in one stacked batch of the evaluation: ``1 + param`` solves).
        fd_step: forward-difference step in normalized deviation units.
    """

    v_min_pu: float = 0.95
    v_max_pu: float = 1.05
    sop_loss: float = 0.02
    cb_on_threshold: float = 0.7
    offset_norm: str = "mean_abs"
    dispatch_tol: float = 1e-7
    dispatch_max_iter: int = 150
    gradient: str = "jvp"
    fd_step: float = 0.05

    def __post_init__(self):
        if self.gradient not in ("jvp", "fd"):
            raise ConfigError(f"operation.gradient must be 'jvp' or 'fd', got {self.gradient!r}")
        if not self.fd_step > 0:
            raise ConfigError(f"operation.fd_step must be > 0, got {self.fd_step}")
        if not 0 < self.v_min_pu < self.v_max_pu:
            raise ConfigError(f"operation.v_min_pu / v_max_pu must satisfy 0 < v_min < v_max, "
                              f"got {self.v_min_pu}, {self.v_max_pu}")
        if not 0 <= self.sop_loss < 1:
            raise ConfigError(f"allocation.sop.loss must lie in [0, 1), got {self.sop_loss}")
        if not 0 <= self.cb_on_threshold <= 1:
            raise ConfigError(f"allocation.capacitors.on_threshold must lie in [0, 1], got {self.cb_on_threshold}")
        if self.offset_norm not in OFFSET_NORMS:
            raise ConfigError(f"indices.offset_norm must be one of {', '.join(OFFSET_NORMS)}, got {self.offset_norm!r}")


class Operation(NamedTuple):
    """Operation of plans over the day (numpy or JAX arrays), powers in p.u.

    Attributes:
        vm_pu: bus voltages, (plan, period, bus).
        p_i, q_i, p_j, q_j: SOP injections into bus i / j, (plan, period, sop).
        converter_loss: converter losses per SOP, (plan, period, sop).
        line_loss: line losses of the exact power flow, (plan, period).
        p_import: substation active import, (plan, period).
        vcpi_max: largest line VCPI, (plan, period).
        offset: voltage-offset index, (plan,).
        utilization: SOP utilization index (fraction), (plan,).
        converged: dispatch and power flow converged, (plan, period).
    """

    vm_pu: jax.Array
    p_i: jax.Array
    q_i: jax.Array
    p_j: jax.Array
    q_j: jax.Array
    converter_loss: jax.Array
    line_loss: jax.Array
    p_import: jax.Array
    vcpi_max: jax.Array
    offset: jax.Array
    utilization: jax.Array
    converged: jax.Array


def cb_schedule(load_factor: np.ndarray, threshold: float) -> tuple[np.ndarray, int]:
    """Capacitor on/off per period by the load-factor rule and the switching operations per step and day.

    Args:
        load_factor: total load per period over its peak, (period,).
        threshold: on when ``load_factor >= threshold``.

    Returns:
        ``(on (period,) float 0/1, operations per step per day)`` (transitions of the cyclic day).
    """
    on = (np.asarray(load_factor) >= threshold - 1e-12).astype(float)
    ops = int(np.sum(on != np.roll(on, 1)))
    return on, ops


@dataclasses.dataclass(frozen=True, eq=False)
class AllocationModel:
    """Everything the batched evaluation needs (numpy; built once by :func:`make_model`).

    Attributes:
        net: the network with one SOP per candidate site (unit capacity) and the PV units.
        space: the decision space.
        day: the planning day.
        settings: evaluation options.
        cb_on: capacitor on/off per period, (period,).
        cb_ops_per_step: switching operations per installed step and day.
        pv_map, load_map: deviation maps, (param, pv) and (param,).
        param_names: names of the uncertain parameters, (param,).
    """

    net: Network
    space: AllocationSpace
    day: OperatingDay
    settings: EvalSettings
    cb_on: np.ndarray
    cb_ops_per_step: int
    pv_map: np.ndarray
    load_map: np.ndarray
    param_names: tuple[str, ...]
    _cache: dict = dataclasses.field(default_factory=dict, repr=False)

    def __getstate__(self):  # jitted kernels are rebuilt after unpickling (checkpoints)
        return {f.name: (getattr(self, f.name) if f.name != "_cache" else {}) for f in dataclasses.fields(self)}

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)

    @property
    def kva_per_pu(self) -> float:
        return 1e3 * self.net.base_mva

    def cb_q_pu(self, cb_units: np.ndarray, cb_steps: np.ndarray | None = None) -> np.ndarray:
        """Capacitor injection per bus and period of plans (p.u.), (plan, period, bus).

        ``cb_steps`` (plan, period, cb), connected steps per period (e.g. a stage-2 schedule,
        :mod:`sopjax.problems.allocation.operation`), replaces the on/off rule when given.
        """
        cb_units = np.atleast_2d(cb_units)
        steps = cb_units[:, None, :] * self.cb_on[None, :, None] if cb_steps is None else np.asarray(cb_steps, float)
        to_bus = np.zeros((self.space.n_cb, self.net.n_bus))
        for c, b in enumerate(self.space.cb_buses):
            to_bus[c, self.net.bus_index(b)] += self.space.cb_unit_kvar / self.kva_per_pu
        return steps @ to_bus

    # ------------------------------------------------------------ jitted kernels
    def _kernels(self):
        if "k" not in self._cache:
            self._cache["k"] = _build_kernels(self)
        return self._cache["k"]

    def _batched(self, kernel: str, *arrays):
        """Run a jitted kernel on fixed-size batches (padded with the last plan) so that every
        population, front and case list reuses one compiled program per ``batch_size``."""
        n = arrays[0].shape[0]
        b = self._cache.get("batch_size") or n
        pad = (-n) % b
        arrays = [np.concatenate([a, np.repeat(a[-1:], pad, 0)]) if pad else a for a in arrays]
        outs = [self._kernels()[kernel](*(jnp.asarray(a[i : i + b]) for a in arrays)) for i in range(0, n + pad, b)]
        out = jax.tree_util.tree_map(lambda *xs: np.concatenate([np.asarray(x) for x in xs])[:n], *outs)
        return out

    def set_batch_size(self, n: int | None) -> None:
        """Evaluate in batches of ``n`` plans (the population size; None: the call's own size)."""
        self._cache["batch_size"] = None if n is None else int(n)

    def operate(self, sop_kva, cb_units, delta=None, cb_steps=None) -> Operation:
        """Operation of plans (re-dispatched at ``delta``; default the forecast), numpy arrays.

        ``cb_steps`` (plan, period, cb): capacitor steps per period instead of the on/off rule.
        """
        caps, cbq = self._device_inputs(sop_kva, cb_units, cb_steps)
        d = np.zeros((caps.shape[0], len(self.param_names))) if delta is None else np.asarray(delta, float)
        return self._batched("full", np.asarray(caps), np.asarray(cbq), d)

    def operate_with_jacobian(self, sop_kva, cb_units, cb_steps=None):
        """Operation at the forecast and d(offset, utilization)/d(delta) at ``delta = 0``.

        ``cb_steps`` (plan, period, cb): capacitor steps per period instead of the on/off rule.

        Returns:
            ``(Operation, jac (plan, 2, param))``: rows offset, utilization.
        """
        caps, cbq = self._device_inputs(sop_kva, cb_units, cb_steps)
        zero = np.zeros((caps.shape[0], len(self.param_names)))
        return self._batched("lin", np.asarray(caps), np.asarray(cbq), zero)

    def index_fun(self, sop_kva, cb_units):
        """``delta (plan, param) -> (offset, utilization) (plan, 2)`` with full re-dispatch (traceable)."""
        caps, cbq = self._device_inputs(sop_kva, cb_units)
        full = self._kernels()["full_raw"]

        def fun(delta):
            op = full(caps, cbq, delta)
            return jnp.stack([op.offset, op.utilization], -1)
        return fun

    def index_jac_fun(self, sop_kva, cb_units):
        """``delta -> ((offset, utilization) (plan, 2), Jacobian (plan, 2, param))`` (traceable).

        The derivatives of ``settings.gradient``: for ``"jvp"`` one KKT matrix per problem
        serves every parameter direction (a ``jax.jvp`` per direction of :meth:`index_fun`
        builds it per direction, and its program compiled for minutes on IEEE 33).
        """
        caps, cbq = self._device_inputs(sop_kva, cb_units)
        lin = self._kernels()["lin_raw"]

        def fun(delta):
            op, jac = lin(caps, cbq, delta)
            return jnp.stack([op.offset, op.utilization], -1), jac
        return fun

    def _device_inputs(self, sop_kva, cb_units, cb_steps=None):
        sop_kva = np.atleast_2d(np.asarray(sop_kva, float))
        caps = np.maximum(sop_kva / self.kva_per_pu, CAPACITY_FLOOR_PU)
        return jnp.asarray(caps), jnp.asarray(self.cb_q_pu(cb_units, cb_steps))


def _build_kernels(model: AllocationModel) -> dict:
    net, s = model.net, model.settings
    data = compile_dispatch(net, v_min_pu=s.v_min_pu, v_max_pu=s.v_max_pu)
    topo = compile_topology(net, np.asarray(net.in_service, bool))
    grid = make_grid(net, topo)
    solver = batched_solver("sweep", tol=1e-9, max_iter=100, layout="vmap")
    f_bus = np.asarray(net.f_bus)
    t_bus = np.asarray(net.t_bus)
    r, x = np.asarray(net.r_pu), np.asarray(net.x_pu)
    bi, bj = np.asarray(net.sop.bus_i), np.asarray(net.sop.bus_j)
    pv_bus, pv_pf = np.asarray(net.pv.bus), np.asarray(net.pv.pf, float)
    pl0, ql0 = jnp.asarray(model.day.p_load_pu), jnp.asarray(model.day.q_load_pu)
    pv0 = jnp.asarray(model.day.p_pv_pu)
    pv_map, load_map = jnp.asarray(model.pv_map), jnp.asarray(model.load_map)
    n_bus, slack = net.n_bus, net.slack_bus
    bus_mask = np.ones(n_bus)
    bus_mask[slack] = 0.0
    nt = model.day.periods

    def inputs(caps, cbq, delta):
        lm = 1.0 + delta @ load_map  # (plan,)
        pm = 1.0 + delta @ pv_map  # (plan, pv)
        n = caps.shape[0]
        pl = pl0[None] * lm[:, None, None]
        ql = ql0[None] * lm[:, None, None] - cbq
        pv = pv0[None] * pm[:, None, :]
        c = jnp.broadcast_to(caps[:, None, :], (n, nt, caps.shape[1]))
        return DispatchInputs(pl, ql, pv, c, c)

    def exact(inp, res, caps):
        """Exact sweep at the dispatched set-points and the indices."""
        n = caps.shape[0]
        flat = lambda a: a.reshape(n * nt, *a.shape[2:])  # noqa: E731
        pvp, pvq = jax.vmap(lambda p: pv_net_load(pv_bus, pv_pf, p, n_bus))(flat(inp.p_pv_pu))
        p_sop = jnp.zeros((n * nt, n_bus)).at[:, bi].add(-flat(res.p_i)).at[:, bj].add(-flat(res.p_j))
        q_sop = jnp.zeros((n * nt, n_bus)).at[:, bi].add(-flat(res.q_i)).at[:, bj].add(-flat(res.q_j))
        p = flat(inp.p_load_pu) + pvp + p_sop
        q = flat(inp.q_load_pu) + pvq + q_sop
        pf = solver(topo, grid, f_bus, p, q)
        unflat = lambda a: a.reshape(n, nt, *a.shape[1:])  # noqa: E731
        vm = unflat(pf.vm_pu)
        vcpi = unflat(line_vcpi(pf.p_from_pu, pf.q_from_pu, pf.i_pu, pf.vm_pu, f_bus, t_bus, r, x))
        return Operation(
            vm_pu=vm, p_i=res.p_i, q_i=res.q_i, p_j=res.p_j, q_j=res.q_j, converter_loss=res.converter_loss,
            line_loss=unflat(pf.losses_pu), p_import=unflat(pf.p_source_pu[:, slack]),
            vcpi_max=jnp.max(vcpi, -1),
            offset=voltage_offset_index(vm, norm=s.offset_norm, bus_mask=bus_mask),
            utilization=sop_utilization_index(res.p_i, res.q_i, res.p_j, res.q_j,
                                              jnp.where(caps > 2 * CAPACITY_FLOOR_PU, caps, 0.0)),
            converged=res.converged & unflat(pf.converged),
        )

    def full_raw(caps, cbq, delta):
        inp = inputs(caps, cbq, delta)
        res = dispatch_batched(data, inp, tol=s.dispatch_tol, max_iter=s.dispatch_max_iter)
        return exact(inp, res, caps)

    def lin(caps, cbq, delta):
        """Operation at ``delta`` and the Jacobian of (offset, utilization) there (one IPM solve)."""
        n, n_u = caps.shape[0], load_map.shape[0]
        inp0 = inputs(caps, cbq, delta)
        flat = lambda a: a.reshape(n * nt, a.shape[-1])  # noqa: E731
        unflat = lambda a: a.reshape(n, nt, *a.shape[1:])  # noqa: E731
        fl0 = jax.tree_util.tree_map(flat, inp0)
        state = dispatch_state_batch(data, fl0, tol=s.dispatch_tol, max_iter=s.dispatch_max_iter)
        res = jax.tree_util.tree_map(unflat, jax.vmap(lambda i, st: dispatch_solution(data, i, st))(fl0, state))
        # input tangents per parameter (inputs are affine in delta), (sample, param, ...)
        eye = jnp.broadcast_to(jnp.eye(n_u, dtype=caps.dtype)[:, None, :], (n_u, n, n_u))
        d_inp = jax.vmap(lambda t: jax.jvp(lambda d: inputs(caps, cbq, d), (delta,), (t,))[1])(eye)
        d_flat = jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, 2).reshape(n * nt, n_u, a.shape[-1]), d_inp)
        d_set = setpoint_tangents(data, fl0, state, d_flat)
        d_set = [jnp.moveaxis(unflat(a), 2, 0) for a in d_set]  # (param, plan, period, sop)

        def indices(inp, pq):
            op = exact(inp, res._replace(p_i=pq[0], q_i=pq[1], p_j=pq[2], q_j=pq[3]), caps)
            return jnp.stack([op.offset, op.utilization], -1), op

        pq0 = (res.p_i, res.q_i, res.p_j, res.q_j)
        _, cols, op = jax.vmap(lambda di, dpq: jax.jvp(indices, (inp0, pq0), (di, dpq), has_aux=True),
                               out_axes=(None, 0, None))(d_inp, tuple(d_set))
        return op, jnp.moveaxis(cols, 0, -1)

    def lin_fd(caps, cbq, delta):
        """Operation at ``delta`` and forward differences of (offset, utilization) (one stacked batch)."""
        n, n_u = caps.shape[0], load_map.shape[0]
        h = s.fd_step
        steps = jnp.concatenate([jnp.zeros((1, n_u)), h * jnp.eye(n_u)])  # (1 + param, param)
        rep = lambda a: jnp.tile(a, (n_u + 1,) + (1,) * (a.ndim - 1))  # noqa: E731
        op = full_raw(rep(caps), rep(cbq), rep(delta) + jnp.repeat(steps, n, axis=0))
        f = jnp.stack([op.offset, op.utilization], -1).reshape(n_u + 1, n, 2)
        jac = jnp.moveaxis((f[1:] - f[0]) / h, 0, -1)  # (plan, 2, param)
        return jax.tree_util.tree_map(lambda a: a[:n], op), jac

    lin_raw = lin if s.gradient == "jvp" else lin_fd
    return {"full": jax.jit(full_raw), "full_raw": full_raw, "lin": jax.jit(lin_raw), "lin_raw": lin_raw}


def make_model(net: Network, space: AllocationSpace, day: OperatingDay, *, settings: EvalSettings = EvalSettings(),
               pv_deviation: float = 0.2, load_deviation: float = 0.1, per_site_pv: bool = False,
               cb_max_switching: int | None = None) -> AllocationModel:
    """Validate the day against ``net`` and prepare the batched evaluation.

    Args:
        net: the network with its PV units (SOPs are added here at the candidate sites).
        space: the decision space (:func:`sopjax.problems.allocation.make_space`).
        day: the planning day (forecast).
        settings: evaluation options.
        pv_deviation, load_deviation: reference deviations for ``delta = 1`` (fractions, > 0).
        per_site_pv: one uncertain parameter per PV unit (else one for all PV), plus one for the load.
        cb_max_switching: daily switching limit per step (seed 001 eq. 28); None: no limit.

    Raises:
        ConfigError: shapes that do not match the network, non-positive deviations, a capacitor
            rule that exceeds the switching limit.
    """
    nb, npv = net.n_bus, net.pv.count
    for name, a, n in (("p_load_pu", day.p_load_pu, nb), ("q_load_pu", day.q_load_pu, nb), ("p_pv_pu", day.p_pv_pu, npv)):
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[1] != n or a.shape[0] != day.periods or not np.all(np.isfinite(a)):
            raise ConfigError(f"planning day {name} must be finite with shape ({day.periods}, {n}), got {a.shape}")
    for name, v in (("robustness.pv_deviation", pv_deviation), ("robustness.load_deviation", load_deviation)):
        if not np.isfinite(v) or v <= 0:
            raise ConfigError(f"{name} must be a positive number, got {v}")
    net = add_sops(net, pairs=list(space.sop_pairs), s_rated_kva=space.module_kva, loss=settings.sop_loss)
    lf = np.sum(day.p_load_pu, 1) / np.max(np.sum(day.p_load_pu, 1))
    on, ops = cb_schedule(lf, settings.cb_on_threshold)
    if cb_max_switching is not None and space.n_cb and ops > cb_max_switching:
        raise ConfigError(f"allocation.capacitors.max_switching ({cb_max_switching}) is below the "
                          f"{ops} operations per day of the on_threshold rule")
    if npv and per_site_pv:
        pv_map = np.vstack([np.eye(npv) * pv_deviation, np.zeros((1, npv))])
        names = tuple(f"pv_{net.bus_ids[int(b)]}" for b in net.pv.bus) + ("load",)
    else:
        pv_map = np.vstack([np.full((1, npv), pv_deviation), np.zeros((1, npv))])
        names = ("pv", "load")
    load_map = np.zeros(pv_map.shape[0])
    load_map[-1] = load_deviation
    return AllocationModel(net=net, space=space, day=day, settings=settings, cb_on=on, cb_ops_per_step=ops,
                           pv_map=pv_map, load_map=load_map, param_names=names)
