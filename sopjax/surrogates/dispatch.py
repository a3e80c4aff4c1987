"""Learned SOP dispatch (amortized optimization) with a repair step and an exact check.

A :class:`DispatchNet` maps loads, PV outputs and VSC capacities of one feeder and switch
configuration to SOP set-points ``(p_i, q_i, q_j)`` as fractions of the capacities.
:func:`repair` makes them satisfy the SOP constraints exactly: reactive limits, the
capacity disc of VSC i, VSC j's reactive range, and ``p_j`` from the DC balance
``p_i + p_j + A_i|s_i| + A_j|s_j| = 0`` with ``p_i`` scaled until ``|s_j| <= S_j``.
:func:`evaluate_setpoints` then runs one exact DistFlow at the repaired set-points
(:func:`sopjax.kernels.dispatch.problem.flow`, the interior point's own flow, unrolled so
it differentiates) and returns the objective (line + converter losses) and every
constraint row of the dispatch problem, so feasibility (voltage and rating limits
included) is checked, not assumed. All of it is JAX: ``jax.grad`` of the objective
w.r.t. the capacities flows through the model, the repair and the power flow.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from sopjax.datasets import DatasetError
from sopjax.kernels.dispatch import DispatchData, DispatchInputs, compile_dispatch
from sopjax.kernels.dispatch.flow import bus_voltage
from sopjax.kernels.dispatch.problem import constraints, consts, flow, params, problem
from sopjax.surrogates import checkpoint
from sopjax.surrogates.errors import SurrogateError
from sopjax.surrogates.train import TrainSettings, fit

__all__ = [
    "DispatchNet",
    "LearnedDispatch",
    "check_network",
    "dispatch_checked",
    "dispatch_inputs_of",
    "dispatch_metrics",
    "evaluate_setpoints",
    "load_dispatch",
    "repair",
    "save_dispatch",
    "train_dispatch",
]

_FEAS_TOL = 1e-6  # p.u. (p.u.^2 for voltage rows): Huber rounding of the DC row is below 5e-7


class DispatchNet(eqx.Module):
    """MLP: normalized (loads, PV, capacities) -> tanh fractions ``(p_i/S_i, q_i/S_i, q_j/S_j)`` per SOP."""

    mlp: eqx.nn.MLP
    n_bus: int = eqx.field(static=True)
    n_pv: int = eqx.field(static=True)
    n_sop: int = eqx.field(static=True)

    def __init__(self, n_bus: int, n_pv: int, n_sop: int, *, width: int = 128, depth: int = 3, key):
        self.mlp = eqx.nn.MLP(
            2 * n_bus + n_pv + 2 * n_sop,
            3 * n_sop,
            width,
            depth,
            activation=jax.nn.silu,
            final_activation=jnp.tanh,
            dtype=jnp.float32,
            key=key,
        )
        self.n_bus, self.n_pv, self.n_sop = n_bus, n_pv, n_sop

    def __call__(self, z):
        return self.mlp(z).reshape(3, self.n_sop)


class LearnedDispatch(eqx.Module):
    """A trained :class:`DispatchNet` with its input scales and the compiled dispatch data (a pytree).

    Attributes:
        model: the network.
        scales: ``(p, pv, s)`` input scales (p.u.): loads, PV outputs, capacities.
        data: :class:`~sopjax.kernels.dispatch.DispatchData` of the feeder and configuration.
    """

    model: DispatchNet
    scales: tuple = eqx.field(static=True)
    data: DispatchData

    def features(self, inp: DispatchInputs):
        """Normalized model input (batch, 2 bus + pv + 2 sop)."""
        p, pv, s = self.scales
        return jnp.concatenate(
            [
                inp.p_load_pu / p,
                inp.q_load_pu / p,
                inp.p_pv_pu / pv,
                inp.s_rated_i_pu / s,
                inp.s_rated_j_pu / s,
            ],
            axis=-1,
        )

    def check(self, inp: DispatchInputs) -> None:
        """Shape and finiteness of a batch at the Python boundary (names the field)."""
        m = self.model
        for name, n in (
            ("p_load_pu", m.n_bus),
            ("q_load_pu", m.n_bus),
            ("p_pv_pu", m.n_pv),
            ("s_rated_i_pu", m.n_sop),
            ("s_rated_j_pu", m.n_sop),
        ):
            a = np.asarray(getattr(inp, name))
            if a.ndim != 2 or a.shape[1] != n:
                raise SurrogateError(f"{name} must be (batch, {n}) for this learned dispatch, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise SurrogateError(
                    f"{name} is not finite (first at {tuple(np.argwhere(~np.isfinite(a))[0])})"
                )

    def __call__(self, inp: DispatchInputs, sweeps: int = 12):
        """Repaired set-points, objective and constraint rows of a batch (leading axis); pure JAX."""
        u = jax.vmap(self.model)(self.features(inp).astype(jnp.float32)).astype(inp.p_load_pu.dtype)
        s_i, s_j = params(inp).s_i, params(inp).s_j
        x = repair(self.data, inp, u[:, 0] * s_i, u[:, 1] * s_i, u[:, 2] * s_j)
        return evaluate_setpoints(self.data, inp, x, sweeps=sweeps)


def _balance(c, q, a):
    """The ``p`` with ``p + a sqrt(p^2 + q^2) = c`` (one VSC's share of the DC balance), closed form."""
    return (c - a * jnp.sqrt(c * c + (1.0 - a * a) * q * q)) / (1.0 - a * a)


def _norm(p, q):
    return jnp.sqrt(p * p + q * q + 1e-30)


def repair(data: DispatchData, inp: DispatchInputs, p_i, q_i, q_j, *, rounds: int = 3, margin: float = 1e-7):
    """Project raw set-points onto the SOP constraints; returns ``x = [p_i, q_i, p_j, q_j]`` (batch, 4 sop).

    Reactive set-points are clipped to their limits and ``(p_i, q_i)`` scaled into VSC i's
    capacity disc. Then, ``rounds`` times: ``p_j`` from the DC balance; where it exceeds VSC
    j's active range ``sqrt(S_j^2 - q_j^2)`` it is clipped and ``p_i`` solved back from the
    balance (closed form); where that pushes ``|s_i|`` past ``S_i``, ``q_i`` shrinks. Each
    round changes the converter losses by a factor ~``A`` (2 %) of the last change, so three
    rounds leave overflows at round-off; ``p_j`` is last set from the exact DC balance.
    What remains infeasible (a VSC too small to carry the other's losses) is reported by
    :func:`evaluate_setpoints`, never hidden. Differentiable almost everywhere.

    Args:
        data: compiled dispatch data; inp: the batch's inputs (capacities used).
        p_i, q_i, q_j: raw set-points (p.u.), (batch, sop).
        rounds: balance / clip rounds.
        margin: relative slack kept inside each capacity.
    """
    th = params(inp)
    S_i, S_j = th.s_i * (1 - margin), th.s_j * (1 - margin)
    qr_max, qr_min = jnp.asarray(data.q_rel_max), jnp.asarray(data.q_rel_min)
    q_i = jnp.clip(q_i, qr_min[:, 0] * th.s_i, qr_max[:, 0] * th.s_i)
    q_j = jnp.clip(jnp.clip(q_j, qr_min[:, 1] * th.s_j, qr_max[:, 1] * th.s_j), -S_j, S_j)
    scale = jnp.minimum(1.0, S_i / _norm(p_i, q_i))
    p_i, q_i = p_i * scale, q_i * scale
    a_i, a_j = jnp.asarray(data.loss_i), jnp.asarray(data.loss_j)
    pj_max = jnp.sqrt(jnp.maximum(S_j * S_j - q_j * q_j, 1e-30))  # 1e-30: a finite gradient at 0
    for _ in range(rounds):
        p_j = _balance(-(p_i + a_i * _norm(p_i, q_i)), q_j, a_j)
        p_jc = jnp.clip(p_j, -pj_max, pj_max)
        p_i = jnp.where(p_jc != p_j, _balance(-(p_jc + a_j * _norm(p_jc, q_j)), q_i, a_i), p_i)
        q_room = jnp.sqrt(jnp.maximum(S_i * S_i - p_i * p_i, 1e-30))
        q_i = jnp.clip(q_i, -q_room, q_room)
    p_j = _balance(-(p_i + a_i * _norm(p_i, q_i)), q_j, a_j)
    return jnp.concatenate([p_i, q_i, p_j, q_j], axis=-1)


def evaluate_setpoints(data: DispatchData, inp: DispatchInputs, x, *, sweeps: int = 12) -> dict:
    """Exact DistFlow at set-points ``x`` (batch, 4 sop): objective, constraint rows, feasibility.

    Returns:
        dict with ``x``, ``objective`` (batch,), ``line_loss`` (batch,), ``converter_loss``
        (batch, sop), ``vm_pu`` (batch, bus), ``rows`` (batch, m) (``>= 0`` when satisfied),
        ``violation`` (batch,) and ``feasible`` (batch,).
    """
    th = jax.tree_util.tree_map(lambda a: a.T, params(inp))
    dtype = th.p_load.dtype
    k, pb = consts(data, dtype), problem(data, th)
    xt = x.T
    fl = flow(k, pb, xt, jnp.zeros((data.n_kid, xt.shape[1]), dtype), sweeps)
    ns = data.n_sop
    line = jnp.sum(k.flow.r * fl.l, axis=0)
    obj = line - jnp.sum(xt[:ns] + xt[2 * ns : 3 * ns], axis=0)
    obj = obj + data.voltage_weight * jnp.sum((fl.v - 1.0) ** 2, axis=0)
    rows = constraints(data, th, xt, fl).T
    viol = jnp.maximum(-jnp.min(rows, axis=1), 0.0)
    return {
        "x": x,
        "objective": obj,
        "line_loss": line,
        "converter_loss": -(x[:, :ns] + x[:, 2 * ns : 3 * ns]),
        "vm_pu": jax.vmap(lambda v: bus_voltage(data, v), in_axes=1)(fl.v),
        "rows": rows,
        "violation": viol,
        "feasible": viol <= _FEAS_TOL,
    }


def dispatch_inputs_of(ds) -> DispatchInputs:
    """The :class:`DispatchInputs` of the samples of a loaded dataset selection (numpy, batch first)."""
    return DispatchInputs(
        *(
            np.asarray(ds[k].values, float)
            for k in ("p_load_pu", "q_load_pu", "p_pv_pu", "s_rated_i_pu", "s_rated_j_pu")
        )
    )


_DVARS = (
    "p_load_pu",
    "q_load_pu",
    "p_pv_pu",
    "s_rated_i_pu",
    "s_rated_j_pu",
    "opt_p_i_pu",
    "opt_q_i_pu",
    "opt_q_j_pu",
    "opt_objective_pu",
    "config_id",
    "dispatch_valid",
    "dispatch_converged",
)


def _selection(store, split, config_id):
    from sopjax.datasets import load_split, open_store

    ds = open_store(store)
    where = (
        (np.asarray(ds["config_id"].values) == config_id)
        & np.asarray(ds["dispatch_valid"].values, bool)
        & np.asarray(ds["dispatch_converged"].values, bool)
    )
    return ds, load_split(ds, split, variables=list(_DVARS), where=where)


def _arrays(sel):
    inp = dispatch_inputs_of(sel)
    s_i, s_j = inp.s_rated_i_pu, inp.s_rated_j_pu
    tgt = np.stack(
        [sel["opt_p_i_pu"].values / s_i, sel["opt_q_i_pu"].values / s_i, sel["opt_q_j_pu"].values / s_j],
        axis=1,
    )
    return inp, np.clip(tgt, -1.0, 1.0)


def _scales(d: dict) -> tuple:
    return (float(d["p"]), float(d["pv"]), float(d["s"]))


def _skeleton(kind, c):
    return DispatchNet(
        c["n_bus"], c["n_pv"], c["n_sop"], width=c["width"], depth=c["depth"], key=jax.random.key(0)
    )


def _network(ds):
    from sopjax.datasets import network_from_attrs

    return network_from_attrs(ds)


def train_dispatch(
    store,
    model_cfg: dict,
    settings: TrainSettings,
    out,
    *,
    config_id: int = 0,
    net=None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Train a :class:`DispatchNet` on the interior-point labels of configuration ``config_id``.

    The loss is the mean square error of the capacity fractions against the interior
    point's optimum. Evaluation (test split): feasibility after repair and the optimality
    gap against the interior point's objective, from :func:`evaluate_setpoints`.
    """
    ds, tr = _selection(store, "train", config_id)
    _, va = _selection(store, "val", config_id)
    inp_tr, tgt_tr = _arrays(tr)
    inp_va, tgt_va = _arrays(va)
    scales = {
        "p": float(np.sqrt(np.mean(inp_tr.p_load_pu**2))),
        "pv": float(max(np.sqrt(np.mean(inp_tr.p_pv_pu**2)), 1e-9)) if inp_tr.p_pv_pu.size else 1.0,
        "s": float(np.sqrt(np.mean(inp_tr.s_rated_i_pu**2))),
    }
    c = {
        "n_bus": inp_tr.p_load_pu.shape[1],
        "n_pv": inp_tr.p_pv_pu.shape[1],
        "n_sop": inp_tr.s_rated_i_pu.shape[1],
        "width": model_cfg["width"],
        "depth": model_cfg["depth"],
        "config_id": config_id,
    }
    model = DispatchNet(
        c["n_bus"],
        c["n_pv"],
        c["n_sop"],
        width=c["width"],
        depth=c["depth"],
        key=jax.random.key(settings.seed),
    )
    net = _network(ds) if net is None else net
    data = compile_dispatch(net, np.asarray(ds["config_closed"].values[config_id], bool))
    ld = LearnedDispatch(model, _scales(scales), data)

    def loss(m, b):
        u = jax.vmap(m)(b["z"])
        return jnp.mean((u - b["t"]) ** 2)

    def arrays(inp, tgt):
        z = ld.features(jax.tree_util.tree_map(jnp.asarray, inp))
        return {"z": np.asarray(z, np.float32), "t": tgt.astype(np.float32)}

    model, hist = fit(
        model, loss, arrays(inp_tr, tgt_tr), arrays(inp_va, tgt_va), settings, progress=progress, log=log
    )
    hist["train_samples"] = int(tgt_tr.shape[0])
    save_dispatch(out, model, c, scales, net, ds["config_closed"].values[config_id], history=hist,
                  dataset=str(store))
    ld = LearnedDispatch(model, _scales(scales), data)
    metrics = {}
    for split in ("test", "ood_load"):
        try:
            _, te = _selection(store, split, config_id)
        except DatasetError:
            continue
        metrics[split] = dispatch_metrics(
            ld, dispatch_inputs_of(te), np.asarray(te["opt_objective_pu"].values)
        )
    return {"history": hist, "metrics": metrics}


def dispatch_metrics(ld: LearnedDispatch, inp: DispatchInputs, ipm_objective: np.ndarray) -> dict:
    """Feasibility after repair and optimality gap ``(F_learned - F_ipm) / F_ipm`` on a batch."""
    ld.check(inp)
    r = eqx.filter_jit(lambda ld, i: ld(i))(ld, jax.tree_util.tree_map(jnp.asarray, inp))
    feas = np.asarray(r["feasible"])
    gap = (np.asarray(r["objective"]) - ipm_objective) / ipm_objective
    return {
        "samples": int(feas.size),
        "feasible_share": float(feas.mean()),
        "gap_mean": float(gap.mean()),
        "gap_median": float(np.median(gap)),
        "gap_max": float(gap.max()),
        "gap_min": float(gap.min()),
        "max_violation_pu": float(np.max(np.asarray(r["violation"]))),
    }


def dispatch_checked(ld: LearnedDispatch, inp: DispatchInputs, **ipm_kw) -> dict:
    """The learned dispatch of a batch with its exact check and a fallback: every returned point is checked.

    Samples whose repaired set-points violate a row of the dispatch problem (e.g. a voltage
    limit) are re-solved by the interior point (:func:`~sopjax.kernels.dispatch.dispatch_batched`);
    ``fallback`` marks them and ``feasible`` is what the interior point reports for them.

    Returns:
        :func:`evaluate_setpoints`'s dict (numpy) plus ``fallback`` (batch,).
    """
    from sopjax.kernels.dispatch import dispatch_batched

    ld.check(inp)
    r = {k: np.array(v) for k, v in eqx.filter_jit(lambda m, i: m(i))(ld, inp).items()}
    bad = np.flatnonzero(~r["feasible"])
    r["fallback"] = ~r["feasible"]
    if bad.size:
        sub = DispatchInputs(*(jnp.asarray(np.asarray(a)[bad]) for a in inp))
        ref = dispatch_batched(ld.data, sub, **ipm_kw)
        r["x"][bad] = np.concatenate(
            [np.asarray(ref.p_i), np.asarray(ref.q_i), np.asarray(ref.p_j), np.asarray(ref.q_j)], axis=-1
        )
        r["objective"][bad] = np.asarray(ref.objective)
        r["line_loss"][bad] = np.asarray(ref.line_loss)
        r["feasible"][bad] = np.asarray(ref.converged)
    return r


def save_dispatch(path, model: DispatchNet, config: dict, scales: dict, net, closed, **extra) -> None:
    """Write a dispatch checkpoint: weights, sizes, input scales, the feeder's case and device buses, switches.

    Args:
        path: checkpoint path; model: the network; config: ``n_bus, n_pv, n_sop, width, depth``
        (and ``config_id``); scales: ``{"p", "pv", "s"}`` input scales (p.u.); net: the feeder;
        closed: its switch configuration (branch,); extra: more header entries (history, dataset).
    """
    checkpoint.save(
        path,
        "dispatch",
        model,
        config,
        {"scales": scales, "closed": np.asarray(closed, bool).tolist(), **_placement(net), **extra},
    )


def _placement(net) -> dict:
    """What a checkpoint records of its feeder: case name and device buses (the case's bus ids)."""
    ids = np.asarray(net.bus_ids)
    return {
        "case": net.name,
        "sop_buses": [[int(ids[a]), int(ids[b])] for a, b in zip(np.asarray(net.sop.bus_i), np.asarray(net.sop.bus_j))],
        "pv_buses": [int(ids[b]) for b in np.asarray(net.pv.bus)],
    }


def check_network(head: dict, net, path, closed=None) -> None:
    """Refuse a network other than the checkpoint's: sizes, case, SOP and PV buses, switch configuration.

    Args:
        head: the checkpoint header; net: the network; path: the checkpoint (for the message).
        closed: the switch configuration the dispatch will run in (branch,) (None: not checked).

    Raises:
        SurrogateError: naming what differs (the first SOP, PV unit or branch).
    """
    c = head["config"]
    if (net.n_bus, net.pv.count, net.sop.count) != (c["n_bus"], c["n_pv"], c["n_sop"]):
        raise SurrogateError(
            f"checkpoint {path} was trained for {c['n_bus']} buses, {c['n_pv']} PV units and "
            f"{c['n_sop']} SOPs; the network has {net.n_bus}, {net.pv.count} and {net.sop.count}"
        )
    mine = _placement(net)
    if "case" in head and head["case"] != mine["case"]:
        raise SurrogateError(f"checkpoint {path} was trained on case {head['case']!r}, the network is {net.name!r}")
    for key, what in (("sop_buses", "SOP"), ("pv_buses", "PV unit")):
        for k, (a, b) in enumerate(zip(head.get(key, mine[key]), mine[key])):
            if a != b:
                raise SurrogateError(
                    f"checkpoint {path}: {what} {k + 1} is at bus {a} in training, at bus {b} in this network"
                )
    if closed is not None and "closed" in head:
        diff = np.flatnonzero(np.asarray(head["closed"], bool) != np.asarray(closed, bool))
        if diff.size:
            k = int(diff[0])
            state = "closed" if head["closed"][k] else "open"
            raise SurrogateError(
                f"checkpoint {path} was trained with branch {net.branch_numbers[k]} {state}; this switch "
                f"configuration has it {'open' if state == 'closed' else 'closed'} (a learned dispatch "
                "holds for one configuration)"
            )


def load_dispatch(path, net, closed=None, *, data: DispatchData | None = None) -> LearnedDispatch:
    """A :class:`LearnedDispatch` from a checkpoint, compiled for ``net`` (with its SOPs and PV).

    Args:
        path: the checkpoint; net: the network (checked by :func:`check_network`).
        closed: the switch configuration (default: the checkpoint's).
        data: compiled dispatch data to run with (e.g. other voltage limits); it must be of
            ``net`` in ``closed`` (default: compiled here with the network's limits).
    """
    model, head = checkpoint.load(path, _skeleton, kind="dispatch")
    closed = np.asarray(head["closed"], bool) if closed is None else closed
    check_network(head, net, path, closed)
    return LearnedDispatch(model, _scales(head["scales"]), compile_dispatch(net, closed) if data is None else data)
