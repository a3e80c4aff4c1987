"""Figures of a surrogate's evaluation (matplotlib, Agg, PNG): parity plots and reliability diagrams.

* :func:`parity_plot`: predicted against exact voltage magnitude (p.u.) and branch active
  flow (kW) at the energized buses / closed branches of a set of samples, with the
  identity line and the MAE / max error in the titles;
* :func:`reliability_diagram`: observed violation frequency against the mean predicted
  probability per bin (:func:`sopjax.surrogates.calibration.reliability_table`), with the
  event count per bin underneath;
* :func:`learned_sweep_plot`: a one-axis sweep through the learned dispatch next to the
  interior point's (:func:`sopjax.surrogates.sweep.run_learned_sweep` with ``compare``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["learned_sweep_plot", "parity_plot", "reliability_diagram"]

_MAX_POINTS = 20_000  # per panel: a deterministic thinning keeps PNGs small


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _thin(*arrays):
    n = arrays[0].size
    if n <= _MAX_POINTS:
        return arrays
    idx = np.linspace(0, n - 1, _MAX_POINTS).astype(int)
    return tuple(a[idx] for a in arrays)


def parity_plot(
    exact: dict, pred: dict, node_mask, edge_mask, path, *, base_mva: float, title: str = ""
) -> Path:
    """Write a two-panel parity plot (voltage, branch active flow) to ``path`` (PNG).

    Args:
        exact, pred: states with ``vm`` (sample, bus) and ``p_from`` (sample, branch), p.u.
        node_mask, edge_mask: entries to plot (energized non-slack buses, energized closed
            branches), (sample, bus) / (sample, branch).
        path: the PNG file (its directory must exist).
        base_mva: the case's base power (flows are plotted in kW).
        title: figure title (case, split, model).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    plt = _pyplot()
    nm, em = np.asarray(node_mask) > 0, np.asarray(edge_mask) > 0
    kw = 1e3 * base_mva
    panels = (
        ("voltage magnitude", "p.u.", np.asarray(exact["vm"])[nm], np.asarray(pred["vm"])[nm], 1.0, "{:.1e}"),
        ("branch active flow", "kW", np.asarray(exact["p_from"])[em], np.asarray(pred["p_from"])[em], kw, "{:.2f}"),
    )
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (name, unit, x, y, scale, fmt) in zip(axes, panels):
        x, y = x * scale, y * scale
        err = np.abs(y - x)
        xs, ys = _thin(x, y)
        ax.scatter(xs, ys, s=2, alpha=0.4, rasterized=True)
        if x.size:
            lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
            ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
            stats = f"MAE {fmt.format(err.mean())}, max {fmt.format(err.max())} {unit}"
        else:
            stats = "no entries"
        ax.set_xlabel(f"exact {name} ({unit})")
        ax.set_ylabel(f"predicted ({unit})")
        ax.set_title(f"{name}: {stats}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def reliability_diagram(tables: dict[str, dict], path, *, title: str = "") -> Path:
    """Write a reliability diagram of one or more reliability tables to ``path`` (PNG).

    Args:
        tables: label -> :func:`~sopjax.surrogates.calibration.reliability_table` output
            (e.g. one per model or split).
        path: the PNG file; title: figure title.
    """
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    a1.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfectly calibrated")
    width = 1.0 / max(len(next(iter(tables.values()))["count"]), 1) / (len(tables) + 1)
    for k, (label, t) in enumerate(tables.items()):
        t = {key: np.asarray(v, float) for key, v in t.items()}  # lists (from JSON) or arrays
        m = t["count"] > 0
        a1.plot(t["mean_prob"][m], t["observed"][m], "o-", ms=4, label=label)
        a2.bar(t["lo"] + (k + 0.5) * width, t["count"], width=width, label=label)
    a1.set_ylabel("observed violation frequency")
    a1.set_xlim(0, 1)
    a1.set_ylim(-0.02, 1.02)
    a1.legend(fontsize=7)
    a1.set_title(title, fontsize=9)
    a2.set_yscale("log")
    a2.set_xlabel("predicted violation probability")
    a2.set_ylabel("events")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def learned_sweep_plot(ds, path) -> Path | None:
    """Learned vs interior-point quantities over a one-axis sweep, and the optimality gap (PNG).

    Returns:
        ``path``, or None when ``ds`` has no comparison or more than one axis.
    """
    qs = [v[: -len("_ipm")] for v in ds.data_vars if v.endswith("_ipm") and v[: -len("_ipm")] in ds]
    if not qs or len(ds.dims) != 1:
        return None
    plt = _pyplot()
    (a,) = ds.dims
    x = ds[a].values
    fig, axes = plt.subplots(len(qs) + 1, 1, figsize=(6, 2.2 * (len(qs) + 1)), sharex=True)
    for ax, q in zip(axes, qs):
        ax.plot(x, ds[q].values, "o-", label="learned + repair")
        ax.plot(x, ds[f"{q}_ipm"].values, "x--", label="interior point")
        ax.set_ylabel(f"{q} ({ds[q].attrs.get('units', '')})", fontsize=8)
        ax.legend(fontsize=7)
    g = axes[-1]
    g.plot(x, 100 * ds["objective_gap_mean"].values, "o-", label="mean over samples")
    g.plot(x, 100 * ds["objective_gap_max"].values, "^:", label="max")
    g.set_ylabel("optimality gap (%)", fontsize=8)
    g.set_xlabel(f"{a} ({ds[a].attrs.get('units', '')})")
    g.legend(fontsize=7)
    fig.suptitle(ds.attrs.get("title", ""), fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
