"""Score one restoration strategy on one load/PV sample, and reduce a chunk of scores.

Pure JAX, no I/O. :func:`score_sample` is written for one (strategy, sample)
pair (:func:`net_load`, a power flow, :func:`score_flow`); :func:`score_batch`
maps it over strategies x samples (on a CPU with one bus-major power flow per
strategy) and the Monte Carlo runner calls :func:`reduce_chunk` on the result, so
only O(strategy x (bus + branch)) numbers leave the device per chunk.

Per sample (seed 002's convention, DESIGN.md):

* the strategy's branch statuses and Vf-mode SOP terminals define which buses
  are energized (a compiled :class:`~sopjax.topology.Topology`);
* loads are scaled by the pickup fraction, PV and PQ-mode SOPs enter as
  negative load, Vf-mode SOPs are island sources coupled to their VdcQ partner;
* an exact backward/forward sweep (or LinDistFlow) gives voltages and flows;
* a bus is *compliant* when ``v_min - v_tol <= |V| <= v_max + v_tol``;
* its load counts as restored when it is picked up, energized and compliant;
  **violating buses are not restored** (seed 002);
* a Vf-mode SOP whose island demand exceeds the capacity of either VSC is a
  capacity violation; with ``island_overload="shed"`` (default; the context's
  ``shed_overloaded_islands``) the converter
  is taken to trip, so the island's buses count as de-energized and not
  restored. The rest of the network keeps the pre-trip operating point
  (conservative: the partner's feeder still carries the island's draw).
  ``"flag"`` only counts the violation.
* ``recovery_ratio = restored outage-area load / outage-area load`` of the same
  sample (both in the sampled load, so the ratio lies in [0, 1]).

VCPI (line voltage-collapse proximity index, Moghavvemi & Faruque 1998, used by
seed 001) per branch, with the receiving end the end active power flows to:
``VCPI = P_r / P_r,max`` where ``P_r,max = V_s^2/Z * cos(phi) / (4 cos^2((theta - phi)/2))``
(``theta`` = impedance angle, ``phi`` = receiving-end load angle). It equals
``Q_r / Q_r,max`` and simplifies to ``2 (Z |S_r| + r P_r + x Q_r) / V_s^2``:
0 on an unloaded line, 1 at the line's maximum transferable power.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from sopjax.kernels.injections import pv_net_load, sop_pq_net_load
from sopjax.kernels.radial import Grid, PowerFlowResult, VfCoupling, lindistflow, sweep_power_flow, vdcq_power
from sopjax.kernels.sweep_batch import sweep_batch
from sopjax.topology import Topology

__all__ = [
    "StrategyArrays",
    "ScoringContext",
    "ScoringOptions",
    "SampleScore",
    "HistSpec",
    "score_sample",
    "score_flow",
    "net_load",
    "score_batch",
    "reduce_chunk",
    "MOMENT_FIELDS",
    "EXACT_FIELDS",
]


def _register(cls):
    jax.tree_util.register_dataclass(
        cls, data_fields=[f.name for f in dataclasses.fields(cls)], meta_fields=[]
    )
    return cls


@_register
@dataclasses.dataclass(frozen=True)
class StrategyArrays:
    """One strategy (or a stack of them along a leading axis) as kernel arrays.

    SOP rows use a controlling VSC ``a`` (the PQ or Vf VSC) and its partner ``b``
    (VdcQ); ``a_is_i`` maps them back to the table's i/j terminals.

    Attributes:
        topo: rooted forest with Vf terminals as sources.
        grid: upstream impedances and source voltages (``U_set`` at Vf terminals).
        vf: Vf coupling rows (``active`` where the SOP is in Vf mode), (sop,).
        pickup: picked-up fraction of each bus's load, (bus,).
        sop_a_bus, sop_b_bus: buses of VSC a / b, (sop,).
        sop_a_is_i: True if VSC a is the table's i terminal, (sop,).
        sop_is_pq, sop_is_vf: mode flags, (sop,).
        sop_p_a, sop_q_a, sop_q_b: set-points (p.u., injection), (sop,).
        sop_loss_a, sop_loss_b: loss coefficients A, (sop,).
        sop_s_a, sop_s_b: VSC capacities (p.u.), (sop,).
    """

    topo: Topology
    grid: Grid
    vf: VfCoupling
    pickup: Any
    sop_a_bus: Any
    sop_b_bus: Any
    sop_a_is_i: Any
    sop_is_pq: Any
    sop_is_vf: Any
    sop_p_a: Any
    sop_q_a: Any
    sop_q_b: Any
    sop_loss_a: Any
    sop_loss_b: Any
    sop_s_a: Any
    sop_s_b: Any


@_register
@dataclasses.dataclass(frozen=True)
class ScoringContext:
    """Network constants shared by all strategies and samples.

    Attributes:
        f_bus, t_bus: branch ends (0-based), (branch,).
        r_pu, x_pu: branch impedance, (branch,).
        rate_pu: branch rating (``inf`` = unlimited), (branch,).
        pv_bus, pv_pf: PV buses and power factors, (pv,).
        outage: True at buses de-energized by the fault, (bus,).
        v_min_pu, v_max_pu: voltage limits of the compliance test, (bus,).
        shed_overloaded_islands: scalar bool; True for ``island_overload="shed"``.
    """

    f_bus: Any
    t_bus: Any
    r_pu: Any
    x_pu: Any
    rate_pu: Any
    pv_bus: Any
    pv_pf: Any
    outage: Any
    v_min_pu: Any
    v_max_pu: Any
    shed_overloaded_islands: Any


@dataclasses.dataclass(frozen=True)
class HistSpec:
    """Fixed-bin histogram on ``[lo, hi]`` with atoms at ``lo`` and ``hi`` (static).

    Bin layout: ``[below lo, == lo, bins x (lo, hi) of width w, == hi, above hi]``.
    A quantile that falls inside ``(lo, hi)`` is exact to ``w``; the atoms hold
    point masses exactly (a recovery ratio of 0 or 1 is common).
    """

    lo: float
    hi: float
    bins: int

    @property
    def width(self) -> float:
        return (self.hi - self.lo) / self.bins

    @property
    def size(self) -> int:
        return self.bins + 4


@dataclasses.dataclass(frozen=True)
class ScoringOptions:
    """Static scoring settings (hashable; part of the jit cache key).

    Attributes:
        method: ``"sweep"`` (exact) or ``"lindistflow"``.
        tol, max_iter: sweep convergence settings.
        v_tol_pu: slack on the voltage limits against round-off (p.u.).
        cap_tol: relative slack on SOP capacities and branch ratings.
        ratio_hist: histogram of recovery ratio and VCPI max (on [0, 1]).
        voltage_hist: histogram of bus voltages, vmin and vmax (p.u.).
        strategy_axis: ``"map"`` (loop over strategies; best on CPU) or ``"vmap"``
            (one wide batch; best on GPU); see :func:`score_batch`.
        sample_block: samples per vectorised block of the per-sample kernel inside a
            strategy (``None``: all samples of the chunk in one block).
        sweep_layout: with ``strategy_axis="map"`` and the exact sweep, ``"bus_major"``
            (default: :func:`sopjax.kernels.sweep_batch.sweep_batch`, the DistFlow
            recursion on blocks of samples stored bus-major, its own block size) or
            ``"per_sample"`` (``vmap`` of the per-sample current-injection kernel in
            blocks of ``sample_block``). Both solve to ``tol``.
    """

    method: str = "sweep"
    tol: float = 1e-8
    max_iter: int = 100
    v_tol_pu: float = 1e-6
    cap_tol: float = 1e-6
    ratio_hist: HistSpec = HistSpec(0.0, 1.0, 10_000)
    voltage_hist: HistSpec = HistSpec(0.8, 1.2, 800)
    strategy_axis: str = "map"
    sample_block: int | None = 64
    sweep_layout: str = "bus_major"


class SampleScore(NamedTuple):
    """Per-sample result of one strategy (leading axes added when batched). Per unit.

    Bus quantities are 0 at de-energized buses; branch quantities 0 on open or
    de-energized branches; SOP quantities 0 for ``off`` SOPs.
    """

    converged: Bool[Array, "*batch"]
    iterations: Int[Array, "*batch"]
    vm_pu: Float[Array, "*batch bus"]
    energized: Bool[Array, "*batch bus"]
    served: Float[Array, "*batch bus"]
    v_violation: Bool[Array, "*batch bus"]
    branch_on: Bool[Array, "*batch branch"]
    branch_loading: Float[Array, "*batch branch"]
    branch_overload: Bool[Array, "*batch branch"]
    vcpi: Float[Array, "*batch branch"]
    sop_loading: Float[Array, "*batch sop 2"]
    sop_overload: Bool[Array, "*batch sop 2"]
    sop_utilization: Float[Array, "*batch sop"]
    restored_pu: Float[Array, "*batch"]
    outage_pu: Float[Array, "*batch"]
    served_pu: Float[Array, "*batch"]
    recovery_ratio: Float[Array, "*batch"]
    line_loss_pu: Float[Array, "*batch"]
    sop_loss_pu: Float[Array, "*batch"]
    vmin_pu: Float[Array, "*batch"]
    vmax_pu: Float[Array, "*batch"]
    vcpi_max: Float[Array, "*batch"]
    voltage_violation: Bool[Array, "*batch"]
    branch_violation: Bool[Array, "*batch"]
    sop_violation: Bool[Array, "*batch"]
    island_lost: Bool[Array, "*batch"]
    any_violation: Bool[Array, "*batch"]


def _hypot(a, b):
    return jnp.sqrt(a * a + b * b)


def _sop_pq(st: StrategyArrays, n: int, dtype):
    """PQ-mode SOP set-points and the net load they add: ``(p_a, q_a, p_b, p_sop, q_sop)``."""
    pq = st.sop_is_pq
    p_a = jnp.where(pq, st.sop_p_a, 0.0).astype(dtype)
    q_a_pq = jnp.where(pq, st.sop_q_a, 0.0).astype(dtype)
    q_b_pq = jnp.where(pq, st.sop_q_b, 0.0).astype(dtype)
    p_sop, q_sop, p_b_pq, _ = sop_pq_net_load(
        st.sop_a_bus, st.sop_b_bus, st.sop_loss_a.astype(dtype), st.sop_loss_b.astype(dtype),
        p_a, q_a_pq, q_b_pq, n,
    )
    return p_a, q_a_pq, p_b_pq, p_sop, q_sop


def net_load(
    ctx: ScoringContext,
    st: StrategyArrays,
    p_load_pu: Float[Array, " bus"],
    q_load_pu: Float[Array, " bus"],
    p_pv_pu: Float[Array, " pv"],
) -> tuple[Float[Array, " bus"], Float[Array, " bus"]]:
    """Net load of one sample under a strategy: picked-up demand - PV - PQ-mode SOP injections."""
    n = p_load_pu.shape[0]
    dtype = p_load_pu.dtype
    p_pv_bus, q_pv_bus = pv_net_load(ctx.pv_bus, ctx.pv_pf.astype(dtype), p_pv_pu, n)
    *_, p_sop, q_sop = _sop_pq(st, n, dtype)
    return st.pickup * p_load_pu + p_pv_bus + p_sop, st.pickup * q_load_pu + q_pv_bus + q_sop


def score_sample(
    ctx: ScoringContext,
    st: StrategyArrays,
    p_load_pu: Float[Array, " bus"],
    q_load_pu: Float[Array, " bus"],
    p_pv_pu: Float[Array, " pv"],
    options: ScoringOptions = ScoringOptions(),
) -> SampleScore:
    """Score one strategy on one sample.

    Args:
        ctx: network constants.
        st: one strategy (no leading axis).
        p_load_pu, q_load_pu: sampled bus load before pickup (consumption > 0), (bus,).
        p_pv_pu: PV active power per unit, (pv,).
        options: static settings.

    Returns:
        :class:`SampleScore`; check ``converged`` before using the values.
    """
    p_net, q_net = net_load(ctx, st, p_load_pu, q_load_pu, p_pv_pu)
    if options.method == "sweep":
        res = sweep_power_flow(
            st.topo, st.grid, ctx.f_bus, p_net, q_net, st.vf, tol=options.tol, max_iter=options.max_iter
        )
    elif options.method == "lindistflow":
        res = lindistflow(st.topo, st.grid, ctx.f_bus, p_net, q_net, st.vf)
    else:  # pragma: no cover - validated by the runner
        raise ValueError(f"unknown power-flow method {options.method!r}")
    return score_flow(ctx, st, p_load_pu, res, options)


def score_flow(
    ctx: ScoringContext,
    st: StrategyArrays,
    p_load_pu: Float[Array, " bus"],
    res: PowerFlowResult,
    options: ScoringOptions = ScoringOptions(),
) -> SampleScore:
    """Score one strategy on one sample from its power flow ``res`` (see :func:`score_sample`)."""
    n = p_load_pu.shape[0]
    dtype = p_load_pu.dtype
    topo = st.topo
    energized = topo.energized
    pq = st.sop_is_pq
    vf_on = st.sop_is_vf
    p_a, q_a_pq, p_b_pq, _, _ = _sop_pq(st, n, dtype)

    # SOP powers: Vf VSC delivers its island's power; the VdcQ partner balances the DC link
    p_vf = jnp.where(vf_on, res.p_source_pu[st.sop_a_bus], 0.0)
    q_vf = jnp.where(vf_on, res.q_source_pu[st.sop_a_bus], 0.0)
    s_vf = _hypot(p_vf, q_vf)
    p_b_vf = vdcq_power(p_vf, st.sop_loss_a, s_vf, st.sop_loss_b, jnp.where(vf_on, st.sop_q_b, 0.0))
    active = pq | vf_on
    s_a = jnp.where(pq, _hypot(p_a, q_a_pq), s_vf)
    p_b = jnp.where(pq, p_b_pq, jnp.where(vf_on, p_b_vf, 0.0))
    s_b = jnp.where(active, _hypot(p_b, jnp.where(active, st.sop_q_b, 0.0)), 0.0)
    s_a = jnp.where(active, s_a, 0.0)
    sop_loss = jnp.sum(st.sop_loss_a * s_a + st.sop_loss_b * s_b)
    load_a = jnp.where(st.sop_s_a > 0, s_a / jnp.where(st.sop_s_a > 0, st.sop_s_a, 1.0), 0.0)
    load_b = jnp.where(st.sop_s_b > 0, s_b / jnp.where(st.sop_s_b > 0, st.sop_s_b, 1.0), 0.0)
    over_a = s_a > st.sop_s_a * (1.0 + options.cap_tol)
    over_b = s_b > st.sop_s_b * (1.0 + options.cap_tol)
    a_i = st.sop_a_is_i
    sop_loading = jnp.stack([jnp.where(a_i, load_a, load_b), jnp.where(a_i, load_b, load_a)], axis=-1)
    sop_overload = jnp.stack([jnp.where(a_i, over_a, over_b), jnp.where(a_i, over_b, over_a)], axis=-1)
    s_rated = st.sop_s_a + st.sop_s_b
    sop_util = jnp.where(s_rated > 0, (s_a + s_b) / jnp.where(s_rated > 0, s_rated, 1.0), 0.0)

    # islands of overloaded Vf converters
    vf_over = vf_on & (over_a | over_b)
    bad_src = jnp.zeros((n,), jnp.int32).at[st.sop_a_bus].max(vf_over.astype(jnp.int32)) > 0
    lost = bad_src[topo.root] & energized & ctx.shed_overloaded_islands
    on = energized & ~lost

    vm = jnp.where(on, res.vm_pu, 0.0)
    compliant = on & (vm >= ctx.v_min_pu - options.v_tol_pu) & (vm <= ctx.v_max_pu + options.v_tol_pu)
    v_violation = on & ~compliant
    served = st.pickup * compliant
    p_served = served * p_load_pu
    restored = jnp.sum(jnp.where(ctx.outage, p_served, 0.0))
    outage_load = jnp.sum(jnp.where(ctx.outage, p_load_pu, 0.0))
    ratio = jnp.where(outage_load > 0, restored / jnp.where(outage_load > 0, outage_load, 1.0), 1.0)

    # branches: loading and VCPI
    branch_on = topo.branch_active & on[ctx.f_bus] & on[ctx.t_bus]
    pf_, qf = res.p_from_pu, res.q_from_pu
    i2 = res.i_pu**2
    pt, qt = pf_ - ctx.r_pu * i2, qf - ctx.x_pu * i2  # power arriving at the to-end
    s_max = jnp.maximum(_hypot(pf_, qf), _hypot(pt, qt))
    loading = jnp.where(branch_on, s_max / ctx.rate_pu, 0.0)
    overload = branch_on & (loading > 1.0 + options.cap_tol)
    forward = pf_ >= 0
    p_r = jnp.where(forward, pt, -pf_)
    q_r = jnp.where(forward, qt, -qf)
    v_s = jnp.where(forward, res.vm_pu[ctx.f_bus], res.vm_pu[ctx.t_bus])
    z = _hypot(ctx.r_pu, ctx.x_pu)
    vcpi = 2.0 * (z * _hypot(p_r, q_r) + ctx.r_pu * p_r + ctx.x_pu * q_r) / jnp.maximum(v_s, 1e-6) ** 2
    vcpi = jnp.where(branch_on, vcpi, 0.0)
    line_loss = jnp.sum(jnp.where(branch_on, res.p_loss_pu, 0.0))

    big = jnp.asarray(jnp.inf, vm.dtype)
    vmin = jnp.min(jnp.where(on, vm, big))
    vmax = jnp.max(jnp.where(on, vm, -big))
    voltage_violation = jnp.any(v_violation)
    branch_violation = jnp.any(overload)
    sop_violation = jnp.any(sop_overload)
    return SampleScore(
        converged=res.converged,
        iterations=jnp.asarray(res.iterations, jnp.int32),
        vm_pu=vm,
        energized=on,
        served=served,
        v_violation=v_violation,
        branch_on=branch_on,
        branch_loading=loading,
        branch_overload=overload,
        vcpi=vcpi,
        sop_loading=sop_loading,
        sop_overload=sop_overload,
        sop_utilization=sop_util,
        restored_pu=restored,
        outage_pu=outage_load,
        served_pu=jnp.sum(p_served),
        recovery_ratio=ratio,
        line_loss_pu=line_loss,
        sop_loss_pu=sop_loss,
        vmin_pu=vmin,
        vmax_pu=vmax,
        vcpi_max=jnp.max(vcpi, initial=0.0),
        voltage_violation=voltage_violation,
        branch_violation=branch_violation,
        sop_violation=sop_violation,
        island_lost=jnp.any(lost),
        any_violation=voltage_violation | branch_violation | sop_violation,
    )


def blocked_map(f, xs, block: int):
    """``jax.vmap(f)`` over the leading axis of ``xs`` evaluated in blocks of ``block`` (a ``lax.scan``).

    Equivalent to ``jax.lax.map(f, xs, batch_size=block)``, which in JAX 0.10 flattens the
    stacked blocks with ``reshape(-1, *rest)``: an output with a zero-size trailing axis
    (e.g. the SOP fields of a network without SOPs, shape ``(sample, 0)``) makes that reshape
    divide by zero. Here every reshape names its sizes.
    """
    leaves = jax.tree_util.tree_leaves(xs)
    n = leaves[0].shape[0]
    nb, rem = divmod(n, block)
    vf = jax.vmap(f)
    head = nb * block
    outs = []
    if nb:
        blocks = jax.tree_util.tree_map(lambda x: x[:head].reshape((nb, block) + x.shape[1:]), xs)
        _, ys = jax.lax.scan(lambda c, x: (c, vf(x)), None, blocks)
        outs.append(jax.tree_util.tree_map(lambda y: y.reshape((head,) + y.shape[2:]), ys))
    if rem:
        outs.append(vf(jax.tree_util.tree_map(lambda x: x[head:], xs)))
    if len(outs) == 1:
        return outs[0]
    return jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b], axis=0), *outs)


def score_batch(
    ctx: ScoringContext,
    st: StrategyArrays,
    p_load_pu: Float[Array, "sample bus"],
    q_load_pu: Float[Array, "sample bus"],
    p_pv_pu: Float[Array, "sample pv"],
    options: ScoringOptions = ScoringOptions(),
) -> SampleScore:
    """:func:`score_sample` over stacked strategies x samples: outputs (strategy, sample, ...).

    Layout (``options.strategy_axis``, ``options.sample_block``): a vmapped
    ``while_loop`` iterates until its slowest lane converges, so one sample near
    voltage collapse (100 sweeps) would hold back a whole batch that needs 8.
    ``"map"`` therefore loops over strategies (``lax.map``) and vmaps samples in
    blocks of ``sample_block`` (:func:`blocked_map`): a slow lane only
    holds back its own block, and the blocks stay cache-sized. ``"vmap"`` vmaps
    strategies too (one wide batch: the better choice on a GPU).

    With ``"map"`` and the exact sweep, the power flow of a strategy's samples is
    by default one bus-major batched call (``options.sweep_layout``): the net loads
    are formed per sample, :func:`~sopjax.kernels.sweep_batch.sweep_batch` solves
    them (Vf-mode islands included), and :func:`score_flow` scores each sample.
    Per sample, the results do not depend on the other samples of the chunk.
    """
    one = partial(score_sample, options=options)
    if options.sweep_layout not in ("bus_major", "per_sample"):
        raise ValueError(f"sweep_layout must be 'bus_major' or 'per_sample', got {options.sweep_layout!r}")

    def bus_major(s):
        p_net, q_net = jax.vmap(lambda p, q, pv: net_load(ctx, s, p, q, pv))(p_load_pu, q_load_pu, p_pv_pu)
        res = sweep_batch(s.topo, s.grid, ctx.f_bus, p_net, q_net, tol=options.tol, max_iter=options.max_iter, vf=s.vf)
        return jax.vmap(lambda p, r: score_flow(ctx, s, p, r, options))(p_load_pu, res)

    def per_strategy(s):
        f = lambda x: one(ctx, s, x[0], x[1], x[2])  # noqa: E731
        if options.sample_block is None or options.sample_block >= p_load_pu.shape[0]:
            return jax.vmap(f)((p_load_pu, q_load_pu, p_pv_pu))
        return blocked_map(f, (p_load_pu, q_load_pu, p_pv_pu), options.sample_block)

    if options.strategy_axis == "vmap":
        return jax.vmap(per_strategy)(st)
    if options.strategy_axis != "map":
        raise ValueError(f"strategy_axis must be 'map' or 'vmap', got {options.strategy_axis!r}")
    if options.method == "sweep" and options.sweep_layout == "bus_major":
        return jax.lax.map(bus_major, st)
    return jax.lax.map(per_strategy, st)


# ---------------------------------------------------------------------------
# chunk reductions
# ---------------------------------------------------------------------------

# field -> mask field (None: every valid sample counts)
MOMENT_FIELDS: dict[str, str | None] = {
    "recovery_ratio": None,
    "restored_pu": None,
    "outage_pu": None,
    "served_pu": None,
    "line_loss_pu": None,
    "sop_loss_pu": None,
    "vmin_pu": None,
    "vmax_pu": None,
    "vcpi_max": None,
    "voltage_violation": None,
    "branch_violation": None,
    "sop_violation": None,
    "island_lost": None,
    "any_violation": None,
    "iterations": None,
    "vm_pu": "energized",  # its count is the number of samples in which the bus is energized
    "served": None,
    "v_violation": None,
    "branch_loading": "branch_on",
    "branch_overload": None,
    "vcpi": "branch_on",
    "sop_loading": None,
    "sop_overload": None,
    "sop_utilization": None,
}

# fields whose mean is all that is reported (no min / max pass)
MEAN_ONLY = frozenset({"served"})

# scalar fields kept per sample when exact quantiles fit in memory, and their histograms
EXACT_FIELDS: dict[str, str] = {
    "recovery_ratio": "ratio_hist",
    "vcpi_max": "ratio_hist",
    "vmin_pu": "voltage_hist",
    "vmax_pu": "voltage_hist",
}


class Moments(NamedTuple):
    """Masked per-chunk moments over the sample axis (axis 1 of (strategy, sample, ...))."""

    count: Array
    mean: Array
    m2: Array
    min: Array
    max: Array


def chunk_moments(
    x: Array, mask: Bool[Array, "strategy sample ..."], shift: Array | None = None, minmax: bool = True
) -> Moments:
    """Count, mean, sum of squared deviations, min and max of ``x`` where ``mask`` (over axis 1).

    One pass over the data: sums of ``d = x - shift`` and ``d**2`` give
    ``M2 = sum d^2 - (sum d)^2 / n``. ``shift`` (strategy, ...) should be close to
    the mean (the runner passes the forecast-row values) so that the subtraction
    does not cancel; booleans need no shift (``M2 = k - k^2/n`` exactly).
    ``minmax=False`` skips the min / max pass (they are returned as +-inf).
    """
    f64 = jnp.float64  # float32 when x64 is disabled
    if x.dtype == bool:
        n = jnp.sum(mask, axis=1, dtype=jnp.int32).astype(f64)
        safe = jnp.maximum(n, 1)
        k = jnp.sum(mask & x, axis=1, dtype=jnp.int32).astype(f64)
        return Moments(count=n, mean=k / safe, m2=k - k * k / safe,
                       min=jnp.where(n > 0, (k == n).astype(f64), jnp.inf),
                       max=jnp.where(n > 0, (k > 0).astype(f64), -jnp.inf))
    x = x.astype(f64)
    c = jnp.zeros(x.shape[:1] + x.shape[2:], f64) if shift is None else jnp.where(
        jnp.isfinite(shift), shift.astype(f64), 0.0)
    d = jnp.where(mask, x - jnp.expand_dims(c, 1), 0.0)
    # one variadic reduction: XLA:CPU runs separate sibling reductions of one input
    # as a slow multi-output loop (measured 5-10x slower than this single pass)
    ops = [mask.astype(f64), d, d * d]
    init = [0.0, 0.0, 0.0]
    if minmax:
        ops += [jnp.where(mask, x, jnp.inf), jnp.where(mask, x, -jnp.inf)]
        init += [jnp.inf, -jnp.inf]

    def combine(a, b):
        out = [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
        if minmax:
            out += [jnp.minimum(a[3], b[3]), jnp.maximum(a[4], b[4])]
        return tuple(out)

    red = jax.lax.reduce(tuple(ops), tuple(jnp.asarray(v, f64) for v in init), combine, (1,))
    n, s1, s2 = red[0], red[1], red[2]
    safe = jnp.maximum(n, 1)
    inf = jnp.asarray(jnp.inf, f64)
    mn, mx = (red[3], red[4]) if minmax else (jnp.full_like(s1, inf), jnp.full_like(s1, -inf))
    return Moments(count=n, mean=c + s1 / safe, m2=jnp.maximum(s2 - s1 * s1 / safe, 0.0), min=mn, max=mx)


def histogram(x: Array, mask: Array, spec: HistSpec) -> Int[Array, "strategy ... bins"]:
    """Counts of ``x`` (strategy, sample, ...) in ``spec``'s bins, summed over samples."""
    lo, hi, nb = spec.lo, spec.hi, spec.bins
    k = jnp.floor((x - lo) / (hi - lo) * nb).astype(jnp.int32)
    k = jnp.clip(k, 0, nb - 1) + 2
    k = jnp.where(x < lo, 0, jnp.where(x == lo, 1, jnp.where(x == hi, nb + 2, jnp.where(x > hi, nb + 3, k))))
    k = jnp.moveaxis(k, 1, -1)
    w = jnp.moveaxis(mask, 1, -1).astype(jnp.int32)
    rows = math.prod(k.shape[:-1])
    flat = (jnp.arange(rows, dtype=jnp.int32)[:, None] * spec.size + k.reshape(rows, -1)).reshape(-1)
    counts = jnp.bincount(flat, weights=w.reshape(-1), length=rows * spec.size)
    return counts.reshape(*k.shape[:-1], spec.size).astype(jnp.int64)


def reduce_chunk(
    scores: SampleScore, valid: Bool[Array, "strategy sample"], options: ScoringOptions,
    shift: SampleScore | None = None,
) -> dict[str, Any]:
    """Reductions of one chunk of scores (strategy, sample, ...) over its valid samples.

    ``shift``: per-strategy values (strategy, ...) near the means, e.g. the
    scores at the forecast, for the one-pass variance (:func:`chunk_moments`).

    Returns:
        ``{"moments": {field: Moments}, "hist": {...}, "n_valid", "n_failed"}``:
        moments of every :data:`MOMENT_FIELDS` entry, histograms of
        :data:`EXACT_FIELDS` and of per-bus voltage, and per-strategy counts
        of valid (converged, finite) and of failed samples among ``valid``.
    """
    ok = scores.converged & jnp.isfinite(scores.recovery_ratio) & jnp.isfinite(scores.vmin_pu)
    n_failed = jnp.sum(valid & ~ok, axis=1)
    valid = valid & ok
    out: dict[str, Any] = {"moments": {}, "hist": {}}
    for name, mask_name in MOMENT_FIELDS.items():
        x = getattr(scores, name)
        m = valid.reshape(valid.shape + (1,) * (x.ndim - 2))
        if mask_name is not None:
            m = m & getattr(scores, mask_name)
        else:
            m = jnp.broadcast_to(m, x.shape)
        out["moments"][name] = chunk_moments(x, m, None if shift is None else getattr(shift, name),
                                             minmax=name not in MEAN_ONLY)
    for name, spec_name in EXACT_FIELDS.items():
        out["hist"][name] = histogram(getattr(scores, name), valid, getattr(options, spec_name))
    out["hist"]["vm_pu"] = histogram(scores.vm_pu, valid[..., None] & scores.energized, options.voltage_hist)
    out["n_valid"] = jnp.sum(valid, axis=1)
    out["n_failed"] = n_failed
    return out
