"""JAX-native convex SOP dispatch: exact DistFlow plus a reduced-space interior-point method.

The problem (same as :mod:`sopjax.problems.dispatch.layer`, which states it in SOC form)
is the normal-operation SOP dispatch of one radial topology::

    min  sum_k r_k l_k + sum_s (L_i,s + L_j,s) + w * sum_b (v_b - 1)^2
    over the SOP set-points p_i, q_i, p_j, q_j (injections into the AC buses)
    s.t. exact DistFlow (branch flow model) on the tree
         |s_i| <= S_i, |s_j| <= S_j                  (capacity, per VSC)
         p_i + p_j + L_i + L_j = 0, L >= A |s|        (DC balance, converter loss)
         q_min <= q <= q_max                          (only where tighter than S)
         v_min^2 <= v <= v_max^2, |S_branch| <= rate  (grid limits)

with ``v = |V|^2``, ``l = |I|^2``, per unit. The solver works in the space of the
4 x sop set-points only: the branch-flow state is a function of them, computed
by the real DistFlow fixed point (:func:`distflow`) with dense subtree matrices
(for the feeders dispatch is used on, 33-119 buses, a ``(bus, bus)`` matrix
product is the fastest tree reduction on CPU and batches as one GEMM).

Algorithm (per sample, ``vmap`` over samples): a primal-dual interior-point
method with slacks and Mehrotra's centring (predictor for the centring
parameter, no second-order corrector). The capacity and DC-balance rows are kept
strictly feasible by backtracking (they are concave but strongly curved for
small capacities); the voltage and rating rows start infeasible and are reached
through their slacks. The KKT residuals are exact (one reverse-mode pass
through the DistFlow fixed point per iteration); the Newton matrix uses a
Gauss-Newton Hessian and the constant LinDistFlow sensitivities of ``P, Q, v`` to
the set-points (their weighted Gram matrix is one product with a constant table,
a single GEMM over the batch). Because the residuals are exact the iteration
converges to the exact KKT point; the model matrices only set the rate.
Typically 15-30 iterations; ``vmap`` runs a batch until its slowest sample stops.

Derivatives: implicit, at the solution ``(x*, z*)`` (:func:`dispatch_solution`).
The set-points and duals carry the implicit-function derivative of the perturbed
KKT conditions, solved once with the exact Hessian of the Lagrangian
(forward-over-reverse through the converged DistFlow) in a ``custom_jvp``; the
objective carries the envelope-theorem derivative ``dF*/dtheta = dL/dtheta`` at
fixed ``(x*, z*)``, which needs no linear solve. ``jax.grad``, ``jax.jacfwd``,
``jax.jacrev``, ``jit`` and ``vmap`` all work through them, with respect to loads,
PV outputs and capacities; under ``jit`` a gradient of the objective alone does not
build the KKT matrix. :mod:`sopjax.kernels.dispatch.batched` runs the same method on
a whole batch at once.

Failure is data: ``converged`` is False where the iteration stalls, e.g. because
no set-point satisfies the voltage limits; ``infeasibility`` carries the largest
constraint violation. The Python boundary (:mod:`sopjax.sweeps`,
:func:`sopjax.problems.dispatch.layer.solve_dispatch`) raises, naming the bus.

Non-smooth points: the converter loss ``A|s|`` has a kink at ``s = 0`` (an idle
VSC); ``|s|`` is rounded by a Huber function inside ``|s| < delta`` =
min(5e-5 p.u., 0.1 S), adding at most ``A * delta / 2`` of loss per idle VSC and
nothing elsewhere. Capacities below ``CAPACITY_FLOOR_PU`` (1e-5 p.u.) are raised
to it with a straight-through gradient; with both VSCs of an SOP at 0 the value
is not differentiable in each capacity separately, and the sum of the two
partials is the right derivative along the SOP's capacity. Where a capacity stops binding the value is C^1 (its dual goes to
0) while the set-points have a kink; the derivative returned there is one of
the one-sided ones. See docs/dispatch.md.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from sopjax.errors import SopjaxError
from sopjax.network import Network
from sopjax.topology import compile_topology

__all__ = [
    "CAPACITY_FLOOR_PU",
    "DispatchData",
    "concrete_value",
    "DispatchInputs",
    "DispatchResult",
    "DispatchInputError",
    "DispatchInfeasibleError",
    "compile_dispatch",
    "nominal_inputs",
    "check_inputs",
    "distflow",
    "dispatch_state",
    "dispatch_native",
    "dispatch_solution",
    "CAPACITY_FLOOR_PU",
]

# Capacities below this (p.u.) are raised to it: the capacity cone degenerates at 0.
CAPACITY_FLOOR_PU = 1e-5
# Huber rounding of the converter-loss norm |s| inside |s| < delta (p.u.): at most
# A * delta / 2 of extra loss per idle VSC, exact for |s| >= delta ...
LOSS_SMOOTHING_PU = 5e-5
# ... and at most this fraction of the VSC's capacity (see _smoothing).
LOSS_SMOOTHING_REL = 0.1


class DispatchInputError(SopjaxError):
    """Dispatch input is invalid (negative capacity, non-finite load, unknown parameter...)."""


class DispatchInfeasibleError(SopjaxError):
    """No SOP set-point satisfies the operating limits (voltage, rating) for an operating point."""


# ---------------------------------------------------------------------------
# problem data (host side, numpy): compiled once per network and topology
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DispatchData:
    """Everything the dispatch needs about one network + topology (pytree of arrays).

    "Kids" are the energized non-source buses in depth-first order; kid ``k``
    owns the branch to its parent (its *up-branch*), so branch quantities are
    indexed like kids.

    Attributes:
        kid_bus: bus index of each kid, (kid,).
        parent_kid: kid index of each kid's parent, ``kid`` (= n_kid) for the substation, (kid,).
        subtree: ``T[a, b] = 1`` if kid b is in the subtree of kid a, (kid, kid).
        r, x: up-branch resistance / reactance (p.u.), (kid,).
        v0_sq: squared substation voltage (p.u.^2), scalar.
        vmin_sq, vmax_sq: squared voltage limits at the kids, (kid,).
        rate_kid: kids whose up-branch has a finite rating, (rated,).
        rate: those ratings (p.u.), (rated,).
        sop_kid_i, sop_kid_j: kid index of each SOP terminal (n_kid at the substation), (sop,).
        loss_i, loss_j: converter loss coefficients A, (sop,).
        q_rel_max, q_rel_min: reactive limits relative to capacity, (sop, 2) [VSC i, VSC j].
        pv_kid: kid index of each PV unit (n_kid at the substation), (pv,).
        pv_tan: reactive / active power ratio of each PV unit, (pv,).
        voltage_weight: weight of the voltage-deviation penalty ``sum (v - 1)^2``, scalar.
        sel: bus -> kid selection, (kid, bus).
        inc_p, inc_q: net-load decrease at the kids per unit of x = [p_i; q_i; p_j; q_j],
            (kid, 4 sop) (active / reactive).
        inc_pv: PV unit -> kid incidence, (kid, pv).
        par: kid -> parent-kid selection, (kid, kid); src: 1 where the parent is the substation, (kid,).
        q_lim_rows: flat indices (VSC-major: i then j) of reactive limits tighter than capacity.
        n_bus, slack_bus: network size and substation index.
        bus_ids: case bus ids; branch_numbers: case branch number of each kid's up-branch.
        sop_labels: ``"SOP k (bus_i-bus_j)"`` per SOP.
        base_mva: system base (MVA).
    """

    kid_bus: Any
    parent_kid: Any
    subtree: Any
    r: Any
    x: Any
    v0_sq: Any
    vmin_sq: Any
    vmax_sq: Any
    rate_kid: Any
    rate: Any
    sop_kid_i: Any
    sop_kid_j: Any
    loss_i: Any
    loss_j: Any
    q_rel_max: Any
    q_rel_min: Any
    pv_kid: Any
    pv_tan: Any
    voltage_weight: Any
    sel: Any
    inc_p: Any
    inc_q: Any
    inc_pv: Any
    par: Any
    src: Any
    q_lim_rows: tuple[int, ...] = ()
    n_bus: int = 0
    slack_bus: int = 0
    bus_ids: tuple[int, ...] = ()
    branch_numbers: tuple[int, ...] = ()
    sop_labels: tuple[str, ...] = ()
    base_mva: float = 1.0

    @property
    def n_kid(self) -> int:
        return int(np.shape(self.kid_bus)[0])

    @property
    def n_sop(self) -> int:
        return int(np.shape(self.loss_i)[0])

    @property
    def n_pv(self) -> int:
        return int(np.shape(self.pv_tan)[0])

    def kid_label(self, k: int) -> str:
        return f"bus {self.bus_ids[int(np.asarray(self.kid_bus)[k])]}"


_DATA_FIELDS = [
    "kid_bus", "parent_kid", "subtree", "r", "x", "v0_sq", "vmin_sq", "vmax_sq", "rate_kid",
    "rate", "sop_kid_i", "sop_kid_j", "loss_i", "loss_j", "q_rel_max", "q_rel_min", "pv_kid",
    "pv_tan", "voltage_weight", "sel", "inc_p", "inc_q", "inc_pv", "par", "src",
]
jax.tree_util.register_dataclass(
    DispatchData,
    data_fields=_DATA_FIELDS,
    meta_fields=[f.name for f in dataclasses.fields(DispatchData) if f.name not in _DATA_FIELDS],
)


class DispatchInputs(NamedTuple):
    """Parameters of the dispatch (add leading batch axes for batches).

    Attributes:
        p_load_pu, q_load_pu: bus load, positive = consumption (p.u.), (..., bus).
        p_pv_pu: PV active output (p.u.), (..., pv); reactive follows the unit's power factor.
        s_rated_i_pu, s_rated_j_pu: capacity of VSC i / VSC j of each SOP (p.u.), (..., sop).
    """

    p_load_pu: Float[Array, "*batch bus"]
    q_load_pu: Float[Array, "*batch bus"]
    p_pv_pu: Float[Array, "*batch pv"]
    s_rated_i_pu: Float[Array, "*batch sop"]
    s_rated_j_pu: Float[Array, "*batch sop"]


class DispatchResult(NamedTuple):
    """Optimal dispatch of one sample (leading axes when batched). Powers in p.u.

    Attributes:
        p_i, q_i, p_j, q_j: SOP injections into buses i / j (positive = into the grid), (sop,).
        converter_loss: ``L_i + L_j`` per SOP, (sop,).
        line_loss: total line losses ``sum r l``, scalar.
        objective: line + converter losses + voltage penalty, scalar.
        vm_pu: bus voltage magnitudes, (bus,).
        cap_dual_i, cap_dual_j: multipliers of the capacity constraints, (sop,):
            ``d objective / d S = -cap_dual`` (envelope theorem).
        converged: the solver met its tolerances (JAX path; always True from cvxpy).
        iterations: solver iterations.
        infeasibility: largest constraint violation at the returned point (p.u.).
    """

    p_i: Float[Array, "*batch sop"]
    q_i: Float[Array, "*batch sop"]
    p_j: Float[Array, "*batch sop"]
    q_j: Float[Array, "*batch sop"]
    converter_loss: Float[Array, "*batch sop"]
    line_loss: Float[Array, "*batch"]
    objective: Float[Array, "*batch"]
    vm_pu: Float[Array, "*batch bus"]
    cap_dual_i: Float[Array, "*batch sop"]
    cap_dual_j: Float[Array, "*batch sop"]
    converged: Bool[Array, "*batch"]
    iterations: Int[Array, "*batch"]
    infeasibility: Float[Array, "*batch"]

    @property
    def losses(self):
        """Line plus converter losses (p.u.), (*batch,)."""
        return self.line_loss + jnp.sum(self.converter_loss, axis=-1)

    @property
    def vmin_pu(self):
        """Lowest bus voltage (p.u.), (*batch,)."""
        return jnp.min(self.vm_pu, axis=-1)


def _limit(name: str, value, default: np.ndarray) -> np.ndarray:
    if value is None:
        return np.asarray(default, float)
    arr = np.broadcast_to(np.asarray(value, float), default.shape)
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise DispatchInputError(f"{name} must be a positive finite voltage, got {value!r}")
    return arr


def compile_dispatch(
    net: Network,
    status: Sequence[bool] | np.ndarray | None = None,
    *,
    open: Sequence[int] = (),
    close: Sequence[int] = (),
    v_min_pu: float | Sequence[float] | None = None,
    v_max_pu: float | Sequence[float] | None = None,
    voltage_weight: float = 0.0,
) -> DispatchData:
    """Compile the dispatch data of ``net`` for one switch configuration.

    Args:
        net: network with SOPs (:func:`sopjax.add_sops`) and optionally PV.
        status: closed flag per branch; default the case's statuses changed by ``open``/``close``.
        open, close: 1-based branch numbers to open / close.
        v_min_pu, v_max_pu: voltage limits (scalar or per bus); default the network's.
        voltage_weight: weight ``w`` of the penalty ``w * sum_b (v_b - 1)^2`` (``v = |V|^2``), >= 0.

    Returns:
        :class:`DispatchData` (numpy leaves).

    Raises:
        DispatchInputError: no SOPs, a de-energized bus, bad limits or weight.
        TopologyError: the configuration is not radial (names the loop's branches).
    """
    if net.sop.count == 0:
        raise DispatchInputError(
            f"network {net.name!r} has no SOPs to dispatch; add them with sopjax.add_sops(net, pairs=[...])"
        )
    if not np.isfinite(voltage_weight) or voltage_weight < 0:
        raise DispatchInputError(f"voltage_weight must be a finite number >= 0, got {voltage_weight}")
    if status is None:
        status = net.branch_status(open=open, close=close)
    topo = compile_topology(net, status)
    energized = np.asarray(topo.energized)
    if not energized.all():
        b = int(np.flatnonzero(~energized)[0])
        raise DispatchInputError(
            f"bus {net.bus_ids[b]} is not fed by the substation in this switch configuration; "
            "dispatch needs every bus energized (close a tie or use the restoration solver)"
        )
    nb = net.n_bus
    pre = np.asarray(topo.preorder)
    has_parent = np.asarray(topo.has_parent)
    kids = np.asarray([b for b in pre if has_parent[b]], dtype=np.int32)
    nk = len(kids)
    pos = np.full(nb, nk, dtype=np.int32)  # bus -> kid index (nk for the substation)
    pos[kids] = np.arange(nk, dtype=np.int32)
    parent = np.asarray(topo.parent)
    parent_kid = pos[parent[kids]]
    T = np.zeros((nk, nk))
    for k in range(nk):
        a = k
        while a < nk:
            T[a, k] = 1.0
            a = parent_kid[a]
    up = np.asarray(topo.up_branch)[kids]
    r = np.asarray(net.r_pu, float)[up]
    x = np.asarray(net.x_pu, float)[up]
    vmin = _limit("v_min_pu", v_min_pu, np.asarray(net.v_min_pu, float))
    vmax = _limit("v_max_pu", v_max_pu, np.asarray(net.v_max_pu, float))
    bad = np.flatnonzero(vmin > vmax)
    if bad.size:
        raise DispatchInputError(f"v_min_pu > v_max_pu at bus {net.bus_ids[bad[0]]}")
    v0 = float(net.v_slack_pu)
    if not (vmin[net.slack_bus] - 1e-12 <= v0 <= vmax[net.slack_bus] + 1e-12):
        vmin[net.slack_bus] = min(vmin[net.slack_bus], v0)
        vmax[net.slack_bus] = max(vmax[net.slack_bus], v0)
    rate = np.asarray(net.rate_pu, float)[up]
    rated = np.flatnonzero(np.isfinite(rate)).astype(np.int32)
    s = net.sop
    s_i = np.asarray(s.s_rated_i_pu, float)
    s_j = np.asarray(s.s_rated_j_pu, float)

    def rel(q, cap):
        q = np.asarray(q, float)
        return np.where(cap > 0, q / np.where(cap > 0, cap, 1.0), np.sign(q) * np.inf)

    q_rel_max = np.stack([rel(s.q_max_i_pu, s_i), rel(s.q_max_j_pu, s_j)], axis=1)
    q_rel_min = np.stack([rel(s.q_min_i_pu, s_i), rel(s.q_min_j_pu, s_j)], axis=1)
    # only reactive limits tighter than the capacity are constraints of their own
    # (a redundant limit would be active together with the capacity: degenerate KKT)
    rows = []
    n_sop = s.count
    for side in range(2):
        for k in range(n_sop):
            if q_rel_max[k, side] < 1 - 1e-9 or q_rel_min[k, side] > -1 + 1e-9:
                rows.append(side * n_sop + k)
    labels = tuple(
        f"SOP {k} ({net.bus_ids[int(s.bus_i[k])]}-{net.bus_ids[int(s.bus_j[k])]})" for k in range(n_sop)
    )
    pv_pf = np.asarray(net.pv.pf, float)

    def incidence(kid_index):
        kid_index = np.asarray(kid_index)
        M = np.zeros((nk, kid_index.size))
        keep = np.flatnonzero(kid_index < nk)  # devices at the substation drop out
        M[kid_index[keep], keep] = 1.0
        return M

    Mi, Mj = incidence(pos[np.asarray(s.bus_i)]), incidence(pos[np.asarray(s.bus_j)])
    Z = np.zeros_like(Mi)
    sel = np.zeros((nk, nb))
    sel[np.arange(nk), kids] = 1.0
    par = np.zeros((nk, nk))
    has = np.flatnonzero(parent_kid < nk)
    par[has, parent_kid[has]] = 1.0
    return DispatchData(
        kid_bus=kids,
        parent_kid=parent_kid.astype(np.int32),
        subtree=T,
        r=r,
        x=x,
        v0_sq=np.float64(v0 * v0),
        vmin_sq=vmin[kids] ** 2,
        vmax_sq=vmax[kids] ** 2,
        rate_kid=rated,
        rate=rate[rated],
        sop_kid_i=pos[np.asarray(s.bus_i)],
        sop_kid_j=pos[np.asarray(s.bus_j)],
        loss_i=np.asarray(s.loss_i, float),
        loss_j=np.asarray(s.loss_j, float),
        q_rel_max=np.clip(q_rel_max, -1e3, 1e3),
        q_rel_min=np.clip(q_rel_min, -1e3, 1e3),
        pv_kid=pos[np.asarray(net.pv.bus)].astype(np.int32),
        pv_tan=np.sqrt(np.maximum(1 - pv_pf**2, 0.0)) / pv_pf,
        voltage_weight=np.float64(voltage_weight),
        sel=sel,
        inc_p=np.concatenate([Mi, Z, Mj, Z], axis=1),
        inc_q=np.concatenate([Z, Mi, Z, Mj], axis=1),
        inc_pv=incidence(pos[np.asarray(net.pv.bus)]),
        par=par,
        src=(parent_kid >= nk).astype(float),
        q_lim_rows=tuple(rows),
        n_bus=nb,
        slack_bus=int(net.slack_bus),
        bus_ids=tuple(net.bus_ids),
        branch_numbers=tuple(int(net.branch_numbers[k]) for k in up),
        sop_labels=labels,
        base_mva=float(net.base_mva),
    )


def nominal_inputs(net: Network, *, load_scale: float = 1.0, pv_scale: float = 1.0) -> DispatchInputs:
    """Inputs at the network's nominal load x ``load_scale``, PV at rating x ``pv_scale``, SOP capacities."""
    return DispatchInputs(
        p_load_pu=np.asarray(net.p_load_pu, float) * load_scale,
        q_load_pu=np.asarray(net.q_load_pu, float) * load_scale,
        p_pv_pu=np.asarray(net.pv.s_rated_pu, float) * np.asarray(net.pv.pf, float) * pv_scale,
        s_rated_i_pu=np.asarray(net.sop.s_rated_i_pu, float),
        s_rated_j_pu=np.asarray(net.sop.s_rated_j_pu, float),
    )


def concrete_value(x):
    """The concrete value of ``x`` (unwrapping autodiff tracers), or None under jit."""
    while isinstance(x, jax.core.Tracer):
        x = getattr(x, "primal", None)
        if x is None:
            return None
    return np.asarray(x)


def check_inputs(data: DispatchData, inputs: DispatchInputs) -> tuple[int, ...]:
    """Validate shapes and values at the Python boundary; return the batch shape.

    Values are checked when they are concrete (also under ``jax.grad``); under
    ``jit`` only shapes are checked.

    Raises:
        DispatchInputError: naming the parameter and the bus / SOP / PV unit at fault.
    """
    if not isinstance(inputs, DispatchInputs):
        raise DispatchInputError(f"inputs must be a DispatchInputs, got {type(inputs).__name__}")
    sizes = {
        "p_load_pu": (data.n_bus, "bus"),
        "q_load_pu": (data.n_bus, "bus"),
        "p_pv_pu": (data.n_pv, "PV unit"),
        "s_rated_i_pu": (data.n_sop, "SOP"),
        "s_rated_j_pu": (data.n_sop, "SOP"),
    }
    batch = None
    for name, (n, what) in sizes.items():
        arr = getattr(inputs, name)
        shape = tuple(np.shape(arr))
        if len(shape) == 0 or shape[-1] != n:
            raise DispatchInputError(
                f"{name} needs {n} values (one per {what}) in its last axis, got shape {shape}"
            )
        b = shape[:-1]
        if batch is None:
            batch = b
        elif b != batch:
            raise DispatchInputError(f"{name} has batch shape {b}, other inputs have {batch}")
        val = concrete_value(arr)
        if val is None:
            continue
        bad = np.argwhere(~np.isfinite(val))
        if bad.size:
            idx = tuple(bad[0])
            raise DispatchInputError(f"{name} is not finite at {_where(data, name, idx)}: {val[idx]}")
        if name.startswith("s_rated") or name == "p_pv_pu":
            bad = np.argwhere(val < 0)
            if bad.size:
                idx = tuple(bad[0])
                kind = "capacity" if name.startswith("s_rated") else "PV output"
                where = _where(data, name, idx)
                raise DispatchInputError(f"{name}: {kind} must be >= 0 at {where}, got {val[idx]}")
    return batch


def _where(data: DispatchData, name: str, idx: tuple) -> str:
    k = int(idx[-1])
    if name in ("p_load_pu", "q_load_pu"):
        what = f"bus {data.bus_ids[k]}"
    elif name == "p_pv_pu":
        what = f"PV unit {k}"
    else:
        what = data.sop_labels[k] + (" VSC i" if name.endswith("i_pu") else " VSC j")
    if len(idx) > 1:
        what += f" (sample {idx[:-1] if len(idx) > 2 else idx[0]})"
    return what


# ---------------------------------------------------------------------------
# exact DistFlow on the compiled tree (pure JAX, one sample)
# ---------------------------------------------------------------------------


class FlowState(NamedTuple):
    """Branch-flow state of one sample (kid-indexed, p.u.)."""

    P: Float[Array, " kid"]  # sending-end active flow on each kid's up-branch
    Q: Float[Array, " kid"]
    v: Float[Array, " kid"]  # |V|^2 at the kid
    v_par: Float[Array, " kid"]  # |V|^2 at the kid's parent
    l: Float[Array, " kid"]  # |I|^2 on the up-branch


def net_load(data: DispatchData, inputs: DispatchInputs, x: Float[Array, "4 sop"]):
    """Net load at the kids (consumption positive) for set-points ``x = (p_i, q_i, p_j, q_j)``.

    Written as products with constant incidence matrices (no scatters): cheaper
    to compile and to differentiate.
    """
    xf = jnp.reshape(x, (-1,))
    p = data.sel @ inputs.p_load_pu - data.inc_pv @ inputs.p_pv_pu - data.inc_p @ xf
    q = data.sel @ inputs.q_load_pu - data.inc_pv @ (inputs.p_pv_pu * data.pv_tan) - data.inc_q @ xf
    return p, q


def distflow_step(data: DispatchData, pn, qn, l) -> FlowState:
    """One DistFlow sweep: flows and voltages from ``l``, then the updated ``l``."""
    T = data.subtree
    P = T @ (pn + data.r * l)
    Q = T @ (qn + data.x * l)
    drop = 2.0 * (data.r * P + data.x * Q) - (data.r**2 + data.x**2) * l
    v = data.v0_sq - T.T @ drop
    v_par = data.par @ v + data.src * data.v0_sq
    l_new = (P * P + Q * Q) / v_par
    return FlowState(P, Q, v, v_par, l_new)


def distflow(data: DispatchData, pn, qn, l0=None, *, sweeps: int = 8) -> FlowState:
    """Exact DistFlow by ``sweeps`` fixed-point sweeps in ``l`` from ``l0`` (default 0).

    Unrolled (``lax.scan``) so that it is reverse-differentiable; from a warm start
    near the fixed point a few sweeps reach machine precision (the loss feedback
    contracts by roughly the per-unit voltage drop per sweep).
    """
    l = jnp.zeros_like(pn) if l0 is None else l0

    def body(l, _):
        return distflow_step(data, pn, qn, l).l, None

    l, _ = jax.lax.scan(body, l, None, length=sweeps)
    return distflow_step(data, pn, qn, l)


def bus_voltage(data: DispatchData, v_kid) -> Float[Array, " bus"]:
    """Bus voltage magnitudes (p.u.) from kid ``|V|^2``."""
    at_kid = jnp.sum(data.sel, axis=0)  # 1 at kid buses, 0 at the substation
    return (1.0 - at_kid) * jnp.sqrt(data.v0_sq) + data.sel.T @ jnp.sqrt(jnp.maximum(v_kid, 0.0))


# ---------------------------------------------------------------------------
# reduced-space primal-dual interior-point dispatch (pure JAX, one sample)
# ---------------------------------------------------------------------------
#
# Decision x (4*sop,) = [p_i; q_i; p_j; q_j] (injections into the AC buses).
# Constraints c(x) >= 0, stacked in this order (m rows):
#   cap   (2 sop)  (S^2 - |s|^2) / (2 S)                       VSC i then VSC j  } kept strictly
#   dc    (sop)    -(p_i + p_j) - A_i |s_i|_h - A_j |s_j|_h     (L_i + L_j >= A|s|) } feasible
#   qlim  (2 nq)   q_rel_max S - q,  q - q_rel_min S            (limits tighter than S)
#   vlo   (kid)    v - v_min^2
#   vhi   (kid)    v_max^2 - v
#   rate  (rated)  (rate^2 - P^2 - Q^2) / (2 rate)
# |s|_h is |s| with a Huber rounding inside |s| < delta (see LOSS_SMOOTHING_PU).
# All SOP rows are concave, so the feasible set in x is convex up to the
# exact-DistFlow voltage map. Objective (converter loss = -(p_i + p_j) at the DC balance):
# F(x) = sum r l - sum (p_i + p_j) + w sum (v - 1)^2.

# the start draws at most this fraction of the total active load per VSC (see _start)
START_DRAW_FRAC = 0.01
# centring target >= this x KKT residual (see dispatch_state)
_MU_RESIDUAL = 1e-3


class _Params(NamedTuple):
    """Per-sample parameters after flooring (what the kernel differentiates)."""

    p_load: Any
    q_load: Any
    p_pv: Any
    s_i: Any
    s_j: Any


def _params(inputs: DispatchInputs) -> _Params:
    return _Params(
        inputs.p_load_pu, inputs.q_load_pu, inputs.p_pv_pu,
        _floor_capacity(inputs.s_rated_i_pu), _floor_capacity(inputs.s_rated_j_pu),
    )


def _floor_capacity(s):
    """max(s, floor) with a straight-through gradient: the right derivative at s = 0."""
    return s + jax.lax.stop_gradient(jnp.maximum(s, CAPACITY_FLOOR_PU) - s)


def _injections(data: DispatchData, x):
    """(p_i, q_i, p_j, q_j) from x."""
    ns = data.n_sop
    return tuple(x[k * ns : (k + 1) * ns] for k in range(4))


def _smoothing(S):
    """Huber radius of each VSC: LOSS_SMOOTHING_PU, but at most LOSS_SMOOTHING_REL x its capacity.

    Tied to the capacity so that a VSC whose capacity is below the absolute radius
    (capacity 0 is floored to 1e-5 p.u.) still sees its true marginal loss ``A``
    (a fixed radius made tiny SOPs look almost lossless: the derivative at capacity
    0 was 4.7x the SOC model's). A constant (no gradient w.r.t. the capacity).
    """
    return jax.lax.stop_gradient(jnp.minimum(LOSS_SMOOTHING_PU, LOSS_SMOOTHING_REL * S))


def _huber_norm(p, q, d):
    """|(p, q)| for |s| >= d, |s|^2 / (2 d) + d / 2 inside (C^1, convex)."""
    r2 = p * p + q * q
    return jnp.where(r2 >= d * d, jnp.sqrt(jnp.maximum(r2, d * d)), r2 / (2 * d) + d / 2)


def _q_rows(data: DispatchData):
    rows = np.asarray(data.q_lim_rows, dtype=np.int32)
    side, k = np.divmod(rows, max(data.n_sop, 1))
    return rows, side, k


def _flow(data: DispatchData, th: _Params, x, l0, sweeps: int) -> FlowState:
    pi, qi, pj, qj = _injections(data, x)
    inp = DispatchInputs(th.p_load, th.q_load, th.p_pv, th.s_i, th.s_j)
    pn, qn = net_load(data, inp, jnp.stack([pi, qi, pj, qj]))
    return distflow(data, pn, qn, l0, sweeps=sweeps)


def _objective(data: DispatchData, x, fl: FlowState):
    pi, _, pj, _ = _injections(data, x)
    obj = jnp.sum(data.r * fl.l) - jnp.sum(pi + pj)
    return obj + data.voltage_weight * jnp.sum((fl.v - 1.0) ** 2)


def _sop_rows(data: DispatchData, th: _Params, x):
    """Capacity and DC-balance rows: analytic, concave, kept strictly feasible."""
    pi, qi, pj, qj = _injections(data, x)
    return jnp.concatenate(
        [
            (th.s_i**2 - pi**2 - qi**2) / (2 * th.s_i),
            (th.s_j**2 - pj**2 - qj**2) / (2 * th.s_j),
            -(pi + pj) - data.loss_i * _huber_norm(pi, qi, _smoothing(th.s_i))
            - data.loss_j * _huber_norm(pj, qj, _smoothing(th.s_j)),
        ]
    )


def _analytic_rows(data: DispatchData, th: _Params, x):
    """All rows that do not depend on the power flow (SOP rows, then reactive limits)."""
    parts = [_sop_rows(data, th, x)]
    rows, side, k = _q_rows(data)
    if rows.size:
        _, qi, _, qj = _injections(data, x)
        q = jnp.concatenate([qi, qj])[rows]
        S = jnp.concatenate([th.s_i, th.s_j])[rows]
        qmax = jnp.asarray(data.q_rel_max)[k, side]
        qmin = jnp.asarray(data.q_rel_min)[k, side]
        parts += [qmax * S - q, q - qmin * S]
    return jnp.concatenate(parts)


def _grid_rows(data: DispatchData, fl: FlowState):
    parts = [fl.v - data.vmin_sq, data.vmax_sq - fl.v]
    if np.shape(data.rate_kid)[0]:
        P, Q = fl.P[data.rate_kid], fl.Q[data.rate_kid]
        parts.append((data.rate**2 - P * P - Q * Q) / (2 * data.rate))
    return jnp.concatenate(parts)


def _constraints(data, th, x, fl):
    return jnp.concatenate([_analytic_rows(data, th, x), _grid_rows(data, fl)])


def _lagrangian(data, th, x, z, l0, sweeps):
    fl = _flow(data, th, x, l0, sweeps)
    F = _objective(data, x, fl)
    c = _constraints(data, th, x, fl)
    return F - jnp.dot(z, c), (F, c, fl)


class _Model(NamedTuple):
    """Constant LinDistFlow sensitivities to x (shared by every sample of a topology)."""

    Gv: Any  # (kid, nx): d v / d x
    O: Any  # (3 kid, nx * nx): outer products of the rows of [GP; GQ; Gv]
    GP: Any  # (kid, nx): d P / d x
    GQ: Any  # (kid, nx): d Q / d x


def _model(data: DispatchData, dtype) -> _Model:
    T = jnp.asarray(data.subtree, dtype)
    GP = -T @ data.inc_p
    GQ = -T @ data.inc_q
    Gv = -T.T @ (2 * data.r[:, None] * GP + 2 * data.x[:, None] * GQ)
    return _model_from(GP, GQ, Gv)


def _model_from(GP, GQ, Gv) -> _Model:
    G = jnp.concatenate([GP, GQ, Gv], axis=0)
    O = (G[:, :, None] * G[:, None, :]).reshape(G.shape[0], -1)
    return _Model(Gv, O, GP, GQ)


def _newton_system(data, th, x, z, s, fl, mdl: _Model):
    """Newton matrix ``H + J^T D J`` and the Jacobian pieces.

    The flow terms use a Gauss-Newton Hessian and the constant LinDistFlow
    sensitivities, so their contribution is one product of per-sample weights
    with the constant outer-product table ``O`` (a single GEMM over the batch).
    The analytic (SOP) rows are exact.

    Returns:
        ``(M, Ja, Jr)``: Newton matrix (nx, nx), analytic-row Jacobian (na, nx),
        rating-row Jacobian (rated, nx).
    """
    na, nk, nx = _n_analytic(data), data.n_kid, x.shape[0]
    D = z / s
    wl = 2 * data.r / fl.v_par
    wv = 2 * data.voltage_weight + D[na : na + nk] + D[na + nk : na + 2 * nk]
    M = (jnp.concatenate([wl, wl, wv]) @ mdl.O).reshape(nx, nx)
    Ja, Ha = _analytic_derivatives(data, th, x, z[:na])
    M = M + Ha + (Ja.T * D[:na]) @ Ja
    nr = int(np.shape(data.rate_kid)[0])
    if nr:
        rk = data.rate_kid
        P, Q = fl.P[rk], fl.Q[rk]
        Jr = -(P[:, None] * mdl.GP[rk] + Q[:, None] * mdl.GQ[rk]) / data.rate[:, None]
        zr = z[-nr:] / data.rate
        M = M + (mdl.GP[rk].T * zr) @ mdl.GP[rk] + (mdl.GQ[rk].T * zr) @ mdl.GQ[rk] + (Jr.T * D[-nr:]) @ Jr
    else:
        Jr = jnp.zeros((0, nx), x.dtype)
    return M, Ja, Jr


def _huber_derivatives(p, q, d):
    """Gradient (2, k) and Hessian (2, 2, k) of the Huber-rounded norm (radius d, (k,))."""
    r = jnp.sqrt(p * p + q * q)
    out = r >= d
    rs = jnp.where(out, r, 1.0)
    inv = jnp.where(out, 1.0 / rs, 1.0 / d)
    g = jnp.stack([p * inv, q * inv])
    c = jnp.where(out, 1.0 / rs**3, 0.0)
    H = jnp.stack([jnp.stack([inv - c * p * p, -c * p * q]), jnp.stack([-c * p * q, inv - c * q * q])])
    return g, H


def _analytic_derivatives(data: DispatchData, th: _Params, x, za):
    """Exact Jacobian (na, nx) of the analytic rows and ``-sum_r z_r Hess c_r`` (nx, nx).

    Written out (static scatter patterns) rather than autodiffed, to keep the
    compiled loop body small.
    """
    ns, nx = data.n_sop, x.shape[0]
    pi, qi, pj, qj = _injections(data, x)
    k = np.arange(ns)
    ci, cqi, cj, cqj = k, ns + k, 2 * ns + k, 3 * ns + k  # columns of p_i, q_i, p_j, q_j
    gi, Hi = _huber_derivatives(pi, qi, _smoothing(th.s_i))
    gj, Hj = _huber_derivatives(pj, qj, _smoothing(th.s_j))
    rows = [k, k, ns + k, ns + k, 2 * ns + k, 2 * ns + k, 2 * ns + k, 2 * ns + k]
    cols = [ci, cqi, cj, cqj, ci, cqi, cj, cqj]
    vals = [
        -pi / th.s_i, -qi / th.s_i, -pj / th.s_j, -qj / th.s_j,
        -1.0 - data.loss_i * gi[0], -data.loss_i * gi[1], -1.0 - data.loss_j * gj[0], -data.loss_j * gj[1],
    ]
    rq, side, kq = _q_rows(data)
    nq = rq.size
    if nq:
        qcol = (2 * side + 1) * ns + kq
        base = 3 * ns
        rows += [base + np.arange(nq), base + nq + np.arange(nq)]
        cols += [qcol, qcol]
        vals += [-jnp.ones((nq,), x.dtype), jnp.ones((nq,), x.dtype)]
    na = 3 * ns + 2 * nq
    Ja = jnp.zeros((na, nx), x.dtype)
    Ja = Ja.at[np.concatenate(rows), np.concatenate(cols)].set(jnp.concatenate(vals))
    # -sum z Hess(c): capacity rows are -|s|^2/(2S) (Hessian -I/S), DC rows -A * Huber norm
    zc_i, zc_j, zd = za[:ns], za[ns : 2 * ns], za[2 * ns : 3 * ns]
    fi, fj = zd * data.loss_i, zd * data.loss_j
    hr = [ci, cqi, ci, cqi, cj, cqj, cj, cqj]
    hc = [ci, cqi, cqi, ci, cj, cqj, cqj, cj]
    hv = [
        zc_i / th.s_i + fi * Hi[0, 0], zc_i / th.s_i + fi * Hi[1, 1], fi * Hi[0, 1], fi * Hi[1, 0],
        zc_j / th.s_j + fj * Hj[0, 0], zc_j / th.s_j + fj * Hj[1, 1], fj * Hj[0, 1], fj * Hj[1, 0],
    ]
    Ha = jnp.zeros((nx, nx), x.dtype).at[np.concatenate(hr), np.concatenate(hc)].add(jnp.concatenate(hv))
    return Ja, Ha


def _jmul(data, mdl, Ja, Jr, dx):
    gv = mdl.Gv @ dx
    return jnp.concatenate([Ja @ dx, gv, -gv, Jr @ dx])


def _jtmul(data, mdl, Ja, Jr, y):
    na, nk = _n_analytic(data), data.n_kid
    out = Ja.T @ y[:na] + mdl.Gv.T @ (y[na : na + nk] - y[na + nk : na + 2 * nk])
    return out + Jr.T @ y[na + 2 * nk :]


def _n_analytic(data: DispatchData) -> int:
    return 3 * data.n_sop + 2 * len(data.q_lim_rows)


def _max_step(v, dv):
    """Largest alpha in (0, 1] with v + alpha dv >= 0 (v > 0)."""
    ratio = jnp.where(dv < 0, -v / jnp.where(dv < 0, dv, -1.0), jnp.inf)
    return jnp.minimum(1.0, jnp.min(ratio))


class _State(NamedTuple):
    x: Any
    s: Any
    z: Any
    l: Any
    it: Any
    stop: Any  # converged or broken down
    conv: Any  # KKT tolerances met


def _start(data: DispatchData, th: _Params, dtype):
    """A strictly feasible point for the SOP rows: no reactive power, both VSCs draw ``kappa``.

    ``kappa = min(S_min / 2, START_DRAW_FRAC * total load)``: any ``0 < kappa < S_min``
    is strictly feasible for the capacity and DC-balance rows, and capping it by the
    load keeps large (non-binding) capacities from starting at a draw that collapses
    the feeder's voltages (a start at S_min / 2 = 2.5 MW per VSC diverged).
    """
    load = jnp.maximum(jnp.sum(jnp.abs(th.p_load)), 1e-3)
    kappa = jnp.minimum(0.5 * jnp.minimum(th.s_i, th.s_j), START_DRAW_FRAC * load)
    zero = jnp.zeros_like(kappa)
    return jnp.concatenate([-kappa, zero, -kappa, zero]).astype(dtype)


def dispatch_state(
    data: DispatchData,
    inputs: DispatchInputs,
    *,
    tol: float = 1e-9,
    max_iter: int = 150,
    sweeps: int = 3,
):
    """Run the interior-point method for one sample; no derivatives (see :func:`dispatch_native`).

    Returns:
        ``(x, z, s, l, iterations, converged, infeasibility)`` of the final iterate.
    """
    th = jax.tree_util.tree_map(jax.lax.stop_gradient, _params(inputs))
    dtype = jnp.result_type(th.p_load.dtype, jnp.float32)
    nx = 4 * data.n_sop
    mdl = _model(data, dtype)
    grad = jax.value_and_grad(_lagrangian, argnums=2, has_aux=True)

    x0 = _start(data, th, dtype)
    fl0 = _flow(data, th, x0, None, 8)
    c0 = _constraints(data, th, x0, fl0)
    nf = 3 * data.n_sop  # rows kept strictly feasible (s = c(x) > 0)
    s0 = jnp.maximum(c0, 1e-3).at[:nf].set(c0[:nf])
    z0 = 1e-3 / jnp.maximum(s0, 1e-3)
    m = c0.shape[0]
    shrink = jnp.asarray(0.5 ** np.arange(16), dtype)

    def solve_dir(Mchol, J, rd, c, s, z, comp):
        # (H + J^T D J) dx = -r_d + J^T (comp / s - D (c - s)),  comp = target - s z (per row)
        Ja, Jr = J
        D = z / s
        rhs = -rd + _jtmul(data, mdl, Ja, Jr, comp / s - D * (c - s))
        dx = jax.scipy.linalg.cho_solve(Mchol, rhs)
        ds = c - s + _jmul(data, mdl, Ja, Jr, dx)
        dz = comp / s - D * ds
        return dx, ds, dz

    def body(st: _State) -> _State:
        (_, (F, c, fl)), rd = grad(data, th, st.x, st.z, st.l, sweeps)
        s = st.s.at[:nf].set(c[:nf])
        M, Ja, Jr = _newton_system(data, th, st.x, st.z, s, fl, mdl)
        J = (Ja, Jr)
        M = 0.5 * (M + M.T) + (1e-12 * (1.0 + jnp.max(jnp.diag(M)))) * jnp.eye(nx, dtype=dtype)
        Mchol = jax.scipy.linalg.cho_factor(M, lower=True)
        mu = jnp.dot(s, st.z) / m
        # predictor (affine scaling)
        dxa, dsa, dza = solve_dir(Mchol, J, rd, c, s, st.z, -s * st.z)
        ap, ad = _max_step(s, dsa), _max_step(st.z, dza)
        mu_aff = jnp.dot(s + ap * dsa, st.z + ad * dza) / m
        sigma = jnp.clip((mu_aff / mu) ** 3, 0.0, 1.0)
        # corrector (Mehrotra's centring, without his second-order term, which made
        # iterates of nearly idle VSCs oscillate); the centring target is kept above a
        # fraction of the KKT residual
        # so that complementarity cannot vanish while the (model-Newton) residuals
        # are still large, which would freeze the iterate at the boundary
        e_d = jnp.max(jnp.abs(rd))
        e_p = jnp.max(jnp.abs(c - s))
        mu_target = jnp.maximum(sigma * mu, jnp.minimum(mu, _MU_RESIDUAL * jnp.maximum(e_d, e_p)))
        comp = mu_target - s * st.z
        dx, ds, dz = solve_dir(Mchol, J, rd, c, s, st.z, comp)
        tau = jnp.maximum(0.95, 1.0 - mu)
        ap = jnp.minimum(1.0, tau * _max_step(s, ds))
        ad = jnp.minimum(1.0, tau * _max_step(st.z, dz))
        # backtrack until the (nonlinear) SOP rows stay strictly feasible
        alphas = ap * shrink
        c_try = jax.vmap(lambda a: _sop_rows(data, th, st.x + a * dx))(alphas)
        ok = jnp.all(c_try >= (1.0 - tau) * c[:nf], axis=1)
        ap = jnp.where(jnp.any(ok), alphas[jnp.argmax(ok)], 0.0)
        conv = (e_d <= tol) & (e_p <= tol) & (mu <= tol) & jnp.isfinite(mu)
        new = _State(
            x=st.x + ap * dx,
            s=jnp.maximum(s + ap * ds, 1e-300),
            z=jnp.maximum(st.z + ad * dz, 1e-300),
            l=fl.l,
            it=st.it + 1,
            stop=conv,
            conv=conv,
        )
        healthy = jnp.all(jnp.isfinite(new.x)) & jnp.all(jnp.isfinite(new.z)) & jnp.all(jnp.isfinite(new.l))
        # keep the converged (or last healthy) iterate
        keep = conv | ~healthy
        old = st._replace(s=s, it=st.it + 1, stop=True, conv=conv)
        return jax.tree_util.tree_map(lambda a, b: jnp.where(keep, a, b), old, new)

    def cond(st):
        return (~st.stop) & (st.it < max_iter)

    init = _State(x0, s0, z0, fl0.l, jnp.int32(0), jnp.bool_(False), jnp.bool_(False))
    st = jax.lax.while_loop(cond, body, init)
    fl = _flow(data, th, st.x, st.l, 2 * sweeps)
    c = _constraints(data, th, st.x, fl)
    infeas = jnp.maximum(0.0, -jnp.min(c))
    s = st.s.at[:nf].set(c[:nf])
    return st.x, st.z, s, fl.l, st.it, st.conv, infeas


def dispatch_native(
    data: DispatchData,
    inputs: DispatchInputs,
    *,
    tol: float = 1e-9,
    max_iter: int = 150,
    sweeps: int = 3,
    final_sweeps: int = 6,
) -> DispatchResult:
    """Optimal SOP dispatch of one sample, differentiable w.r.t. all of ``inputs``.

    Pure JAX: ``jit`` it (``data`` may be a static closure or an argument) and
    ``vmap`` it over samples (:func:`sopjax.kernels.dispatch.batched.dispatch_batched`
    solves a whole batch faster). Derivatives are implicit (see the module docstring).

    Args:
        data: from :func:`compile_dispatch`.
        inputs: one sample (no batch axes; ``vmap`` for batches).
        tol: tolerance on the KKT residuals and the complementarity measure (p.u.).
        max_iter: interior-point iteration limit.
        sweeps: DistFlow sweeps per iteration (warm-started).
        final_sweeps: DistFlow sweeps at the solution for the exact derivatives.

    Returns:
        :class:`DispatchResult`; ``converged`` False flags a sample that did not
        meet ``tol`` (e.g. infeasible voltage limits), ``infeasibility`` its largest violation.
    """
    state = dispatch_state(data, inputs, tol=tol, max_iter=max_iter, sweeps=sweeps)
    return dispatch_solution(data, inputs, state, final_sweeps=final_sweeps)


def dispatch_solution(data: DispatchData, inputs: DispatchInputs, state, *, final_sweeps: int = 6) -> DispatchResult:
    """The :class:`DispatchResult` of one sample from the interior-point method's final ``state``.

    Values are those of the final iterate. Derivatives: the set-points and duals carry
    the implicit-function derivative of the KKT point (:func:`_kkt_point`); the
    objective carries the envelope-theorem derivative ``d objective / d theta = d
    Lagrangian / d theta`` at fixed ``(x*, z*)``, which equals it at a KKT point and
    needs no linear solve (a gradient of the objective alone costs one reverse pass).
    """
    x_s, z_s, s_s, l_s, it, converged, infeas = state
    x_s, z_s, s_s, l_s = (jax.lax.stop_gradient(a) for a in (x_s, z_s, s_s, l_s))
    th = _params(inputs)
    # a sample that did not converge keeps its last iterate and gets no derivative
    # (failure is data: no NaN in its outputs or gradients)
    ok = converged & jnp.all(s_s > 0)
    x, z = _kkt_point(final_sweeps, data, x_s, z_s, s_s, l_s, ok, th)
    fl = _flow(data, th, x, l_s, final_sweeps)
    pi, qi, pj, qj = _injections(data, x)
    ns = data.n_sop
    lag = _lagrangian(data, th, x_s, z_s, l_s, final_sweeps)[0]
    envelope = jnp.where(ok, lag - jax.lax.stop_gradient(lag), 0.0)
    return DispatchResult(
        p_i=pi, q_i=qi, p_j=pj, q_j=qj,
        converter_loss=-(pi + pj),
        line_loss=jnp.sum(data.r * fl.l),
        objective=jax.lax.stop_gradient(_objective(data, x_s, fl)) + envelope,
        vm_pu=bus_voltage(data, fl.v),
        cap_dual_i=z[:ns],
        cap_dual_j=z[ns : 2 * ns],
        converged=converged,
        iterations=it,
        infeasibility=infeas,
    )


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _kkt_point(final_sweeps: int, data: DispatchData, x_s, z_s, s_s, l_s, ok, th: _Params):
    """``(x*, z*)`` as a function of the parameters ``th``: the value is the solver's, the
    derivative the implicit-function one (the other arguments are constants)."""
    return x_s, z_s


@_kkt_point.defjvp
def _kkt_point_jvp(final_sweeps, primals, tangents):
    """Tangent of the KKT point: the implicit-function derivative of the perturbed KKT conditions.

    With ``H`` the exact Hessian of the Lagrangian (forward-over-reverse through the
    converged DistFlow), ``J`` the constraint Jacobian, ``z`` the multipliers and ``s``
    the slacks at the solution::

        [ H    -J^T ] [dx]   [-d(grad_x L)]
        [ Z J   S   ] [dz] = [-Z dc       ]

    solved as it stands. Condensing it to ``(H + J^T (Z/S) J) dx``, as the interior-point
    iteration does, multiplies the active rows by ``z / s`` up to 1e11 and gave
    set-point derivatives off by up to 6 % against central differences; this form
    agrees with them to ~1e-5 and keeps the right derivative at capacity 0 (where the
    SOP rows are degenerate). Only evaluated when a derivative of the set-points or
    duals is asked for (``jit`` drops it otherwise).
    """
    data, x_s, z_s, s_s, l_s, ok, th = primals
    dth = tangents[-1]
    lag_grad = jax.grad(_lagrangian, argnums=2, has_aux=True)

    def kkt_rows(th, x):
        g, (_, c, _) = lag_grad(data, th, x, z_s, l_s, final_sweeps)
        return g, c

    Hx, Jx = jax.jacfwd(lambda x: kkt_rows(th, x))(x_s)
    Hx = 0.5 * (Hx + Hx.T)
    nx, m = x_s.shape[0], z_s.shape[0]
    K = jnp.block([[Hx, -Jx.T], [z_s[:, None] * Jx, jnp.diag(s_s)]])
    K = jnp.where(ok & jnp.all(jnp.isfinite(K)), K, jnp.eye(nx + m, dtype=K.dtype))
    _, (dg, dc) = jax.jvp(lambda th: kkt_rows(th, x_s), (th,), (dth,))
    sol = jnp.linalg.solve(K, -jnp.concatenate([dg, z_s * dc]))
    dx, dz = sol[:nx], sol[nx:]
    return (x_s, z_s), (jnp.where(ok, dx, 0.0), jnp.where(ok, dz, 0.0))
