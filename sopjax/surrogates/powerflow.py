"""The power-flow surrogate: loss (data + optional DistFlow residuals), prediction of the state.

A :class:`PowerFlowSurrogate` bundles the equinox model with its :class:`Normalizer`;
``predict`` returns the state in p.u. (voltage magnitudes and angles, branch flows in the
case's orientation), zero at de-energized buses and open branches, like the exact kernel.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from sopjax.surrogates.errors import SurrogateError
from sopjax.surrogates.features import FeatureSet, Normalizer
from sopjax.surrogates.physics import distflow_residuals

__all__ = ["PowerFlowSurrogate", "batch_arrays", "make_loss", "predict_kernel", "state_from_outputs"]


@dataclasses.dataclass(frozen=True)
class PowerFlowSurrogate:
    """A trained power-flow model and what it needs to run.

    Attributes:
        model: :class:`~sopjax.surrogates.models.MLP` or :class:`~sopjax.surrogates.models.GNN`.
        norm: the input / output scales of its training set.
        kind: ``"mlp"`` or ``"gnn"``.
        config: the model's hyper-parameters (``width``, ``depth``, ``rounds``, ``seed``, sizes).
    """

    model: eqx.Module
    norm: Normalizer
    kind: str
    config: dict

    def predict(self, fs: FeatureSet, *, batch_size: int = 1024) -> dict[str, np.ndarray]:
        """State of every sample of ``fs``: ``vm, va, p_from, q_from`` (p.u., numpy)."""
        if self.kind == "mlp" and (fs.n_bus, fs.n_branch) != (self.model.n_bus, self.model.n_branch):
            raise SurrogateError(
                f"this MLP was trained on a feeder with {self.model.n_bus} buses and {self.model.n_branch} "
                f"branches; these samples have {fs.n_bus} buses and {fs.n_branch} branches "
                "(an MLP is tied to one feeder; use the GNN across feeders)"
            )
        arrays = batch_arrays(fs, self.norm, labels=False)
        run = predict_kernel(self.kind)
        out = {k: [] for k in ("vm", "va", "p_from", "q_from")}
        n = fs.n_samples
        for a in range(0, n, batch_size):
            m = min(batch_size, n - a)
            idx = np.concatenate([np.arange(a, a + m), np.full(min(batch_size, n) - m, a)])
            res = run(
                self.model,
                self.norm,
                {k: jnp.asarray(v[idx]) for k, v in arrays.items()},
                jnp.asarray(fs.f_bus),
                jnp.asarray(fs.t_bus),
            )
            for k in out:
                out[k].append(np.asarray(res[k])[:m])
        return {k: np.concatenate(v) for k, v in out.items()}


def batch_arrays(fs: FeatureSet, norm: Normalizer, *, labels: bool = True) -> dict[str, np.ndarray]:
    """Per-sample arrays a batch carries (model inputs, prior, masks, net loads, targets)."""
    node, edge = fs.model_inputs(norm)
    nm, em = fs.masks()
    f32 = np.float32  # the models compute in float32 (2x faster on CPU); the prior stays float64
    d = {
        "node": node.astype(f32),
        "edge": edge.astype(f32),
        "node_mask": nm,
        "edge_mask": em,
        "v_lin": fs.v_lin,
        "th_lin": fs.th_lin,
        "p_lin": fs.p_lin,
        "q_lin": fs.q_lin,
        "p_net": fs.p_net,
        "q_net": fs.q_net,
    }
    if labels:
        d["node_t"], d["edge_t"] = (a.astype(f32) for a in fs.targets(norm))
    return d


def state_from_outputs(norm: Normalizer, b: dict, out_n, out_e) -> dict:
    """De-normalize model outputs into ``vm, va, p_from, q_from`` (p.u.), masked like the exact kernel."""
    energized = b["node"][..., 3]
    vm = jnp.where(energized > 0, b["v_lin"] + norm.out_v * out_n[..., 0] * b["node_mask"], 0.0)
    slack = b["node"][..., 2] > 0
    vm = jnp.where(slack & (energized > 0), b["v_lin"], vm)
    va = (b["th_lin"] + norm.out_a * out_n[..., 1]) * b["node_mask"]
    p = (b["p_lin"] + norm.out_p * out_e[..., 0]) * b["edge_mask"]
    q = (b["q_lin"] + norm.out_p * out_e[..., 1]) * b["edge_mask"]
    return {"vm": vm, "va": va, "p_from": p, "q_from": q}


def _apply(model, b, f_bus, t_bus):
    return jax.vmap(lambda n, e: model(n, e, f_bus, t_bus))(b["node"], b["edge"])


@functools.lru_cache(maxsize=4)
def predict_kernel(kind: str):
    """The jitted ``f(model, norm, batch, f_bus, t_bus) -> state`` of :meth:`PowerFlowSurrogate.predict`."""

    @eqx.filter_jit
    def run(model, norm, b, f_bus, t_bus):
        out_n, out_e = _apply(model, b, f_bus, t_bus)
        return state_from_outputs(norm, b, out_n, out_e)

    return run


def make_loss(fs: FeatureSet, norm: Normalizer, physics_weight: float = 0.0):
    """``loss(model, batch)``: masked MSE of the normalized targets (+ weighted DistFlow residuals).

    The residual term is the mean square of the active / reactive balance residuals over
    ``out_p`` and of the ``|V|^2`` residuals over ``2 out_v``, so it is on the data term's scale.
    """
    f_bus, t_bus = jnp.asarray(fs.f_bus), jnp.asarray(fs.t_bus)
    r, x = jnp.asarray(fs.r), jnp.asarray(fs.x)

    def loss(model, b):
        out_n, out_e = _apply(model, b, f_bus, t_bus)
        nm, em = b["node_mask"][..., None], b["edge_mask"][..., None]
        data = jnp.sum(nm * (out_n - b["node_t"]) ** 2) / jnp.maximum(jnp.sum(nm) * 2, 1) + jnp.sum(
            em * (out_e - b["edge_t"]) ** 2
        ) / jnp.maximum(jnp.sum(em) * 2, 1)
        if physics_weight == 0:
            return data
        st = state_from_outputs(norm, b, out_n, out_e)
        res = jax.vmap(
            lambda vm, p, q, pn, qn, m_n, m_e: distflow_residuals(
                vm, p, q, pn, qn, f_bus=f_bus, t_bus=t_bus, r=r, x=x, node_mask=m_n, edge_mask=m_e
            )
        )(st["vm"], st["p_from"], st["q_from"], b["p_net"], b["q_net"], b["node_mask"], b["edge_mask"])
        phys = (
            jnp.mean((res.p_balance / norm.out_p) ** 2)
            + jnp.mean((res.q_balance / norm.out_p) ** 2)
            + jnp.mean((res.voltage / (2 * norm.out_v)) ** 2)
        )
        return data + physics_weight * phys

    return loss
