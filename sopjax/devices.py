"""Build device tables from user units (case bus ids, kVA / kvar).

Each builder validates against the network and returns a copy of it with the
table replaced, e.g.::

    net = add_pv(ieee33(), buses=[30], s_rated_kva=[1000], pf=0.95)
    net = add_sops(net, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sopjax.errors import NetworkError
from sopjax.network import Capacitors, DemandResponse, Network, PVUnits, SOPs

__all__ = ["add_pv", "add_sops", "add_capacitors", "add_demand_response"]


def _per_unit(values, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise NetworkError(f"{name} needs one value per device ({n}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise NetworkError(f"{name} contains a non-finite value: {arr.tolist()}")
    return arr


def _buses(net: Network, buses: Sequence[int], device: str) -> np.ndarray:
    """0-based indices of case buses; an unknown bus is refused naming the device (``device k``)."""
    out = []
    for k, b in enumerate(buses):
        try:
            out.append(net.bus_index(b))
        except NetworkError as e:
            raise NetworkError(f"{device} {k}: {e}") from None
    return np.asarray(out, dtype=np.int32)


def add_pv(
    net: Network,
    *,
    buses: Sequence[int],
    s_rated_kva: float | Sequence[float],
    pf: float | Sequence[float] = 1.0,
) -> Network:
    """Add PV/DG units (replacing existing ones) at case buses ``buses``.

    Args:
        net: the network.
        buses: case bus ids, one per unit.
        s_rated_kva: rated apparent power (kVA), scalar or per unit.
        pf: power factor in (0, 1]; the unit injects ``p * tan(acos(pf))`` kvar.

    Raises:
        NetworkError: unknown bus, negative rating or power factor outside (0, 1].
    """
    n = len(buses)
    s = _per_unit(s_rated_kva, n, "s_rated_kva")
    if np.any(s < 0):
        raise NetworkError(f"PV rating must be >= 0 kVA, got {s.min()} at bus {buses[int(np.argmin(s))]}")
    table = PVUnits(bus=_buses(net, buses, "PV unit"), s_rated_pu=s / 1e3 / net.base_mva, pf=_per_unit(pf, n, "pf"))
    return net.with_devices(pv=table)


def add_sops(
    net: Network,
    *,
    pairs: Sequence[tuple[int, int]],
    s_rated_kva: float | Sequence[float],
    loss: float | Sequence[float] = 0.02,
    q_max_kvar: float | Sequence[float] | None = None,
) -> Network:
    """Add SOPs (replacing existing ones) between case bus pairs.

    Both VSCs of an SOP get the same capacity, loss coefficient and reactive
    limit; build :class:`~sopjax.network.SOPs` directly for asymmetric units.

    Args:
        net: the network.
        pairs: (bus_i, bus_j) case bus ids per SOP.
        s_rated_kva: per-VSC capacity (kVA).
        loss: loss coefficient A (converter loss = A * |S|), default 0.02.
        q_max_kvar: reactive limit per VSC (default: the capacity).

    Raises:
        NetworkError: unknown bus, both terminals on one bus, negative capacity.
    """
    n = len(pairs)
    s = _per_unit(s_rated_kva, n, "s_rated_kva")
    if np.any(s < 0):
        raise NetworkError(f"SOP capacity must be >= 0 kVA, got {s.min()} for SOP {int(np.argmin(s))}")
    a = _per_unit(loss, n, "loss")
    qm = s if q_max_kvar is None else _per_unit(q_max_kvar, n, "q_max_kvar")
    scale = 1e3 * net.base_mva
    bi = _buses(net, [p[0] for p in pairs], "SOP (terminal i)")
    bj = _buses(net, [p[1] for p in pairs], "SOP (terminal j)")
    table = SOPs(
        bus_i=bi, bus_j=bj,
        s_rated_i_pu=s / scale, s_rated_j_pu=s / scale,
        loss_i=a, loss_j=a.copy(),
        q_max_i_pu=qm / scale, q_max_j_pu=qm / scale,
        q_min_i_pu=-qm / scale, q_min_j_pu=-qm / scale,
    )
    return net.with_devices(sop=table)


def add_capacitors(
    net: Network,
    *,
    buses: Sequence[int],
    q_unit_kvar: float | Sequence[float],
    units: int | Sequence[int],
    step: int | Sequence[int] | None = None,
) -> Network:
    """Add switched capacitor banks (replacing existing ones) at case buses.

    Each bank is ``units`` steps of ``q_unit_kvar`` (kvar at 1 p.u. voltage). The
    connected steps act as a fixed shunt susceptance ``b = step * q_unit``
    (constant susceptance: the bank injects ``b |V|^2``), modelled in the exact
    power flow, the Monte Carlo scoring and the SOC / LinDistFlow formulations
    (docs/networks.md, "Capacitor banks"). A strategy may set other steps
    (``Strategy.build(..., capacitors={bus: step})``).

    Args:
        net: the network.
        buses: case bus ids, one per bank.
        q_unit_kvar: reactive power of one step at 1 p.u. (kvar, >= 0), scalar or per bank.
        units: installed steps (integer >= 0), scalar or per bank.
        step: connected steps (integer in [0, units]), scalar or per bank; default
            ``units`` (every installed step connected).

    Raises:
        NetworkError: unknown bus, negative or non-finite size, a non-integer or
            out-of-range step count (naming the bank and its bus).
    """
    n = len(buses)
    u = _per_unit(units, n, "units")
    table = Capacitors(
        bus=_buses(net, buses, "capacitor bank"),
        q_unit_pu=_per_unit(q_unit_kvar, n, "q_unit_kvar") / 1e3 / net.base_mva,
        units=u,
        step=u.copy() if step is None else _per_unit(step, n, "step"),
    )
    net.with_devices(capacitor=table)  # validates the user's values before they become integers
    as_int = dict(units=table.units.astype(np.int32), step=table.step.astype(np.int32))
    return net.with_devices(capacitor=dataclasses.replace(table, **as_int))


def add_demand_response(
    net: Network, *, buses: Sequence[int], max_reduction: float | Sequence[float]
) -> Network:
    """Mark case buses whose load may be reduced by up to ``max_reduction`` (fraction)."""
    n = len(buses)
    table = DemandResponse(bus=_buses(net, buses, "demand-response unit"),
                           max_reduction=_per_unit(max_reduction, n, "max_reduction"))
    return net.with_devices(demand_response=table)
