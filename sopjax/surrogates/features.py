"""Graph features of a dataset for the power-flow surrogates, and their normalization.

A sample is the feeder graph (every branch an edge, masked by ``closed``) with

* node inputs (bus, 6): net load ``p, q`` / ``p_scale``, slack flag, energized flag,
  the LinDistFlow voltage ``(v_lin - 1) / v_scale`` and angle ``th_lin / a_scale``;
* edge inputs (branch, 5): ``r, x`` / ``z_scale``, closed flag, LinDistFlow flows ``P, Q`` / ``p_scale``;
* targets: node (bus, 2) ``(vm - v_lin, va - th_lin)`` and edge (branch, 2) ``(p_from - P_lin,
  q_from - Q_lin)``, each divided by its output scale, so a model learns the correction of
  LinDistFlow (a physics prior that any topology has; ``prior = false`` turns it off).

The LinDistFlow prior comes from :func:`sopjax.kernels.radial.lindistflow` on each sample's
own topology. Masks: ``node_mask`` energized non-slack buses, ``edge_mask`` energized closed branches.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import xarray as xr

from sopjax.datasets import DatasetError, dataset_network, sample_topologies
from sopjax.kernels.radial import lindistflow
from sopjax.network import Network
from sopjax.surrogates.errors import SurrogateError

__all__ = [
    "EDGE_IN",
    "NODE_IN",
    "FeatureSet",
    "Normalizer",
    "feature_set",
    "fit_normalizer",
    "lindistflow_kernel",
    "refuse_shunts",
]

NODE_IN, EDGE_IN, NODE_OUT, EDGE_OUT = 6, 5, 2, 2


@dataclasses.dataclass(frozen=True)
class Normalizer:
    """Scalar scales of inputs and outputs (fit on the training split; stored with a checkpoint)."""

    p_scale: float
    z_scale: float
    v_scale: float
    a_scale: float
    out_v: float
    out_a: float
    out_p: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """Raw arrays of a set of samples (p.u., numpy), sample axis first; static graph arrays without it."""

    p_net: np.ndarray
    q_net: np.ndarray
    closed: np.ndarray
    energized: np.ndarray
    v_lin: np.ndarray
    th_lin: np.ndarray
    p_lin: np.ndarray
    q_lin: np.ndarray
    f_bus: np.ndarray
    t_bus: np.ndarray
    r: np.ndarray
    x: np.ndarray
    is_slack: np.ndarray
    base_mva: float
    vm: np.ndarray | None = None
    va: np.ndarray | None = None
    p_from: np.ndarray | None = None
    q_from: np.ndarray | None = None
    losses: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        return int(self.p_net.shape[0])

    @property
    def n_bus(self) -> int:
        return int(self.p_net.shape[1])

    @property
    def n_branch(self) -> int:
        return int(self.f_bus.shape[0])

    def take(self, idx) -> FeatureSet:
        """The samples ``idx``."""
        per = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for k in (
            "p_net",
            "q_net",
            "closed",
            "energized",
            "v_lin",
            "th_lin",
            "p_lin",
            "q_lin",
            "vm",
            "va",
            "p_from",
            "q_from",
            "losses",
        ):
            if per[k] is not None:
                per[k] = per[k][idx]
        return FeatureSet(**per)

    def masks(self) -> tuple[np.ndarray, np.ndarray]:
        """(node_mask (sample, bus), edge_mask (sample, branch)) as float."""
        node = self.energized & ~self.is_slack[None]
        edge = self.closed & self.energized[:, self.f_bus] & self.energized[:, self.t_bus]
        return node.astype(float), edge.astype(float)

    def model_inputs(self, norm: Normalizer) -> tuple[np.ndarray, np.ndarray]:
        """Normalized (node (sample, bus, 6), edge (sample, branch, 5)) inputs."""
        s = self.n_samples
        node = np.stack(
            [
                self.p_net / norm.p_scale,
                self.q_net / norm.p_scale,
                np.broadcast_to(self.is_slack, (s, self.n_bus)),
                self.energized,
                np.where(self.energized, self.v_lin - 1.0, 0.0) / norm.v_scale,
                self.th_lin / norm.a_scale,
            ],
            axis=-1,
        )
        edge = np.stack(
            [
                np.broadcast_to(self.r / norm.z_scale, (s, self.n_branch)),
                np.broadcast_to(self.x / norm.z_scale, (s, self.n_branch)),
                self.closed,
                self.p_lin / norm.p_scale,
                self.q_lin / norm.p_scale,
            ],
            axis=-1,
        )
        return node.astype(np.float64), edge.astype(np.float64)

    def targets(self, norm: Normalizer) -> tuple[np.ndarray, np.ndarray]:
        """Normalized (node (sample, bus, 2), edge (sample, branch, 2)) targets (labels required)."""
        if self.vm is None:
            raise DatasetError("these samples carry no power-flow labels")
        node = np.stack([(self.vm - self.v_lin) / norm.out_v, (self.va - self.th_lin) / norm.out_a], axis=-1)
        edge = np.stack(
            [(self.p_from - self.p_lin) / norm.out_p, (self.q_from - self.q_lin) / norm.out_p], axis=-1
        )
        nm, em = self.masks()
        return node * nm[..., None], edge * em[..., None]


def refuse_shunts(net: Network) -> None:
    """Refuse a network with shunts: the features, the LinDistFlow prior and the dataset layout have none.

    (:func:`~sopjax.surrogates.physics.distflow_residuals` itself takes shunts; a surrogate
    trained without them would silently miss their draw.)

    Raises:
        SurrogateError: naming the first bus (or branch) with a nonzero shunt.
    """
    for g, b, ids, what in (
        (net.g_sh_pu, net.b_sh_pu, net.bus_ids, "bus"),
        (net.g_br_pu, net.b_br_pu, net.branch_numbers, "branch"),
    ):
        if g is None:
            continue
        nz = np.flatnonzero((np.asarray(g) != 0) | (np.asarray(b) != 0))
        if nz.size:
            k = int(nz[0])
            raise SurrogateError(
                f"{what} {ids[k]} has a shunt (g = {float(np.asarray(g)[k]):g}, b = {float(np.asarray(b)[k]):g} p.u.); "
                "the surrogates' features and LinDistFlow prior have no shunt terms (networks without shunts only)"
            )


@functools.lru_cache(maxsize=4)
def lindistflow_kernel(n_bus: int):
    """The jitted LinDistFlow ``f(topo, grid, f_bus, p, q)`` vmapped over samples with their own topologies."""
    return jax.jit(jax.vmap(lindistflow, in_axes=(0, 0, None, 0, 0)))


def feature_set(
    source: xr.Dataset, *, net: Network | None = None, prior: bool = True, chunk: int = 4096
) -> FeatureSet:
    """Features (and labels, when present) of the samples of ``source`` (a loaded selection).

    Args:
        source: dataset selection with the static arrays (:func:`sopjax.datasets.load_split`).
        net: the feeder (default: rebuilt from the static arrays).
        prior: compute the LinDistFlow prior (False: zeros, the model learns the state itself).
        chunk: samples per LinDistFlow call.

    Raises:
        DatasetError: NaN in a feature (names the variable and sample).
        SurrogateError: ``net`` has shunts (names the bus or branch).
    """
    ds = source
    for k in ("p_net_pu", "q_net_pu"):
        v = np.asarray(ds[k].values)
        bad = np.argwhere(~np.isfinite(v))
        if bad.size:
            s, b = bad[0]
            raise DatasetError(
                f"feature {k} is not finite at sample {int(ds['sample'].values[s])}, "
                f"bus {int(ds['bus_id'].values[b])}"
            )
    net = dataset_network(ds) if net is None else net
    refuse_shunts(net)
    p, q = np.asarray(ds["p_net_pu"].values, float), np.asarray(ds["q_net_pu"].values, float)
    closed = np.asarray(ds["branch_closed"].values, bool)
    n, nb, ne = p.shape[0], p.shape[1], closed.shape[1]
    lin = {k: np.zeros((n, d)) for k, d in (("vm", nb), ("va", nb), ("p", ne), ("q", ne))}
    energized = np.zeros((n, nb), bool)
    for a in range(0, n, chunk):
        sl = slice(a, min(a + chunk, n))
        topo, grid = sample_topologies(net, closed[sl])
        energized[sl] = np.asarray(topo.energized)
        if prior:
            r = lindistflow_kernel(nb)(topo, grid, np.asarray(net.f_bus), p[sl], q[sl])
            lin["vm"][sl], lin["va"][sl] = np.asarray(r.vm_pu), np.asarray(r.va_rad)
            lin["p"][sl], lin["q"][sl] = np.asarray(r.p_from_pu), np.asarray(r.q_from_pu)
    if not prior:
        lin["vm"] = energized * float(net.v_slack_pu)
    labels = {}
    if "vm_pu" in ds:
        labels = dict(
            vm=np.asarray(ds["vm_pu"].values),
            va=np.asarray(ds["va_rad"].values),
            p_from=np.asarray(ds["p_from_pu"].values),
            q_from=np.asarray(ds["q_from_pu"].values),
            losses=np.asarray(ds["losses_pu"].values),
        )
    return FeatureSet(
        p_net=p,
        q_net=q,
        closed=closed,
        energized=energized,
        v_lin=lin["vm"],
        th_lin=lin["va"],
        p_lin=lin["p"],
        q_lin=lin["q"],
        f_bus=np.asarray(ds["f_bus"].values),
        t_bus=np.asarray(ds["t_bus"].values),
        r=np.asarray(ds["r_pu"].values, float),
        x=np.asarray(ds["x_pu"].values, float),
        is_slack=np.asarray(ds["is_slack"].values, bool),
        base_mva=float(ds.attrs["base_mva"]),
        **labels,
    )


def fit_normalizer(fs: FeatureSet) -> Normalizer:
    """Scales from a training feature set (standard deviations over the masked entries, floored)."""
    nm, em = fs.masks()
    nmb, emb = nm > 0, em > 0

    def sd(a, m, floor):
        v = a[m]
        return float(max(np.sqrt(np.mean(v * v)) if v.size else 0.0, floor))

    return Normalizer(
        p_scale=sd(fs.p_net, np.ones_like(nmb), 1e-6),
        z_scale=sd(fs.r, np.ones_like(fs.r, bool), 1e-9),
        v_scale=sd(fs.v_lin - 1.0, nmb, 1e-6),
        a_scale=sd(fs.th_lin, nmb, 1e-6),
        out_v=sd(fs.vm - fs.v_lin, nmb, 1e-7),
        out_a=sd(fs.va - fs.th_lin, nmb, 1e-7),
        out_p=sd(
            np.concatenate([(fs.p_from - fs.p_lin)[emb], (fs.q_from - fs.q_lin)[emb]]),
            np.ones(2 * int(emb.sum()), bool),
            1e-9,
        ),
    )
