"""SOP mode families of a dataset: SOPs off, and Vf-mode SOP islands labelled by the Monte Carlo engine's kernel.

A ``vf`` sample (:data:`~sopjax.datasets.spec.VARIANTS`) opens one branch on the path from
the substation to an SOP terminal ``a`` (:func:`~sopjax.datasets.variants.vf_candidates`),
puts that SOP in Vf mode (``a`` forms the island's voltage ``U_set``, its partner ``b`` in
VdcQ mode draws the island's power plus both converter losses from its own feeder), keeps the
other SOPs in PQ mode at the sample's set-points and picks up each outage-area bus with the
sample's pickup probability (1 = picked up, 0 = shed). The sample is compiled into a
:class:`~sopjax.strategies.Strategy` with the sample's VSC capacities
(:func:`~sopjax.strategies.compile_strategies` validates it) and scored by the Monte Carlo
engine's exact kernel: :func:`~sopjax.kernels.scoring.net_load`, the backward/forward sweep with
the Vf coupling, :func:`~sopjax.kernels.scoring.score_flow` (the composition of
:func:`~sopjax.kernels.scoring.score_sample`). A Vf island whose converter would exceed its
capacity is shed (``island_overload = "shed"``): its buses count as de-energized.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from sopjax.datasets.spec import VARIANTS, DatasetSpec
from sopjax.kernels.radial import sweep_power_flow
from sopjax.kernels.scoring import ScoringOptions, net_load, score_flow, sop_powers
from sopjax.network import Network
from sopjax.strategies import PQ_I, VF_I, VF_J, Strategy, compile_strategies, scoring_context

__all__ = ["fit_q_j", "sample_network", "sample_strategy", "variant_labels", "vf_kernel", "vf_labels"]


def fit_q_j(p_i, q_i, q_j, s_j, a_i, a_j, iters: int = 60) -> np.ndarray:
    """``q_j`` scaled toward 0 (bisection) until VSC j fits its capacity at the DC balance (numpy).

    ``|p_j|`` grows with ``|q_j|`` (converter loss), so the largest fitting fraction of the drawn
    ``q_j`` is found by bisection; a drawn value that fits is returned unchanged.
    """
    from sopjax.datasets.generate import sop_p_j

    def fits(t):
        qj = t * q_j
        return np.hypot(sop_p_j(p_i, q_i, qj, a_i, a_j), qj) <= s_j

    lo, hi = np.zeros_like(q_j), np.ones_like(q_j)
    ok = fits(hi)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        good = fits(mid)
        lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
    return np.where(ok, q_j, lo * q_j)


def sample_network(net: Network, closed: np.ndarray, s_i: np.ndarray, s_j: np.ndarray) -> Network:
    """``net`` with the sample's switch states as its own and its VSC capacities (reactive limits = capacity)."""
    sop = dataclasses.replace(
        net.sop, s_rated_i_pu=s_i, s_rated_j_pu=s_j, q_max_i_pu=s_i, q_max_j_pu=s_j, q_min_i_pu=-s_i, q_min_j_pu=-s_j
    )
    return net.replace(in_service=np.asarray(closed, bool), sop=sop)


def sample_strategy(net: Network, inputs: dict, row: int) -> Strategy:
    """Row ``row`` of the drawn inputs of a ``vf`` sample as a strategy of :func:`sample_network`."""
    return Strategy.from_arrays(
        net,
        f"sample {row}",
        status=inputs["branch_closed"][row],
        sop_mode=inputs["sop_mode"][row],
        p_set_pu=np.where(inputs["sop_mode"][row] == PQ_I, inputs["sop_p_i_pu"][row], 0.0),
        q_i_pu=inputs["sop_q_i_pu"][row],
        q_j_pu=inputs["sop_q_j_pu"][row],
        u_set_pu=np.where(np.isin(inputs["sop_mode"][row], (VF_I, VF_J)), inputs["u_set_pu"][row], 1.0),
        pickup=inputs["pickup"][row],
    )


@functools.lru_cache(maxsize=4)
def vf_kernel(tol: float, max_iter: int):
    """Jitted ``f(ctx, st, p_load, q_load, p_pv)`` over a leading sample axis of every argument.

    Per sample: :func:`~sopjax.kernels.scoring.score_sample`'s composition (net load, exact sweep
    with the Vf coupling, scoring), returning the flow, the score and the SOP terminal powers.
    """
    options = ScoringOptions(tol=tol, max_iter=max_iter)

    def one(ctx, st, p, q, pv):
        p_net, q_net = net_load(ctx, st, p, q, pv)
        res = sweep_power_flow(st.topo, st.grid, ctx.f_bus, p_net, q_net, st.vf, tol=tol, max_iter=max_iter)
        return res, score_flow(ctx, st, p, res, options), sop_powers(st, res, p.shape[0], p.dtype), p_net, q_net

    return jax.jit(jax.vmap(one))


def vf_labels(net: Network, spec: DatasetSpec, inputs: dict, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Exact labels of the ``vf`` rows of a chunk's inputs (numpy, one row per entry of ``rows``).

    Each row is compiled as a strategy on :func:`sample_network` with its fault, validated,
    then all rows (padded to ``spec.chunk_size`` with the first, one compiled program) go
    through :func:`vf_kernel`. De-energized buses (outside every source's tree, or in a shed
    island) have voltage and angle 0, their branches zero flow, as in the other samples.

    Returns:
        the labels of :data:`~sopjax.datasets.layout.SAMPLE_VARS` and
        :data:`~sopjax.datasets.layout.VARIANT_VARS` that the kernel gives, plus the
        ``p_net_pu``, ``q_net_pu`` it solved (the picked-up net load).
    """
    ctxs, arrs = [], []
    for r in rows:
        cl = inputs["branch_closed"][r].copy()
        fault = int(inputs["fault_branch"][r])
        cl[fault] = True  # the configuration before the fault
        net_s = sample_network(net, cl, inputs["s_rated_i_pu"][r], inputs["s_rated_j_pu"][r])
        fault_open = [int(net.branch_numbers[fault])]
        batch = compile_strategies(net_s, [sample_strategy(net_s, inputs, r)], fault_open=fault_open)
        arrs.append(jax.tree_util.tree_map(lambda a: a[0], batch.arrays))
        ctxs.append(scoring_context(net_s, fault_open=fault_open, v_min_pu=spec.vf_v_limits_pu[0],
                                    v_max_pu=spec.vf_v_limits_pu[1]))  # fmt: skip
    idx = np.concatenate([np.arange(rows.size), np.zeros(spec.chunk_size - rows.size, int)])
    stack = lambda xs: jax.tree_util.tree_map(lambda *a: np.stack([a[i] for i in idx]), *xs)
    args = [inputs[k][rows][idx] for k in ("p_load_pu", "q_load_pu", "p_pv_pu")]
    out = vf_kernel(1e-10, 100)(stack(ctxs), stack(arrs), *args)
    res, sc, (p_a, q_a, p_b, q_b), p_net, q_net = jax.tree_util.tree_map(lambda a: np.asarray(a)[: rows.size], out)
    a_i = np.stack([np.asarray(a.sop_a_is_i) for a in arrs]).reshape(rows.size, -1)
    on, br = sc.energized, sc.branch_on
    p_load = np.maximum(p_net, 0.0)
    return {
        "vm_pu": sc.vm_pu,
        "va_rad": np.where(on, res.va_rad, 0.0),
        "p_from_pu": np.where(br, res.p_from_pu, 0.0),
        "q_from_pu": np.where(br, res.q_from_pu, 0.0),
        "p_loss_pu": np.where(br, res.p_loss_pu, 0.0),
        "losses_pu": sc.line_loss_pu,
        "converged": res.converged,
        "iterations": res.iterations.astype(np.int16),
        "energized": on,
        "recovery": np.sum(np.where(on, p_load, 0), axis=1) / np.maximum(np.sum(p_load, axis=1), 1e-12),
        "outage": np.stack([np.asarray(c.outage) for c in ctxs]),
        "recovery_ratio": sc.recovery_ratio,
        "vsc_p_i_pu": np.where(a_i, p_a, p_b),
        "vsc_q_i_pu": np.where(a_i, q_a, q_b),
        "vsc_p_j_pu": np.where(a_i, p_b, p_a),
        "vsc_q_j_pu": np.where(a_i, q_b, q_a),
        "sop_loading_i": sc.sop_loading[..., 0],
        "sop_loading_j": sc.sop_loading[..., 1],
        "island_lost": sc.island_lost,
        "p_net_pu": p_net,
        "q_net_pu": q_net,
    }


def variant_labels(net: Network, spec: DatasetSpec, inputs: dict, labels: dict) -> dict[str, np.ndarray]:
    """The :data:`~sopjax.datasets.layout.VARIANT_VARS` labels of a chunk; ``vf`` rows from :func:`vf_labels`.

    ``pq`` and ``off`` rows: the outage area is what the power flow left de-energized, nothing of
    it is restored (``recovery_ratio`` 0, or 1 with no outage load, the kernel's convention), the
    VSCs inject their set-points. ``vf`` rows: every power-flow label and the net load are
    replaced by the kernel's.

    Args:
        net, spec: the network and spec.
        inputs: the chunk's drawn inputs (:func:`~sopjax.datasets.generate.draw_inputs`).
        labels: the chunk's power-flow labels (:func:`~sopjax.datasets.labels.power_flow_labels`).
    """
    outage = ~labels["energized"]
    lost = np.sum(np.where(outage, inputs["p_load_pu"], 0.0), axis=1)
    p = {k: inputs[f"sop_{k}_pu"] for k in ("p_i", "q_i", "p_j", "q_j")}
    with np.errstate(divide="ignore", invalid="ignore"):
        load_i = np.hypot(p["p_i"], p["q_i"]) / inputs["s_rated_i_pu"]
        load_j = np.hypot(p["p_j"], p["q_j"]) / inputs["s_rated_j_pu"]
    out = {
        "outage": outage,
        "recovery_ratio": np.where(lost > 0, 0.0, 1.0),
        **{f"vsc_{k}_pu": v.copy() for k, v in p.items()},
        "sop_loading_i": load_i,
        "sop_loading_j": load_j,
        "island_lost": np.zeros(outage.shape[0], bool),
        "p_net_pu": inputs["p_net_pu"].copy(),
        "q_net_pu": inputs["q_net_pu"].copy(),
    }
    rows = np.flatnonzero(inputs["variant"] == VARIANTS.index("vf"))
    if rows.size:
        for k, v in vf_labels(net, spec, inputs, rows).items():
            if k not in out:
                labels[k] = np.array(labels[k])  # writable (a kernel's output may be a read-only view)
            (out if k in out else labels)[k][rows] = v
    return out
