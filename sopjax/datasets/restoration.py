"""MISOCP restoration labels for a small subset of a dataset's fault scenarios (its own zarr group).

With ``restoration_labels = n`` in the spec, the first ``n`` written samples (by index) whose
fault interrupts load are each labelled with the optimal restoration plan of
:func:`sopjax.problems.restoration.solve_restoration` (SOC DistFlow MISOCP, SCIP) on the
sample's own state: its loads, PV output (as the forecast), VSC capacities (reactive limits =
capacity), its switch configuration before the fault as the network's own switch states, the
faulted branch forced open; switches per ``restoration_switchable`` (``"ties"``: the branches
that configuration keeps open), voltage limits ``vf_v_limits_pu``, the SOPs free to run in any
mode. Everything else is the solver's default (objective weights, tight formulation, relative
gap 1e-4).

The labels live in the store's group ``restoration`` (dimension ``scenario``, its own ``done``
flags, provenance attributes): ``sample`` (the dataset sample), the plan's switch states,
energized buses, pickup, SOP modes (:data:`sopjax.strategies.SOP_MODES` codes), set-points
and ``U_set``, restored and outage load, recovery ratio, losses, objective, bound, gap, solve
status (``status_names``) and solve time. A scenario the MISOCP proves infeasible is stored
with status ``infeasible`` and NaN values, one that no closable switch or SOP can reach (the
solver refuses it: nothing to optimize) with status ``unrestorable``, recovery ratio 0 and NaN
values; neither is dropped. Scenarios are written one by one
and skipped when done, so an interrupted run resumes. Read them with
``xarray.open_zarr(store, group="restoration")``.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import xarray as xr

from sopjax.datasets.islands import sample_network
from sopjax.datasets.spec import DatasetError, DatasetSpec
from sopjax.network import Network

__all__ = ["GROUP", "STATUS_NAMES", "open_restoration", "restoration_problem", "restoration_samples",
           "solve_scenario", "write_restoration"]  # fmt: skip

#: the zarr group of the restoration labels
GROUP = "restoration"
#: codes of ``solve_status``
STATUS_NAMES = ("optimal", "time_limit", "infeasible", "error", "unrestorable")

_VARS: dict[str, tuple[tuple[str, ...], type]] = {
    "sample": ((), np.int64),
    "fault_branch": ((), np.int16),
    "branch_closed": (("branch",), bool),
    "energized": (("bus",), bool),
    "pickup": (("bus",), np.float64),
    "sop_mode": (("sop",), np.int8),
    "sop_p_i_pu": (("sop",), np.float64),
    "sop_q_i_pu": (("sop",), np.float64),
    "sop_p_j_pu": (("sop",), np.float64),
    "sop_q_j_pu": (("sop",), np.float64),
    "u_set_pu": (("sop",), np.float64),
    "restored_pu": ((), np.float64),
    "outage_pu": ((), np.float64),
    "recovery_ratio": ((), np.float64),
    "line_losses_pu": ((), np.float64),
    "sop_losses_pu": ((), np.float64),
    "objective": ((), np.float64),
    "bound": ((), np.float64),
    "gap": ((), np.float64),
    "solve_status": ((), np.int8),
    "solve_s": ((), np.float64),
    "done": ((), bool),
}


def restoration_samples(ds: xr.Dataset, n: int) -> np.ndarray:
    """The first ``n`` written samples of ``ds`` whose fault interrupts load (sample indices).

    Raises:
        DatasetError: fewer such samples than ``n`` (names ``restoration_labels``).
    """
    done = np.asarray(ds["done"].values, bool)
    p = np.asarray(ds["p_load_pu"].values)
    dark = np.asarray(ds["outage"].values if "outage" in ds else ~ds["energized"].values, bool)
    hit = done & (np.asarray(ds["fault_branch"].values) >= 0) & np.any(dark & (p > 0), axis=1)
    rows = np.flatnonzero(hit)
    if rows.size < n:
        raise DatasetError(
            f"restoration_labels = {n}, but the dataset has only {rows.size} written samples whose fault "
            "interrupts load; lower restoration_labels or raise samples / fault_fraction"
        )
    return np.asarray(ds["sample"].values)[rows[:n]]


def restoration_problem(net: Network, spec: DatasetSpec, row: xr.Dataset):
    """The network and :class:`~sopjax.problems.restoration.RestorationSettings` of one sample ``row``."""
    from sopjax.problems.restoration import RestorationSettings

    fault = int(row["fault_branch"].values)
    closed = np.asarray(row["branch_closed"].values, bool).copy()
    closed[fault] = True  # the configuration before the fault: the network's own switch states
    net_s = sample_network(net, closed, np.asarray(row["s_rated_i_pu"].values), np.asarray(row["s_rated_j_pu"].values))
    net_s = net_s.replace(p_load_pu=np.asarray(row["p_load_pu"].values), q_load_pu=np.asarray(row["q_load_pu"].values))
    settings = RestorationSettings(
        faulted=(int(net.branch_numbers[fault]),),
        switchable=spec.restoration_switchable,
        pv_forecast_pu=tuple(float(x) for x in np.asarray(row["p_pv_pu"].values)),
        v_min_pu=spec.vf_v_limits_pu[0],
        v_max_pu=spec.vf_v_limits_pu[1],
    )
    return net_s, settings


def solve_scenario(net: Network, spec: DatasetSpec, row: xr.Dataset) -> dict[str, np.ndarray]:
    """Solve the restoration MISOCP of one sample and return its label row (per unit; see the module)."""
    from sopjax.errors import NothingToRestoreError
    from sopjax.problems.restoration import solve_restoration
    from sopjax.solvers.backends.solve import InfeasibleError
    from sopjax.strategies.strategy import mode_code

    net_s, settings = restoration_problem(net, spec, row)
    nb, nl, ns = net.n_bus, net.n_branch, net.sop.count
    out = {k: np.full(tuple({"bus": nb, "branch": nl, "sop": ns}[d] for d in dims), np.nan)
           for k, (dims, _) in _VARS.items()}  # fmt: skip
    out.update(sample=np.asarray(int(row["sample"].values)), fault_branch=np.asarray(int(row["fault_branch"].values)),
               done=np.asarray(True))  # fmt: skip
    empty = {"branch_closed": np.zeros(nl, bool), "energized": np.zeros(nb, bool), "sop_mode": np.zeros(ns, np.int8)}
    try:
        plan, _ = solve_restoration(net_s, settings, time_limit=spec.restoration_time_limit)
    except InfeasibleError:
        out.update(empty, solve_status=np.asarray(STATUS_NAMES.index("infeasible")))
        return out
    except NothingToRestoreError:  # no switch or SOP reaches the outage area: the optimum restores nothing
        out.update(empty, recovery_ratio=np.asarray(0.0), solve_status=np.asarray(STATUS_NAMES.index("unrestorable")))
        return out
    kva = 1e3 * float(net.base_mva)
    sp = plan.sop_setpoints
    status = plan.info.status if plan.info.status in STATUS_NAMES else "error"
    out.update(
        branch_closed=np.asarray(plan.status, bool),
        energized=np.asarray(plan.energized, bool),
        pickup=np.asarray(plan.pickup, float),
        sop_mode=np.asarray([mode_code(m) for m in plan.sop_modes], np.int8).reshape(ns),
        sop_p_i_pu=np.asarray([s["p_i_kw"] / kva for s in sp]).reshape(ns),
        sop_q_i_pu=np.asarray([s["q_i_kvar"] / kva for s in sp]).reshape(ns),
        sop_p_j_pu=np.asarray([s["p_j_kw"] / kva for s in sp]).reshape(ns),
        sop_q_j_pu=np.asarray([s["q_j_kvar"] / kva for s in sp]).reshape(ns),
        u_set_pu=np.asarray([s["u_set_pu"] for s in sp]).reshape(ns),
        restored_pu=np.asarray(plan.restored_kw / kva),
        outage_pu=np.asarray(plan.outage_kw / kva),
        recovery_ratio=np.asarray(plan.recovery_ratio),
        line_losses_pu=np.asarray(plan.line_losses_kw / kva),
        sop_losses_pu=np.asarray(plan.sop_losses_kw / kva),
        objective=np.asarray(plan.objective),
        bound=np.asarray(plan.info.bound),
        gap=np.asarray(plan.info.gap),
        solve_status=np.asarray(STATUS_NAMES.index(status)),
        solve_s=np.asarray(plan.info.total_s),
    )
    return out


def _attrs(spec: DatasetSpec, samples: np.ndarray) -> dict:
    import sopjax
    from sopjax.problems.restoration import RestorationSettings

    return {
        "title": "MISOCP restoration labels (sopjax.problems.restoration.solve_restoration)",
        "sopjax_version": sopjax.__version__,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(),
        "solver": "SCIP (SOC DistFlow MISOCP, TIGHT formulation, mip_gap 1e-4)",
        "settings": json.dumps(
            {
                "switchable": spec.restoration_switchable,
                "v_limits_pu": list(spec.vf_v_limits_pu),
                "time_limit_s": spec.restoration_time_limit,
                **{k: getattr(RestorationSettings, k) for k in ("use_sop", "eta_d", "eta_l", "v_margin_pu")},
            }
        ),
        "status_names": json.dumps(list(STATUS_NAMES)),
        "selection": "the first restoration_labels written samples (by index) whose fault interrupts load",
        "samples": json.dumps([int(s) for s in samples]),
        "units": "per unit on the dataset's base_mva; objective in kW units (the solver's)",
    }


def open_restoration(path: str | Path) -> xr.Dataset | None:
    """The restoration group of a dataset store, or None if it has none."""
    try:
        return xr.open_zarr(Path(path), group=GROUP, consolidated=False)
    except (FileNotFoundError, KeyError, OSError, ValueError):
        return None
    except Exception as e:
        if "not found" in str(e).lower() or "nothing found" in str(e).lower():
            return None
        raise


def write_restoration(
    net: Network, spec: DatasetSpec, path: str | Path, *, stop_after: int | None = None, progress=None
) -> int:
    """Create (or resume) the store's restoration group and solve the scenarios not done yet.

    Args:
        net: the dataset's network.
        spec: the dataset spec (``restoration_labels`` > 0).
        path: the store; every chunk of it must be written.
        stop_after: solve at most this many scenarios, then return (interruption, for tests).
        progress: a tqdm-like bar to update per scenario, or None.

    Returns:
        the number of scenarios solved by this call.

    Raises:
        DatasetError: too few faulted samples, or a group made for other samples.
    """
    from sopjax.datasets.store import open_store

    path = Path(path)
    ds = open_store(path)
    samples = restoration_samples(ds, spec.restoration_labels)
    old = open_restoration(path)
    if old is None:
        size = {"bus": net.n_bus, "branch": net.n_branch, "sop": net.sop.count}
        n = samples.size
        tmpl = {}
        for k, (dims, dt) in _VARS.items():
            dt = np.dtype(dt)
            fill = False if dt == bool else (-1 if dt.kind == "i" else np.nan)
            tmpl[k] = (("scenario", *dims), np.full((n, *(size[d] for d in dims)), fill, dtype=dt))
        grp = xr.Dataset(tmpl, coords={"scenario": np.arange(n)})
        grp.attrs = _attrs(spec, samples)
        grp.to_zarr(path, group=GROUP, mode="w", consolidated=False)
        done = np.zeros(n, bool)
    else:
        if json.loads(old.attrs["samples"]) != [int(s) for s in samples]:
            raise DatasetError(f"store {path}: its restoration group was made for other samples; remove it")
        done = np.asarray(old["done"].values, bool)
    todo = np.flatnonzero(~done)
    if stop_after is not None:
        todo = todo[: max(int(stop_after), 0)]
    for c in todo:
        row = ds.sel(sample=int(samples[c])).load()
        lab = solve_scenario(net, spec, row)
        body = {k: (("scenario", *dims), np.asarray(lab[k], dtype=dt)[None])
                for k, (dims, dt) in _VARS.items() if k != "done"}  # fmt: skip
        xr.Dataset(body).to_zarr(path, group=GROUP, region={"scenario": slice(int(c), int(c) + 1)},
                                 consolidated=False)  # fmt: skip
        xr.Dataset({"done": ("scenario", np.ones(1, bool))}).to_zarr(
            path, group=GROUP, region={"scenario": slice(int(c), int(c) + 1)}, consolidated=False
        )
        if progress is not None:
            progress.update(1)
    return int(todo.size)
