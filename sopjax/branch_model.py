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

Shunts: bus shunts, both halves of each closed branch's pi-model shunt (the
from-end half divided by ``tap^2``), and for an open branch whose switch sits at
one end (``Network.dangle_end``) the exact admittance of the dangling line seen
from its connected end, ``y/2 + 1 / (z + 2/y)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sopjax.network import Network
from sopjax.topology import Topology

__all__ = ["ReferredBranches", "refer", "bus_shunts", "tree_ratios"]


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
    """Physical shunt admittance ``g + jb`` at each bus for this topology (p.u.), (bus,) complex."""
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


def refer(net: Network, topo: Topology) -> ReferredBranches:
    """Referred upstream impedances, shunts, voltage scale and angle shifts of ``topo``.

    Arrays that the network does not need (no shunts, no taps) are None, so the
    kernels compile their plain form for plain networks.
    """
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

