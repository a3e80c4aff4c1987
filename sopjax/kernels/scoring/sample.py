"""Score one restoration strategy on one load/PV sample.

Pure JAX, no I/O. :func:`score_sample` is written for one (strategy, sample)
pair: :func:`net_load`, a power flow, then :func:`score_flow`. Batching over
strategies x samples is :mod:`sopjax.kernels.scoring.layout`'s concern, the
chunk reductions :mod:`sopjax.kernels.scoring.reduce`'s.

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
(:func:`sopjax.kernels.indices.line_vcpi`): 0 on an unloaded line, 1 at the line's
maximum transferable power.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from sopjax.kernels.indices import line_vcpi
from sopjax.kernels.injections import pv_net_load, sop_pq_net_load
from sopjax.kernels.radial import PowerFlowResult, lindistflow, sweep_power_flow, vdcq_power
from sopjax.kernels.scoring.arrays import ScoringContext, StrategyArrays
from sopjax.kernels.scoring.options import ScoringOptions

__all__ = ["SampleScore", "net_load", "score_flow", "score_sample", "sop_powers"]


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


def sop_powers(
    st: StrategyArrays, res: PowerFlowResult, n: int, dtype
) -> tuple[Float[Array, " sop"], Float[Array, " sop"], Float[Array, " sop"], Float[Array, " sop"]]:
    """Power each SOP's VSCs inject into their buses (p.u.): ``(p_a, q_a, p_b, q_b)``, 0 for ``off`` SOPs.

    A PQ-mode VSC ``a`` holds its set-point; a Vf-mode VSC ``a`` delivers its island's power (the
    source power of the flow ``res`` at its bus); the VdcQ partner ``b`` balances the DC link with
    both converter losses and injects its ``Q`` set-point.
    """
    pq, vf_on = st.sop_is_pq, st.sop_is_vf
    p_pq, q_a_pq, p_b_pq, _, _ = _sop_pq(st, n, dtype)
    p_vf = jnp.where(vf_on, res.p_source_pu[st.sop_a_bus], 0.0)
    q_vf = jnp.where(vf_on, res.q_source_pu[st.sop_a_bus], 0.0)
    p_b_vf = vdcq_power(p_vf, st.sop_loss_a, _hypot(p_vf, q_vf), st.sop_loss_b, jnp.where(vf_on, st.sop_q_b, 0.0))
    p_a = jnp.where(pq, p_pq, p_vf)
    q_a = jnp.where(pq, q_a_pq, q_vf)
    p_b = jnp.where(pq, p_b_pq, jnp.where(vf_on, p_b_vf, 0.0))
    q_b = jnp.where(pq | vf_on, st.sop_q_b, 0.0)
    return p_a, q_a, p_b, q_b


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
    active = st.sop_is_pq | st.sop_is_vf
    p_a, q_a, p_b, q_b = sop_powers(st, res, n, dtype)
    s_a = jnp.where(active, _hypot(p_a, q_a), 0.0)
    s_b = jnp.where(active, _hypot(p_b, q_b), 0.0)
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
    vf_over = st.sop_is_vf & (over_a | over_b)
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
    vcpi = line_vcpi(pf_, qf, res.i_pu, res.vm_pu, ctx.f_bus, ctx.t_bus, ctx.r_pu, ctx.x_pu)
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
