"""Corrective SOP control per sample: the set-points react to the sampled loads and PV.

Pure JAX, one strategy on a set of samples (outputs ``(sample, ...)``), like
:func:`~sopjax.kernels.scoring.layout.score_strategy`. Three policies
(:data:`CONTROL_POLICIES`):

* ``"fixed"``: the strategy's set-points (today's engine).
* ``"local"``: a local rule at each SOP (:func:`score_local`), iterated with the power flow
  (``ControlOptions.iterations`` damped fixed-point steps, then scored):

  - Q-V droop at each VSC that controls its reactive power (both VSCs in PQ mode, the
    VdcQ VSC of a Vf island): ``Q = Q_set - S (V - V_ref) / droop_q``;
  - P balancing the two feeders' voltages (PQ mode only):
    ``P_a = P_set + S_a (V_b - V_a) / droop_p`` (more power into the weaker feeder);
  - limits: ``|P_a| <= S_a``, then ``Q`` within the VSC's limits and ``sqrt(S^2 - P^2)``;
    the VdcQ VSC's active power follows from the DC balance, as in scoring.
* ``"optimal"`` (re-dispatch): PQ-mode SOPs are re-optimized by the batched JAX dispatch
  (:mod:`sopjax.kernels.dispatch`, minimum losses within voltage limits) on the host side
  (:mod:`sopjax.montecarlo.timeseries`), and scored here with per-sample set-points
  (:func:`score_setpoints`); Vf-mode SOPs, which the dispatch does not model (it is the
  normal-operation problem of one substation-fed tree), get their island voltage
  ``U_set`` re-chosen per sample (:func:`score_vf_search`): the best of the fixed value
  and ``ControlOptions.u_set_candidates`` values evenly spaced in the bus's limits, best =
  highest recovery ratio, then lowest losses.

A failed power flow in any policy is data (``converged`` False), as in scoring.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from sopjax.kernels.radial import sweep_power_flow
from sopjax.kernels.scoring.arrays import ScoringContext, StrategyArrays
from sopjax.kernels.scoring.layout import score_strategy
from sopjax.kernels.scoring.options import ScoringOptions
from sopjax.kernels.scoring.sample import SampleScore, net_load, score_sample

__all__ = [
    "CONTROL_POLICIES",
    "ControlOptions",
    "SetPoints",
    "SOPLimits",
    "check_policy",
    "fixed_setpoints",
    "with_setpoints",
    "score_setpoints",
    "score_local",
    "score_vf_search",
    "vf_candidates",
    "repair_islands",
    "ISLAND_POLICIES",
]

#: corrective control policies
CONTROL_POLICIES = ("fixed", "local", "optimal")


def check_policy(policy: str, where: str = "control") -> str:
    """``policy`` if it is in :data:`CONTROL_POLICIES`; raise ``ValueError`` naming ``where`` otherwise."""
    if policy not in CONTROL_POLICIES:
        raise ValueError(
            f"{where}: unknown control policy {policy!r}; choose from {', '.join(CONTROL_POLICIES)}"
        )
    return policy


@dataclasses.dataclass(frozen=True)
class ControlOptions:
    """Static settings of corrective control (hashable; part of the jit key).

    Attributes:
        droop_q: voltage deviation (p.u.) at which the Q-V droop asks for the VSC's full capacity.
        droop_p: voltage difference between the two terminals (p.u.) at which the P rule asks
            for the full capacity.
        v_ref_pu: reference voltage of the droop (p.u.).
        iterations: damped fixed-point steps of the local rule (one power flow each).
        damping: step ``x <- x + damping (target - x)``, in (0, 1].
        u_set_candidates, q_candidates: grid of ``optimal`` control for Vf islands: ``U_set``
            values evenly spaced in the Vf bus's limits times ``Q_b`` values of the VdcQ VSC evenly
            spaced in ``[-q_span, q_span] x S_b`` (within its limits), besides the fixed set-points.
        q_span: see ``q_candidates`` (fraction of the VdcQ VSC's capacity), in (0, 1].
        dispatch_tol, dispatch_max_iter: tolerance and iteration limit of the JAX dispatch.
        dispatch_stall_after: from this iteration on, a dispatch whose primal residual stalls
            (no set-point inside the limits) stops as not converged instead of running to
            ``dispatch_max_iter`` (:func:`~sopjax.kernels.dispatch.ipm.step`); 0: never.
        dispatch_block: problems per batched dispatch call; a chunk's problems are solved block
            by block. ``None``: 256 on CPU, where small blocks keep the interior point's working
            set in cache and let a block stop with its own slowest problem (~2x faster per
            problem than one call of 65 k problems, ``benchmarks/timeseries_bench.py
            --dispatch-blocks``), and every problem in one call on an accelerator.
    """

    droop_q: float = 0.05
    droop_p: float = 0.05
    v_ref_pu: float = 1.0
    iterations: int = 8
    damping: float = 0.5
    u_set_candidates: int = 3
    q_candidates: int = 5
    q_span: float = 0.5
    dispatch_tol: float = 1e-8
    dispatch_max_iter: int = 150
    dispatch_stall_after: int = 30
    dispatch_block: int | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        for name in ("droop_q", "droop_p", "v_ref_pu", "dispatch_tol"):
            v = getattr(self, name)
            if not v > 0:
                raise ValueError(f"ControlOptions.{name} must be > 0, got {v}")
        if not 0 < self.damping <= 1:
            raise ValueError(f"ControlOptions.damping must lie in (0, 1], got {self.damping}")
        if not 0 < self.q_span <= 1:
            raise ValueError(f"ControlOptions.q_span must lie in (0, 1], got {self.q_span}")
        for name in ("iterations", "u_set_candidates", "q_candidates", "dispatch_max_iter"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ControlOptions.{name} must be >= 1, got {getattr(self, name)}")
        if self.dispatch_block is not None and int(self.dispatch_block) < 1:
            raise ValueError(f"ControlOptions.dispatch_block must be >= 1 or None, got {self.dispatch_block}")
        if int(self.dispatch_stall_after) < 0:
            raise ValueError(f"ControlOptions.dispatch_stall_after must be >= 0, got {self.dispatch_stall_after}")


class SetPoints(NamedTuple):
    """SOP set-points of one sample (p.u., injections), each (sop,): VSC a = the PQ or Vf VSC.

    Attributes:
        p_a, q_a: active / reactive injection of VSC a (PQ mode; unused in Vf mode).
        q_b: reactive injection of VSC b (VdcQ mode).
        u_a: voltage set-point of VSC a in Vf mode (p.u.; unused otherwise).
    """

    p_a: Array
    q_a: Array
    q_b: Array
    u_a: Array


class SOPLimits(NamedTuple):
    """Reactive limits of each VSC in the a/b orientation of a strategy (p.u.), each (sop,)."""

    q_min_a: Array
    q_max_a: Array
    q_min_b: Array
    q_max_b: Array
    u_min_a: Array
    u_max_a: Array


def fixed_setpoints(s: StrategyArrays) -> SetPoints:
    """The strategy's own set-points."""
    return SetPoints(s.sop_p_a, s.sop_q_a, s.sop_q_b, s.grid.v_source[s.sop_a_bus])


def with_setpoints(s: StrategyArrays, sp: SetPoints) -> StrategyArrays:
    """``s`` with set-points ``sp`` (only for active SOPs of the matching mode)."""
    p_a = jnp.where(s.sop_is_pq, sp.p_a, s.sop_p_a)
    q_a = jnp.where(s.sop_is_pq, sp.q_a, s.sop_q_a)
    q_b = jnp.where(s.sop_is_pq | s.sop_is_vf, sp.q_b, s.sop_q_b)
    u = jnp.where(s.sop_is_vf, sp.u_a, s.grid.v_source[s.sop_a_bus])
    v_source = s.grid.v_source.at[s.sop_a_bus].set(jnp.where(s.sop_is_vf, u, s.grid.v_source[s.sop_a_bus]))
    vf = dataclasses.replace(s.vf, q_partner=jnp.where(s.sop_is_vf, q_b, s.vf.q_partner))
    return dataclasses.replace(
        s, sop_p_a=p_a, sop_q_a=q_a, sop_q_b=q_b, vf=vf, grid=dataclasses.replace(s.grid, v_source=v_source)
    )


def score_setpoints(
    ctx: ScoringContext,
    s: StrategyArrays,
    p_load_pu: Float[Array, "sample bus"],
    q_load_pu: Float[Array, "sample bus"],
    p_pv_pu: Float[Array, "sample pv"],
    sp: SetPoints,
    options: ScoringOptions = ScoringOptions(),
) -> SampleScore:
    """Score ``s`` on each sample with that sample's set-points ``sp`` (each field (sample, sop))."""
    one = lambda p, q, pv, x: score_sample(ctx, with_setpoints(s, x), p, q, pv, options)  # noqa: E731
    return jax.vmap(one)(p_load_pu, q_load_pu, p_pv_pu, sp)


def _clip_capacity(p, q, s_rated, q_min, q_max):
    """``|p| <= S``, then ``q`` within ``[q_min, q_max]`` and ``sqrt(S^2 - p^2)``."""
    p = jnp.clip(p, -s_rated, s_rated)
    q_room = jnp.sqrt(jnp.maximum(s_rated * s_rated - p * p, 0.0))
    return p, jnp.clip(q, jnp.maximum(q_min, -q_room), jnp.minimum(q_max, q_room))


def local_setpoints(
    ctx: ScoringContext,
    s: StrategyArrays,
    p_load_pu,
    q_load_pu,
    p_pv_pu,
    lim: SOPLimits,
    options: ScoringOptions,
    control: ControlOptions,
) -> SetPoints:
    """Set-points of the local rule for one sample (see the module docstring)."""
    sp0 = fixed_setpoints(s)
    pq, vf = s.sop_is_pq, s.sop_is_vf

    def step(_, sp):
        st = with_setpoints(s, sp)
        p_net, q_net = net_load(ctx, st, p_load_pu, q_load_pu, p_pv_pu)
        res = sweep_power_flow(
            st.topo, st.grid, ctx.f_bus, p_net, q_net, st.vf, tol=options.tol, max_iter=options.max_iter
        )
        v_a, v_b = res.vm_pu[s.sop_a_bus], res.vm_pu[s.sop_b_bus]
        p_t = sp0.p_a + s.sop_s_a * (v_b - v_a) / control.droop_p
        q_a_t = sp0.q_a - s.sop_s_a * (v_a - control.v_ref_pu) / control.droop_q
        q_b_t = sp0.q_b - s.sop_s_b * (v_b - control.v_ref_pu) / control.droop_q
        w = control.damping
        p_a, q_a = _clip_capacity(
            sp.p_a + w * (p_t - sp.p_a), sp.q_a + w * (q_a_t - sp.q_a), s.sop_s_a, lim.q_min_a, lim.q_max_a
        )
        _, q_b = _clip_capacity(
            jnp.zeros_like(p_a), sp.q_b + w * (q_b_t - sp.q_b), s.sop_s_b, lim.q_min_b, lim.q_max_b
        )
        ok = res.converged
        keep = lambda new, old, m: jnp.where(ok & m, new, old)  # noqa: E731
        return SetPoints(keep(p_a, sp.p_a, pq), keep(q_a, sp.q_a, pq), keep(q_b, sp.q_b, pq | vf), sp.u_a)

    return jax.lax.fori_loop(0, control.iterations, step, sp0)


def score_local(
    ctx: ScoringContext,
    s: StrategyArrays,
    p_load_pu: Float[Array, "sample bus"],
    q_load_pu: Float[Array, "sample bus"],
    p_pv_pu: Float[Array, "sample pv"],
    lim: SOPLimits,
    options: ScoringOptions = ScoringOptions(),
    control: ControlOptions = ControlOptions(),
) -> tuple[SampleScore, SetPoints]:
    """The local rule on each sample: (scores, set-points), outputs (sample, ...)."""

    def one(p, q, pv):
        sp = local_setpoints(ctx, s, p, q, pv, lim, options, control)
        return score_sample(ctx, with_setpoints(s, sp), p, q, pv, options), sp

    return jax.vmap(one)(p_load_pu, q_load_pu, p_pv_pu)


def _grid(lo, hi, k: int):
    frac = jnp.linspace(0.0, 1.0, k) if k > 1 else jnp.full((1,), 0.5)
    return lo[None, :] + frac[:, None] * (hi - lo)[None, :]


def vf_candidates(s: StrategyArrays, lim: SOPLimits, control: ControlOptions) -> SetPoints:
    """Set-point candidates of ``optimal`` Vf control, each field (candidate, sop); candidate 0 = fixed."""
    sp0 = fixed_setpoints(s)
    u = _grid(lim.u_min_a, lim.u_max_a, control.u_set_candidates).astype(sp0.u_a.dtype)
    q_lo = jnp.maximum(lim.q_min_b, -control.q_span * s.sop_s_b)
    q_hi = jnp.minimum(lim.q_max_b, control.q_span * s.sop_s_b)
    qb = _grid(q_lo, jnp.maximum(q_hi, q_lo), control.q_candidates).astype(sp0.q_b.dtype)
    nu, nq = u.shape[0], qb.shape[0]
    u_all = jnp.concatenate([sp0.u_a[None], jnp.repeat(u, nq, axis=0)])
    q_all = jnp.concatenate([sp0.q_b[None], jnp.tile(qb, (nu, 1))])
    q_all = jnp.where(s.sop_is_vf[None, :], q_all, sp0.q_b[None, :])
    n = u_all.shape[0]
    return SetPoints(
        jnp.broadcast_to(sp0.p_a, (n,) + sp0.p_a.shape),
        jnp.broadcast_to(sp0.q_a, (n,) + sp0.q_a.shape),
        q_all,
        u_all,
    )


def score_vf_search(
    ctx: ScoringContext,
    s: StrategyArrays,
    p_load_pu: Float[Array, "sample bus"],
    q_load_pu: Float[Array, "sample bus"],
    p_pv_pu: Float[Array, "sample pv"],
    lim: SOPLimits,
    options: ScoringOptions = ScoringOptions(),
    control: ControlOptions = ControlOptions(),
    finish=None,
) -> tuple[SampleScore, SetPoints]:
    """``optimal`` control of Vf islands: per sample, the best of the fixed set-points and a grid.

    Candidate 0 is the strategy's own ``(U_set, Q_b)``; the others are the grid of
    :func:`vf_candidates` (every Vf-mode SOP at the same grid position). Per sample the candidate
    with the highest recovery ratio wins, ties (within 1e-12) going to the lowest total losses,
    then to the lowest index, so the fixed set-points are kept unless a candidate is strictly
    better: the recovery never falls below ``fixed`` on a sample where both power flows converge.
    Each candidate is one bus-major batched power flow. ``finish(st, sp, scores)`` (optional)
    post-processes each candidate's scores (the island-overload repair), before the choice.
    """
    cands = vf_candidates(s, lim, control)
    n = p_load_pu.shape[0]

    def run(sp):
        st = with_setpoints(s, sp)
        sc = score_strategy(ctx, st, p_load_pu, q_load_pu, p_pv_pu, options)
        if finish is not None:
            sc = finish(st, jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n,) + a.shape), sp), sc)
        return sc

    scores = jax.lax.map(run, cands)  # (candidate, sample, ...)
    ok = scores.converged & jnp.isfinite(scores.recovery_ratio)
    ratio = jnp.where(ok, scores.recovery_ratio, -jnp.inf)
    loss = jnp.where(ok, scores.line_loss_pu + scores.sop_loss_pu, jnp.inf)
    best_ratio = jnp.max(ratio, axis=0)
    tied = ratio >= best_ratio[None, :] - 1e-12
    pick = jnp.argmin(jnp.where(tied, loss, jnp.inf), axis=0)  # first minimum: lowest index
    pick = jnp.where(jnp.any(ok, axis=0), pick, 0)
    chosen = jax.tree_util.tree_map(lambda a: a[pick, jnp.arange(n)], scores)
    return chosen, jax.tree_util.tree_map(lambda a: a[pick], cands)


#: island-overload policies of the time-series engine (``"shed"`` and ``"flag"`` as in scoring)
ISLAND_POLICIES = ("shed", "flag", "resolve", "priority")


def repair_islands(
    ctx: ScoringContext,
    s: StrategyArrays,
    p_load_pu: Float[Array, "sample bus"],
    q_load_pu: Float[Array, "sample bus"],
    p_pv_pu: Float[Array, "sample pv"],
    sp: SetPoints,
    scores: SampleScore,
    priority: Float[Array, " bus"],
    mode: str,
    options: ScoringOptions = ScoringOptions(),
) -> SampleScore:
    """Re-solve samples whose Vf island tripped for SOP overload (``scores.island_lost``).

    ``mode = "resolve"``: the island's load is dropped (its buses stay energized by the Vf VSC,
    with nothing picked up) and the network is solved again, so the partner's feeder no longer
    carries the island's draw. ``mode = "priority"``: the picked-up bus with the highest
    ``priority`` in an overloaded island is shed and the network solved again, repeatedly, until
    no island is overloaded (at most one re-solve per bus). Other samples are returned unchanged.
    """
    n_bus = p_load_pu.shape[1]

    def one(p, q, pv, x, sc):
        st = with_setpoints(s, x)

        def cond(c):
            return c[1].island_lost & (c[2] < n_bus)

        def body(c):
            pk, sc, i = c
            over = s.sop_is_vf & jnp.any(sc.sop_overload, axis=-1)
            bad = jnp.zeros((n_bus,), jnp.int32).at[s.sop_a_bus].max(over.astype(jnp.int32)) > 0
            inside = bad[s.topo.root] & s.topo.energized & (pk > 0) & (p > 0)
            if mode == "resolve":
                pk = jnp.where(inside, 0.0, pk)
            else:
                b = jnp.argmax(jnp.where(inside, priority, -jnp.inf))
                pk = pk.at[b].set(jnp.where(jnp.any(inside), 0.0, pk[b]))
            sc = score_sample(ctx, dataclasses.replace(st, pickup=pk), p, q, pv, options)
            return pk, sc, jnp.where(jnp.any(inside), i + 1, n_bus)

        return jax.lax.while_loop(cond, body, (st.pickup, sc, jnp.asarray(0)))[1]

    return jax.vmap(one)(p_load_pu, q_load_pu, p_pv_pu, sp, scores)
