"""Shunts, transformer ratios and phase shifts of one topology, referred to its sources (numpy).

A radial network with off-nominal transformer ratios is, after one change of
variables, a network with unit ratios: refer every bus to the voltage base of the
source feeding it. With ``m_i`` the product of the branch ratios on the path from
the source to bus ``i`` (``V_child = n V_parent - z_eff J`` per branch), the
referred quantities

* voltage ``V' = V / m``,
* series impedance ``z' = z_eff / m_child^2``,
* shunt admittance ``y' = y m^2``

obey the unit-ratio branch-flow equations exactly, and powers are unchanged.
So the kernels need no ratio at all: they solve the referred network and
multiply the voltage magnitude by ``m`` (``v_scale``) at the end. MATPOWER's
branch model (ratio ``tap`` at the from side, the from-end half-shunt seen behind
it) gives, for a branch oriented parent -> child (``parent = from``)
``n = 1 / tap, z_eff = z``, and for ``parent = to`` ``n = tap, z_eff = tap^2 z``.

A fixed phase shift (vector group) in a radial network rotates the angles
downstream of it and changes nothing else: ``va_shift`` is added to the angles.

Capacitor banks (``Network.capacitor``) are fixed shunt susceptances: a bank
with ``step`` of its steps connected is ``b = step * q_unit_pu`` added to its bus
shunt (:func:`fold_capacitors`), so it injects ``b |V|^2`` (constant
susceptance, not constant Q). :func:`refer` folds them in, so every kernel path
models them; the cvxpy formulations fold them through
``solvers.formulations.common.bus_shunt_admittance``.

Shunts: bus shunts, both halves of each closed branch's pi-model shunt (the
from-end half divided by ``tap^2``), and for an open branch whose switch sits at
one end (``Network.dangle_end``) the exact admittance of the dangling line seen
from its connected end, ``y/2 + 1 / (z + 2/y)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from sopjax.errors import NetworkError
from sopjax.network import Capacitors, Network
from sopjax.topology import Topology

__all__ = [
    "ReferredBranches", "refer", "bus_shunts", "tree_ratios", "capacitor_steps", "with_capacitor_steps",
    "fold_capacitors",
]


@dataclasses.dataclass(frozen=True)
class ReferredBranches:
    """Per-bus arrays of one topology, referred to the sources' voltage base.

    Attributes:
        r_up, x_up: referred impedance of each bus's upstream branch (0 at sources), (bus,).
        g_sh, b_sh: referred shunt admittance per bus (p.u.), (bus,), or None without shunts.
        v_scale: ``m``, physical |V| = ``m`` x referred |V|, (bus,), or None without taps.
        va_shift: angle added by the phase shifts on the path from the source (rad),
            (bus,), or None without taps.
    """

    r_up: np.ndarray
    x_up: np.ndarray
    g_sh: np.ndarray | None
    b_sh: np.ndarray | None
    v_scale: np.ndarray | None
    va_shift: np.ndarray | None


def tree_ratios(net: Network, topo: Topology) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bus ratio ``n`` and impedance factor of the upstream branch, and the path product ``m``.

    Returns:
        ``(n, z_factor, m)``, each (bus,); 1 at sources and de-energized buses.
    """
    hp = np.asarray(topo.has_parent, bool)
    k = np.asarray(topo.up_branch)
    fwd = np.asarray(topo.up_forward, bool)
    tap = np.ones(net.n_branch) if net.tap is None else np.asarray(net.tap, float)
    t = np.where(hp, tap[k], 1.0)
    n = np.where(fwd, 1.0 / t, t)
    zf = np.where(fwd, 1.0, t * t)
    return n, zf, _down_tree(topo, n, np.multiply, 1.0)


def _down_tree(topo: Topology, step: np.ndarray, combine, start: float) -> np.ndarray:
    """``out[bus] = combine(out[parent], step[bus])`` from the sources (``start``) down."""
    out = np.full(np.shape(step)[0], start)
    parent = np.asarray(topo.parent)
    hp = np.asarray(topo.has_parent, bool)
    for i in np.asarray(topo.preorder):  # parents come first in preorder
        if hp[i]:
            out[i] = combine(out[parent[i]], step[i])
    return out


def bus_shunts(net: Network, topo: Topology) -> np.ndarray:
    """Physical shunt admittance ``g + jb`` at each bus for this topology (p.u.), (bus,) complex.

    Includes the connected steps of the capacitor banks (:func:`fold_capacitors`).
    """
    net = fold_capacitors(net)
    nb = net.n_bus
    y = np.zeros(nb, complex)
    if net.g_sh_pu is not None:
        y += np.asarray(net.g_sh_pu, float) + 1j * np.asarray(net.b_sh_pu, float)
    if net.g_br_pu is None:
        return y
    f, t = np.asarray(net.f_bus), np.asarray(net.t_bus)
    yb = np.asarray(net.g_br_pu, float) + 1j * np.asarray(net.b_br_pu, float)
    tap = np.ones(net.n_branch) if net.tap is None else np.asarray(net.tap, float)
    act = np.asarray(topo.branch_active, bool)
    np.add.at(y, f[act], yb[act] / 2 / tap[act] ** 2)
    np.add.at(y, t[act], yb[act] / 2)
    if net.dangle_end is not None:
        energized = np.asarray(topo.energized, bool)
        dangle = np.asarray(net.dangle_end)
        z = np.asarray(net.r_pu, float) + 1j * np.asarray(net.x_pu, float)
        end = np.where(dangle == 0, f, t)
        hang = ~act & (dangle >= 0) & energized[end] & (yb != 0)
        for k in np.flatnonzero(hang):
            y_eq = yb[k] / 2 + 1.0 / (z[k] + 2.0 / yb[k])
            y[end[k]] += y_eq / (tap[k] ** 2 if dangle[k] == 0 else 1.0)
    return y


def capacitor_steps(net: Network, steps=None, *, where: str = "capacitor steps", error=NetworkError) -> np.ndarray:
    """Connected steps per capacitor bank from the forms users give, validated.

    Args:
        net: the network with its capacitor table.
        steps: ``None`` (the network's own ``capacitor.step``), ``{bus_id: step}``
            (case bus ids; banks not named keep the network's step) or one integer
            per bank (cap,).
        where: prefix of error messages (e.g. the strategy's name).
        error: exception class raised.

    Returns:
        int array (cap,).

    Raises:
        error: a bus without a bank (or with several, for the mapping form), a step
            that is not an integer or lies outside [0, units], a wrong length.
    """
    cap = net.capacitor
    units = np.asarray(cap.units, dtype=np.int64)
    out = np.asarray(cap.step, dtype=np.int64).copy()
    bus = np.asarray(cap.bus)
    if steps is None:
        return out
    if isinstance(steps, Mapping):
        items = list(steps.items())
        keys = []
        for b, _ in items:
            try:
                b_id = int(str(b).strip()) if isinstance(b, str) else b
                if isinstance(b_id, bool) or int(b_id) != b_id:
                    raise ValueError
            except (TypeError, ValueError):
                raise error(f"{where}: capacitor banks are named by their case bus id, got {b!r}") from None
            keys.append(int(b_id))
        per_bank = {}
        for b_id, (_, value) in zip(keys, items):
            if b_id not in net.bus_ids:
                raise error(f"{where}: unknown bus {b_id} (no such bus in network {net.name!r})")
            hit = np.flatnonzero(bus == net.bus_ids.index(b_id))
            if hit.size == 0:
                have = ", ".join(str(net.bus_ids[int(i)]) for i in bus) or "none"
                raise error(f"{where}: bus {b_id} has no capacitor bank (banks at buses: {have})")
            if hit.size > 1:
                raise error(f"{where}: bus {b_id} has {hit.size} capacitor banks; give one step per bank as a list")
            per_bank[int(hit[0])] = value
    else:
        seq = list(np.asarray(steps, dtype=object).reshape(-1))
        if len(seq) != cap.count:
            raise error(f"{where}: capacitor steps need one value per bank ({cap.count}), got {len(seq)}")
        per_bank = dict(enumerate(seq))
    for k, value in per_bank.items():
        label = f"{where}: capacitor bank {k} at bus {net.bus_ids[int(bus[k])]}"
        ok = isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, (bool, np.bool_))
        if not ok or not np.isfinite(value) or float(value) != round(float(value)):
            raise error(f"{label}: step must be an integer, got {value!r}")
        if not 0 <= int(value) <= units[k]:
            raise error(f"{label}: step {int(value)} is outside [0, {int(units[k])}] (its installed units)")
        out[k] = int(value)
    return out


def with_capacitor_steps(net: Network, steps) -> Network:
    """A copy of ``net`` with other connected capacitor steps (forms of :func:`capacitor_steps`)."""
    cap = net.capacitor
    step = capacitor_steps(net, steps)
    return net.replace(capacitor=Capacitors(bus=cap.bus, q_unit_pu=cap.q_unit_pu, units=cap.units, step=step))


def fold_capacitors(net: Network) -> Network:
    """``net`` with its capacitor banks as bus shunt susceptance, and no capacitor table.

    Each bank adds ``b = step * q_unit_pu`` to ``b_sh_pu`` at its bus (a fixed
    susceptance: it injects ``b |V|^2`` p.u., ``b`` at 1 p.u.). A network with
    banks keeps shunt arrays even when every step is 0, so that the kernels of all
    strategies of one network compile the same form. Without banks ``net`` is
    returned unchanged.
    """
    cap = net.capacitor
    if cap.count == 0:
        return net
    nb = net.n_bus
    b_cap = np.zeros(nb)
    np.add.at(b_cap, np.asarray(cap.bus, int), np.asarray(cap.step, float) * np.asarray(cap.q_unit_pu, float))
    g = np.zeros(nb) if net.g_sh_pu is None else np.asarray(net.g_sh_pu, float)
    b = (np.zeros(nb) if net.b_sh_pu is None else np.asarray(net.b_sh_pu, float)) + b_cap
    zi, z = np.zeros(0, np.int32), np.zeros(0)
    return net.replace(g_sh_pu=g, b_sh_pu=b, capacitor=Capacitors(zi, z, zi, zi))


def refer(net: Network, topo: Topology) -> ReferredBranches:
    """Referred upstream impedances, shunts, voltage scale and angle shifts of ``topo``.

    Capacitor banks enter as bus shunts at their connected steps (:func:`fold_capacitors`).
    Arrays that the network does not need (no shunts, no taps, no capacitors) are None,
    so the kernels compile their plain form for plain networks.
    """
    net = fold_capacitors(net)
    k = np.asarray(topo.up_branch)
    hp = np.asarray(topo.has_parent, bool)
    r = np.where(hp, np.asarray(net.r_pu, float)[k], 0.0)
    x = np.where(hp, np.asarray(net.x_pu, float)[k], 0.0)
    m = None
    v_scale = va_shift = None
    if net.has_taps:
        _, zf, m = tree_ratios(net, topo)
        r, x = r * zf / m**2, x * zf / m**2
        v_scale = m
        shift = np.deg2rad(np.zeros(net.n_branch) if net.shift_deg is None else np.asarray(net.shift_deg, float))
        fwd = np.asarray(topo.up_forward, bool)
        step = np.where(hp, np.where(fwd, -shift[k], shift[k]), 0.0)
        va_shift = _down_tree(topo, step, np.add, 0.0)
    g_sh = b_sh = None
    if net.has_shunts:
        y = bus_shunts(net, topo) * (1.0 if m is None else m**2)
        y = np.where(np.asarray(topo.energized, bool), y, 0)
        g_sh, b_sh = y.real.copy(), y.imag.copy()
    return ReferredBranches(r_up=r, x_up=x, g_sh=g_sh, b_sh=b_sh, v_scale=v_scale, va_shift=va_shift)

