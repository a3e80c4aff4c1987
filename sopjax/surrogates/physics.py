"""DistFlow residuals of a (predicted) power-flow state, pure JAX, one sample.

Branch quantities in the case's orientation (``p_from``: active power entering branch
``k`` at its from-bus, either sign). With ``l = (P^2 + Q^2) / |V_f|^2`` the branch flow
model (Baran & Wu) reads, for every energized closed branch and bus::

    |V_t|^2 = |V_f|^2 - 2 (r P + x Q) + (r^2 + x^2) l                      (voltage)
    sum_{k: t(k) = b} (P_k - r_k l_k) - sum_{k: f(k) = b} P_k = p_net_b     (active balance)
    the same with Q, x for reactive power                                   (reactive balance)

at every energized non-source bus (whatever the direction of flow, since ``V_t = V_f -
z I`` with ``I = conj(S_f / V_f)``). A bus shunt ``g + jb`` (p.u.; ``b > 0`` capacitive)
draws ``(g - jb) |V|^2``, which the balances add to the net load when ``g_sh, b_sh`` are
given: bus shunts, and the halves of the branches' pi-model shunts referred to their end
buses (:func:`sopjax.branch_model.bus_shunts`, what the exact kernel solves with). Branch
ratios (taps) have no term here. On an exact power-flow solution all residuals are
zero to the solver's tolerance (tests/test_surrogates.py); the physics-informed loss
adds their mean square.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["Residuals", "distflow_residuals"]


class Residuals(NamedTuple):
    """Masked DistFlow residuals (p.u.; zero where the equation does not apply)."""

    p_balance: Float[Array, " bus"]
    q_balance: Float[Array, " bus"]
    voltage: Float[Array, " branch"]  # in |V|^2 (p.u.^2)

    def max_abs(self):
        return jnp.maximum(
            jnp.max(jnp.abs(jnp.concatenate([self.p_balance, self.q_balance]))),
            jnp.max(jnp.abs(self.voltage)),
        )


def distflow_residuals(
    vm, p_from, q_from, p_net, q_net, *, f_bus, t_bus, r, x, node_mask, edge_mask, g_sh=None, b_sh=None
) -> Residuals:
    """Residuals of the state ``(vm (bus,), p_from, q_from (branch,))`` for net loads ``p_net, q_net`` (bus,).

    Args:
        vm, p_from, q_from: the state (p.u.).
        p_net, q_net: net bus load, consumption positive (p.u.).
        f_bus, t_bus: 0-based branch ends; r, x: branch impedance (p.u.), (branch,).
        node_mask: 1 at energized non-source buses; edge_mask: 1 on energized closed branches.
        g_sh, b_sh: shunt conductance / susceptance per bus (p.u.), (bus,), or None (no shunts).
    """
    n_bus = vm.shape[0]
    P, Q = p_from * edge_mask, q_from * edge_mask
    vf2 = vm[f_bus] ** 2
    l = (P * P + Q * Q) / jnp.where(edge_mask > 0, vf2, 1.0)
    v_res = (vm[t_bus] ** 2 - vf2 + 2 * (r * P + x * Q) - (r * r + x * x) * l) * edge_mask
    seg = lambda a, idx: jax.ops.segment_sum(a, idx, num_segments=n_bus)
    if g_sh is not None:  # the shunt's draw (g - jb)|V|^2 adds to the net load
        p_net = p_net + g_sh * vm * vm
        q_net = q_net - b_sh * vm * vm
    p_bal = (seg(P - r * l, t_bus) - seg(P, f_bus) - p_net) * node_mask
    q_bal = (seg(Q - x * l, t_bus) - seg(Q, f_bus) - q_net) * node_mask
    return Residuals(p_bal, q_bal, v_res)
