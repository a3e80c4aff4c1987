"""The device tables of a network: PV units, SOPs, capacitor banks, demand response.

Frozen dataclasses registered as pytrees (array fields are leaves), their empty
defaults and their validation against a network's buses. Built by
:mod:`sopjax.devices` and :func:`sopjax.make_network`, held by
:class:`~sopjax.network.Network` (which re-exports the classes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from sopjax.errors import NetworkError

__all__ = [
    "PVUnits", "SOPs", "Capacitors", "DemandResponse", "empty_devices", "pytree_dataclass",
    "validate_devices", "validate_capacitors",
]


def pytree_dataclass(cls, static: Sequence[str] = ()):
    """Register a frozen dataclass as a pytree; ``static`` fields are metadata."""
    fields = [f.name for f in dataclasses.fields(cls)]
    jax.tree_util.register_dataclass(
        cls,
        data_fields=[f for f in fields if f not in static],
        meta_fields=list(static),
    )
    return cls


@dataclasses.dataclass(frozen=True)
class PVUnits:
    """PV / DG units, modelled as negative load at their bus.

    Attributes:
        bus: 0-based bus index per unit, shape (pv,).
        s_rated_pu: rated apparent power per unit, shape (pv,).
        pf: power factor of the injection (1 = active power only), shape (pv,).
            The unit injects reactive power ``p * tan(acos(pf))`` (over-excited);
            pass ``pf`` = 1 for unity-power-factor inverters.
        p_set_pu: active-power set-point (operating point) per unit, shape (pv,),
            or ``None`` when unknown. When given, :func:`sopjax.solve` injects it by
            default and the uncertainty model uses it as the forecast.
    """

    bus: Any
    s_rated_pu: Any
    pf: Any
    p_set_pu: Any = None

    @property
    def count(self) -> int:
        return int(np.shape(self.bus)[0])


@dataclasses.dataclass(frozen=True)
class SOPs:
    """Soft open points: two back-to-back VSCs between buses ``bus_i`` and ``bus_j``.

    Per VSC k: injected power ``P_k + jQ_k`` into its AC bus, converter loss
    ``L_k = A_k * |S_k|``, ``|S_k| <= s_rated_k``, ``q_min_k <= Q_k <= q_max_k``
    and the DC balance ``P_i + P_j + L_i + L_j = 0``.

    Attributes:
        bus_i, bus_j: 0-based terminal buses, shape (sop,).
        s_rated_i_pu, s_rated_j_pu: per-VSC capacity, shape (sop,).
        loss_i, loss_j: loss coefficients A_k (dimensionless), shape (sop,).
        q_max_i_pu, q_max_j_pu: reactive limits (symmetric unless q_min given).
        q_min_i_pu, q_min_j_pu: lower reactive limits, shape (sop,).
    """

    bus_i: Any
    bus_j: Any
    s_rated_i_pu: Any
    s_rated_j_pu: Any
    loss_i: Any
    loss_j: Any
    q_max_i_pu: Any
    q_max_j_pu: Any
    q_min_i_pu: Any
    q_min_j_pu: Any

    @property
    def count(self) -> int:
        return int(np.shape(self.bus_i)[0])


@dataclasses.dataclass(frozen=True)
class Capacitors:
    """Switched capacitor banks: ``units`` steps of ``q_unit_pu`` each at ``bus``.

    A bank is a fixed shunt susceptance: with ``step`` steps connected it draws
    ``-j b |V|^2`` with ``b = step * q_unit_pu``, i.e. it injects ``step * q_unit_pu``
    at 1 p.u. and ``b |V|^2`` at other voltages (constant susceptance, the physical
    model; see :func:`sopjax.branch_model.fold_capacitors`).

    Attributes:
        bus: 0-based bus index per bank, shape (cap,).
        q_unit_pu: reactive power of one step at 1 p.u. voltage, shape (cap,).
        units: installed steps per bank (int), shape (cap,).
        step: connected steps per bank (int, 0..units), shape (cap,); a strategy may
            override it (:class:`sopjax.Strategy`).
    """

    bus: Any
    q_unit_pu: Any
    units: Any
    step: Any

    @property
    def count(self) -> int:
        return int(np.shape(self.bus)[0])


@dataclasses.dataclass(frozen=True)
class DemandResponse:
    """Demand-response buses: load at ``bus`` may be cut by up to ``max_reduction`` (0..1)."""

    bus: Any
    max_reduction: Any

    @property
    def count(self) -> int:
        return int(np.shape(self.bus)[0])


for _cls in (PVUnits, SOPs, Capacitors, DemandResponse):
    pytree_dataclass(_cls)


def empty_devices():
    """Empty PV, SOP, capacitor and demand-response tables."""
    z = np.zeros(0)
    zi = np.zeros(0, dtype=np.int32)
    return (
        PVUnits(zi, z, z),
        SOPs(zi, zi, z, z, z, z, z, z, z, z),
        Capacitors(zi, z, zi, zi),
        DemandResponse(zi, z),
    )


def validate_capacitors(net) -> None:
    """Bank sizes >= 0, integer installed units, integer connected steps in [0, units] (bank and bus named)."""
    cap = net.capacitor
    q = np.asarray(cap.q_unit_pu, dtype=float) * 1e3 * net.base_mva
    units, step = np.asarray(cap.units, dtype=float), np.asarray(cap.step, dtype=float)
    if not q.shape == units.shape == step.shape:
        raise NetworkError(f"capacitor table: {q.size} sizes, {units.size} installed units, {step.size} steps")
    checks = (
        ("q_unit_kvar", q, ~np.isfinite(q) | (q < 0), ">= 0"),
        ("units", units, ~np.isfinite(units) | (units < 0) | (units != np.round(units)), "an integer >= 0"),
        ("step", step, ~np.isfinite(step) | (step < 0) | (step > units) | (step != np.round(step)), None),
    )
    for name, values, bad, need in checks:
        bad = np.flatnonzero(bad)
        if bad.size:
            k = bad[0]
            need = need or f"an integer in [0, {units[k]:g}] (its installed units)"
            raise NetworkError(
                f"capacitor bank {k} at bus {net.bus_ids[int(np.asarray(cap.bus)[k])]}: {name} = {values[k]:g}; "
                f"it must be {need}"
            )


def validate_devices(net) -> None:
    """Every device table of ``net`` (a :class:`~sopjax.network.Network`): buses exist, values in range."""
    nb = net.n_bus

    def check_bus(table: str, buses) -> None:
        buses = np.asarray(buses)
        bad = np.flatnonzero((buses < 0) | (buses >= nb))
        if bad.size:
            raise NetworkError(f"{table} unit {bad[0]} refers to bus index {buses[bad[0]]}, which does not exist")

    def check_nonneg(table: str, name: str, values) -> None:
        values = np.asarray(values, dtype=float)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if bad.size:
            raise NetworkError(f"{table} unit {bad[0]}: {name} must be finite and >= 0, got {values[bad[0]]}")

    check_bus("PV", net.pv.bus)
    check_nonneg("PV", "s_rated", net.pv.s_rated_pu)
    pf = np.asarray(net.pv.pf, dtype=float)
    bad = np.flatnonzero(~((pf > 0) & (pf <= 1)))
    if bad.size:
        raise NetworkError(f"PV unit {bad[0]}: power factor must be in (0, 1], got {pf[bad[0]]}")
    s = net.sop
    check_bus("SOP", s.bus_i)
    check_bus("SOP", s.bus_j)
    same = np.flatnonzero(np.asarray(s.bus_i) == np.asarray(s.bus_j))
    if same.size:
        raise NetworkError(f"SOP {same[0]} has both terminals at the same bus")
    for name in ("s_rated_i_pu", "s_rated_j_pu", "loss_i", "loss_j", "q_max_i_pu", "q_max_j_pu"):
        check_nonneg("SOP", name, getattr(s, name))
    for name in ("loss_i", "loss_j"):
        if np.any(np.asarray(getattr(s, name)) >= 1):
            raise NetworkError(f"SOP loss coefficient {name} must be < 1")
    check_bus("capacitor", net.capacitor.bus)
    validate_capacitors(net)
    check_bus("demand-response", net.demand_response.bus)
    red = np.asarray(net.demand_response.max_reduction, dtype=float)
    bad = np.flatnonzero(~((red >= 0) & (red <= 1)))
    if bad.size:
        raise NetworkError(f"demand-response unit {bad[0]}: max_reduction must be in [0, 1]")
