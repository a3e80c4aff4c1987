"""Validate strategies against their network and stack them for the scoring kernel.

:func:`compile_strategies` is the Python boundary of Monte Carlo scoring: every
check that can fail on user input happens here, with the strategy, branch, bus
or SOP named, so that the vmapped kernel never sees a loop, a set-point above
capacity or a Vf island without supply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

from sopjax.branch_model import with_capacitor_steps
from sopjax.errors import SopjaxError, TopologyError
from sopjax.kernels.radial import VfCoupling
from sopjax.kernels.radial_np import vdcq_power_np
from sopjax.kernels.scoring import ScoringContext, StrategyArrays
from sopjax.network import Network
from sopjax.powerflow import make_grid
from sopjax.strategies.strategy import OFF, PQ_I, PQ_J, VF_I, VF_J, Strategy, StrategyError
from sopjax.topology import Topology, compile_topology, stack_topologies

__all__ = ["StrategyBatch", "compile_strategies", "outage_buses", "scoring_context"]

_CAP_RTOL = 1e-9


@dataclasses.dataclass(frozen=True)
class StrategyBatch:
    """Strategies compiled for one network.

    Attributes:
        strategies: the validated strategies, in order.
        topologies: one :class:`~sopjax.topology.Topology` per strategy.
        arrays: :class:`~sopjax.kernels.scoring.StrategyArrays` stacked along a
            leading strategy axis (numpy).
    """

    strategies: tuple[Strategy, ...]
    topologies: tuple[Topology, ...]
    arrays: StrategyArrays

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.strategies)

    def __len__(self) -> int:
        return len(self.strategies)


def outage_buses(net: Network, fault_open: Sequence[int]) -> np.ndarray:
    """Buses de-energized when the case's branches ``fault_open`` (1-based) are opened.

    Returns:
        Boolean mask (bus,), True = in the outage area.
    """
    status = net.branch_status(open=fault_open)
    topo = compile_topology(net, status)
    return ~np.asarray(topo.energized)


def _sop_label(net: Network, k: int) -> str:
    return f"SOP {k} ({net.bus_ids[int(net.sop.bus_i[k])]}-{net.bus_ids[int(net.sop.bus_j[k])]})"


def _compile_one(net: Network, s: Strategy, fault_idx: Sequence[int]):
    where = f"strategy {s.name!r}"
    nb, ns = net.n_bus, net.sop.count
    if s.status.shape != (net.n_branch,) or s.pickup.shape != (nb,) or s.sop_mode.shape != (ns,):
        raise StrategyError(f"{where} was built for another network (array sizes differ)")
    for k in fault_idx:
        if s.status[k]:
            raise StrategyError(
                f"{where} closes branch {net.branch_label(k)}, which is isolated by the fault; keep it open"
            )
    sop = net.sop
    bi, bj = np.asarray(sop.bus_i, int), np.asarray(sop.bus_j, int)
    mode = np.asarray(s.sop_mode, int)
    a_is_i = ~np.isin(mode, (PQ_J, VF_J))
    a_bus = np.where(a_is_i, bi, bj)
    b_bus = np.where(a_is_i, bj, bi)
    pick = lambda x_i, x_j: np.where(a_is_i, np.asarray(x_i, float), np.asarray(x_j, float))  # noqa: E731
    loss_a, loss_b = pick(sop.loss_i, sop.loss_j), pick(sop.loss_j, sop.loss_i)
    s_a, s_b = pick(sop.s_rated_i_pu, sop.s_rated_j_pu), pick(sop.s_rated_j_pu, sop.s_rated_i_pu)
    qmax_a, qmax_b = pick(sop.q_max_i_pu, sop.q_max_j_pu), pick(sop.q_max_j_pu, sop.q_max_i_pu)
    qmin_a, qmin_b = pick(sop.q_min_i_pu, sop.q_min_j_pu), pick(sop.q_min_j_pu, sop.q_min_i_pu)
    q_a = np.where(a_is_i, s.q_i_pu, s.q_j_pu)
    q_b = np.where(a_is_i, s.q_j_pu, s.q_i_pu)
    is_pq = np.isin(mode, (PQ_I, PQ_J))
    is_vf = np.isin(mode, (VF_I, VF_J))
    kva = 1e3 * net.base_mva

    for k in np.flatnonzero(mode != OFF):
        label = f"{where}: {_sop_label(net, k)}"
        if s_a[k] <= 0 or s_b[k] <= 0:
            raise StrategyError(f"{label} has zero capacity; switch it off")
        if int(a_bus[k]) == net.slack_bus and is_vf[k]:
            raise StrategyError(f"{label}: the Vf-mode VSC cannot sit at the substation bus")
        # reactive set-points within limits (the Vf VSC's Q follows its island)
        checks = [(b_bus[k], q_b[k], qmin_b[k], qmax_b[k])]
        if is_pq[k]:
            checks.append((a_bus[k], q_a[k], qmin_a[k], qmax_a[k]))
        for bus, q, lo, hi in checks:
            if q < lo - 1e-12 or q > hi + 1e-12:
                raise StrategyError(
                    f"{label}: Q set-point {q * kva:.1f} kvar at bus {net.bus_ids[int(bus)]} is outside "
                    f"[{lo * kva:.1f}, {hi * kva:.1f}] kvar"
                )
        if is_pq[k]:
            sa = float(np.hypot(s.p_set_pu[k], q_a[k]))
            if sa > s_a[k] * (1 + _CAP_RTOL):
                raise StrategyError(
                    f"{label}: set-point |S| = {sa * kva:.1f} kVA at bus {net.bus_ids[int(a_bus[k])]} "
                    f"exceeds the VSC capacity {s_a[k] * kva:.1f} kVA"
                )
            pb = vdcq_power_np(s.p_set_pu[k], loss_a[k], sa, loss_b[k], q_b[k])
            sb = float(np.hypot(pb, q_b[k]))
            if sb > s_b[k] * (1 + _CAP_RTOL):
                raise StrategyError(
                    f"{label}: the VdcQ VSC at bus {net.bus_ids[int(b_bus[k])]} would carry "
                    f"{sb * kva:.1f} kVA (P set-point plus converter losses), above its capacity "
                    f"{s_b[k] * kva:.1f} kVA"
                )
        if is_vf[k]:
            u = float(s.u_set_pu[k])
            bus = int(a_bus[k])
            lo, hi = float(np.asarray(net.v_min_pu)[bus]), float(np.asarray(net.v_max_pu)[bus])
            if not (lo <= u <= hi):
                raise StrategyError(
                    f"{label}: U_set = {u} p.u. at bus {net.bus_ids[bus]} is outside the bus limits [{lo}, {hi}]"
                )

    sources = [int(b) for b in a_bus[is_vf]]
    try:
        topo = compile_topology(net, s.status, sources)
    except TopologyError as e:
        raise TopologyError(f"{where}: {e}") from None
    energized = np.asarray(topo.energized)
    root = np.asarray(topo.root)
    for k in np.flatnonzero(mode != OFF):
        label = f"{where}: {_sop_label(net, k)}"
        a, b = int(a_bus[k]), int(b_bus[k])
        if is_pq[k]:
            for bus in (a, b):
                if not energized[bus]:
                    raise StrategyError(
                        f"{label} is in PQ mode but bus {net.bus_ids[bus]} is de-energized; "
                        "use a Vf mode on that side or switch the SOP off"
                    )
        else:
            if not energized[b]:
                raise StrategyError(
                    f"{label}: the VdcQ VSC at bus {net.bus_ids[b]} is de-energized, so the Vf island at "
                    f"bus {net.bus_ids[a]} has no supply"
                )
            if root[b] == a:
                raise StrategyError(
                    f"{label}: both terminals lie in the island formed at bus {net.bus_ids[a]}; "
                    "open a branch between them"
                )
    v_src = np.full(nb, float(net.v_slack_pu))
    v_src[a_bus[is_vf]] = s.u_set_pu[is_vf]
    # capacitor banks at this strategy's steps, as bus shunts (a network with banks gives every
    # strategy shunt arrays, so the stacked grids share one form)
    steps = s.capacitor_step
    if steps is not None and np.shape(steps) != (net.capacitor.count,):
        raise StrategyError(f"{where} was built for another network (capacitor steps differ in number)")
    net_s = net if steps is None else with_capacitor_steps(net, steps)
    grid = make_grid(net_s, topo, v_src)
    vf = VfCoupling(
        vf_bus=np.where(is_vf, a_bus, 0).astype(np.int32),
        partner_bus=np.where(is_vf, b_bus, 0).astype(np.int32),
        loss_vf=np.where(is_vf, loss_a, 0.0),
        loss_partner=np.where(is_vf, loss_b, 0.0),
        q_partner=np.where(is_vf, q_b, 0.0),
        active=is_vf.copy(),
    )
    arrays = StrategyArrays(
        topo=topo,
        grid=grid,
        vf=vf,
        pickup=np.asarray(s.pickup, float),
        sop_a_bus=a_bus.astype(np.int32),
        sop_b_bus=b_bus.astype(np.int32),
        sop_a_is_i=a_is_i.copy(),
        sop_is_pq=is_pq,
        sop_is_vf=is_vf,
        sop_p_a=np.where(is_pq, s.p_set_pu, 0.0),
        sop_q_a=np.where(is_pq, q_a, 0.0),
        sop_q_b=np.where(is_pq | is_vf, q_b, 0.0),
        sop_loss_a=loss_a,
        sop_loss_b=loss_b,
        sop_s_a=s_a,
        sop_s_b=s_b,
    )
    return topo, arrays


def compile_strategies(
    net: Network, strategies: Sequence[Strategy], *, fault_open: Sequence[int] = ()
) -> StrategyBatch:
    """Validate strategies on ``net`` and stack them for :func:`~sopjax.kernels.scoring.score_batch`.

    Args:
        net: the network (with the SOP and PV tables the strategies refer to).
        strategies: one or more :class:`Strategy` (unique names).
        fault_open: 1-based branch numbers isolated by the fault; a strategy that
            closes one is rejected.

    Returns:
        :class:`StrategyBatch`.

    Raises:
        StrategyError: duplicate names, a closed faulted branch, an SOP set-point
            above capacity or outside its Q limits, a PQ-mode SOP with a
            de-energized terminal, a Vf island without supply.
        TopologyError: a closed loop or two sources joined (the branches named).
    """
    strategies = list(strategies)
    if not strategies:
        raise StrategyError("no strategies to score")
    names = [s.name for s in strategies]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise StrategyError(f"strategy name {sorted(dup)[0]!r} is used twice")
    fault_idx = [net.branch_index(k) for k in fault_open]
    compiled = [_compile_one(net, s, fault_idx) for s in strategies]
    topos = tuple(c[0] for c in compiled)
    stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *[c[1] for c in compiled])
    stacked = dataclasses.replace(stacked, topo=stack_topologies(topos))
    return StrategyBatch(strategies=tuple(strategies), topologies=topos, arrays=stacked)


def scoring_context(
    net: Network,
    *,
    fault_open: Sequence[int] = (),
    v_min_pu: float | Sequence[float] = 0.95,
    v_max_pu: float | Sequence[float] = 1.05,
    island_overload: str = "shed",
) -> ScoringContext:
    """Network constants for the scoring kernel.

    Args:
        net: the network.
        fault_open: 1-based branches isolated by the fault; the buses they
            de-energize form the outage area of the recovery ratio.
        v_min_pu, v_max_pu: voltage limits of the compliance test, scalar or (bus,)
            (default 0.95 / 1.05 p.u., seed 002).
        island_overload: ``"shed"``: a Vf island whose SOP exceeds its capacity
            counts as de-energized (the converter trips); ``"flag"``: the
            violation is only counted (see :mod:`sopjax.kernels.scoring`).

    Raises:
        SopjaxError: limits not finite or v_min > v_max (bus named), an empty outage area.
    """
    nb = net.n_bus
    if island_overload not in ("shed", "flag"):
        raise SopjaxError(f"island_overload must be 'shed' or 'flag', got {island_overload!r}")
    vmin = np.broadcast_to(np.asarray(v_min_pu, float), (nb,)).copy()
    vmax = np.broadcast_to(np.asarray(v_max_pu, float), (nb,)).copy()
    bad = np.flatnonzero(~np.isfinite(vmin) | ~np.isfinite(vmax) | (vmin > vmax) | (vmin <= 0))
    if bad.size:
        b = bad[0]
        raise SopjaxError(
            f"voltage limits at bus {net.bus_ids[b]} are invalid: v_min={vmin[b]}, v_max={vmax[b]} "
            "(need 0 < v_min <= v_max)"
        )
    outage = outage_buses(net, fault_open) if fault_open else np.zeros(nb, bool)
    if fault_open and not np.any(outage & (np.asarray(net.p_load_pu) > 0)):
        labels = ", ".join(net.branch_label(net.branch_index(k)) for k in fault_open)
        raise SopjaxError(f"opening branch(es) {labels} isolates no load; nothing to restore")
    return ScoringContext(
        f_bus=np.asarray(net.f_bus, np.int32),
        t_bus=np.asarray(net.t_bus, np.int32),
        r_pu=np.asarray(net.r_pu, float),
        x_pu=np.asarray(net.x_pu, float),
        rate_pu=np.asarray(net.rate_pu, float),
        pv_bus=np.asarray(net.pv.bus, np.int32),
        pv_pf=np.asarray(net.pv.pf, float),
        outage=outage,
        v_min_pu=vmin,
        v_max_pu=vmax,
        shed_overloaded_islands=np.asarray(island_overload == "shed"),
    )
