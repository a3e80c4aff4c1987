"""A restoration strategy: branch statuses, SOP modes with set-points, load pickup.

A :class:`Strategy` is plain numpy data in per unit, one value per branch, SOP
and bus of its network. Build one from user units (case branch numbers, case
bus ids, kW / kvar) with :meth:`Strategy.build`, or from per-unit arrays (a
solver's plan) with :meth:`Strategy.from_arrays`. Checks that need the network
(radiality, SOP capacity, energized terminals) happen when a batch is compiled
(:func:`sopjax.strategies.compile_strategies`).

SOP control modes (per SOP, terminals ``bus_i`` / ``bus_j`` of the network's
SOP table):

==========  ==================================================================
``off``     both VSCs idle: no injection, no loss.
``pq_i``    VSC i holds the set-point ``P + jQ_i``; VSC j (VdcQ) balances the
            DC link and injects ``Q_j``. ``pq`` is an alias.
``pq_j``    the same with the roles swapped (VSC j holds ``P + jQ_j``).
``vf_i``    VSC i forms the voltage ``U_set`` of the island it feeds (an extra
            source, seed 002); VSC j (VdcQ) draws the island's power plus both
            converter losses from its own feeder and injects ``Q_j``.
``vf_j``    the same with the roles swapped.
==========  ==================================================================

Capacitor banks (the network's ``capacitor`` table) are part of a strategy:
``capacitor_step`` holds the connected steps of each bank (an integer in
``[0, units]``); by default the network's own ``capacitor.step`` (every
installed step unless ``add_capacitors(step=...)`` says otherwise). A bank is a
fixed susceptance ``step * q_unit`` at its bus, modelled by the scoring kernels
like any bus shunt (docs/networks.md, "Capacitor banks").

Sign convention: set-points are the power a VSC *injects* into its AC bus
(generation positive), so ``P < 0`` draws power from that bus. Seed 002's
Table 6 "VSC1-21 P = -1596.5 kW" is ``p_kw=-1596.5`` at bus 21.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sopjax.branch_model import capacitor_steps
from sopjax.config import integer, integer_list, number
from sopjax.errors import SopjaxError
from sopjax.network import Network

__all__ = [
    "SOP_MODES",
    "OFF",
    "PQ_I",
    "PQ_J",
    "VF_I",
    "VF_J",
    "Strategy",
    "SOPSetting",
    "StrategyError",
    "mode_code",
]

OFF, PQ_I, PQ_J, VF_I, VF_J = 0, 1, 2, 3, 4
SOP_MODES = {"off": OFF, "pq": PQ_I, "pq_i": PQ_I, "pq_j": PQ_J, "vf_i": VF_I, "vf_j": VF_J}
MODE_NAMES = {OFF: "off", PQ_I: "pq_i", PQ_J: "pq_j", VF_I: "vf_i", VF_J: "vf_j"}


class StrategyError(SopjaxError):
    """A strategy is invalid: bad pickup, unknown SOP, set-point above capacity, ..."""


def mode_code(mode: str | int, where: str = "SOP") -> int:
    """Integer code of an SOP mode name (``off``, ``pq``, ``pq_i``, ``pq_j``, ``vf_i``, ``vf_j``)."""
    if isinstance(mode, (int, np.integer)) and int(mode) in MODE_NAMES:
        return int(mode)
    key = str(mode).strip().lower()
    if key not in SOP_MODES:
        raise StrategyError(f"{where}: unknown SOP mode {mode!r}; choose from {sorted(SOP_MODES)}")
    return SOP_MODES[key]


@dataclasses.dataclass(frozen=True)
class SOPSetting:
    """Mode and set-points of one SOP in user units.

    Attributes:
        sop: index into the network's SOP table, or the (bus_i, bus_j) case bus pair.
        mode: ``off``, ``pq`` / ``pq_i``, ``pq_j``, ``vf_i`` or ``vf_j``.
        p_kw: active power injected by the PQ-mode VSC (kW); ignored otherwise.
        q_i_kvar, q_j_kvar: reactive power injected by VSC i / j (kvar); ignored
            for the VSC in Vf mode (its Q follows the island).
        u_set_pu: voltage magnitude set by the Vf-mode VSC (p.u.).
    """

    sop: int | tuple[int, int]
    mode: str = "off"
    p_kw: float = 0.0
    q_i_kvar: float = 0.0
    q_j_kvar: float = 0.0
    u_set_pu: float = 1.0


def _sop_index(net: Network, sop, where: str) -> int:
    n = net.sop.count
    if isinstance(sop, (int, np.integer)):
        if not 0 <= int(sop) < n:
            raise StrategyError(f"{where}: SOP index {sop} does not exist (the network has {n} SOPs)")
        return int(sop)
    try:
        a, b = (int(x) for x in sop)
    except (TypeError, ValueError):
        raise StrategyError(f"{where}: an SOP is named by its index or its (bus_i, bus_j) pair, got {sop!r}") from None
    ia, ib = net.bus_index(a), net.bus_index(b)
    bi, bj = np.asarray(net.sop.bus_i), np.asarray(net.sop.bus_j)
    hit = np.flatnonzero(((bi == ia) & (bj == ib)) | ((bi == ib) & (bj == ia)))
    if hit.size == 0:
        have = ", ".join(f"{net.bus_ids[i]}-{net.bus_ids[j]}" for i, j in zip(bi, bj)) or "none"
        raise StrategyError(f"{where}: no SOP between buses {a} and {b} (the network's SOPs: {have})")
    k = int(hit[0])
    if bi[k] == ib and a != b:  # given as (j, i): the user's first bus is the SOP's j terminal
        raise StrategyError(
            f"{where}: SOP {k} is defined as {net.bus_ids[bi[k]]}-{net.bus_ids[bj[k]]}; "
            f"name it in that order so that 'i' and 'j' are unambiguous"
        )
    return k


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One restoration strategy of a network (numpy arrays, per unit).

    Attributes:
        name: label used as the ``strategy`` coordinate.
        status: closed flag per branch, (branch,).
        sop_mode: mode code per SOP (:data:`OFF`, :data:`PQ_I`, ...), (sop,).
        p_set_pu: active power injected by the PQ-mode VSC, (sop,).
        q_i_pu, q_j_pu: reactive power injected by VSC i / j, (sop,).
        u_set_pu: Vf voltage set-point, (sop,).
        pickup: fraction of each bus's load that is picked up, in [0, 1], (bus,).
            1 = reconnect, 0 = keep shed; fractions model partial shedding.
        info: provenance (e.g. the user's open/close lists), JSON-able.
        capacitor_step: connected steps per capacitor bank (int, 0..units), (cap,);
            ``None``: the network's ``capacitor.step``.
    """

    name: str
    status: np.ndarray
    sop_mode: np.ndarray
    p_set_pu: np.ndarray
    q_i_pu: np.ndarray
    q_j_pu: np.ndarray
    u_set_pu: np.ndarray
    pickup: np.ndarray
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    capacitor_step: np.ndarray | None = None

    # ------------------------------------------------------------ builders
    @classmethod
    def from_arrays(
        cls,
        net: Network,
        name: str,
        *,
        status: Sequence[bool] | np.ndarray,
        sop_mode: Sequence[int | str] | np.ndarray | None = None,
        p_set_pu: Sequence[float] | np.ndarray | None = None,
        q_i_pu: Sequence[float] | np.ndarray | None = None,
        q_j_pu: Sequence[float] | np.ndarray | None = None,
        u_set_pu: Sequence[float] | np.ndarray | None = None,
        pickup: Sequence[float] | np.ndarray | None = None,
        info: Mapping[str, Any] | None = None,
        capacitor_step: Sequence[int] | Mapping[int, int] | np.ndarray | None = None,
    ) -> "Strategy":
        """A strategy from per-unit arrays, e.g. an optimiser's plan.

        Args:
            net: the network.
            name: strategy label.
            status: closed flag per branch, (branch,).
            sop_mode: mode per SOP (codes or names), (sop,); default all ``off``.
            p_set_pu, q_i_pu, q_j_pu, u_set_pu: set-points per SOP (p.u.), (sop,);
                defaults 0, 0, 0 and 1.
            pickup: picked-up fraction per bus in [0, 1] (bool accepted), (bus,);
                default all 1.
            info: JSON-able provenance.
            capacitor_step: connected steps per capacitor bank, (cap,) integers or
                ``{bus_id: step}``; default the network's ``capacitor.step``.

        Raises:
            StrategyError: wrong shapes, non-finite values, pickup outside [0, 1]
                (naming the bus), unknown SOP mode, a capacitor step that is not an
                integer in [0, units] or names a bus without a bank.
        """
        where = f"strategy {name!r}"
        nb, nl, ns = net.n_bus, net.n_branch, net.sop.count
        st = np.asarray(status)
        if st.shape != (nl,):
            raise StrategyError(f"{where}: branch status needs {nl} entries, got shape {st.shape}")
        if st.dtype != bool and not np.all(np.isin(st, (0, 1))):
            raise StrategyError(f"{where}: branch status must be boolean (closed = True)")

        def per_sop(values, default, label):
            if values is None:
                return np.full(ns, default, dtype=float)
            arr = np.asarray(values, dtype=float)
            if arr.shape != (ns,):
                raise StrategyError(f"{where}: {label} needs one value per SOP ({ns}), got shape {arr.shape}")
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                raise StrategyError(f"{where}: {label} of SOP {bad[0]} is not finite ({arr[bad[0]]})")
            return arr

        if sop_mode is None:
            modes = np.zeros(ns, dtype=np.int8)
        else:
            seq = list(np.asarray(sop_mode, dtype=object).reshape(-1))
            if len(seq) != ns:
                raise StrategyError(f"{where}: sop_mode needs one entry per SOP ({ns}), got {len(seq)}")
            modes = np.asarray([mode_code(m, f"{where}, SOP {k}") for k, m in enumerate(seq)], dtype=np.int8)
        if pickup is None:
            pk = np.ones(nb)
        else:
            pk = np.asarray(pickup, dtype=float)
            if pk.shape != (nb,):
                raise StrategyError(f"{where}: pickup needs one value per bus ({nb}), got shape {pk.shape}")
            bad = np.flatnonzero(~np.isfinite(pk) | (pk < 0) | (pk > 1))
            if bad.size:
                raise StrategyError(
                    f"{where}: pickup at bus {net.bus_ids[bad[0]]} is {pk[bad[0]]}; it must lie in [0, 1]"
                )
        return cls(
            name=str(name),
            status=st.astype(bool).copy(),
            sop_mode=modes,
            p_set_pu=per_sop(p_set_pu, 0.0, "p_set_pu"),
            q_i_pu=per_sop(q_i_pu, 0.0, "q_i_pu"),
            q_j_pu=per_sop(q_j_pu, 0.0, "q_j_pu"),
            u_set_pu=per_sop(u_set_pu, 1.0, "u_set_pu"),
            pickup=pk.copy(),
            info=dict(info or {}),
            capacitor_step=capacitor_steps(net, capacitor_step, where=where, error=StrategyError),
        )

    @classmethod
    def build(
        cls,
        net: Network,
        name: str,
        *,
        open: Sequence[int] = (),
        close: Sequence[int] = (),
        sops: Sequence[SOPSetting | Mapping[str, Any]] = (),
        pickup: str | Sequence[int] | Mapping[str, Any] | np.ndarray | None = None,
        capacitors: Mapping[int, int] | Sequence[int] | None = None,
    ) -> "Strategy":
        """A strategy in user units: case branch numbers, case bus ids, kW / kvar.

        Args:
            net: the network (with its SOP table).
            name: strategy label.
            open, close: 1-based case branch numbers to open / close, applied to
                the case statuses.
            sops: :class:`SOPSetting` (or dicts with its fields) per SOP used;
                SOPs not listed are ``off``.
            pickup: ``None`` or ``"all"`` (every load picked up),
                ``{"shed": [bus ids]}``, ``{"fraction": {bus_id: x}}`` or a
                per-bus float/bool array.
            capacitors: connected steps of capacitor banks, ``{bus_id: step}`` (banks
                not named keep the network's step) or one integer per bank; default
                the network's ``capacitor.step``.

        Raises:
            NetworkError: unknown branch number or bus id (named).
            StrategyError: unknown SOP, bad mode, pickup outside [0, 1], a capacitor
                step that is not an integer in [0, units], a bus without a bank.
        """
        where = f"strategy {name!r}"
        status = net.branch_status(open=open, close=close)
        ns = net.sop.count
        modes = np.zeros(ns, dtype=np.int8)
        p = np.zeros(ns)
        qi = np.zeros(ns)
        qj = np.zeros(ns)
        u = np.ones(ns)
        scale = 1e3 * net.base_mva
        seen: set[int] = set()
        for n_item, item in enumerate(sops):
            s = item if isinstance(item, SOPSetting) else _setting_from_mapping(item, f"{where} sop[{n_item}]")
            k = _sop_index(net, s.sop, where)
            if k in seen:
                raise StrategyError(f"{where}: SOP {k} is set twice")
            seen.add(k)
            modes[k] = mode_code(s.mode, f"{where}, SOP {k}")
            p[k], qi[k], qj[k] = s.p_kw / scale, s.q_i_kvar / scale, s.q_j_kvar / scale
            u[k] = s.u_set_pu
        pk = pickup_vector(net, pickup, where)
        info = {
            "open": [int(k) for k in open],
            "close": [int(k) for k in close],
            "sops": [dataclasses.asdict(s) if isinstance(s, SOPSetting) else dict(s) for s in sops],
        }
        steps = capacitor_steps(net, capacitors, where=where, error=StrategyError)
        if capacitors is not None:
            info["capacitors"] = [{"bus": net.bus_ids[int(b)], "step": int(k)} for b, k in zip(net.capacitor.bus, steps)]
        return cls.from_arrays(
            net, name, status=status, sop_mode=modes, p_set_pu=p, q_i_pu=qi, q_j_pu=qj,
            u_set_pu=u, pickup=pk, info=info, capacitor_step=steps,
        )

    def with_pickup(self, values: np.ndarray, **info) -> "Strategy":
        """A copy with another pickup vector (validated in [0, 1]); ``info`` entries are merged."""
        pk = np.asarray(values, dtype=float)
        if pk.shape != self.pickup.shape or np.any(~np.isfinite(pk) | (pk < 0) | (pk > 1)):
            raise StrategyError(f"strategy {self.name!r}: pickup must be {self.pickup.shape} values in [0, 1]")
        return dataclasses.replace(self, pickup=pk.copy(), info={**self.info, **info})

    def describe(self, net: Network) -> dict:
        """JSON-able summary in user units (open/closed switches, SOP modes, shed buses)."""
        changed = np.flatnonzero(self.status != np.asarray(net.in_service, dtype=bool))
        scale = 1e3 * net.base_mva
        sops = []
        for k in range(net.sop.count):
            if self.sop_mode[k] == OFF:
                continue
            d = {
                "sop": f"{net.bus_ids[int(net.sop.bus_i[k])]}-{net.bus_ids[int(net.sop.bus_j[k])]}",
                "mode": MODE_NAMES[int(self.sop_mode[k])],
            }
            if self.sop_mode[k] in (PQ_I, PQ_J):
                d["p_kw"] = float(self.p_set_pu[k] * scale)
            else:
                d["u_set_pu"] = float(self.u_set_pu[k])
            d["q_i_kvar"] = float(self.q_i_pu[k] * scale)
            d["q_j_kvar"] = float(self.q_j_pu[k] * scale)
            sops.append(d)
        out = {
            "name": self.name,
            "opened": [net.branch_numbers[k] for k in changed if not self.status[k]],
            "closed": [net.branch_numbers[k] for k in changed if self.status[k]],
            "sops": sops,
            "shed_buses": [net.bus_ids[b] for b in np.flatnonzero(self.pickup < 1)],
        }
        if net.capacitor.count:
            out["capacitor_steps"] = [
                {"bus": net.bus_ids[int(b)], "step": int(k)}
                for b, k in zip(net.capacitor.bus, capacitor_steps(net, self.capacitor_step))
            ]
        return out


def _setting_from_mapping(d: Mapping[str, Any], where: str) -> SOPSetting:
    allowed = {f.name for f in dataclasses.fields(SOPSetting)} | {"pair", "index"}
    unknown = set(d) - allowed
    if unknown:
        raise StrategyError(f"{where}: unknown SOP setting {sorted(unknown)[0]!r}; allowed: {sorted(allowed)}")
    d = dict(d)
    if "pair" in d:
        pair = integer_list(d.pop("pair"), f"{where}: pair", error=StrategyError)
        if len(pair) != 2:
            raise StrategyError(f"{where}: pair must hold two bus ids [bus_i, bus_j], got {pair}")
        d["sop"] = tuple(pair)
    if "index" in d:
        d["sop"] = integer(d.pop("index"), f"{where}: index", lo=0, error=StrategyError)
    if "sop" not in d:
        raise StrategyError(f"{where}: an SOP setting needs 'pair' = [bus_i, bus_j] or 'index'")
    if "mode" in d and not isinstance(d["mode"], (str, int)):
        raise StrategyError(f"{where}: mode must be a string, got {d['mode']!r}")
    values = {k: (v if k in ("sop", "mode") else number(v, f"{where}: {k}", error=StrategyError))
              for k, v in d.items()}
    return SOPSetting(**values)


def pickup_vector(net: Network, pickup, where: str = "strategy") -> np.ndarray:
    """Per-bus pickup fractions from the user forms accepted by :meth:`Strategy.build`."""
    nb = net.n_bus
    if pickup is None or (isinstance(pickup, str) and pickup.lower() == "all"):
        return np.ones(nb)
    if isinstance(pickup, str):
        raise StrategyError(f"{where}: pickup must be 'all', a list of bus ids or a table, got {pickup!r}")
    if isinstance(pickup, Mapping):
        unknown = set(pickup) - {"shed", "fraction"}
        if unknown:
            raise StrategyError(f"{where}: unknown pickup key {sorted(unknown)[0]!r} (use 'shed' or 'fraction')")
        pk = np.ones(nb)
        for b in pickup.get("shed", ()):
            pk[net.bus_index(b)] = 0.0
        for b, x in dict(pickup.get("fraction", {})).items():
            pk[net.bus_index(int(b))] = float(x)
        return pk
    arr = np.asarray(pickup)
    if arr.shape == (nb,) and (arr.dtype == bool or np.issubdtype(arr.dtype, np.floating)):
        return arr.astype(float)
    raise StrategyError(
        f"{where}: pickup must be 'all', {{shed = [bus ids]}}, {{fraction = {{bus id = x}}}} or "
        f"{nb} per-bus values (float or bool), got {pickup!r}"
    )
