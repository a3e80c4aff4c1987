"""Screening with a surrogate and an exact re-score: rank many candidates cheaply, check the top k exactly.

A candidate is a radial switch configuration of one feeder; its score is the expected
line loss over a set of load / PV samples plus a penalty per sample with a voltage below
``v_min_pu`` (lower is better). :func:`screen` ranks all candidates by the power-flow
surrogate's predicted score and re-scores the best ``k`` with the exact kernel
(:func:`sopjax.datasets.power_flow_labels`, the vmapped exact sweep). The chosen candidate
is the exact best of those ``k``, so a surrogate error can cost optimality, never
correctness of the reported score.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from sopjax.datasets import power_flow_labels
from sopjax.network import Network
from sopjax.surrogates.evaluate import predicted_losses
from sopjax.surrogates.features import feature_set
from sopjax.surrogates.powerflow import PowerFlowSurrogate

__all__ = ["ScreeningResult", "exact_scores", "screen", "surrogate_scores"]


@dataclasses.dataclass(frozen=True)
class ScreeningResult:
    """Outcome of one screening.

    Attributes:
        chosen: index of the chosen candidate (exact best of the surrogate's top k).
        top_k: the surrogate's k best candidates, best first.
        surrogate: predicted score per candidate (kW + penalty).
        exact_top_k: exact score of each of ``top_k``.
    """

    chosen: int
    top_k: np.ndarray
    surrogate: np.ndarray
    exact_top_k: np.ndarray


def _score(losses_pu, vmin, energized_ok, base_mva, v_min_pu, penalty_kw):
    return losses_pu.mean(axis=-1) * 1e3 * base_mva + penalty_kw * ((vmin < v_min_pu) | ~energized_ok).mean(
        axis=-1
    )


def _stack(net: Network, status: np.ndarray, p: np.ndarray, q: np.ndarray):
    m, s = status.shape[0], p.shape[0]
    return np.repeat(status, s, axis=0), np.tile(p, (m, 1)), np.tile(q, (m, 1))


def exact_scores(
    net: Network,
    status: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    *,
    v_min_pu: float = 0.9,
    penalty_kw: float = 1e3,
) -> np.ndarray:
    """Exact score of each candidate ``status`` (cand, branch) on net loads ``p, q`` (sample, bus)."""
    st, pp, qq = _stack(net, status, p, q)
    lab = power_flow_labels(net, st, pp, qq)
    m, s = status.shape[0], p.shape[0]
    vmin = np.where(lab["energized"], lab["vm_pu"], np.inf).min(axis=1).reshape(m, s)
    ok = (lab["converged"] & lab["energized"].all(axis=1)).reshape(m, s)
    return _score(lab["losses_pu"].reshape(m, s), vmin, ok, float(net.base_mva), v_min_pu, penalty_kw)


def surrogate_scores(
    sur: PowerFlowSurrogate,
    net: Network,
    status: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    *,
    v_min_pu: float = 0.9,
    penalty_kw: float = 1e3,
    static: xr.Dataset,
) -> np.ndarray:
    """Predicted score of each candidate (same arguments as :func:`exact_scores`; ``static``: the
    dataset's static arrays, for the graph)."""
    st, pp, qq = _stack(net, status, p, q)
    ds = static.assign(
        p_net_pu=(("sample", "bus"), pp),
        q_net_pu=(("sample", "bus"), qq),
        branch_closed=(("sample", "branch"), st),
    )
    fs = feature_set(ds, net=net, prior=bool(sur.config.get("prior", True)))
    pred = sur.predict(fs)
    m, s = status.shape[0], p.shape[0]
    vmin = np.where(fs.energized, pred["vm"], np.inf).min(axis=1).reshape(m, s)
    ok = fs.energized.all(axis=1).reshape(m, s)
    return _score(predicted_losses(fs, pred).reshape(m, s), vmin, ok, fs.base_mva, v_min_pu, penalty_kw)


def screen(
    sur: PowerFlowSurrogate,
    net: Network,
    status: np.ndarray,
    p: np.ndarray,
    q: np.ndarray,
    *,
    k: int,
    static: xr.Dataset,
    **score_kw,
) -> ScreeningResult:
    """Rank candidates with the surrogate, re-score the top ``k`` exactly, choose the exact best of them."""
    pred = surrogate_scores(sur, net, status, p, q, static=static, **score_kw)
    top = np.argsort(pred, kind="stable")[: max(int(k), 1)]
    ex = exact_scores(net, status[top], p, q, **score_kw)
    return ScreeningResult(int(top[int(np.argmin(ex))]), top, pred, ex)
