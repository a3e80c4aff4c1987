"""Errors of a power-flow surrogate against the exact kernel's labels, in p.u. and kW.

The labels of a dataset are the exact sweep's solution; :func:`power_flow_errors` compares
a prediction with them on energized buses and energized closed branches: voltage
magnitude (p.u.), angle (rad), branch active / reactive flow (p.u. and kW / kvar) and
total line losses (kW, from the predicted flows with ``r (P^2 + Q^2) / |V_f|^2``), plus
the largest DistFlow residual of the predicted state. :func:`split_report` adds the
calibration of voltage-violation predictions (:mod:`sopjax.surrogates.calibration`) and
writes a parity plot (:mod:`sopjax.surrogates.plots`).
"""

from __future__ import annotations

import jax
import numpy as np

from sopjax.surrogates.features import FeatureSet
from sopjax.surrogates.physics import distflow_residuals

__all__ = ["power_flow_errors", "predicted_losses", "split_report", "voltage_errors"]


def predicted_losses(fs: FeatureSet, st: dict) -> np.ndarray:
    """Total line losses (p.u.) of predicted states, (sample,)."""
    _, em = fs.masks()
    vf2 = np.where(em > 0, st["vm"][:, fs.f_bus] ** 2, 1.0)
    return np.sum(em * fs.r * (st["p_from"] ** 2 + st["q_from"] ** 2) / vf2, axis=1)


def power_flow_errors(fs: FeatureSet, st: dict) -> dict[str, float]:
    """MAE and max error of each target over the masked entries (labels required in ``fs``)."""
    nm, em = fs.masks()
    kw = 1e3 * fs.base_mva
    n, e = nm > 0, em > 0
    dv = np.abs(st["vm"] - fs.vm)[n]
    da = np.abs(st["va"] - fs.va)[n]
    dp = np.abs(st["p_from"] - fs.p_from)[e]
    dq = np.abs(st["q_from"] - fs.q_from)[e]
    dl = np.abs(predicted_losses(fs, st) - fs.losses)
    res = jax.vmap(
        lambda vm, p, q, pn, qn, a, b: distflow_residuals(
            vm, p, q, pn, qn, f_bus=fs.f_bus, t_bus=fs.t_bus, r=fs.r, x=fs.x, node_mask=a, edge_mask=b
        ).max_abs()
    )(st["vm"], st["p_from"], st["q_from"], fs.p_net, fs.q_net, nm, em)
    return {
        "samples": fs.n_samples,
        "vm_mae_pu": float(dv.mean()),
        "vm_max_pu": float(dv.max()),
        "va_mae_rad": float(da.mean()),
        "va_max_rad": float(da.max()),
        "p_mae_pu": float(dp.mean()),
        "p_max_pu": float(dp.max()),
        "p_mae_kw": float(dp.mean() * kw),
        "p_max_kw": float(dp.max() * kw),
        "q_mae_kvar": float(dq.mean() * kw),
        "q_max_kvar": float(dq.max() * kw),
        "loss_mae_kw": float(dl.mean() * kw),
        "loss_max_kw": float(dl.max() * kw),
        "residual_max_pu": float(np.max(np.asarray(res))),
    }


def voltage_errors(fs: FeatureSet, st: dict) -> np.ndarray:
    """``exact - predicted`` voltage magnitude at the energized non-slack buses (p.u.), flat."""
    nm, _ = fs.masks()
    return (fs.vm - np.asarray(st["vm"]))[nm > 0]


def split_report(fs: FeatureSet, st: dict, *, val_errors=None, plot=None, title: str = "") -> dict:
    """:func:`power_flow_errors` of one split, plus violation calibration and a parity plot.

    Args:
        fs: the split's features with labels; st: the predicted state.
        val_errors: :func:`voltage_errors` on the validation split (None: no calibration).
        plot: PNG path of the parity plot (None: none).
        title: the plot's title.

    Returns:
        the errors, with ``calibration`` (:func:`~sopjax.surrogates.calibration.calibration_report`,
        arrays as lists) when ``val_errors`` is given.
    """
    m = power_flow_errors(fs, st)
    nm, em = fs.masks()
    if val_errors is not None:
        from sopjax.surrogates.calibration import calibration_report

        cal = calibration_report(st["vm"], fs.vm, nm > 0, val_errors)
        cal["table"] = {k: np.asarray(v).tolist() for k, v in cal["table"].items()}
        m["calibration"] = cal
    if plot is not None:
        from sopjax.surrogates.plots import parity_plot

        exact = {"vm": fs.vm, "p_from": fs.p_from}
        parity_plot(exact, st, nm, em, plot, base_mva=fs.base_mva, title=title)
    return m
