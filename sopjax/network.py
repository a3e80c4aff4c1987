"""The network data model: an immutable pytree compiled once from case data.

Conventions (written here once, used everywhere):

* Per unit on the network's ``base_mva`` and each bus's ``base_kv``; public
  helpers convert to kW / MW where a name says so.
* **Loads are positive**: a bus's *net load* is consumption minus generation.
  PV output and SOP injections therefore enter the net load with a minus sign.
* Buses are 0-based internally; ``bus_ids`` keeps the case's own bus numbers.
  Branches keep the case file's row order; ``branch_numbers`` are 1-based
  (the literature's "open switches 7, 9, 14, 32, 37" on IEEE 33).
* Array fields are pytree leaves (vmappable, differentiable); sizes, ids and
  names are static metadata.
* **Shunts and transformers** (optional leaves, ``None`` when the network has
  none, so networks without them compile the plain kernels): a bus shunt
  ``g + jb`` draws ``(g - jb)|V|^2`` (``b > 0`` is capacitive); a branch's total
  pi-model shunt ``g_br + j b_br`` is split in halves at its two ends; a branch
  ratio ``tap`` sits at the from-bus side (MATPOWER's convention: the from-end
  half-shunt sees ``|V_f / tap|^2``); ``shift_deg`` is a fixed vector-group phase
  shift, which in a radial network only rotates the angles downstream of it.
  A line with a switch at one end keeps its other end connected when the switch
  opens (``dangle_end``): its charging stays in the grid, as in pandapower.
* Balanced positive-sequence model: unbalanced three-phase networks are not modelled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from sopjax.device_tables import (
    Capacitors, DemandResponse, PVUnits, SOPs, empty_devices, pytree_dataclass, validate_devices,
)
from sopjax.errors import NetworkError

__all__ = [
    "Network",
    "PVUnits",
    "SOPs",
    "Capacitors",
    "DemandResponse",
    "make_network",
]


@dataclasses.dataclass(frozen=True)
class Network:
    """A compiled radial distribution network (immutable pytree).

    Leaves (arrays) are per-unit quantities; metadata is static. Build one with
    :func:`make_network` or a loader (:func:`sopjax.load_case`), never by hand,
    so that it is validated.

    Attributes:
        p_load_pu, q_load_pu: nominal bus load (positive = consumption), (bus,).
        v_min_pu, v_max_pu: voltage limits, (bus,).
        base_kv: bus base voltage (kV), (bus,).
        f_bus, t_bus: 0-based branch end buses (numpy int), (branch,).
        r_pu, x_pu: branch series impedance, (branch,).
        rate_pu: branch rating (apparent power), ``inf`` if unlimited, (branch,).
        in_service: case status of each branch (True = closed), (branch,).
        switchable: whether a branch carries a switch, (branch,).
        v_slack_pu: substation voltage magnitude (scalar).
        pv, sop, capacitor, demand_response: device tables.
        name: case name. base_mva: system base (MVA). slack_bus: 0-based index.
        bus_ids: the case's bus numbers in internal order.
        branch_numbers: 1-based case-file row numbers in internal order.
        g_sh_pu, b_sh_pu: bus shunt conductance / susceptance, (bus,), or None.
        g_br_pu, b_br_pu: total pi-model shunt of each branch, (branch,), or None.
        tap: off-nominal ratio at each branch's from side (1 for lines), (branch,), or None.
        shift_deg: fixed phase shift of each branch (degrees), (branch,), or None.
        dangle_end: for each branch, the end that stays connected when the branch
            is open (0 = from, 1 = to, -1 = none: open means fully disconnected),
            (branch,) int, or None.
        transformer: True for transformer branches (may join different base
            voltages), (branch,), or None.
    """

    p_load_pu: Any
    q_load_pu: Any
    v_min_pu: Any
    v_max_pu: Any
    base_kv: Any
    f_bus: Any
    t_bus: Any
    r_pu: Any
    x_pu: Any
    rate_pu: Any
    in_service: Any
    switchable: Any
    v_slack_pu: Any
    pv: PVUnits
    sop: SOPs
    capacitor: Capacitors
    demand_response: DemandResponse
    name: str = "network"
    base_mva: float = 1.0
    slack_bus: int = 0
    bus_ids: tuple[int, ...] = ()
    branch_numbers: tuple[int, ...] = ()
    g_sh_pu: Any = None
    b_sh_pu: Any = None
    g_br_pu: Any = None
    b_br_pu: Any = None
    tap: Any = None
    shift_deg: Any = None
    dangle_end: Any = None
    transformer: Any = None

    @property
    def has_shunts(self) -> bool:
        """Whether any bus or branch shunt is present (decides the kernels statically)."""
        return self.g_sh_pu is not None or self.g_br_pu is not None

    @property
    def has_taps(self) -> bool:
        """Whether any branch has an off-nominal ratio or a phase shift."""
        return self.tap is not None or self.shift_deg is not None

    # ------------------------------------------------------------------ sizes
    @property
    def n_bus(self) -> int:
        return len(self.bus_ids)

    @property
    def n_branch(self) -> int:
        return len(self.branch_numbers)

    # ------------------------------------------------------------ id lookups
    def bus_index(self, bus_id: int) -> int:
        """0-based internal index of the case's bus ``bus_id``.

        Raises:
            NetworkError: if the bus does not exist.
        """
        try:
            return self.bus_ids.index(int(bus_id))
        except ValueError:
            raise NetworkError(
                f"unknown bus {bus_id!r} in network {self.name!r} "
                f"(bus ids run {min(self.bus_ids)}..{max(self.bus_ids)})"
            ) from None

    def branch_index(self, number: int) -> int:
        """0-based internal index of the 1-based case branch ``number``.

        Raises:
            NetworkError: if no branch has that number.
        """
        try:
            return self.branch_numbers.index(int(number))
        except (ValueError, TypeError):
            raise NetworkError(
                f"unknown branch number {number!r} in network {self.name!r} "
                f"(branches are numbered 1..{self.n_branch})"
            ) from None

    def branch_status(
        self, open: Sequence[int] = (), close: Sequence[int] = ()
    ) -> np.ndarray:
        """The case's branch statuses with the listed 1-based branches opened/closed.

        Args:
            open: 1-based branch numbers to open.
            close: 1-based branch numbers to close.

        Returns:
            Boolean array (branch,), True = closed.

        Raises:
            NetworkError: if a number is unknown or listed in both.
        """
        both = set(map(int, open)) & set(map(int, close))
        if both:
            raise NetworkError(f"branch {sorted(both)[0]} is listed both to open and to close")
        status = np.asarray(self.in_service, dtype=bool).copy()
        for k in open:
            status[self.branch_index(k)] = False
        for k in close:
            status[self.branch_index(k)] = True
        return status

    def branch_label(self, k: int) -> str:
        """Human-readable label of internal branch ``k``: ``'7 (7-8)'``."""
        f, t = int(self.f_bus[k]), int(self.t_bus[k])
        return f"{self.branch_numbers[k]} ({self.bus_ids[f]}-{self.bus_ids[t]})"

    def replace(self, **changes) -> "Network":
        """A copy with some fields replaced (no re-validation of array leaves)."""
        return dataclasses.replace(self, **changes)

    def with_devices(
        self,
        *,
        pv: PVUnits | None = None,
        sop: SOPs | None = None,
        capacitor: Capacitors | None = None,
        demand_response: DemandResponse | None = None,
    ) -> "Network":
        """A copy with device tables replaced; validated like :func:`make_network`."""
        net = dataclasses.replace(
            self,
            pv=pv if pv is not None else self.pv,
            sop=sop if sop is not None else self.sop,
            capacitor=capacitor if capacitor is not None else self.capacitor,
            demand_response=demand_response
            if demand_response is not None
            else self.demand_response,
        )
        validate_devices(net)
        return net

    @property
    def total_load_mw(self) -> float:
        return float(np.sum(self.p_load_pu)) * self.base_mva


pytree_dataclass(Network, static=("name", "base_mva", "slack_bus", "bus_ids", "branch_numbers"))


# ---------------------------------------------------------------------------
# construction and validation
# ---------------------------------------------------------------------------


def _finite(name: str, values: np.ndarray, labels: Sequence[str]) -> None:
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise NetworkError(f"{name} is not a finite number at {labels[bad[0]]}: {values[bad[0]]}")


def make_network(
    *,
    bus_ids: Sequence[int],
    p_load_mw: Sequence[float],
    q_load_mvar: Sequence[float],
    branch_from: Sequence[int],
    branch_to: Sequence[int],
    r_ohm: Sequence[float] | None = None,
    x_ohm: Sequence[float] | None = None,
    r_pu: Sequence[float] | None = None,
    x_pu: Sequence[float] | None = None,
    slack_bus: int,
    base_kv: float | Sequence[float],
    base_mva: float = 1.0,
    v_slack_pu: float = 1.0,
    v_min_pu: float | Sequence[float] = 0.95,
    v_max_pu: float | Sequence[float] = 1.05,
    rate_mva: Sequence[float] | None = None,
    in_service: Sequence[bool] | None = None,
    switchable: Sequence[bool] | None = None,
    branch_numbers: Sequence[int] | None = None,
    name: str = "network",
    shunt_g_pu: Sequence[float] | None = None,
    shunt_b_pu: Sequence[float] | None = None,
    branch_g_pu: Sequence[float] | None = None,
    branch_b_pu: Sequence[float] | None = None,
    tap: Sequence[float] | None = None,
    shift_deg: Sequence[float] | None = None,
    dangle_end: Sequence[int] | None = None,
    transformer: Sequence[bool] | None = None,
) -> Network:
    """Validate case data given in the case's own bus ids and compile a :class:`Network`.

    Impedances come either in ohms (``r_ohm``/``x_ohm``, converted with the
    from-bus base voltage) or in per unit on ``base_mva``.

    Args:
        bus_ids: the case's bus numbers, (bus,).
        p_load_mw, q_load_mvar: bus load, positive = consumption, (bus,).
        branch_from, branch_to: branch ends as case bus ids, (branch,).
        r_ohm, x_ohm: series impedance in ohms, (branch,).
        r_pu, x_pu: series impedance in per unit (alternative to ohms).
        slack_bus: the case bus id of the substation.
        base_kv: base voltage (kV), scalar or (bus,).
        base_mva: system base power (MVA).
        v_slack_pu: substation voltage magnitude.
        v_min_pu, v_max_pu: voltage limits, scalar or (bus,).
        rate_mva: branch ratings; 0 or inf = unlimited.
        in_service: case status per branch (default all closed).
        switchable: switch flag per branch (default: out-of-service branches).
        branch_numbers: 1-based labels (default 1..branch).
        name: network name.
        shunt_g_pu, shunt_b_pu: bus shunt admittance (p.u., ``b > 0`` capacitive), (bus,).
        branch_g_pu, branch_b_pu: total pi-model shunt per branch (p.u.), (branch,).
        tap: off-nominal ratio at the from side per branch (> 0; 1 = none), (branch,).
        shift_deg: fixed phase shift per branch (degrees), (branch,).
        dangle_end: end left connected when the branch is open (0 from, 1 to, -1 none).
        transformer: True where a branch is a transformer (may join different base kV).

    Returns:
        A validated :class:`Network` without devices (add them with
        :meth:`Network.with_devices`).

    Raises:
        NetworkError: naming the bus or branch at fault.
    """
    bus_ids = [int(b) for b in bus_ids]
    nb = len(bus_ids)
    if nb == 0:
        raise NetworkError("network has no buses")
    index = {}
    for i, b in enumerate(bus_ids):
        if b in index:
            raise NetworkError(f"duplicate bus id {b}")
        index[b] = i
    bus_labels = [f"bus {b}" for b in bus_ids]

    def per_bus(name, value):
        arr = np.broadcast_to(np.asarray(value, dtype=float), (nb,)).copy()
        _finite(name, arr, bus_labels)
        return arr

    p = per_bus("p_load_mw", p_load_mw)
    q = per_bus("q_load_mvar", q_load_mvar)
    kv = per_bus("base_kv", base_kv)
    vmin = per_bus("v_min_pu", v_min_pu)
    vmax = per_bus("v_max_pu", v_max_pu)
    if np.any(kv <= 0):
        raise NetworkError(f"base_kv must be positive at {bus_labels[int(np.argmax(kv <= 0))]}")
    bad = np.flatnonzero(vmin > vmax)
    if bad.size:
        raise NetworkError(f"v_min_pu > v_max_pu at {bus_labels[bad[0]]}")
    if not np.isfinite(base_mva) or base_mva <= 0:
        raise NetworkError(f"base_mva must be a positive number, got {base_mva}")
    if not np.isfinite(v_slack_pu) or v_slack_pu <= 0:
        raise NetworkError(f"slack voltage must be positive, got {v_slack_pu}")

    nl = len(branch_from)
    if len(branch_to) != nl:
        raise NetworkError("branch_from and branch_to differ in length")
    numbers = list(range(1, nl + 1)) if branch_numbers is None else [int(k) for k in branch_numbers]
    br_labels = [f"branch {k}" for k in numbers]
    f = np.empty(nl, dtype=np.int32)
    t = np.empty(nl, dtype=np.int32)
    seen: dict[tuple[int, int], int] = {}
    for k, (a, b) in enumerate(zip(branch_from, branch_to)):
        for end in (a, b):
            if int(end) not in index:
                raise NetworkError(f"{br_labels[k]} refers to unknown bus {end}")
        if int(a) == int(b):
            raise NetworkError(f"{br_labels[k]} connects bus {a} to itself")
        f[k], t[k] = index[int(a)], index[int(b)]
        key = (min(f[k], t[k]), max(f[k], t[k]))
        if key in seen:
            raise NetworkError(
                f"{br_labels[k]} duplicates branch {numbers[seen[key]]} (both join buses {a} and {b}); "
                "merge parallel branches into one equivalent impedance"
            )
        seen[key] = k

    if (r_ohm is None) == (r_pu is None) or (x_ohm is None) == (x_pu is None):
        raise NetworkError("give branch impedances either in ohms (r_ohm, x_ohm) or in p.u. (r_pu, x_pu)")
    if r_ohm is not None:
        zbase = kv[f] ** 2 / base_mva
        r = np.asarray(r_ohm, dtype=float) / zbase
        x = np.asarray(x_ohm, dtype=float) / zbase
    else:
        r = np.asarray(r_pu, dtype=float).copy()
        x = np.asarray(x_pu, dtype=float).copy()
    if r.shape != (nl,) or x.shape != (nl,):
        raise NetworkError(f"branch impedances must have one value per branch ({nl})")
    _finite("branch resistance", r, br_labels)
    _finite("branch reactance", x, br_labels)
    bad = np.flatnonzero((r < 0) | (x < 0) | ((r == 0) & (x == 0)))
    if bad.size:
        k = bad[0]
        raise NetworkError(
            f"{br_labels[k]} has a non-positive impedance r={r[k]:g}, x={x[k]:g} p.u. "
            "(need r >= 0, x >= 0 and |z| > 0)"
        )
    def per_branch(label, value, default, dtype=float):
        arr = np.full(nl, default, dtype=dtype) if value is None else np.asarray(value, dtype=dtype).copy()
        if arr.shape != (nl,):
            raise NetworkError(f"{label} must have one value per branch ({nl}), got shape {arr.shape}")
        if dtype is float:
            _finite(label, arr, br_labels)
        return arr

    trafo = per_branch("transformer", transformer, False, bool)
    ratio = per_branch("tap", tap, 1.0)
    bad = np.flatnonzero(ratio <= 0)
    if bad.size:
        raise NetworkError(f"{br_labels[bad[0]]} has a non-positive tap ratio {ratio[bad[0]]}")
    shift = per_branch("shift_deg", shift_deg, 0.0)
    dangle = per_branch("dangle_end", dangle_end, -1, np.int8)
    bad = np.flatnonzero((dangle < -1) | (dangle > 1))
    if bad.size:
        raise NetworkError(f"{br_labels[bad[0]]} has dangle_end {dangle[bad[0]]}; use -1, 0 or 1")
    g_br = per_branch("branch_g_pu", branch_g_pu, 0.0)
    b_br = per_branch("branch_b_pu", branch_b_pu, 0.0)
    g_sh = per_bus("shunt_g_pu", 0.0 if shunt_g_pu is None else shunt_g_pu)
    b_sh = per_bus("shunt_b_pu", 0.0 if shunt_b_pu is None else shunt_b_pu)
    bad = np.flatnonzero((np.abs(kv[f] - kv[t]) > 1e-9 * kv[f]) & ~trafo)
    if bad.size:
        k = bad[0]
        raise NetworkError(
            f"{br_labels[k]} joins buses of different base voltage "
            f"({kv[f[k]]} kV and {kv[t[k]]} kV); mark it as a transformer (transformer=True)"
        )

    rate = np.full(nl, np.inf) if rate_mva is None else np.asarray(rate_mva, dtype=float).copy()
    if np.any(np.isnan(rate)):
        raise NetworkError(f"rating is NaN at {br_labels[int(np.argmax(np.isnan(rate)))]}")
    if np.any(rate < 0):
        raise NetworkError(f"negative rating at {br_labels[int(np.argmax(rate < 0))]}")
    rate = np.where(rate == 0, np.inf, rate) / base_mva
    status = np.ones(nl, dtype=bool) if in_service is None else np.asarray(in_service, dtype=bool).copy()
    sw = (~status) if switchable is None else np.asarray(switchable, dtype=bool).copy()

    if int(slack_bus) not in index:
        raise NetworkError(f"slack bus {slack_bus} is not a bus of the network")
    pv, sop, cap, dr = empty_devices()
    net = Network(
        p_load_pu=p / base_mva,
        q_load_pu=q / base_mva,
        v_min_pu=vmin,
        v_max_pu=vmax,
        base_kv=kv,
        f_bus=f,
        t_bus=t,
        r_pu=r,
        x_pu=x,
        rate_pu=rate,
        in_service=status,
        switchable=sw,
        v_slack_pu=float(v_slack_pu),
        pv=pv,
        sop=sop,
        capacitor=cap,
        demand_response=dr,
        name=name,
        base_mva=float(base_mva),
        slack_bus=index[int(slack_bus)],
        bus_ids=tuple(bus_ids),
        branch_numbers=tuple(numbers),
        # optional physics: None where absent, so plain networks keep the plain kernels
        g_sh_pu=g_sh if (np.any(g_sh) or np.any(b_sh) or np.any(g_br) or np.any(b_br)) else None,
        b_sh_pu=b_sh if (np.any(g_sh) or np.any(b_sh) or np.any(g_br) or np.any(b_br)) else None,
        g_br_pu=g_br if (np.any(g_br) or np.any(b_br)) else None,
        b_br_pu=b_br if (np.any(g_br) or np.any(b_br)) else None,
        tap=ratio if np.any(ratio != 1.0) else None,
        shift_deg=shift if np.any(shift != 0.0) else None,
        dangle_end=dangle if np.any(dangle >= 0) else None,
        transformer=trafo if np.any(trafo) else None,
    )
    return net
