"""Allocation results as an ``xarray.Dataset`` and the Pareto-front plot.

Dataset layout (:func:`to_dataset`):

* dims ``plan`` (the final front), ``sop_site``, ``cb_site``, ``objective``, ``generation``,
  ``param`` (uncertain parameters);
* per plan: ``sop_kva`` (plan, sop_site), ``cb_kvar`` (plan, cb_site), ``F`` (plan, objective), every
  cost term ``cost_*`` (currency/year), ``offset``, ``utilization`` (fraction), their robust
  versions, ``radius_first_order``, ``radius_refined``, ``worst_ratio``, ``worst_delta`` (plan, param),
  ``f_r``, ``fuzzy_membership``, ``line_loss_kwh_day``, ``vcpi_max``;
* per generation: ``hypervolume``;
* stage 2 (when run; NaN / -1 for plans it did not solve): ``stage2_status``, ``stage2_operation_cost``
  (the cvxpy model's), ``ga_operation_cost`` (the GA's evaluation of the same plan),
  ``stage2_resweep_operation_cost`` (the stage-2 capacitor schedule in the GA's evaluation), every
  ``stage2_cost_*`` (plan); ``stage2_cb_steps`` (plan, period, cb_site); ``stage2_sop_p_i_kw``,
  ``stage2_sop_q_i_kvar``, ``stage2_sop_p_j_kw``, ``stage2_sop_q_j_kvar`` (plan, period, sop_site);
* attrs: ``compromise`` (plan row), ``cases``, ``contingency`` and ``stage2`` (JSON), ``config`` (JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from sopjax.problems.allocation.selection import fuzzy_membership
from sopjax.problems.allocation.study import AllocationStudyResult, hypervolume_history

__all__ = ["to_dataset", "write_dataset", "plot_front"]

_PLAN_VARS = {
    "offset": ("1", "voltage-offset index at the forecast"),
    "utilization": ("1", "SOP utilization at the forecast (fraction)"),
    "offset_robust": ("1", "robust voltage-offset index"),
    "utilization_robust": ("1", "robust SOP utilization (fraction)"),
    "radius_first_order": ("1", "first-order worst-case sensitivity radius R_W"),
    "f_r": ("1", "robustness index F_R = R_W / R_ref (first order)"),
    "line_loss_kwh_day": ("kWh/day", "line-loss energy of the planning day"),
    "vcpi_max": ("1", "largest line VCPI of the day, normal operation"),
}


def to_dataset(res: AllocationStudyResult) -> xr.Dataset:
    """The front, its costs, indices and robustness radii, and the GA history as a Dataset."""
    st, f = res.study, res.front
    sp = st.space
    n = len(res.ga.X)
    ds = xr.Dataset(coords={"plan": np.arange(n), "sop_site": sp.sop_labels, "cb_site": sp.cb_labels,
                            "objective": list(st.objectives), "generation": np.arange(1, len(res.ga.history) + 1),
                            "param": list(st.model.param_names)})
    cur = st.costs.sop.currency
    ds["sop_kva"] = (("plan", "sop_site"), f["sop_kva"], {"units": "kVA", "long_name": "per-VSC SOP capacity"})
    ds["cb_kvar"] = (("plan", "cb_site"), f["cb_units"] * sp.cb_unit_kvar,
                     {"units": "kvar", "long_name": "capacitor bank size"})
    ds["F"] = (("plan", "objective"), res.ga.F, {"long_name": "objectives (minimized)"})
    for k, v in f.items():
        if k.startswith("cost_"):
            ds[k] = ("plan", v, {"units": f"{cur}/year"})
    for k, (u, ln) in _PLAN_VARS.items():
        ds[k] = ("plan", f[k], {"units": u, "long_name": ln})
    ds["fuzzy_membership"] = ("plan", fuzzy_membership(res.ga.F), {"units": "1"})
    if res.radius:
        ds["radius_refined"] = ("plan", res.radius["radius"], {"long_name": "worst-case radius R_W (refined)"})
        ds["worst_ratio"] = ("plan", res.radius["worst_ratio"])
        ds["worst_delta"] = (("plan", "param"), res.radius["worst_delta"])
    ds["hypervolume"] = ("generation", hypervolume_history(res.ga.history),
                         {"long_name": "hypervolume of the generation's front (normalized, ref 1.1)"})
    _add_stage2(ds, res.stage2, cur)
    d = res.as_dict()
    ds.attrs.update({"title": st.title, "compromise": int(res.compromise), "currency": cur,
                     "cases": json.dumps(d["cases"]), "contingency": json.dumps(d["contingency"], default=float),
                     "stage2": json.dumps(d["stage2"], default=float),
                     "timings_s": json.dumps(d["timings_s"]), "evaluations": int(res.ga.n_evals),
                     "config": json.dumps(st.config, default=str)})
    return ds


def _add_stage2(ds: xr.Dataset, s2: dict, cur: str) -> None:
    """The stage-2 variables of :func:`to_dataset` (nothing when stage 2 did not run)."""
    if not s2:
        return
    ds.coords["period"] = np.arange(s2["cb_steps"].shape[1])
    ds["stage2_status"] = ("plan", np.asarray(s2["status"], dtype=str),
                           {"long_name": f"stage-2 solve status ({s2['formulation']}); empty: not solved"})
    ds["stage2_operation_cost"] = ("plan", s2["operation_cost"], {"units": f"{cur}/year",
                                   "long_name": "operation cost of the stage-2 model"})
    ds["ga_operation_cost"] = ("plan", s2["ga_operation_cost"], {"units": f"{cur}/year",
                               "long_name": "operation cost of the GA's evaluation (CB rule, exact sweep)"})
    ds["stage2_resweep_operation_cost"] = ("plan", s2["resweep_operation_cost"], {
        "units": f"{cur}/year", "long_name": "stage-2 CB schedule in the GA's evaluation (JAX dispatch, exact sweep)"})
    for k, v in s2.items():
        if k.startswith("cost_"):
            ds[f"stage2_{k}"] = ("plan", v, {"units": f"{cur}/year"})
    ds["stage2_cb_steps"] = (("plan", "period", "cb_site"), s2["cb_steps"],
                             {"long_name": "connected capacitor steps (-1: not solved)"})
    for k, u in (("sop_p_i_kw", "kW"), ("sop_q_i_kvar", "kvar"), ("sop_p_j_kw", "kW"), ("sop_q_j_kvar", "kvar")):
        ds[f"stage2_{k}"] = (("plan", "period", "sop_site"), s2[k], {"units": u})


def write_dataset(ds: xr.Dataset, path: str | Path) -> Path:
    """Write ``ds`` as netCDF (``.nc``) or zarr (any other suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".nc":
        ds.to_netcdf(path)
    else:
        ds.to_zarr(path, mode="w")
    return path


def plot_front(ds: xr.Dataset, path: str | Path) -> Path:
    """Pairwise projections of the front with the compromise plan marked (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    F = ds["F"].values
    names = [str(o) for o in ds["objective"].values]
    pairs = [(i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    k = int(ds.attrs.get("compromise", 0))
    for ax, (i, j) in zip(axes[0], pairs):
        ax.scatter(F[:, i], F[:, j], s=14, label="Pareto front")
        ax.scatter(F[k, i], F[k, j], s=60, marker="*", color="C3", label="compromise (fuzzy)")
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
    axes[0][0].legend(fontsize=8)
    fig.suptitle(ds.attrs.get("title", "") or "SOP allocation front")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
