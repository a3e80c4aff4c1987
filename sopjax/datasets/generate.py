"""One chunk of a labelled dataset: inputs drawn per sample, labels from the exact kernels.

:func:`generate_chunk` is a pure function of ``(network, spec, pool, chunk index)``:
sample ``i`` draws its split, configuration, load level, PV, SOP capacities and
set-points and its fault from ``numpy.random.default_rng([seed, i])`` and its per-bus
load noise from :class:`sopjax.sampling.UncertaintyModel` (counter-based: row ``i``
of the design does not depend on how it is cut), so a chunk can run anywhere, in any
order, and give the same numbers. Every chunk is computed at the full ``chunk_size``
(the last one padded) so that each worker compiles once.

Labels:

* exact power flow (:func:`sopjax.kernels.radial.sweep_power_flow`) at the sample's
  random SOP set-points: voltages, angles, branch flows, branch and total losses,
  convergence, energization and load recovery;
* optimal dispatch (:func:`sopjax.kernels.dispatch.dispatch_batched`) of unfaulted
  samples: optimal set-points, objective, line losses, voltages and the capacity
  duals (primal and dual labels, as PGLearn stores them);
* with ``spec.sop_mode_mix`` beyond ``pq``: each sample's SOP mode family is drawn last
  (``off``: SOPs off; ``vf``: a fault, one SOP forming the island in Vf mode, load pickup),
  and ``vf`` samples are labelled by the Monte Carlo engine's kernel
  (:mod:`sopjax.datasets.islands`).
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import xarray as xr

from sopjax.datasets.islands import fit_q_j, variant_labels
from sopjax.datasets.labels import dispatch_labels, power_flow_labels
from sopjax.datasets.layout import sample_vars
from sopjax.datasets.spec import SPLITS, VARIANTS, DatasetSpec
from sopjax.datasets.variants import vf_candidates
from sopjax.network import Network
from sopjax.sampling import UncertaintyModel
from sopjax.sampling.load import LoadNormal
from sopjax.strategies import OFF, PQ_I, VF_I, VF_J
from sopjax.topology import compile_topology

__all__ = ["draw_inputs", "generate_chunk", "sop_p_j"]


def sop_p_j(p_i, q_i, q_j, a_i, a_j):
    """Active power of VSC j from the DC balance ``p_i + p_j + a_i|s_i| + a_j|s_j| = 0`` (numpy)."""
    c = -p_i - a_i * np.hypot(p_i, q_i)
    return (c - a_j * np.sqrt(c * c + (1.0 - a_j * a_j) * q_j * q_j)) / (1.0 - a_j * a_j)


def _split_code(u: float, fractions) -> int:
    """Index of the share of ``fractions`` (summing to 1) that ``u`` in [0, 1) falls in."""
    return int(min(np.searchsorted(np.cumsum(fractions), u, side="right"), len(fractions) - 1))


_VF = VARIANTS.index("vf")


def _draw_family(net: Network, spec: DatasetSpec, pool: np.ndarray, rng, cfg: int, cands: dict) -> tuple:
    """The SOP mode family of one sample and, for ``vf``, ``(sop, a_is_i, branch, U_set, candidates, order)``.

    ``candidates`` (bus,) bool: the buses the pickup may connect; ``order``: the order it tries them.

    Drawn after every other draw of the sample, so a dataset whose mix is all ``pq`` draws
    nothing here and equals one made before the families existed. A ``vf`` draw on a
    configuration with no Vf candidate falls back to ``pq``.
    """
    fam = _split_code(rng.random(), spec.mode_weights)
    if fam != _VF:
        return fam, None
    if cfg not in cands:
        cands[cfg] = vf_candidates(net, pool[cfg])
    if not len(cands[cfg]):
        return VARIANTS.index("pq"), None
    k, a_is_i, branch = cands[cfg][rng.integers(len(cands[cfg]))]
    u_set = rng.uniform(*spec.vf_u_set_pu)
    pick = rng.random(net.n_bus) < rng.uniform(*spec.vf_pickup)
    return fam, (int(k), bool(a_is_i), int(branch), u_set, pick, rng.permutation(net.n_bus))


def _island_pickup(outage, pick, order, cap, p_load, q_load, p_inj, q_inj) -> np.ndarray:
    """Pickup of one island: candidates ``pick`` connected in ``order`` while the demand fits ``cap``.

    The island's demand is its picked-up load minus its PV (``p_inj``, ``q_inj`` per bus), without
    losses, as ``|P + jQ|`` (p.u.); a candidate that would push it above ``cap`` is shed. Buses
    outside the outage area keep pickup 1.
    """
    pickup = np.ones(outage.size)
    p, q = -p_inj[outage].sum(), -q_inj[outage].sum()
    for b in order:
        if not outage[b]:
            continue
        pickup[b] = 0.0
        if pick[b] and np.hypot(p + p_load[b], q + q_load[b]) <= cap:
            pickup[b], p, q = 1.0, p + p_load[b], q + q_load[b]
    return pickup


def _apply_families(
    net: Network, pool: np.ndarray, a: dict, sp: dict, fams: list, loads: tuple
) -> dict:
    """Set-points, modes, pickup and faults of the ``off`` and ``vf`` rows (in place on ``sp``; numpy).

    ``loads`` is ``(p_load, q_load, p_pv, q_pv)`` of the rows (p.u.).
    """
    n, ns, nb = len(fams), net.sop.count, net.n_bus
    code = np.asarray([f for f, _ in fams], np.int8)
    mode = np.where(code[:, None] == VARIANTS.index("off"), OFF, PQ_I) * np.ones((1, ns), np.int8)
    u_set, pickup = np.zeros((n, ns)), np.ones((n, nb))
    off = code == VARIANTS.index("off")
    for k in ("p_i", "q_i", "p_j", "q_j"):
        sp[k][off] = 0.0
    vf = np.flatnonzero(code == _VF)
    if vf.size:  # the other SOPs' VdcQ set-points must fit the capacity (the strategy is validated)
        a_i, a_j = (np.asarray(x, float) for x in (net.sop.loss_i, net.sop.loss_j))
        sp["q_j"][vf] = fit_q_j(sp["p_i"][vf], sp["q_i"][vf], sp["q_j"][vf], a["s_j"][vf], a_i, a_j)
        sp["p_j"][vf] = sop_p_j(sp["p_i"][vf], sp["q_i"][vf], sp["q_j"][vf], a_i, a_j)
    outage_cache: dict = {}
    for r in vf:
        k, a_is_i, branch, u, pick, order = fams[r][1]
        mode[r, k] = VF_I if a_is_i else VF_J
        u_set[r, k] = u
        # the Vf VSC follows its island and its partner's P the DC balance: only Q_b is a set-point
        sp["p_i"][r, k] = sp["p_j"][r, k] = 0.0
        sp["q_i" if a_is_i else "q_j"][r, k] = 0.0
        a["fault_branch"][r] = branch
        key = (int(a["config_id"][r]), branch)
        if key not in outage_cache:
            closed = pool[key[0]].copy()
            closed[branch] = False
            outage_cache[key] = ~np.asarray(compile_topology(net, closed).energized)
        p_load, q_load, p_pv, q_pv = (x[r] for x in loads)
        p_inj, q_inj = np.zeros(nb), np.zeros(nb)
        np.add.at(p_inj, np.asarray(net.pv.bus), p_pv)
        np.add.at(q_inj, np.asarray(net.pv.bus), q_pv)
        cap = min(a["s_i"][r, k], a["s_j"][r, k])
        pickup[r] = _island_pickup(outage_cache[key], pick, order, cap, p_load, q_load, p_inj, q_inj)
    return {"variant": code, "sop_mode": mode.astype(np.int8), "u_set_pu": u_set, "pickup": pickup}


def draw_inputs(
    net: Network, spec: DatasetSpec, pool: np.ndarray, start: int, stop: int
) -> dict[str, np.ndarray]:
    """The inputs of samples ``start .. stop-1`` (numpy, sample axis first); see the module docstring."""
    n_cfg, n_out = pool.shape[0], spec.held_out
    n_pv, n_sop = net.pv.count, net.sop.count
    kva = 1e-3 / float(net.base_mva)
    out: dict[str, Any] = {
        k: [] for k in ("split", "config_id", "fault_branch", "load_scale", "pv_frac", "s_i", "s_j", "u_set")
    }
    fams: list = []
    cands: dict = {}
    for i in range(start, stop):
        rng = np.random.default_rng([spec.seed, i])
        split = _split_code(rng.random(), spec.split_fractions)
        cfg = (
            rng.integers(n_cfg - n_out, n_cfg)
            if split == SPLITS.index("ood_topology")
            else rng.integers(0, n_cfg - n_out)
        )
        lo, hi = spec.ood_load_scale if split == SPLITS.index("ood_load") else spec.load_scale
        scale = rng.uniform(lo, hi)
        pv = rng.uniform(*spec.pv_output, n_pv)
        caps = rng.uniform(*spec.sop_capacity_kva, (2, n_sop)) * kva
        u_set = rng.uniform(-1.0, 1.0, (3, n_sop))
        closed = np.flatnonzero(pool[cfg])
        fault = int(rng.choice(closed)) if rng.random() < spec.fault_fraction else -1
        for k, v in zip(out, (split, cfg, fault, scale, pv, caps[0], caps[1], u_set)):
            out[k].append(v)
        if spec.variants:
            fams.append(_draw_family(net, spec, pool, rng, int(cfg), cands))
    a = {k: np.asarray(v) for k, v in out.items()}
    # per-bus load noise: counter-based rows of the sampling module's design
    model = UncertaintyModel(
        pv=None, load=LoadNormal(sigma_frac=spec.load_sigma_frac) if spec.load_sigma_frac else None
    )
    smp = model.sample(
        net, np.zeros(n_pv), key=jax.random.key(spec.seed), n=stop, start=start, stop=stop, dtype="float64"
    )
    p_load = np.asarray(smp.p_load_pu) * a["load_scale"][:, None]
    q_load = np.asarray(smp.q_load_pu) * a["load_scale"][:, None]
    pf = np.asarray(net.pv.pf, float)
    p_pv = a["pv_frac"] * np.asarray(net.pv.s_rated_pu, float) * pf
    q_pv = p_pv * np.sqrt(np.maximum(1 - pf**2, 0)) / pf
    s_i, s_j = a["s_i"], a["s_j"]
    f = spec.setpoint_frac
    p_i = f * np.minimum(s_i, s_j) * a["u_set"][:, 0]
    q_i = f * np.sqrt(s_i**2 - p_i**2) * a["u_set"][:, 1]
    q_j = f * s_j * a["u_set"][:, 2]
    p_j = sop_p_j(p_i, q_i, q_j, np.asarray(net.sop.loss_i, float), np.asarray(net.sop.loss_j, float))
    extra = {}
    if spec.variants:
        sp = {"p_i": p_i, "q_i": q_i, "p_j": p_j, "q_j": q_j}
        extra = _apply_families(net, pool, a, sp, fams, (p_load, q_load, p_pv, q_pv))
        p_load_picked, q_load_picked = p_load * extra["pickup"], q_load * extra["pickup"]
    else:
        p_load_picked, q_load_picked = p_load, q_load
    p_net, q_net = p_load_picked.copy(), q_load_picked.copy()
    for arr, inj, bus in (
        (p_net, p_pv, net.pv.bus),
        (q_net, q_pv, net.pv.bus),
        (p_net, p_i, net.sop.bus_i),
        (q_net, q_i, net.sop.bus_i),
        (p_net, p_j, net.sop.bus_j),
        (q_net, q_j, net.sop.bus_j),
    ):
        np.subtract.at(arr, (slice(None), np.asarray(bus)), inj)
    status = pool[a["config_id"]].copy()
    faulted = a["fault_branch"] >= 0
    status[np.flatnonzero(faulted), a["fault_branch"][faulted]] = False
    return {
        "split": a["split"].astype(np.int8),
        "config_id": a["config_id"].astype(np.int16),
        "fault_branch": a["fault_branch"].astype(np.int16),
        "load_scale": a["load_scale"],
        "p_load_pu": p_load,
        "q_load_pu": q_load,
        "p_pv_pu": p_pv,
        "s_rated_i_pu": s_i,
        "s_rated_j_pu": s_j,
        "sop_p_i_pu": p_i,
        "sop_q_i_pu": q_i,
        "sop_p_j_pu": p_j,
        "sop_q_j_pu": q_j,
        "p_net_pu": p_net,
        "q_net_pu": q_net,
        "branch_closed": status,
        **extra,
    }


def generate_chunk(net: Network, spec: DatasetSpec, pool: np.ndarray, chunk: int) -> xr.Dataset:
    """Samples and labels of ``chunk`` as an xarray Dataset on the global ``sample`` coordinate.

    Computed at ``spec.chunk_size`` rows (the last chunk padded by repeating its rows),
    returned trimmed. Deterministic in ``(spec.seed, chunk)``.
    """
    start, stop = spec.chunk_range(chunk)
    inputs = draw_inputs(net, spec, pool, start, stop)
    pad = spec.chunk_size - (stop - start)
    full = {k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) if pad else v for k, v in inputs.items()}
    labels = power_flow_labels(net, full["branch_closed"], full["p_net_pu"], full["q_net_pu"])
    labels.update(dispatch_labels(net, spec, pool, full))
    if spec.variants:
        labels.update(variant_labels(net, spec, full, labels))
    n = stop - start
    data = {**inputs, **{k: v[:n] for k, v in labels.items()}}
    layout = sample_vars(spec)
    return xr.Dataset(
        {k: (("sample", *dims), np.asarray(data[k])) for k, dims in layout.items()},
        coords={"sample": np.arange(start, stop)},
    )
