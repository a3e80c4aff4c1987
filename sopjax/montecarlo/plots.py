"""Figures of a Monte Carlo dataset (matplotlib, Agg backend; nothing is shown).

* :func:`plot_voltage_band`: per strategy, the per-bus voltage band between two
  quantiles over the samples, the mean and the forecast voltage, with the
  limits of the compliance test.
* :func:`plot_recovery_distribution`: per strategy, the distribution of the
  recovery ratio (from the dataset's exact histogram), with the mean, the
  nominal-forecast value and the ratio guaranteed at the confidence level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_voltage_band", "plot_recovery_distribution", "write_plots"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _nearest(levels, q):
    levels = np.asarray(levels, float)
    return int(np.argmin(np.abs(levels - q)))


def plot_voltage_band(ds, path: str | Path, *, band=(0.01, 0.99)) -> Path:
    """Per-bus voltage band (quantiles ``band``) and mean, one panel per strategy."""
    plt = _pyplot()
    strategies = [str(s) for s in ds["strategy"].values]
    n = len(strategies)
    cols = min(n, 2)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.2 * rows), squeeze=False, sharey=True)
    x = np.arange(ds.sizes["bus"])
    labels = [str(b) for b in ds["bus"].values]
    i_lo, i_hi = _nearest(ds["quantile"].values, band[0]), _nearest(ds["quantile"].values, band[1])
    q_lo, q_hi = float(ds["quantile"].values[i_lo]), float(ds["quantile"].values[i_hi])
    for k, name in enumerate(strategies):
        ax = axes[k // cols][k % cols]
        sub = ds.sel(strategy=name)
        lo = sub["vm_quantile"].values[:, i_lo]
        hi = sub["vm_quantile"].values[:, i_hi]
        mean = sub["vm_mean"].values
        nominal = np.where(sub["vm_nominal"].values > 0, sub["vm_nominal"].values, np.nan)
        ax.fill_between(x, lo, hi, step="mid", alpha=0.35, color="tab:blue",
                        label=f"{q_lo:.0%}-{q_hi:.0%} band")
        ax.plot(x, mean, "-", color="tab:blue", lw=1.2, label="mean")
        ax.plot(x, nominal, ".", color="k", ms=4, label="forecast")
        ax.axhline(float(ds.attrs["v_min_pu"]), color="tab:red", ls="--", lw=0.8)
        ax.axhline(float(ds.attrs["v_max_pu"]), color="tab:red", ls="--", lw=0.8)
        off = np.flatnonzero(sub["vm_count"].values == 0)
        if off.size:
            ax.plot(x[off], np.full(off.size, float(ds.attrs["v_min_pu"]) - 0.02), "x", color="0.5", ms=4,
                    label="never energized")
        r = float(sub["recovery_ratio_mean"])
        ax.set_title(f"{name}  (mean recovery {r:.1%})", fontsize=9)
        ax.set_xticks(x[::2], labels[::2], fontsize=7)
        ax.set_xlabel("bus")
        ax.set_ylabel("|V| (p.u.)")
        ax.grid(alpha=0.3)
        if k == 0:
            ax.legend(fontsize=7, loc="lower left")
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(f"{ds.attrs.get('network', '')}: bus voltage over {int(ds.attrs['n_samples'])} samples", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_recovery_distribution(ds, path: str | Path, *, bins: int = 50) -> Path:
    """Recovery-ratio distribution per strategy (histogram re-binned to ``bins``)."""
    plt = _pyplot()
    strategies = [str(s) for s in ds["strategy"].values]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    h = ds["recovery_ratio_hist"]
    inner_bins = int(h.attrs["bins"])
    edges = np.linspace(0.0, 1.0, bins + 1)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, name in enumerate(strategies):
        counts = np.asarray(h.sel(strategy=name).values, float)
        total = counts.sum()
        if total <= 0:
            continue
        inner = counts[2:-2]
        centres = (np.arange(inner_bins) + 0.5) / inner_bins
        coarse, _ = np.histogram(centres, bins=edges, weights=inner)
        coarse[0] += counts[0] + counts[1]
        coarse[-1] += counts[-2] + counts[-1]
        c = colors[k % len(colors)]
        ax.stairs(coarse / total, edges, color=c, lw=1.4, label=name)
        sub = ds.sel(strategy=name)
        ax.axvline(float(sub["recovery_ratio_mean"]), color=c, ls="-", lw=0.8, alpha=0.7)
        ax.axvline(float(sub["recovery_ratio_nominal"]), color=c, ls=":", lw=1.0)
        ax.axvline(float(sub["recovery_ratio_guaranteed"]), color=c, ls="--", lw=0.8)
    ax.set_xlabel("recovery ratio (restored / outage-area load)")
    ax.set_ylabel("fraction of samples")
    conf = float(ds.attrs["confidence"])
    ax.set_title(f"recovery ratio over {int(ds.attrs['n_samples'])} samples "
                 f"(solid: mean, dotted: forecast, dashed: guaranteed at {conf:.2%})", fontsize=9)
    ax.set_xlim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(ds, out: str | Path) -> list[Path]:
    """Both figures next to the dataset ``out``: ``<stem>_voltage_band.png``, ``<stem>_recovery.png``."""
    out = Path(out)
    stem = out.with_suffix("")
    return [
        plot_voltage_band(ds, f"{stem}_voltage_band.png"),
        plot_recovery_distribution(ds, f"{stem}_recovery.png"),
    ]
