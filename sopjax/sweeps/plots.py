"""Figures of a sweep or optimization dataset (matplotlib, written next to the dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["write_plots"]


def _derivs(ds) -> set[str]:
    return {v for v in ds.data_vars if v.startswith("d") and "_d" in v[1:] and ds[v].attrs.get("method")}


def write_plots(ds, out: str | Path) -> list[Path]:
    """Write PNG figures for ``ds`` next to ``out``; returns their paths.

    Sweeps: one axis -> each quantity against the axis with its derivative on a
    second panel (AD derivative as a line, finite differences of the plotted
    values as markers, so the two can be compared by eye); two axes -> a heat
    map per quantity. Optimization: cost over the grid with both optima, and
    the optax trajectory.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    stem = out.with_suffix("")
    paths: list[Path] = []
    if ds.attrs.get("kind") == "optimization":
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        caps = ds["grid_capacity_mva"].values
        if caps.shape[1] == 1:
            a1.plot(caps[:, 0], ds["grid_cost"].values, "o-", label="grid (all samples)")
            g = json.loads(ds.attrs["grid_optimum_mva"])[0]
            u = json.loads(ds.attrs["optax_optimum_mva"])[0]
            a1.axvline(g, color="C0", ls=":", label=f"grid optimum {g:.3g} MVA")
            a1.axvline(u, color="C3", ls="--", label=f"optax optimum {u:.3g} MVA")
            a1.set_xlabel("capacity per VSC (MVA)")
        else:
            a1.plot(ds["grid_cost"].values, ".")
            a1.set_xlabel("grid point")
        a1.set_ylabel(f"yearly cost ({ds['grid_cost'].attrs['units']})")
        a1.legend(fontsize=8)
        traj = ds["optax_capacity_mva"].values
        for k in range(traj.shape[1]):
            a2.plot(traj[:, k], label=f"capacity {k}" if traj.shape[1] > 1 else "capacity")
        a2.set_xlabel("optax step")
        a2.set_ylabel("capacity per VSC (MVA)")
        a2.legend(fontsize=8)
        fig.suptitle(ds.attrs.get("title", ""), fontsize=9)
        fig.tight_layout()
        p = Path(f"{stem}_optimization.png")
        fig.savefig(p, dpi=120)
        plt.close(fig)
        return [p]

    dims = list(ds.dims)
    derivs = _derivs(ds)
    # quantities with a derivative per axis (not flags such as restoration_sop_island)
    quantities = [v for v in ds.data_vars if v not in derivs and all(f"d{v}_d{a}" in ds for a in dims)]
    for q in quantities:
        if len(dims) == 1:
            a = dims[0]
            x = ds[a].values
            y = ds[q].values
            dq = ds[f"d{q}_d{a}"].values
            fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
            a1.plot(x, y, "o-")
            a1.set_ylabel(f"{q} ({ds[q].attrs.get('units', '')})")
            a1.set_title(ds[q].attrs.get("long_name", q), fontsize=9)
            a2.plot(x, dq, "-", label=ds[f"d{q}_d{a}"].attrs.get("method", "")[:60])
            if x.size > 1:
                a2.plot(0.5 * (x[1:] + x[:-1]), np.diff(y) / np.diff(x), "x",
                        label="difference quotient of the points")
            a2.set_ylabel(f"d{q}/d{a}")
            a2.set_xlabel(f"{a} ({ds[a].attrs.get('units', '')})")
            a2.legend(fontsize=7)
        else:
            a, b = dims
            fig, ax = plt.subplots(figsize=(6, 4.5))
            m = ax.pcolormesh(ds[b].values, ds[a].values, ds[q].values, shading="nearest")
            fig.colorbar(m, ax=ax, label=f"{q} ({ds[q].attrs.get('units', '')})")
            ax.set_xlabel(f"{b} ({ds[b].attrs.get('units', '')})")
            ax.set_ylabel(f"{a} ({ds[a].attrs.get('units', '')})")
            ax.set_title(ds[q].attrs.get("long_name", q), fontsize=9)
        fig.tight_layout()
        p = Path(f"{stem}_{q}.png")
        fig.savefig(p, dpi=120)
        plt.close(fig)
        paths.append(p)
    return paths
