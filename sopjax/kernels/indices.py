"""Technical indices of SOP allocation (seed 001), pure JAX, any leading batch axes.

* :func:`line_vcpi`: line voltage-collapse proximity index (Moghavvemi & Faruque 1998), the
  one the Monte Carlo scoring kernel reports (:mod:`sopjax.kernels.scoring.sample` calls it).
* :func:`voltage_offset_index`: the conventional voltage-offset index of seed 001 eq. (5).
* :func:`sop_utilization_index`: the SOP utilization index of seed 001 eq. (6).

Shapes are written for plans x periods x scenarios as ``*batch``; every function reduces only
the axes it names, so the same code serves one sample and a whole population.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

__all__ = ["OFFSET_NORMS", "line_vcpi", "voltage_offset_index", "sop_utilization_index"]

OFFSET_NORMS = ("mean_abs", "rms", "max_abs")


def _hypot(a, b):
    return jnp.sqrt(a * a + b * b)


def line_vcpi(
    p_from_pu: Float[Array, "*batch branch"],
    q_from_pu: Float[Array, "*batch branch"],
    i_pu: Float[Array, "*batch branch"],
    vm_pu: Float[Array, "*batch bus"],
    f_bus: Int[Array, " branch"],
    t_bus: Int[Array, " branch"],
    r_pu: Float[Array, " branch"],
    x_pu: Float[Array, " branch"],
) -> Float[Array, "*batch branch"]:
    """Line VCPI per branch, the receiving end being the end active power flows to.

    ``VCPI = P_r / P_r,max`` with ``P_r,max = V_s^2/Z cos(phi) / (4 cos^2((theta - phi)/2))``
    (``theta`` impedance angle, ``phi`` receiving-end load angle), which simplifies to
    ``2 (Z |S_r| + r P_r + x Q_r) / V_s^2``: 0 on an unloaded line, 1 at the line's maximum
    transferable power. Open branches (zero flow) give 0; mask de-energized ones yourself.

    Args:
        p_from_pu, q_from_pu: flow at the from-end (p.u.), (*batch, branch).
        i_pu: current magnitude (p.u.), (*batch, branch).
        vm_pu: bus voltage magnitudes (p.u.), (*batch, bus).
        f_bus, t_bus: 0-based branch ends, (branch,).
        r_pu, x_pu: branch impedance (p.u.), (branch,).

    Returns:
        VCPI per branch (dimensionless), (*batch, branch).
    """
    i2 = i_pu**2
    pt, qt = p_from_pu - r_pu * i2, q_from_pu - x_pu * i2  # power arriving at the to-end
    forward = p_from_pu >= 0
    p_r = jnp.where(forward, pt, -p_from_pu)
    q_r = jnp.where(forward, qt, -q_from_pu)
    v_s = jnp.where(forward, vm_pu[..., f_bus], vm_pu[..., t_bus])
    z = _hypot(r_pu, x_pu)
    return 2.0 * (z * _hypot(p_r, q_r) + r_pu * p_r + x_pu * q_r) / jnp.maximum(v_s, 1e-6) ** 2


def voltage_offset_index(
    vm_pu: Float[Array, "*batch period bus"],
    *,
    v_rated_pu: float = 1.0,
    norm: str = "mean_abs",
    bus_mask: Float[Array, " bus"] | None = None,
) -> Float[Array, "*batch"]:
    """Conventional voltage-offset index over periods and buses (seed 001 eq. 5, its F_offset).

    Seed 001 defines it from ``N`` nodes, the rated voltage ``U_N``, ``U_i,t`` and ``T`` periods;
    the equation itself was lost. ``norm`` picks the reading (the standard ones of the field):

    * ``"mean_abs"`` (default): ``1/(T N) sum_t sum_i |U_it - U_N| / U_N``;
    * ``"rms"``: ``sqrt(1/(T N) sum_t sum_i ((U_it - U_N)/U_N)^2)``;
    * ``"max_abs"``: ``1/T sum_t max_i |U_it - U_N| / U_N``.

    Args:
        vm_pu: voltages (p.u.), (*batch, period, bus).
        v_rated_pu: rated voltage ``U_N`` (p.u.).
        norm: one of :data:`OFFSET_NORMS`.
        bus_mask: 1 for the buses counted (default all; pass 0 at the substation to leave it out).

    Returns:
        The index (dimensionless), (*batch,).
    """
    if norm not in OFFSET_NORMS:
        raise ValueError(f"unknown voltage-offset norm {norm!r}; choose from {OFFSET_NORMS}")
    dev = jnp.abs(vm_pu - v_rated_pu) / v_rated_pu
    w = jnp.ones(vm_pu.shape[-1], vm_pu.dtype) if bus_mask is None else jnp.asarray(bus_mask, vm_pu.dtype)
    n = jnp.sum(w)
    if norm == "mean_abs":
        return jnp.mean(jnp.sum(dev * w, -1) / n, -1)
    if norm == "rms":
        return jnp.sqrt(jnp.mean(jnp.sum(dev**2 * w, -1) / n, -1))
    return jnp.mean(jnp.max(dev * w, -1), -1)


def sop_utilization_index(
    p_i: Float[Array, "*batch period sop"],
    q_i: Float[Array, "*batch period sop"],
    p_j: Float[Array, "*batch period sop"],
    q_j: Float[Array, "*batch period sop"],
    s_rated_pu: Float[Array, "*batch sop"],
) -> Float[Array, "*batch"]:
    """SOP utilization: used apparent power over installed capacity (seed 001 eq. 6, its U_SOP).

    ``U = sum_t sum_k (|S_i,kt| + |S_j,kt|) / (T sum_k 2 N_k S_unit)``: the installed capacity
    ``N_k S_unit`` of each VSC (both VSCs of an SOP equal) is ``s_rated_pu``. A plan without
    any installed SOP has utilization 0.

    Args:
        p_i, q_i, p_j, q_j: VSC injections (p.u.), (*batch, period, sop).
        s_rated_pu: per-VSC capacity (p.u.), (*batch, sop).

    Returns:
        Utilization in [0, 1] (fraction), (*batch,).
    """
    used = jnp.sum(_hypot(p_i, q_i) + _hypot(p_j, q_j), axis=(-2, -1))
    cap = 2.0 * jnp.sum(s_rated_pu, -1) * p_i.shape[-2]
    return jnp.where(cap > 0, used / jnp.where(cap > 0, cap, 1.0), 0.0)
