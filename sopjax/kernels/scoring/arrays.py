"""Kernel inputs of scoring: one strategy as arrays, and the network constants.

Both are frozen dataclasses registered as pytrees, so a stack of strategies
(leading axis) can be mapped or vmapped by :mod:`sopjax.kernels.scoring.layout`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from sopjax.kernels.radial import Grid, VfCoupling
from sopjax.topology import Topology

__all__ = ["StrategyArrays", "ScoringContext"]


def _register(cls):
    jax.tree_util.register_dataclass(
        cls, data_fields=[f.name for f in dataclasses.fields(cls)], meta_fields=[]
    )
    return cls


@_register
@dataclasses.dataclass(frozen=True)
class StrategyArrays:
    """One strategy (or a stack of them along a leading axis) as kernel arrays.

    SOP rows use a controlling VSC ``a`` (the PQ or Vf VSC) and its partner ``b``
    (VdcQ); ``a_is_i`` maps them back to the table's i/j terminals.

    Attributes:
        topo: rooted forest with Vf terminals as sources.
        grid: upstream impedances and source voltages (``U_set`` at Vf terminals).
        vf: Vf coupling rows (``active`` where the SOP is in Vf mode), (sop,).
        pickup: picked-up fraction of each bus's load, (bus,).
        sop_a_bus, sop_b_bus: buses of VSC a / b, (sop,).
        sop_a_is_i: True if VSC a is the table's i terminal, (sop,).
        sop_is_pq, sop_is_vf: mode flags, (sop,).
        sop_p_a, sop_q_a, sop_q_b: set-points (p.u., injection), (sop,).
        sop_loss_a, sop_loss_b: loss coefficients A, (sop,).
        sop_s_a, sop_s_b: VSC capacities (p.u.), (sop,).
    """

    topo: Topology
    grid: Grid
    vf: VfCoupling
    pickup: Any
    sop_a_bus: Any
    sop_b_bus: Any
    sop_a_is_i: Any
    sop_is_pq: Any
    sop_is_vf: Any
    sop_p_a: Any
    sop_q_a: Any
    sop_q_b: Any
    sop_loss_a: Any
    sop_loss_b: Any
    sop_s_a: Any
    sop_s_b: Any


@_register
@dataclasses.dataclass(frozen=True)
class ScoringContext:
    """Network constants shared by all strategies and samples.

    Attributes:
        f_bus, t_bus: branch ends (0-based), (branch,).
        r_pu, x_pu: branch impedance, (branch,).
        rate_pu: branch rating (``inf`` = unlimited), (branch,).
        pv_bus, pv_pf: PV buses and power factors, (pv,).
        outage: True at buses de-energized by the fault, (bus,).
        v_min_pu, v_max_pu: voltage limits of the compliance test, (bus,).
        shed_overloaded_islands: scalar bool; True for ``island_overload="shed"``.
    """

    f_bus: Any
    t_bus: Any
    r_pu: Any
    x_pu: Any
    rate_pu: Any
    pv_bus: Any
    pv_pf: Any
    outage: Any
    v_min_pu: Any
    v_max_pu: Any
    shed_overloaded_islands: Any
