"""The ``[network]`` table of a study config, parsed once into a typed, frozen spec.

Layout (what the Monte Carlo, restoration, sweep and planning studies accept; each
study allows the subset it uses, see ``keys`` of :func:`parse_network`)::

    [network]
    case = "ieee33"                       # required: built-in name or .m path
    pv  = [{bus = 30, s_rated_kva = 1000, pf = 0.95}]                     # pf default 1.0
    sop = [{pair = [8, 21], s_rated_kva = 2000, loss = 0.02, q_max_kvar = 2000}]
                                          # loss default 0.02, q_max_kvar default s_rated_kva
    capacitor = [{bus = 18, q_unit_kvar = 100, units = 3, step = 2}]      # step default units
    v_slack_pu = 1.05                     # substation voltage (default: the case's)
    v_min_pu = 0.95, v_max_pu = 1.05      # planning voltage limits (default: the case's)

The spec holds user units and case bus ids; :func:`sopjax.network_builder.build_network`
turns it into a :class:`~sopjax.network.Network` (loading the case is an input-layer
job, so it does not live in this base-layer package).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from sopjax.config.numbers import integer, integer_list, number
from sopjax.config.tables import require, table, table_list
from sopjax.errors import ConfigError

__all__ = ["PVSpec", "SOPSpec", "CapacitorSpec", "NetworkSpec", "NETWORK_KEYS", "parse_network"]

#: every key a [network] table may hold (a study allows a subset)
NETWORK_KEYS = frozenset({"case", "pv", "sop", "capacitor", "v_slack_pu", "v_min_pu", "v_max_pu"})
_PV_KEYS = ("bus", "s_rated_kva", "pf")
_CAP_KEYS = ("bus", "q_unit_kvar", "units", "step")
_SOP_KEYS = ("pair", "s_rated_kva", "loss", "q_max_kvar")
_CASE_HINT = "(ieee33, ieee69, ieee85 or a .m file)"


@dataclasses.dataclass(frozen=True)
class PVSpec:
    """One PV unit of ``[network] pv``.

    Attributes:
        bus: case bus id.
        s_rated_kva: inverter rating (kVA).
        pf: power factor at rated output.
    """

    bus: int
    s_rated_kva: float
    pf: float = 1.0


@dataclasses.dataclass(frozen=True)
class SOPSpec:
    """One SOP of ``[network] sop``.

    Attributes:
        pair: case bus ids of the two VSC terminals.
        s_rated_kva: capacity of each VSC (kVA).
        loss: converter loss coefficient (per unit of apparent power).
        q_max_kvar: reactive limit of each VSC (kvar); None means ``s_rated_kva``.
    """

    pair: tuple[int, int]
    s_rated_kva: float
    loss: float = 0.02
    q_max_kvar: float | None = None

    @property
    def q_limit_kvar(self) -> float:
        """The reactive limit with its default applied (kvar)."""
        return self.s_rated_kva if self.q_max_kvar is None else self.q_max_kvar


@dataclasses.dataclass(frozen=True)
class CapacitorSpec:
    """One capacitor bank of ``[network] capacitor`` (a fixed susceptance, docs/networks.md).

    Attributes:
        bus: case bus id.
        q_unit_kvar: reactive power of one step at 1 p.u. voltage (kvar).
        units: installed steps.
        step: connected steps (None: ``units``); a strategy may set others.
    """

    bus: int
    q_unit_kvar: float
    units: int
    step: int | None = None


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A parsed ``[network]`` table.

    Attributes:
        case: built-in case name or path of a MATPOWER ``.m`` file.
        pv: PV units, in config order.
        sop: SOPs, in config order.
        capacitor: capacitor banks, in config order.
        v_slack_pu: substation voltage (None: the case's).
        v_min_pu, v_max_pu: planning voltage limits (None: the case's); the planning
            problem applies them, :func:`~sopjax.network_builder.build_network` does not.
    """

    case: str
    pv: tuple[PVSpec, ...] = ()
    sop: tuple[SOPSpec, ...] = ()
    capacitor: tuple[CapacitorSpec, ...] = ()
    v_slack_pu: float | None = None
    v_min_pu: float | None = None
    v_max_pu: float | None = None

    def scaled(self, *, pv_factor: float = 1.0, sop_kva: float | None = None) -> NetworkSpec:
        """The spec with every PV rating times ``pv_factor`` and, if given, every SOP at ``sop_kva``.

        An SOP set to ``sop_kva`` gets that reactive limit too (a sweep moves the
        converter size, and the converter's reactive range with it).
        """
        pv = tuple(dataclasses.replace(u, s_rated_kva=u.s_rated_kva * pv_factor) for u in self.pv)
        sop = self.sop
        if sop_kva is not None:
            kva = float(sop_kva)
            sop = tuple(dataclasses.replace(s, s_rated_kva=kva, q_max_kvar=kva) for s in sop)
        return dataclasses.replace(self, pv=pv, sop=sop)


def _pv(row: Mapping, where: str) -> PVSpec:
    table(row, where, allowed=_PV_KEYS)
    require(row, ("bus", "s_rated_kva"), where)
    return PVSpec(
        bus=integer(row["bus"], f"{where} bus"),
        s_rated_kva=number(row["s_rated_kva"], f"{where} s_rated_kva"),
        pf=number(row.get("pf", 1.0), f"{where} pf"),
    )


def _sop(row: Mapping, where: str) -> SOPSpec:
    table(row, where, allowed=_SOP_KEYS)
    require(row, ("pair", "s_rated_kva"), where)
    pair = integer_list(row["pair"], f"{where} pair")
    if len(pair) != 2:
        raise ConfigError(f"{where} pair must hold two bus ids, got {row['pair']!r}")
    q = row.get("q_max_kvar")
    return SOPSpec(
        pair=(pair[0], pair[1]),
        s_rated_kva=number(row["s_rated_kva"], f"{where} s_rated_kva"),
        loss=number(row.get("loss", 0.02), f"{where} loss"),
        q_max_kvar=None if q is None else number(q, f"{where} q_max_kvar"),
    )


def _capacitor(row: Mapping, where: str) -> CapacitorSpec:
    table(row, where, allowed=_CAP_KEYS)
    require(row, ("bus", "q_unit_kvar", "units"), where)
    step = row.get("step")
    return CapacitorSpec(
        bus=integer(row["bus"], f"{where} bus"),
        q_unit_kvar=number(row["q_unit_kvar"], f"{where} q_unit_kvar", lo=0.0),
        units=integer(row["units"], f"{where} units", lo=0),
        step=None if step is None else integer(step, f"{where} step", lo=0),
    )


def _optional(value: Any, where: str, **bounds) -> float | None:
    return None if value is None else number(value, where, **bounds)


def parse_network(value: Any, *, keys: Iterable[str] = NETWORK_KEYS, where: str = "[network]") -> NetworkSpec:
    """Parse a ``[network]`` table (see the module docstring).

    Ranges that depend on the case (a PV rating, a bus id) are checked when the
    network is built, which names the bus; this parse checks types and finiteness.

    Args:
        value: the parsed table (None when the config has none).
        keys: the keys this study accepts (a subset of :data:`NETWORK_KEYS`).
        where: the table's name in messages.

    Raises:
        ConfigError: a missing table or ``case``, an unknown key, a value of the wrong type or NaN.
    """
    allowed = set(keys)
    if not allowed <= NETWORK_KEYS:
        raise ValueError(f"unknown [network] keys {sorted(allowed - NETWORK_KEYS)}")  # a programming error
    if value is None:
        raise ConfigError(f"the config needs a {where} table with 'case' {_CASE_HINT}")
    t = table(value, where, allowed=allowed)
    require(t, ("case",), where, hint=_CASE_HINT)
    case = t["case"]
    if not isinstance(case, str) or not case.strip():
        raise ConfigError(f"{where} case must be a case name or a .m path, got {case!r}")
    return NetworkSpec(
        case=case,
        pv=tuple(_pv(r, f"{where} pv[{k}]") for k, r in enumerate(table_list(t.get("pv"), f"{where} pv"))),
        sop=tuple(_sop(r, f"{where} sop[{k}]") for k, r in enumerate(table_list(t.get("sop"), f"{where} sop"))),
        capacitor=tuple(_capacitor(r, f"{where} capacitor[{k}]")
                        for k, r in enumerate(table_list(t.get("capacitor"), f"{where} capacitor"))),
        v_slack_pu=_optional(t.get("v_slack_pu"), f"{where} v_slack_pu", lo=0.8, hi=1.2),
        v_min_pu=_optional(t.get("v_min_pu"), f"{where} v_min_pu", positive=True),
        v_max_pu=_optional(t.get("v_max_pu"), f"{where} v_max_pu", positive=True),
    )
