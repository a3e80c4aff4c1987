"""Device injections as net load per bus (pure JAX, one sample).

Net load is positive for consumption (:mod:`sopjax.network`): generation and
SOP injections enter with a minus sign.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from sopjax.kernels.radial import vdcq_power

__all__ = ["pv_net_load", "sop_pq_net_load"]


def pv_net_load(
    bus: Int[Array, " pv"], pf: Float[Array, " pv"], p_pv_pu: Float[Array, " pv"], n_bus: int
) -> tuple[Float[Array, " bus"], Float[Array, " bus"]]:
    """Net load of PV units producing ``p_pv_pu``: ``-p`` and ``-p * tan(acos(pf))`` per bus."""
    q = p_pv_pu * jnp.sqrt(jnp.maximum(1.0 - pf**2, 0.0)) / pf
    zeros = jnp.zeros((n_bus,), p_pv_pu.dtype)
    return zeros.at[bus].add(-p_pv_pu), zeros.at[bus].add(-q)


def sop_pq_net_load(
    bus_i: Int[Array, " sop"],
    bus_j: Int[Array, " sop"],
    loss_i: Float[Array, " sop"],
    loss_j: Float[Array, " sop"],
    p_i_pu: Float[Array, " sop"],
    q_i_pu: Float[Array, " sop"],
    q_j_pu: Float[Array, " sop"],
    n_bus: int,
) -> tuple[Float[Array, " bus"], Float[Array, " bus"], Float[Array, " sop"], Float[Array, " sop"]]:
    """Net load of SOPs in normal operation: VSC i in PQ mode, VSC j in VdcQ mode.

    VSC i injects the set-point ``p_i + j q_i`` into bus i; VSC j injects ``q_j``
    and the active power that balances the DC link including both converter
    losses ``A|S|`` (:func:`~sopjax.kernels.radial.vdcq_power`).

    Returns:
        (p_net_load, q_net_load) per bus, and (p_j, total converter loss) per SOP.
    """
    s_i = jnp.sqrt(p_i_pu**2 + q_i_pu**2)
    p_j = vdcq_power(p_i_pu, loss_i, s_i, loss_j, q_j_pu)
    loss = loss_i * s_i + loss_j * jnp.sqrt(p_j**2 + q_j_pu**2)
    zeros = jnp.zeros((n_bus,), p_i_pu.dtype)
    p = zeros.at[bus_i].add(-p_i_pu).at[bus_j].add(-p_j)
    q = zeros.at[bus_i].add(-q_i_pu).at[bus_j].add(-q_j_pu)
    return p, q, p_j, loss
