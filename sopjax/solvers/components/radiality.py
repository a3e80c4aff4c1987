"""Switch decisions, energization and radiality (spanning-forest) constraints.

Radiality (DESIGN.md): every energized component is a tree rooted at exactly
one source, the substation or a Vf-mode SOP terminal; de-energized buses carry
no flow. Two formulations:

``"spanning_forest"`` (default): a directed parent-child model with a
    fictitious single-commodity flow for connectivity. Each closed branch gets
    an orientation ``beta+ + beta- = alpha``; every energized non-source bus has
    exactly one parent (in-degree ``e_i - root_i``); a parent must be energized;
    a fictitious flow of one unit per energized bus, sent from the sources along
    oriented branches only (``phi <= M beta``, ``M`` = bus count), proves that
    each energized bus reaches a source. One parent per bus plus reachability is
    exactly a forest with one source per tree. The model is written per bus and
    per branch, so blocks joined by several switches are handled correctly: two
    closed switches between the same blocks give some bus two parents or a loop
    the flow cannot orient, both infeasible (the pitfall of counting
    constraints written per block pair, cf. Lei et al. 2020, IEEE TPWRS 35(5)).
    Optional valid cuts ``sum_{k in C} alpha_k <= |C| - 1`` on a cycle basis
    tighten the LP relaxation.

``"single_commodity"`` (the naive baseline): undirected fictitious flow
    ``|F_k| <= M alpha_k`` with one unit consumed per energized bus and the
    counting constraint ``sum alpha = sum e - sum root``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from sopjax import graph
from sopjax.errors import SopjaxError
from sopjax.solvers.formulations.common import branch_sets
from sopjax.solvers.model import Model

__all__ = [
    "variable_branch_status",
    "variable_energized",
    "root_indicator",
    "add_root",
    "constraint_radiality",
    "constraint_loop_cuts",
    "constraint_switch_operations",
    "constraint_flow_direction",
    "connectivity_buses",
    "bridges",
    "closable_bridges",
    "constraint_chain_cuts",
    "cycle_basis",
    "RADIALITY_METHODS",
]

RADIALITY_METHODS = ("spanning_forest", "single_commodity")


def _scatter(fixed: np.ndarray, idx: np.ndarray, free):
    """``fixed`` with the cvxpy vector ``free`` placed at positions ``idx`` (a sparse selector)."""
    S = sp.csr_matrix((np.ones(idx.size), (idx, np.arange(idx.size))), shape=(fixed.size, idx.size))
    return fixed + S @ free


def variable_branch_status(
    m: Model,
    *,
    switchable: Sequence[bool] | np.ndarray | None = None,
    forced_open: Sequence[int] = (),
    status: Sequence[bool] | np.ndarray | None = None,
) -> cp.Expression:
    """Branch status ``alpha`` (branch,): binaries on switchable branches, constants elsewhere.

    Args:
        m: the model.
        switchable: True where a branch carries a switch (default ``net.switchable``).
        forced_open: 0-based branches that must stay open (faulted, isolated).
        status: status of the non-switchable branches (default ``net.in_service``).

    Returns:
        ``alpha`` as an affine expression; the binaries are ``m.var['alpha_sw']``.
    """
    net = m.net
    nl = net.n_branch
    sw = np.asarray(net.switchable if switchable is None else switchable, dtype=bool).copy()
    st = np.asarray(net.in_service if status is None else status, dtype=bool).copy()
    if sw.shape != (nl,) or st.shape != (nl,):
        raise SopjaxError(f"switchable/status need one entry per branch ({nl})")
    forced = np.zeros(nl, dtype=bool)
    for k in forced_open:
        if not 0 <= int(k) < nl:
            raise SopjaxError(f"forced-open branch index {k} is out of range")
        forced[int(k)] = True
    switch = sw & ~forced
    fixed_closed = ~sw & st & ~forced
    fixed_open = ~switch & ~fixed_closed
    m.meta.update(branch_switch=switch, branch_fixed_closed=fixed_closed, branch_fixed_open=fixed_open,
                  branch_forced_open=forced)
    idx = np.flatnonzero(switch)
    if idx.size:
        a = m.binary(idx.size, "alpha")
        alpha = _scatter(fixed_closed.astype(float), idx, a)
        m.var["alpha_sw"] = a
    else:
        alpha = fixed_closed.astype(float)
    m.var["alpha"] = alpha
    return alpha


def variable_energized(m: Model, *, fixed_on: Sequence[bool] | np.ndarray | None = None,
                       fixed_off: Sequence[bool] | np.ndarray | None = None, binary: bool = True):
    """Energization ``e`` (bus,): 1 at the substation and where ``fixed_on``, 0 where ``fixed_off``, else free.

    ``binary=False`` makes the free entries continuous in [0, 1]. That is exact
    with the spanning-forest radiality when every free bus is in the
    connectivity set: for binary ``alpha`` a bus with ``e > 0`` must receive
    fictitious flow, hence lies in a component with a source, where the
    in-degree equations of a tree (``sum beta = #edges = #buses - 1``) force
    ``e = 1``; elsewhere no flow can arrive and ``e = 0``.
    """
    nb = m.net.n_bus
    on = np.zeros(nb, dtype=bool) if fixed_on is None else np.asarray(fixed_on, dtype=bool).copy()
    off = np.zeros(nb, dtype=bool) if fixed_off is None else np.asarray(fixed_off, dtype=bool).copy()
    on[m.net.slack_bus] = True
    off &= ~on
    free = np.flatnonzero(~on & ~off)
    if free.size:
        e_var = m.binary(free.size, "energized") if binary else cp.Variable(
            free.size, name="energized", bounds=[np.zeros(free.size), np.ones(free.size)])
        e = _scatter(on.astype(float), free, e_var)
        m.var["energized_free"] = e_var
    else:
        e = on.astype(float)
    m.meta["energized_free"] = free
    m.var["energized"] = e
    return e


def add_root(m: Model, bus: np.ndarray, indicator) -> None:
    """Register buses that become sources when ``indicator`` is 1 (e.g. Vf-mode SOP terminals)."""
    m.meta.setdefault("roots", []).append((np.asarray(bus, dtype=int), indicator))


def root_indicator(m: Model):
    """Source indicator per bus (bus,): 1 at the substation plus registered Vf roots."""
    nb = m.net.n_bus
    base = np.zeros(nb)
    base[m.net.slack_bus] = 1.0
    expr = base
    for bus, ind in m.meta.get("roots", []):
        S = sp.csr_matrix((np.ones(bus.size), (bus, np.arange(bus.size))), shape=(nb, bus.size))
        expr = expr + S @ ind
    return expr


def _energized(m: Model):
    if "energized" not in m.var:
        variable_energized(m, fixed_on=np.ones(m.net.n_bus, dtype=bool))
    return m.var["energized"]


def constraint_radiality(
    m: Model,
    method: str = "spanning_forest",
    loop_cuts: bool = True,
    orientation: bool = True,
    connect: np.ndarray | None = None,
    binary_orientation: bool = False,
) -> None:
    """Every energized component is a tree with exactly one source (see module docstring).

    Args:
        m: the model, after :func:`variable_branch_status` (and :func:`variable_energized`
            and any Vf roots, which must be registered before this call).
        method: ``"spanning_forest"`` or ``"single_commodity"`` (naive baseline).
        loop_cuts: add cycle-basis cuts (valid inequalities).
        orientation: (spanning_forest) directed parent-child orientation ``beta``; without
            it the counting constraint ``sum alpha = sum e - sum root`` is used.
        connect: buses that must be proven connected to a source by the fictitious flow,
            (bus,) bool; default all. A bus may be left out when the power balance alone
            proves it: a source-less island with a positive served load has no feasible
            balance (losses are non-negative), so only buses whose served load can be
            zero, or that hold generation, need the flow. Problem builders pass that set.
        binary_orientation: make the orientations ``beta`` binary. Not needed: for
            binary ``alpha`` and ``e`` the constraints are exact with ``beta`` in
            [0, 1] — connectivity puts every energized bus in a component with a
            source, and ``sum beta = sum alpha = sum (e - root)`` then leaves exactly
            one source and no cycle per component — so by default they are continuous.
    """
    if method not in RADIALITY_METHODS:
        raise SopjaxError(f"unknown radiality method {method!r}; choose from {RADIALITY_METHODS}")
    net = m.net
    sets = branch_sets(m)
    idx = np.sort(np.concatenate([sets["closed"], sets["switch"]]))
    nb, n = net.n_bus, idx.size
    e = _energized(m)
    root = root_indicator(m)
    alpha = m.var["alpha"][idx] if isinstance(m.var["alpha"], cp.Expression) else np.asarray(m.var["alpha"])[idx]
    f, t = np.asarray(net.f_bus)[idx], np.asarray(net.t_bus)[idx]
    cols = np.arange(n)
    Cf = sp.csr_matrix((np.ones(n), (f, cols)), shape=(nb, n))
    Ct = sp.csr_matrix((np.ones(n), (t, cols)), shape=(nb, n))
    big = float(nb)
    cons = []
    if method == "single_commodity":
        orientation, connect = False, None
    if orientation:
        if binary_orientation:
            bp = m.binary(n, "beta_ft")  # f is parent of t
            bm = m.binary(n, "beta_tf")  # t is parent of f
        else:
            bp = cp.Variable(n, name="beta_ft", bounds=[np.zeros(n), np.ones(n)])
            bm = cp.Variable(n, name="beta_tf", bounds=[np.zeros(n), np.ones(n)])
        cons += [bp + bm == alpha, Ct @ bp + Cf @ bm == e - root, bp <= e[f], bm <= e[t]]
        m.var.update(beta_ft=bp, beta_tf=bm)
    else:
        cons += [cp.sum(alpha) == cp.sum(e) - cp.sum(root)]
        if isinstance(e, cp.Expression):
            cons += [alpha <= e[f], alpha <= e[t]]
    need = np.ones(nb, dtype=bool) if connect is None else np.asarray(connect, dtype=bool).copy()
    if need.shape != (nb,):
        raise SopjaxError(f"connect needs one flag per bus ({nb})")
    need &= np.asarray(root_indicator_fixed(m) == 0)
    if need.any():
        D = sp.csr_matrix((np.ones(need.sum()), (np.flatnonzero(need), np.arange(need.sum()))), shape=(nb, need.sum()))
        demand = D @ e[np.flatnonzero(need)] if isinstance(e, cp.Expression) else D @ np.asarray(e)[need]
        g = cp.Variable(nb, nonneg=True, name="forest_supply")
        cons += [g <= big * root]
        if orientation:
            fp = cp.Variable(n, nonneg=True, name="phi_ft")
            fm = cp.Variable(n, nonneg=True, name="phi_tf")
            cons += [fp <= big * bp, fm <= big * bm, (Ct @ fp + Cf @ fm) - (Cf @ fp + Ct @ fm) == demand - g]
        else:
            F = cp.Variable(n, name="commodity")
            cons += [F <= big * alpha, -F <= big * alpha, Ct @ F - Cf @ F == demand - g]
    m.meta["connect_buses"] = np.flatnonzero(need)
    m.add(f"radiality_{method}", cons)
    if loop_cuts:
        constraint_loop_cuts(m)


def root_indicator_fixed(m: Model) -> np.ndarray:
    """1 at the substation, 0 elsewhere (the roots that never change)."""
    r = np.zeros(m.net.n_bus)
    r[m.net.slack_bus] = 1.0
    return r


def connectivity_buses(m: Model) -> np.ndarray:
    """Buses whose connection to a source the power balance does not prove, (bus,) bool.

    A bus is proven connected when its served active load is positive in some
    period and fixed (not a pickup decision) and nothing injects there (no PV,
    no SOP terminal): a source-less island containing it would need negative losses.
    """
    nb = m.net.n_bus
    p = m.data.get("p_load_pu", m.net.p_load_pu)
    p = np.atleast_2d(np.asarray(p.value if isinstance(p, cp.Expression) else p, dtype=float))
    need = ~(p.max(axis=0) > 0) if "served" not in m.var else np.ones(nb, dtype=bool)
    need[np.asarray(m.net.pv.bus, dtype=int)] = True
    need[np.asarray(m.net.sop.bus_i, dtype=int)] = True
    need[np.asarray(m.net.sop.bus_j, dtype=int)] = True
    return need


def cycle_basis(n_bus: int, f: np.ndarray, t: np.ndarray) -> list[list[int]]:
    """Fundamental cycles (lists of positions into ``f``/``t``) of an undirected multigraph."""
    forest = graph.search_forest(graph.incidence(n_bus, f, t), range(n_bus), order="stack")
    tree = np.zeros(len(f), dtype=bool)
    tree[[k for k, _, _ in forest.edges]] = True
    cycles = []
    for k in np.flatnonzero(~tree):
        cycles.append([int(k)] + graph.tree_path(forest, f[k], t[k]))
    return cycles


def constraint_loop_cuts(m: Model) -> None:
    """At least one open branch on every cycle of a cycle basis: ``sum_{k in C} alpha_k <= |C| - 1``."""
    sets = branch_sets(m)
    idx = np.sort(np.concatenate([sets["closed"], sets["switch"]]))
    f, t = np.asarray(m.net.f_bus)[idx], np.asarray(m.net.t_bus)[idx]
    alpha = m.var["alpha"]
    if not isinstance(alpha, cp.Expression):
        return
    cons = []
    for cyc in cycle_basis(m.net.n_bus, f, t):
        ks = idx[cyc]
        cons.append(cp.sum(alpha[ks]) <= len(ks) - 1)
    if cons:
        m.add("loop_cuts", cons)
    m.meta["n_loop_cuts"] = len(cons)


def constraint_switch_operations(m: Model, initial: np.ndarray, max_operations: int) -> cp.Expression | None:
    """Cap the number of switching operations relative to ``initial`` statuses (branch,).

    Returns the expression counting operations (switchable branches only).
    """
    sw = branch_sets(m)["switch"]
    if sw.size == 0:
        return None
    if int(max_operations) < 0:
        raise SopjaxError(f"max_switch_operations must be >= 0, got {max_operations}")
    init = np.asarray(initial, dtype=bool)[sw]
    a = m.var["alpha"][sw]
    ops = cp.sum(a[np.flatnonzero(~init)]) + cp.sum(1 - a[np.flatnonzero(init)]) if sw.size else 0
    m.add("switch_operations", ops <= int(max_operations))
    m.var["switch_operations"] = ops
    return ops


def constraint_flow_direction(m: Model) -> bool:
    """Power flows from parent to child: ``0 <= P_k`` if ``beta+_k``, ``P_k <= 0`` if ``beta-_k``.

    Valid only when no subtree can export power, i.e. every bus has a
    non-negative net load in every period and no SOP or PV injects: the power
    entering a subtree then covers its loads and losses. The function checks
    this on ``m.p_inj`` / ``m.q_inj`` (constant parts only) and adds nothing
    otherwise. Shunts count as injections: a capacitive susceptance (capacitor
    banks, line charging, ``b > 0``) can send reactive power upstream, so the
    ``Q`` direction is then left free, and a negative conductance frees ``P``.

    Returns:
        True if the constraints were added.
    """
    if "beta_ft" not in m.var:
        return False
    if set(m.p_inj) - {"load", "substation"}:
        return False
    for inj in (m.p_inj.get("load"), m.q_inj.get("load")):
        if isinstance(inj, cp.Expression) or inj is None or np.any(np.asarray(inj) > 0):
            return False
    from sopjax.solvers.formulations.common import broadcast_periods, bus_shunt_admittance

    shunt = bus_shunt_admittance(m)
    directed = [("p_max", m.var["P"]), ("q_max", m.var["Q"])]
    if shunt is not None:
        directed = [d for d, exports in zip(directed, (np.any(shunt[0] < 0), np.any(shunt[1] > 0))) if not exports]
    if not directed:
        return False
    sets = branch_sets(m)
    idx = np.sort(np.concatenate([sets["closed"], sets["switch"]]))
    T = m.periods
    bp = broadcast_periods(m.var["beta_ft"], T)
    bm = broadcast_periods(m.var["beta_tf"], T)
    cons = []
    for name, X in directed:
        M = np.tile(m.bounds[name][idx], (T, 1))
        cons += [X[:, idx] <= cp.multiply(M, bp), -X[:, idx] <= cp.multiply(M, bm)]
    m.add("flow_direction", cons)
    return True


def bridges(n_bus: int, f: np.ndarray, t: np.ndarray) -> np.ndarray:
    """True for branches on no cycle (their removal disconnects the graph), (len(f),).

    Every non-bridge edge lies on a cycle, which is a sum of fundamental cycles,
    so the union of a cycle basis is exactly the set of non-bridges.
    """
    on = np.zeros(len(f), dtype=bool)
    for cyc in cycle_basis(n_bus, f, t):
        on[cyc] = True
    return ~on


def closable_bridges(net, candidates: np.ndarray) -> np.ndarray:
    """Candidate branches that can be fixed closed w.l.o.g. in loss-minimising reconfiguration.

    A bridge of the graph of ``candidates`` (branch,) bool whose far side (away
    from the substation) holds no generation, no SOP terminal and no negative
    load: if that side has load the bridge must be closed to serve it, and if it
    has none closing it carries no power and changes nothing. Returns (branch,) bool.
    """
    idx = np.flatnonzero(candidates)
    f, t = np.asarray(net.f_bus)[idx], np.asarray(net.t_bus)[idx]
    br = bridges(net.n_bus, f, t)
    nb = net.n_bus
    gen = np.zeros(nb, dtype=bool)
    gen[np.asarray(net.pv.bus, dtype=int)] = True
    gen[np.asarray(net.sop.bus_i, dtype=int)] = True
    gen[np.asarray(net.sop.bus_j, dtype=int)] = True
    gen |= (np.asarray(net.p_load_pu) < 0) | (np.asarray(net.q_load_pu) < 0)
    adj = graph.incidence(nb, f, t)  # edge ids: positions into idx
    out = np.zeros(net.n_branch, dtype=bool)
    for pos in np.flatnonzero(br):
        # side of the bridge without the substation
        far = graph.reachable(adj, [f[pos]], skip_edge=pos)
        if far[net.slack_bus]:
            far = graph.reachable(adj, [t[pos]], skip_edge=pos)
        if far[net.slack_bus]:
            continue  # the bridge does not separate the substation (disconnected graph)
        if not np.any(gen & far):
            out[idx[pos]] = True
    return out


def constraint_chain_cuts(m: Model, energized: np.ndarray, zero_load: np.ndarray | None = None) -> np.ndarray:
    """At most one open branch on each chain of switchable branches through degree-2 buses.

    A chain is a maximal path whose inner buses have degree 2 in the graph of
    branches that can close. Two open branches of a chain isolate the inner buses
    between them, so ``sum_{k in chain} (1 - alpha_k) <= 1`` is valid when those
    buses must be energized (``energized`` (bus,) bool; every bus in loss-minimising
    reconfiguration).

    ``zero_load`` (bus,) bool marks inner buses without load or generation: opening
    the branch on either side of such a bus gives the same network (the bus hangs
    off the other side without flow), so the second one is ruled out,
    ``alpha_a <= alpha_b`` (symmetry breaking; it keeps an optimal solution).

    Returns:
        bool (bus,) of chain-inner buses (connected whenever their chain's ends are).
    """
    sets = branch_sets(m)
    idx = np.sort(np.concatenate([sets["closed"], sets["switch"]]))
    net = m.net
    f, t = np.asarray(net.f_bus)[idx], np.asarray(net.t_bus)[idx]
    deg = np.bincount(np.concatenate([f, t]), minlength=net.n_bus)
    inner = (deg == 2) & np.asarray(energized, dtype=bool)
    inner[net.slack_bus] = False
    incident = [[pos for _, pos in row] for row in graph.incidence(net.n_bus, f, t)]
    links = graph.DisjointSet(range(idx.size))
    for bus in np.flatnonzero(inner):
        links.union(*incident[bus])
    chains: dict[int, list[int]] = {}
    for pos in range(idx.size):
        chains.setdefault(links.find(pos), []).append(pos)
    alpha = m.var["alpha"]
    switch = set(sets["switch"].tolist())
    cons = []
    for members in chains.values():
        ks = [int(idx[p]) for p in members if int(idx[p]) in switch]
        if len(ks) >= 2:
            cons.append(cp.sum(1 - alpha[ks]) <= 1)
    n_sym = 0
    if zero_load is not None:
        for bus in np.flatnonzero(inner & np.asarray(zero_load, dtype=bool)):
            a, b = (int(idx[p]) for p in incident[bus])
            if a in switch and b in switch:
                cons.append(alpha[a] <= alpha[b])
                n_sym += 1
    if cons:
        m.add("chain_cuts", cons)
    m.meta["n_chain_cuts"] = len(cons) - n_sym
    m.meta["n_symmetry_cuts"] = n_sym
    return inner
