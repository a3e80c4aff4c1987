"""Decision encoding of an SOP + capacitor-bank allocation plan (seed 001, stage 1).

A plan is an integer vector ``x = [n_1 .. n_S, u_1 .. u_C]``:

* ``n_k`` in ``0..max_modules_k``: VSC modules of the SOP replacing candidate tie branch ``k``
  (seed 001 eq. 23: an integer number of modules times the unit capacity, an upper limit per
  site). Both VSCs of an SOP get ``n_k * module_kva``; ``n_k = 0`` means no SOP there.
* ``u_c`` in ``0..max_units_c``: capacitor-bank steps of ``unit_kvar`` installed at candidate bus ``c``.

NSGA-II searches this box (pymoo rounds its real-coded offspring to integers).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from sopjax.errors import ConfigError, NetworkError
from sopjax.network import Network

__all__ = ["AllocationSpace", "make_space"]


@dataclasses.dataclass(frozen=True)
class AllocationSpace:
    """The search space of a plan (case bus ids and user units).

    Attributes:
        sop_pairs: (bus_i, bus_j) case bus ids of each candidate tie branch, (S,).
        sop_branches: 1-based case branch numbers of the candidate tie branches, (S,).
        module_kva: capacity of one VSC module (kVA).
        max_modules: module limit per site, (S,).
        cb_buses: case bus ids of candidate capacitor-bank sites, (C,).
        cb_unit_kvar: reactive power of one bank step (kvar).
        cb_max_units: step limit per site, (C,).
    """

    sop_pairs: tuple[tuple[int, int], ...]
    sop_branches: tuple[int, ...]
    module_kva: float
    max_modules: tuple[int, ...]
    cb_buses: tuple[int, ...]
    cb_unit_kvar: float
    cb_max_units: tuple[int, ...]

    @property
    def n_sop(self) -> int:
        return len(self.sop_pairs)

    @property
    def n_cb(self) -> int:
        return len(self.cb_buses)

    @property
    def n_var(self) -> int:
        return self.n_sop + self.n_cb

    @property
    def lower(self) -> np.ndarray:
        return np.zeros(self.n_var, dtype=int)

    @property
    def upper(self) -> np.ndarray:
        return np.asarray([*self.max_modules, *self.cb_max_units], dtype=int)

    @property
    def sop_labels(self) -> list[str]:
        return [f"{a}-{b}" for a, b in self.sop_pairs]

    @property
    def cb_labels(self) -> list[str]:
        return [str(b) for b in self.cb_buses]

    def decode(self, x) -> tuple[np.ndarray, np.ndarray]:
        """Per-VSC SOP capacity (kVA) and capacitor steps of plans ``x``.

        Args:
            x: plans, (plan, n_var) or (n_var,); rounded and clipped to the box.

        Returns:
            ``(sop_kva (plan, S), cb_units (plan, C))`` (leading axis dropped for one plan).
        """
        x = np.asarray(x, dtype=float)
        one = x.ndim == 1
        x = np.clip(np.rint(np.atleast_2d(x)), self.lower, self.upper).astype(int)
        sop = x[:, : self.n_sop] * float(self.module_kva)
        cb = x[:, self.n_sop :]
        return (sop[0], cb[0]) if one else (sop, cb)

    def encode(self, sop_kva: Sequence[float], cb_units: Sequence[int]) -> np.ndarray:
        """The integer vector of a plan given per-VSC capacities (multiples of ``module_kva``) and steps."""
        n = np.asarray(sop_kva, float) / self.module_kva
        if np.any(np.abs(n - np.rint(n)) > 1e-9):
            raise ConfigError(f"SOP capacities {list(sop_kva)} are not multiples of the module ({self.module_kva} kVA)")
        x = np.concatenate([np.rint(n), np.asarray(cb_units, float)]).astype(int)
        bad = np.flatnonzero((x < self.lower) | (x > self.upper))
        if bad.size:
            k = int(bad[0])
            name = f"SOP {self.sop_labels[k]}" if k < self.n_sop else f"capacitor at bus {self.cb_buses[k - self.n_sop]}"
            raise ConfigError(f"{name}: {x[k]} is outside 0..{self.upper[k]}")
        return x


def _tie_branch(net: Network, pair, where: str) -> int:
    try:
        a, b = (int(v) for v in pair)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{where}: {pair!r} is not a pair of bus ids") from None
    try:
        i, j = net.bus_index(a), net.bus_index(b)
    except NetworkError as e:
        raise ConfigError(f"{where} ({a}, {b}): {e}") from None
    ends = {frozenset((int(f), int(t))): k for k, (f, t) in enumerate(zip(net.f_bus, net.t_bus))}
    k = ends.get(frozenset((i, j)))
    if k is None:
        raise ConfigError(f"{where}: no branch joins buses {a} and {b} in {net.name!r}; "
                          "SOP candidates must be tie branches of the case")
    if bool(net.in_service[k]):
        raise ConfigError(f"{where}: branch {net.branch_label(k)} is closed in the case; "
                          "SOP candidates must be open tie branches")
    return int(net.branch_numbers[k])


def _limits(value, n: int, where: str) -> tuple[int, ...]:
    arr = np.broadcast_to(np.asarray(value), (n,)) if np.ndim(value) == 0 else np.asarray(value)
    if arr.shape != (n,):
        raise ConfigError(f"{where} needs one value per site ({n}), got {list(np.atleast_1d(value))}")
    out = []
    for k, v in enumerate(arr.tolist()):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 0:
            raise ConfigError(f"{where}[{k}] must be an integer >= 0, got {v!r}")
        out.append(int(v))
    return tuple(out)


def make_space(net: Network, *, sop_pairs: Sequence[Sequence[int]], module_kva: float,
               max_modules: int | Sequence[int], cb_buses: Sequence[int] = (), cb_unit_kvar: float = 50.0,
               cb_max_units: int | Sequence[int] = 0) -> AllocationSpace:
    """Validate candidates against ``net`` and build the search space.

    Raises:
        ConfigError: a candidate that is not an open tie branch of the case, an unknown bus,
            a non-positive module or step size, a negative limit (the key named).
    """
    if not sop_pairs:
        raise ConfigError("allocation.sop.candidates is empty; give at least one tie branch [bus_i, bus_j]")
    branches = tuple(_tie_branch(net, p, f"allocation.sop.candidates[{k}]") for k, p in enumerate(sop_pairs))
    if len(set(branches)) != len(branches):
        raise ConfigError("allocation.sop.candidates lists a tie branch twice")
    for name, v in (("allocation.sop.module_kva", module_kva), ("allocation.capacitors.unit_kvar", cb_unit_kvar)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
            raise ConfigError(f"{name} must be a positive number, got {v!r}")
    cbs = []
    for k, b in enumerate(cb_buses):
        try:
            net.bus_index(int(b))
        except (NetworkError, TypeError, ValueError, OverflowError) as e:
            raise ConfigError(f"allocation.capacitors.buses[{k}]: {e}") from None
        cbs.append(int(b))
    return AllocationSpace(
        sop_pairs=tuple((int(a), int(b)) for a, b in sop_pairs), sop_branches=branches,
        module_kva=float(module_kva), max_modules=_limits(max_modules, len(branches), "allocation.sop.max_modules"),
        cb_buses=tuple(cbs), cb_unit_kvar=float(cb_unit_kvar),
        cb_max_units=_limits(cb_max_units, len(cbs), "allocation.capacitors.max_units"),
    )
