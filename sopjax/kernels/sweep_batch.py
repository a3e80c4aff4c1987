"""Backward/forward sweep for a block of samples in bus-major layout ``[bus, sample]``.

:func:`sopjax.kernels.radial.sweep_power_flow` is written for one sample, and
``jax.vmap`` of it is correct but slow on a CPU: its O(bus) tree reductions
(a gather, a cumulative sum and a gather) become gathers along the minor axis and
log-depth scans over every sample's buses. Here the same iteration runs on a
block of samples stored bus-major, so each bus is a contiguous row of samples and
every step is a vector operation over samples:

* backward sweep: for each bus in reverse depth-first order, add its row of
  current to its parent's row (``J[parent] += J[bus]``);
* forward sweep: for each bus in depth-first order, ``V[bus] = V[parent] - z J[bus]``.

Both are ``fori_loop`` s over buses whose bodies are a row slice and a row update,
so the compiled program does not grow with the network and the work is O(bus)
per sample and iteration. The loop indices come from the (possibly traced)
:class:`~sopjax.topology.Topology`, so stacked topologies can be vmapped.

Two iterations share this layout and the stopping rule (largest update of the
voltage magnitude <= ``tol``, collapse guard, per-sample ``iterations`` and
``converged``; a stopped sample is frozen while the others of its block iterate):

* ``"power"`` (default): the DistFlow recursion (power summation) on ``|V|^2``,
  with the branch losses of the previous iterate. Loads are constant power, so the
  voltage enters only through the losses and the fixed point contracts faster:
  6 sweeps at ``tol = 1e-8`` on IEEE 33 against 8 (5 against 6 on a 2913-bus
  feeder), each of them lighter (the forward sweep carries |V|^2, not two parts).
  Converged voltages agree with ``"current"`` to the tolerance.
* ``"current"``: the per-sample kernel's current-injection sweep, same start point
  and iteration count as ``vmap(sweep_power_flow)``, equal to rounding.

Measured in ``docs/benchmarks.md``: ``"power"`` is 1.1-1.2x faster than
``"current"`` on IEEE 33 and on lv_schutterwald.

Vf-mode SOP couplings are handled by ``"power"`` (the caller falls back to ``vmap``
for ``"current"``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from sopjax.kernels.radial import _COLLAPSE_PU, Grid, PowerFlowResult, VfCoupling, vdcq_power
from sopjax.kernels.vector_math import atan2
from sopjax.topology import Topology

__all__ = ["sweep_batch", "default_block", "divisor_block"]


def default_block(n_bus: int) -> int:
    """Samples per block: about 8k values per bus-major array (cache-sized), 64 to 2048.

    Measured per core on a 2-core AMD EPYC (``benchmarks/block_size_bench.py``,
    ``docs/benchmarks.md``): IEEE 33 runs fastest at about 256 samples per block
    (1.4x faster than 1000, whose arrays no longer fit the 512 KiB L2 cache), the
    2913-bus lv_schutterwald feeder at 64; smaller blocks pay the per-step loop
    overhead.
    """
    target = 8192 / max(int(n_bus), 1)
    block = 1 << max(0, round(np.log2(max(target, 1.0))))
    return int(min(2048, max(64, block)))


def divisor_block(n_samples: int, block: int) -> int:
    """The largest block in ``(block / 2, block]`` that divides ``n_samples``, else ``block``.

    Padding the samples to a whole number of blocks copies every input array (a
    fifth of the solve time on IEEE 33); a block that divides the sample count needs none.
    """
    for b in range(block, block // 2, -1):
        if n_samples % b == 0:
            return b
    return block


def _plan(topo: Topology):
    """Row indices of the two sweeps; row ``n`` is a scratch row for sources."""
    n = topo.parent.shape[0]
    order = jnp.asarray(topo.preorder, jnp.int32)
    hp = jnp.asarray(topo.has_parent)
    par = jnp.asarray(topo.parent, jnp.int32)
    rev = order[::-1]
    back_dst = jnp.where(hp[rev], par[rev], n)  # sources add into the scratch row
    fwd_src = jnp.where(hp[order], par[order], n)
    fwd_dst = jnp.where(hp[order], order, n)  # sources keep their voltage
    return rev, back_dst, order, fwd_src, fwd_dst


def _backward(plan, J):
    """Subtree sums of the rows of ``J`` (bus + 1 scratch row, 2 x sample columns)."""
    rev, back_dst, _, _, _ = plan

    def step(k, J):
        row = jax.lax.dynamic_slice_in_dim(J, rev[k], 1, 0)
        dst = back_dst[k]
        return jax.lax.dynamic_update_slice_in_dim(
            J, jax.lax.dynamic_slice_in_dim(J, dst, 1, 0) + row, dst, 0
        )

    return jax.lax.fori_loop(0, rev.shape[0], step, J)


def _forward(plan, W, D):
    """Root-to-bus voltages: ``W[bus] = W[parent] - D[bus]`` in depth-first order."""
    _, _, order, fwd_src, fwd_dst = plan

    def step(k, W):
        row = jax.lax.dynamic_slice_in_dim(W, fwd_src[k], 1, 0) - jax.lax.dynamic_slice_in_dim(
            D, order[k], 1, 0
        )
        return jax.lax.dynamic_update_slice_in_dim(W, row, fwd_dst[k], 0)

    return jax.lax.fori_loop(0, order.shape[0], step, W)


def _currents(P, Q, vr, vi, en, shunt=None):
    """Load currents ``conj(S / V)`` (plus shunt currents ``y V``) as stacked ``[re | im]`` columns
    plus a zero scratch row."""
    if shunt is not None:  # conj(y) |V|^2 of constant admittance, as load power
        g, b = shunt
        d = vr * vr + vi * vi
        P, Q = P + g * d, Q - b * d
    d = vr * vr + vi * vi
    ir = jnp.where(en, (P * vr + Q * vi) / d, 0)
    ii = jnp.where(en, (P * vi - Q * vr) / d, 0)
    J = jnp.concatenate([ir, ii], axis=1)
    return jnp.concatenate([J, jnp.zeros((1, J.shape[1]), J.dtype)], axis=0)


def _pad(a):
    """Append the zero scratch row."""
    return jnp.concatenate([a, jnp.zeros((1,) + a.shape[1:], a.dtype)], axis=0)


def _iterate(step, x0, error, n_s, tol, max_iter):
    """Apply ``step`` until each sample's update is <= ``tol``; stopped or collapsed samples freeze.

    ``x`` is an array or tuple of ``[bus, sample]`` arrays. ``error(new, old)`` is
    one reduction over buses giving each sample's largest voltage update, ``inf``
    (or NaN) where ``new`` is not healthy (collapsed or not finite): one pass over
    the block instead of two, the reductions being a large share of an iteration.
    """
    rdtype = jax.tree_util.tree_leaves(x0)[0].dtype

    def body(state):
        x, it, err, ok, active = state
        xn = step(x)
        e = error(xn, x)
        fine = jnp.isfinite(e)
        take = active & fine
        err = jnp.where(active, jnp.where(fine, e, jnp.inf), err)
        # freeze stopped or collapsed samples; while every sample moves on (most sweeps), skip the select
        x = jax.lax.cond(
            jnp.all(take), lambda: xn, lambda: jax.tree_util.tree_map(lambda new, old: jnp.where(take, new, old), xn, x)
        )
        ok = jnp.where(active, fine, ok)
        it = it + active.astype(it.dtype)
        return x, it, err, ok, ok & (err > tol) & (it < max_iter)

    ones = jnp.ones((n_s,), bool)
    init = (x0, jnp.zeros((n_s,), jnp.int32), jnp.full((n_s,), jnp.inf, rdtype), ones, ones)
    x, it, err, ok, _ = jax.lax.while_loop(lambda state: jnp.any(state[4]), body, init)
    return x, it, ok & (err <= tol)


def _current_injection(plan, parent, en, zr, zx, vsrc, P, Q, tol, max_iter, collapse2, vf=None, shunt=None):
    """Backward/forward sweep on complex voltages: ``V = V_source - path sums of z * conj(S / V)``."""
    if vf is not None:
        raise ValueError("the bus-major current-injection sweep has no Vf-mode SOP coupling; use 'power'")
    n, n_s = P.shape
    W0 = _pad(jnp.concatenate([jnp.broadcast_to(vsrc, (n, n_s)), jnp.zeros((n, n_s), P.dtype)], axis=1))

    def step(V):
        vr, vi = V
        J = _backward(plan, _currents(P, Q, vr, vi, en, shunt))
        jr, ji = J[:n, :n_s], J[:n, n_s:]
        W = _forward(plan, W0, jnp.concatenate([zr * jr - zx * ji, zr * ji + zx * jr], axis=1))
        return W[:n, :n_s], W[:n, n_s:]  # de-energized buses are sources: they keep W0

    def error(new, old):
        (vr, vi), (wr, wi) = new, old
        # not (a > b) is true for NaN too
        bad = ~(vr * vr + vi * vi > collapse2)
        return jnp.sqrt(jnp.max(jnp.where(bad, jnp.inf, (vr - wr) ** 2 + (vi - wi) ** 2), axis=0))

    V0 = (jnp.broadcast_to(vsrc, (n, n_s)), jnp.zeros((n, n_s), P.dtype))
    (vr, vi), it, converged = _iterate(step, V0, error, n_s, tol, max_iter)
    return (vr, vi), (jnp.sqrt(vr * vr + vi * vi), atan2(vi, vr)), it, converged, (P, Q)


def _power_summation(plan, parent, en, zr, zx, vsrc, P, Q, tol, max_iter, collapse2, vf=None, shunt=None):
    """DistFlow recursion on ``v = |V|^2`` with the branch losses of the previous iterate.

    From the flows ``(a, b)`` (receiving end) and ``v`` of the last iterate, the branch
    currents are ``l = (a^2 + b^2) / v``. Backward: the sending-end flows are the
    subtree sums of ``(p + r l, q + x l)`` (a bus's load plus the loss of the branch
    above it). Forward: ``v = v_parent - 2 (r P_send + x Q_send) + |z|^2 l``. Loads are
    constant power, so the voltage enters only through the losses and the fixed
    point contracts fast: the first sweep (``l = 0``) is LinDistFlow, and IEEE 33
    converges to 1e-8 in 6 sweeps against the current-injection sweep's 8. Taking
    the losses from the previous iterate keeps both sweeps plain row additions (the
    same loops as ``"current"``, the forward one on half the columns). The stopping
    rule is the same, on ``|V|``. Angles: ``V = V_parent - z conj(S_send / V_parent)``,
    one more forward sweep.

    Vf-mode SOPs (``vf``): a Vf terminal is the source of its island, and the
    power it sends (its row of the backward sums) sets what the VdcQ partner
    draws from its own feeder through the DC link (:func:`vdcq_power`); that
    extra load is part of the iterate and enters the next sweep, as in the
    per-sample kernel.

    Shunts (``shunt = (g, b)``, constant admittance) add ``g |V|^2`` and ``-b |V|^2``
    to the bus load with ``|V|`` of the previous iterate, like the losses.
    """
    n, n_s = P.shape
    br = en & (parent != jnp.arange(n))[:, None]  # buses with a branch above them
    r = jnp.where(br, zr, 0)
    x = jnp.where(br, zx, 0)
    zz = r * r + x * x
    vm_src = jnp.broadcast_to(vsrc, (n, n_s))
    v_src2 = vm_src * vm_src
    W0 = _pad(v_src2)
    collapse = jnp.sqrt(collapse2)

    def losses(vm, a, b):
        return jnp.where(br, (a * a + b * b) / (vm * vm), 0)

    def partner_load(ps, qs):
        """Net load the VdcQ partners add, from the power each Vf terminal sends into its island."""
        p_vf, q_vf = ps[vf.vf_bus], qs[vf.vf_bus]  # (sop, sample)
        col = lambda a: jnp.asarray(a, P.dtype)[:, None]  # noqa: E731
        p_partner = vdcq_power(p_vf, col(vf.loss_vf), jnp.sqrt(p_vf * p_vf + q_vf * q_vf), col(vf.loss_partner),
                               col(vf.q_partner))  # fmt: skip
        on = jnp.asarray(vf.active)[:, None]
        extra = lambda a: jnp.zeros_like(P).at[vf.partner_bus].add(jnp.where(on, -a, 0))  # noqa: E731
        return extra(p_partner), extra(jnp.broadcast_to(col(vf.q_partner), p_partner.shape))

    coupled = vf is not None and vf.vf_bus.shape[0] > 0
    zero = jnp.zeros((n, n_s), P.dtype)

    # the iterate is (|V|, a, b): |V| rather than v, so the stopping rule takes one
    # square root per bus instead of two (a fifth of an iteration's arithmetic)
    def step(y):  # y = (|V|, a, b), plus the partners' loads (pe, qe) with Vf SOPs
        vm, a, b = y[:3]
        pe, qe = y[3:] if coupled else (zero, zero)
        l = losses(vm, a, b)
        if shunt is not None:
            v2 = vm * vm
            pe, qe = pe + shunt[0] * v2, qe - shunt[1] * v2
        C = _backward(plan, _pad(jnp.concatenate([P + pe + r * l, Q + qe + x * l], axis=1)))[:n]
        ps, qs = C[:, :n_s], C[:, n_s:]
        v = _forward(plan, W0, 2 * (r * ps + x * qs) - zz * l)[:n]  # sources keep W0
        new = (jnp.sqrt(v), ps - r * l, qs - x * l)  # NaN where v < 0: collapsed
        return new + partner_load(ps, qs) if coupled else new

    def error(new, old):
        bad = ~(new[0] > collapse)  # collapsed or NaN
        return jnp.max(jnp.where(bad, jnp.inf, jnp.abs(new[0] - old[0])), axis=0)

    start = (vm_src, zero, zero) + ((zero, zero) if coupled else ())
    y, it, converged = _iterate(step, start, error, n_s, tol, max_iter)
    vm, a, b = y[:3]
    pe, qe = y[3:] if coupled else (zero, zero)

    l = losses(vm, a, b)
    ps, qs = a + r * l, b + x * l
    vm_par = jnp.take(vm, parent, axis=0)
    step_angle = jnp.where(br, atan2(r * qs - x * ps, vm_par * vm_par - r * ps - x * qs), 0)
    theta = _forward(plan, jnp.zeros((n + 1, n_s), vm.dtype), -step_angle)[:n]
    # a collapsed sample keeps its last healthy iterate, whose flows may overflow: no NaN angle
    theta = jnp.where(jnp.isfinite(theta), theta, 0)
    return (vm * jnp.cos(theta), vm * jnp.sin(theta)), (vm, theta), it, converged, (P + pe, Q + qe)


ITERATIONS = {"current": _current_injection, "power": _power_summation}


def _block(topo, grid, f_bus, p, q, tol, max_iter, iteration="power", vf=None) -> PowerFlowResult:
    """Solve one block; ``p``, ``q`` of shape (sample, bus)."""
    rdtype = jnp.result_type(p.dtype, jnp.float32)
    n_s, n = p.shape
    plan = _plan(topo)
    en = jnp.asarray(topo.energized)[:, None]
    zr = jnp.asarray(grid.r_up, rdtype)[:, None]
    zx = jnp.asarray(grid.x_up, rdtype)[:, None]
    vsrc = jnp.asarray(grid.v_source, rdtype)[jnp.asarray(topo.root)][:, None]
    P = jnp.where(en, p.T.astype(rdtype), 0)
    Q = jnp.where(en, q.T.astype(rdtype), 0)
    collapse2 = jnp.asarray(_COLLAPSE_PU**2, rdtype)
    shunt = None
    if grid.g_sh is not None:  # static: networks without shunts compile without these terms
        shunt = tuple(jnp.where(en, jnp.asarray(a, rdtype)[:, None], 0) for a in (grid.g_sh, grid.b_sh))
    (vr, vi), (vm, va), it, converged, (P, Q) = ITERATIONS[iteration](
        plan, jnp.asarray(topo.parent), en, zr, zx, vsrc, P, Q, tol, max_iter, collapse2, vf, shunt
    )

    # outputs of the final iterate, as in radial._outputs
    J = _backward(plan, _currents(P, Q, vr, vi, en, shunt))[:n]
    V = jnp.concatenate([vr, vi], axis=1)
    parent = jnp.asarray(topo.parent)
    child = jnp.asarray(topo.branch_child)
    Jb, Vb, Vpb = J[child], V[child], V[parent[child]]  # rows of each branch's downstream bus
    jr, ji = J[:, :n_s], J[:, n_s:]
    bjr, bji = Jb[:, :n_s], Jb[:, n_s:]
    bvr, bvi, bpr, bpi = Vb[:, :n_s], Vb[:, n_s:], Vpb[:, :n_s], Vpb[:, n_s:]
    sin_r, sin_i = bvr * bjr + bvi * bji, bvi * bjr - bvr * bji  # V conj(J): power into the subtree
    ss_r, ss_i = bpr * bjr + bpi * bji, bpi * bjr - bpr * bji  # V_parent conj(J): power sent
    act = jnp.asarray(topo.branch_active)[:, None]
    fwd = (jnp.asarray(f_bus) == parent[child])[:, None]
    p_from = jnp.where(act, jnp.where(fwd, ss_r, -sin_r), 0)
    q_from = jnp.where(act, jnp.where(fwd, ss_i, -sin_i), 0)
    i_mag = jnp.where(act, jnp.sqrt(bjr * bjr + bji * bji), 0)
    p_loss = jnp.where(act, ss_r - sin_r, 0)
    src = (jnp.asarray(topo.is_source) & jnp.asarray(topo.energized))[:, None]
    if grid.v_scale is not None:  # transformer ratios: back from the sources' base
        scale = jnp.asarray(grid.v_scale, rdtype)[:, None]
        vm, va = vm * scale, va + jnp.asarray(grid.va_shift, rdtype)[:, None]
        i_mag = i_mag / scale[child]
    return PowerFlowResult(
        vm_pu=jnp.where(en, vm, 0).T,
        va_rad=jnp.where(en, va, 0).T,
        p_from_pu=p_from.T,
        q_from_pu=q_from.T,
        i_pu=i_mag.T,
        p_loss_pu=p_loss.T,
        losses_pu=jnp.sum(p_loss, axis=0),
        p_source_pu=jnp.where(src, vr * jr + vi * ji, 0).T,
        q_source_pu=jnp.where(src, vi * jr - vr * ji, 0).T,
        converged=converged,
        iterations=it,
    )


def sweep_batch(
    topo: Topology,
    grid: Grid,
    f_bus: Int[Array, " branch"],
    p_load_pu: Float[Array, "sample bus"],
    q_load_pu: Float[Array, "sample bus"],
    *,
    tol: float = 1e-8,
    max_iter: int = 100,
    block: int | None = None,
    iteration: str = "power",
    vf: VfCoupling | None = None,
) -> PowerFlowResult:
    """Exact radial power flow of many samples, block by block.

    Args:
        topo: rooted forest (:func:`sopjax.topology.compile_topology`).
        grid: upstream impedances and source voltages (p.u.).
        f_bus: from-bus per branch, (branch,).
        p_load_pu, q_load_pu: net load, positive = consumption, (sample, bus).
        tol: stopping tolerance on the largest voltage update (p.u.).
        max_iter: sweep limit.
        block: samples per block; blocks run in sequence (``lax.map``) so the
            working set stays in cache. Default: about :func:`default_block`, the
            largest size in ``(default / 2, default]`` that divides the sample
            count. Otherwise the last block is padded with zero-load samples.
        iteration: ``"power"`` (the default: DistFlow recursion, fewer sweeps) or
            ``"current"`` (current-injection sweep, the per-sample kernel's iteration,
            same ``iterations`` as ``vmap(sweep_power_flow)``).
        vf: Vf-mode SOP coupling (``"power"`` only); its Vf terminals must be
            sources of ``topo``.

    Returns:
        :class:`~sopjax.kernels.radial.PowerFlowResult` with a leading sample axis.
    """
    if iteration not in ITERATIONS:
        raise ValueError(f"unknown iteration {iteration!r}; choose from {sorted(ITERATIONS)}")
    n_s, n = p_load_pu.shape
    block = divisor_block(n_s, default_block(n)) if block is None else int(block)
    if n_s <= block:
        return _block(topo, grid, f_bus, p_load_pu, q_load_pu, tol, max_iter, iteration, vf)
    n_blocks = -(-n_s // block)
    pad = n_blocks * block - n_s
    p = jnp.pad(p_load_pu, ((0, pad), (0, 0)))
    q = jnp.pad(q_load_pu, ((0, pad), (0, 0)))
    res = jax.lax.map(
        lambda pq: _block(topo, grid, f_bus, pq[0], pq[1], tol, max_iter, iteration, vf),
        (p.reshape(n_blocks, block, n), q.reshape(n_blocks, block, n)),
    )
    return jax.tree_util.tree_map(lambda a: a.reshape((n_blocks * block,) + a.shape[2:])[:n_s], res)
