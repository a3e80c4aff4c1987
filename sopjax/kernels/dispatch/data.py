"""Problem data of the JAX-native SOP dispatch: compiled network, inputs, results, validation.

The dispatch problem (stated in SOC form by :mod:`sopjax.problems.dispatch.layer`,
solved in JAX by :mod:`sopjax.kernels.dispatch.solve`) is the normal-operation SOP
dispatch of one radial topology::

    min  sum_k r_k l_k + sum_s (L_i,s + L_j,s) + w * sum_b (v_b - 1)^2
    over the SOP set-points p_i, q_i, p_j, q_j (injections into the AC buses)
    s.t. exact DistFlow (branch flow model) on the tree
         |s_i| <= S_i, |s_j| <= S_j                  (capacity, per VSC)
         p_i + p_j + L_i + L_j = 0, L >= A |s|        (DC balance, converter loss)
         q_min <= q <= q_max                          (only where tighter than S)
         v_min^2 <= v <= v_max^2, |S_branch| <= rate  (grid limits)

with ``v = |V|^2``, ``l = |I|^2``, per unit. :func:`compile_dispatch` turns a
:class:`~sopjax.network.Network` and a switch configuration into
:class:`DispatchData` once (host side, numpy); :func:`check_inputs` validates
:class:`DispatchInputs` at the Python boundary.
"""

from __future__ import annotations

import dataclasses
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
    "CAPACITY_FLOOR_PU", "DispatchData", "DispatchInfeasibleError", "DispatchInputError", "DispatchInputs",
    "DispatchResult", "check_inputs", "compile_dispatch", "concrete_value", "nominal_inputs",
]

# Capacities below this (p.u.) are raised to it: the capacity cone degenerates at 0.
CAPACITY_FLOOR_PU = 1e-5


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
    allow_deenergized: bool = False,
) -> DispatchData:
    """Compile the dispatch data of ``net`` for one switch configuration.

    Args:
        net: network with SOPs (:func:`sopjax.add_sops`) and optionally PV.
        status: closed flag per branch; default the case's statuses changed by ``open``/``close``.
        open, close: 1-based branch numbers to open / close.
        v_min_pu, v_max_pu: voltage limits (scalar or per bus); default the network's.
        voltage_weight: weight ``w`` of the penalty ``w * sum_b (v_b - 1)^2`` (``v = |V|^2``), >= 0.
        allow_deenergized: keep buses the substation does not reach out of the problem (their
            loads, PV and SOP terminals drop out, as at the substation) instead of refusing them;
            the restoration setting of :mod:`sopjax.kernels.scoring.control`.

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
    if net.capacitor.count:
        k = 0
        raise DispatchInputError(
            f"network {net.name!r} has capacitor bank {k} at bus {net.bus_ids[int(net.capacitor.bus[k])]}, "
            "which the convex SOP dispatch does not model; "
            "use sopjax.solve, Monte Carlo scoring or the restoration / reconfiguration / planning formulations"
        )
    if net.has_shunts or net.has_taps:
        raise DispatchInputError(
            f"network {net.name!r} has shunts / line charging or transformer ratios, which the convex "
            "dispatch does not model yet; use the restoration or planning formulations, or sopjax.solve"
        )
    energized = np.asarray(topo.energized)
    if not energized.all() and not allow_deenergized:
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

