"""Exact radial power flow (backward/forward sweep) and LinDistFlow, for one sample.

Both kernels are pure JAX functions of one sample; batch them with
:func:`jax.vmap` (see :func:`sopjax.powerflow.batched`). Per-unit throughout;
net load is positive for consumption (:mod:`sopjax.network`).

The sweep is the current-injection backward/forward method: load currents
``conj(S/V)`` are summed over subtrees (backward), voltage drops ``z * J`` are
summed along root paths (forward), until the largest voltage update is below
``tol``. It solves the same equations as Newton-Raphson on a radial network;
bus shunts (pi-model line charging, shunt elements, transformer magnetizing)
draw the current ``y V``, and transformer ratios are referred to the sources
(:mod:`sopjax.branch_model`), both compiled in only when the grid has them.
Each source (substation or Vf-mode SOP terminal) fixes the voltage of its own tree.

Failure is data: a sample that diverges (voltage collapse, non-finite values)
or does not meet ``tol`` in ``max_iter`` sweeps keeps its last finite iterate and
reports ``converged = False``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from sopjax.kernels.tree import path_sum, subtree_sum
from sopjax.topology import Topology

__all__ = ["Grid", "VfCoupling", "PowerFlowResult", "sweep_power_flow", "lindistflow"]

# below this |V| (p.u.) an iterate is treated as voltage collapse
_COLLAPSE_PU = 1e-2


@dataclasses.dataclass(frozen=True)
class Grid:
    """Per-bus impedances and source voltages of one topology (pytree of arrays).

    With transformers the arrays are referred to the sources' voltage base
    (:mod:`sopjax.branch_model`); the optional fields are ``None`` for networks
    without shunts or taps, and the kernels then compile without those terms.

    Attributes:
        r_up, x_up: impedance of each bus's upstream branch (0 at sources), (bus,).
        v_source: voltage magnitude set at each source bus (ignored elsewhere), (bus,).
        g_sh, b_sh: shunt admittance per bus, drawing ``(g - jb)|V|^2``, (bus,), or None.
        v_scale: physical / referred voltage magnitude per bus, (bus,), or None.
        va_shift: phase-shift angle added per bus (rad), (bus,), or None.
    """

    r_up: Any
    x_up: Any
    v_source: Any
    g_sh: Any = None
    b_sh: Any = None
    v_scale: Any = None
    va_shift: Any = None


jax.tree_util.register_dataclass(
    Grid, data_fields=["r_up", "x_up", "v_source", "g_sh", "b_sh", "v_scale", "va_shift"], meta_fields=[]
)


def load_current(grid: Grid, s, V):
    """Current drawn at each bus: ``conj(s / V)`` plus the shunts' ``y V`` (compiled in only with shunts)."""
    current = jnp.conj(s / V)
    if grid.g_sh is None:
        return current
    return current + (grid.g_sh + 1j * grid.b_sh).astype(V.dtype) * V


def physical_voltage(grid: Grid, vm, va):
    """Referred (|V|, angle) to physical: scale by ``v_scale``, add ``va_shift``."""
    if grid.v_scale is None:
        return vm, va
    return vm * grid.v_scale.astype(vm.dtype), va + grid.va_shift.astype(va.dtype)


@dataclasses.dataclass(frozen=True)
class VfCoupling:
    """SOPs whose VSC at ``vf_bus`` forms the voltage of an island (Vf mode).

    The partner VSC (VdcQ mode) at ``partner_bus`` draws the island's active
    power plus both converter losses ``A|S|`` from its own feeder and injects
    ``q_partner``. Arrays of shape (sop,); ``active`` masks unused rows so
    strategies with different SOP modes stack.
    """

    vf_bus: Any
    partner_bus: Any
    loss_vf: Any
    loss_partner: Any
    q_partner: Any
    active: Any


jax.tree_util.register_dataclass(
    VfCoupling,
    data_fields=["vf_bus", "partner_bus", "loss_vf", "loss_partner", "q_partner", "active"],
    meta_fields=[],
)


class PowerFlowResult(NamedTuple):
    """Power-flow solution of one sample (add leading axes when batched).

    Branch quantities are oriented from the case's from-bus to its to-bus and
    are zero for open or de-energized branches; bus quantities are zero at
    de-energized buses.
    """

    vm_pu: Float[Array, "*batch bus"]
    va_rad: Float[Array, "*batch bus"]
    p_from_pu: Float[Array, "*batch branch"]
    q_from_pu: Float[Array, "*batch branch"]
    i_pu: Float[Array, "*batch branch"]
    p_loss_pu: Float[Array, "*batch branch"]
    losses_pu: Float[Array, "*batch"]
    p_source_pu: Float[Array, "*batch bus"]
    q_source_pu: Float[Array, "*batch bus"]
    converged: Bool[Array, "*batch"]
    iterations: Int[Array, "*batch"]


def vdcq_power(p_other, loss_other, s_other_abs, a, q):
    """Active power a VdcQ-mode VSC injects so that the DC link balances.

    Solves ``P + a*sqrt(P^2 + q^2) = c`` with ``c = -p_other - loss_other * s_other_abs``
    (DC balance ``P_i + P_j + L_i + L_j = 0`` with ``L = a|S|``) in closed form.
    """
    c = -p_other - loss_other * s_other_abs
    return (c - a * jnp.sqrt(c * c + (1.0 - a * a) * q * q)) / (1.0 - a * a)


def _vf_extra_load(vf: VfCoupling | None, s_island, n_bus: int, cdtype):
    """Net load added at partner buses by the VdcQ VSCs feeding Vf islands."""
    if vf is None or vf.vf_bus.shape[0] == 0:
        return jnp.zeros((n_bus,), cdtype)
    s_vf = s_island[vf.vf_bus]  # power the Vf VSC injects into its island
    p_vf, q_vf = jnp.real(s_vf), jnp.imag(s_vf)
    p_partner = vdcq_power(p_vf, vf.loss_vf, jnp.abs(s_vf), vf.loss_partner, vf.q_partner)
    s_partner = (p_partner + 1j * vf.q_partner).astype(cdtype)
    return jnp.zeros((n_bus,), cdtype).at[vf.partner_bus].add(jnp.where(vf.active, -s_partner, 0))


def _outputs(topo, grid, f_bus, V, s, energized, converged, iterations):
    I_load = jnp.where(energized, load_current(grid, s, V), 0)
    J = subtree_sum(topo, I_load)  # current entering each bus's subtree from upstream
    s_in = V * jnp.conj(J)  # power entering each subtree at its top bus
    V_par = V[topo.parent]
    s_send = V_par * jnp.conj(J)
    child = topo.branch_child
    act = topo.branch_active
    fwd = f_bus == topo.parent[child]
    s_from = jnp.where(fwd, s_send[child], -s_in[child])
    s_from = jnp.where(act, s_from, 0)
    i_mag = jnp.where(act, jnp.abs(J[child]), 0)
    if grid.v_scale is not None:  # physical current on the child side's base
        i_mag = i_mag / grid.v_scale.astype(i_mag.dtype)[child]
    p_loss = jnp.where(act, jnp.real(s_send[child] - s_in[child]), 0)
    src = topo.is_source & energized
    vm, va = physical_voltage(grid, jnp.abs(V), jnp.angle(V))
    vm = jnp.where(energized, vm, 0)
    va = jnp.where(energized, va, 0)
    return PowerFlowResult(
        vm_pu=vm,
        va_rad=va,
        p_from_pu=jnp.real(s_from),
        q_from_pu=jnp.imag(s_from),
        i_pu=i_mag,
        p_loss_pu=p_loss,
        losses_pu=jnp.sum(p_loss),
        p_source_pu=jnp.where(src, jnp.real(s_in), 0),
        q_source_pu=jnp.where(src, jnp.imag(s_in), 0),
        converged=converged,
        iterations=iterations,
    )


def sweep_power_flow(
    topo: Topology,
    grid: Grid,
    f_bus: Int[Array, " branch"],
    p_load_pu: Float[Array, " bus"],
    q_load_pu: Float[Array, " bus"],
    vf: VfCoupling | None = None,
    *,
    tol: float = 1e-8,
    max_iter: int = 100,
) -> PowerFlowResult:
    """Exact radial power flow of one sample by backward/forward sweep.

    Args:
        topo: rooted forest (:func:`sopjax.topology.compile_topology`).
        grid: upstream impedances and source voltages for ``topo`` (p.u.).
        f_bus: from-bus per branch, (branch,), to orient branch flows.
        p_load_pu, q_load_pu: net load per bus, positive = consumption, (bus,).
        vf: optional Vf-mode SOP coupling.
        tol: convergence tolerance on the largest voltage update (p.u.).
        max_iter: sweep limit.

    Returns:
        :class:`PowerFlowResult` with ``converged`` and ``iterations``.
    """
    rdtype = jnp.result_type(p_load_pu.dtype, jnp.float32)
    cdtype = jnp.result_type(rdtype, jnp.complex64)
    n = p_load_pu.shape[0]
    energized = topo.energized
    z_up = (grid.r_up + 1j * grid.x_up).astype(cdtype)
    v_src = grid.v_source.astype(cdtype)[topo.root]
    s = jnp.where(energized, p_load_pu + 1j * q_load_pu, 0).astype(cdtype)

    def sweep(V, s_extra):
        s_tot = s + s_extra
        I_load = jnp.where(energized, load_current(grid, s_tot, V), 0)
        J = subtree_sum(topo, I_load)
        V_new = v_src - path_sum(topo, z_up * J)
        s_extra_new = _vf_extra_load(vf, V * jnp.conj(J), n, cdtype)
        return jnp.where(energized, V_new, v_src), s_extra_new

    def cond(state):
        _, _, it, err, ok = state
        return ok & (err > tol) & (it < max_iter)

    def body(state):
        V, s_extra, it, _, _ = state
        V_new, s_extra_new = sweep(V, s_extra)
        healthy = jnp.all(jnp.isfinite(V_new)) & jnp.all(jnp.abs(V_new) > _COLLAPSE_PU)
        err = jnp.max(jnp.abs(V_new - V))
        V_next = jnp.where(healthy, V_new, V)
        s_next = jnp.where(healthy, s_extra_new, s_extra)
        return V_next, s_next, it + 1, jnp.where(healthy, err, jnp.inf), healthy

    s_extra0 = jnp.zeros((n,), cdtype)
    init = (v_src, s_extra0, jnp.int32(0), jnp.asarray(jnp.inf, rdtype), jnp.bool_(True))
    V, s_extra, it, err, ok = jax.lax.while_loop(cond, body, init)
    converged = ok & (err <= tol)
    return _outputs(topo, grid, f_bus, V, s + s_extra, energized, converged, it)


def lindistflow(
    topo: Topology,
    grid: Grid,
    f_bus: Int[Array, " branch"],
    p_load_pu: Float[Array, " bus"],
    q_load_pu: Float[Array, " bus"],
    vf: VfCoupling | None = None,
) -> PowerFlowResult:
    """LinDistFlow (Baran & Wu) of one sample: losses neglected in the flows.

    ``v = |V|^2`` drops by ``2 (r P + x Q)`` along each branch, with ``P, Q`` the
    subtree sums of net load; angles use the matching linearisation
    ``theta ~ -sum (x P - r Q) / V0^2``. Branch losses are the first-order estimate
    ``r (P^2 + Q^2) / V0^2``. ``converged`` is False where ``v <= 0``; ``iterations`` is 0.
    A Vf-mode SOP's partner draws the island's lossless demand plus converter losses.
    """
    rdtype = jnp.result_type(p_load_pu.dtype, jnp.float32)
    cdtype = jnp.result_type(rdtype, jnp.complex64)
    n = p_load_pu.shape[0]
    energized = topo.energized
    v0 = grid.v_source.astype(rdtype)[topo.root]
    s = jnp.where(energized, p_load_pu + 1j * q_load_pu, 0).astype(cdtype)
    if grid.g_sh is not None:  # shunts at the source voltage
        s = s + jnp.where(energized, (grid.g_sh - 1j * grid.b_sh) * v0**2, 0).astype(cdtype)
    s = s + _vf_extra_load(vf, subtree_sum(topo, s), n, cdtype)
    S = subtree_sum(topo, s)
    P, Q = jnp.real(S), jnp.imag(S)
    v = v0**2 - 2 * path_sum(topo, grid.r_up * P + grid.x_up * Q)
    theta = -path_sum(topo, (grid.x_up * P - grid.r_up * Q)) / v0**2
    ok = jnp.all(jnp.where(energized, v > 0, True))
    vm, theta = physical_voltage(grid, jnp.where(energized, jnp.sqrt(jnp.maximum(v, 0)), 0), theta)
    child, act = topo.branch_child, topo.branch_active
    fwd = f_bus == topo.parent[child]
    sign = jnp.where(fwd, 1.0, -1.0)
    loss = grid.r_up * (P**2 + Q**2) / v0**2
    p_from = jnp.where(act, sign * P[child] + jnp.where(fwd, loss[child], 0), 0)
    q_from = jnp.where(act, sign * Q[child], 0)
    i_mag = jnp.where(act, jnp.abs(S[child]) / jnp.maximum(vm[child], _COLLAPSE_PU), 0)
    p_loss = jnp.where(act, loss[child], 0)
    src = topo.is_source & energized
    return PowerFlowResult(
        vm_pu=vm.astype(rdtype),
        va_rad=jnp.where(energized, theta, 0).astype(rdtype),
        p_from_pu=p_from.astype(rdtype),
        q_from_pu=q_from.astype(rdtype),
        i_pu=i_mag.astype(rdtype),
        p_loss_pu=p_loss.astype(rdtype),
        losses_pu=jnp.sum(p_loss).astype(rdtype),
        p_source_pu=jnp.where(src, P + subtree_sum(topo, loss), 0).astype(rdtype),
        q_source_pu=jnp.where(src, Q, 0).astype(rdtype),
        converged=ok,
        iterations=jnp.int32(0),
    )

