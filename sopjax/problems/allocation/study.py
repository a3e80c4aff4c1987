"""The seed 001 allocation study from a config mapping (a parsed TOML file).

The library reads no files: ``sopjax allocate CONFIG.toml`` parses the TOML and calls
:func:`study_from_config`, then :func:`run_allocation_study`. Layout (see
``configs/seed001_allocation.toml``; every key optional unless marked)::

    title = "..."
    [network]        case (required), pv = [{bus, s_rated_kva, pf}], v_slack_pu
    [profiles]       periods, load (shape name or numbers), pv ("clear_sky" or numbers),
                     latitude_deg, day_of_year, pv_peak_frac
    [allocation.sop] candidates = [[12, 22], ...] (required), module_kva, max_modules, loss
    [allocation.capacitors] buses, unit_kvar, max_units, on_threshold, max_switching
    [operation]      v_min_pu, v_max_pu, dispatch_tol, dispatch_max_iter, gradient, fd_step
    [indices]        offset_norm
    [costs]          CostModel fields and AllocationCosts fields (one flat table)
    [robustness]     RobustnessSettings fields, refine_front
    [ga]             GASettings fields, objectives
    [contingency]    ContingencySettings fields, cases, pop_size, generations, seed
    [stage2]         Stage2Settings fields but max_switching (enabled, formulation, plans,
                     time_limit_s, mip_gap, solver); absent: no stage 2
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sopjax.config import ConfigError, integer, number, parse_network, seed, sub_table, table
from sopjax.network_builder import build_network
from sopjax.problems.allocation.contingency import CONTINGENCY_CASES, ContingencyProblem, ContingencySettings
from sopjax.problems.allocation.costs import AllocationCosts
from sopjax.problems.allocation.encoding import AllocationSpace, make_space
from sopjax.problems.allocation.evaluate import AllocationModel, EvalSettings, OperatingDay, make_model
from sopjax.problems.allocation.nsga import GAResult, GASettings, run_nsga2
from sopjax.problems.allocation.operation import OPERATION_TERMS, Stage2Settings, stage2_front
from sopjax.problems.allocation.problem import AllocationProblem, evaluate_plans
from sopjax.problems.allocation.robust import RobustnessSettings, refine_radius
from sopjax.problems.allocation.selection import best_compromise
from sopjax.problems.planning.costs import CostModel
from sopjax.problems.planning.study import parse_profiles

__all__ = ["AllocationStudy", "AllocationStudyResult", "study_from_config", "run_allocation_study",
           "hypervolume_history"]

_COST_FIELDS = {f.name for f in dataclasses.fields(CostModel)}
_ALLOC_COST_FIELDS = {f.name for f in dataclasses.fields(AllocationCosts)} - {"sop"}
_ROB_FIELDS = {f.name for f in dataclasses.fields(RobustnessSettings)}
_GA_FIELDS = {f.name for f in dataclasses.fields(GASettings)}
_CONT_FIELDS = {f.name for f in dataclasses.fields(ContingencySettings)}
_STAGE2_FIELDS = {f.name for f in dataclasses.fields(Stage2Settings)} - {"max_switching"}
_SECTIONS = {
    "title": None, "description": None,
    "network": {"case", "pv", "v_slack_pu"},
    "profiles": {"periods", "load", "pv", "latitude_deg", "day_of_year", "pv_peak_frac"},
    "allocation": {"sop", "capacitors"},
    "operation": {"v_min_pu", "v_max_pu", "dispatch_tol", "dispatch_max_iter", "gradient", "fd_step"},
    "indices": {"offset_norm"},
    "costs": _COST_FIELDS | _ALLOC_COST_FIELDS,
    "robustness": _ROB_FIELDS | {"refine_front"},
    "ga": _GA_FIELDS | {"objectives"},
    "contingency": _CONT_FIELDS | {"cases", "pop_size", "generations", "seed"},
    "stage2": _STAGE2_FIELDS,
}
_SOP_KEYS = {"candidates", "module_kva", "max_modules", "loss"}
_CB_KEYS = {"buses", "unit_kvar", "max_units", "on_threshold", "max_switching"}


@dataclasses.dataclass(frozen=True)
class AllocationStudy:
    """A validated allocation study (everything needed to rerun it)."""

    title: str
    model: AllocationModel
    costs: AllocationCosts
    robustness: RobustnessSettings
    refine_front: bool
    ga: GASettings
    objectives: tuple[str, ...]
    contingency: ContingencySettings | None
    contingency_cases: tuple[str, ...]
    contingency_ga: GASettings | None
    config: dict
    stage2: Stage2Settings | None = None

    @property
    def space(self) -> AllocationSpace:
        return self.model.space

    def fingerprint(self) -> str:
        """A hash of the config (checkpoints of another study are refused)."""
        cfg = {k: v for k, v in self.config.items() if k not in ("title", "stage2")}  # stage 2 follows the GA
        return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _section(cfg: Mapping, name: str) -> dict:
    return dict(sub_table(cfg, name, f"[{name}]", allowed=_SECTIONS[name]))


def _make(cls, where: str, values: Mapping, **fixed):
    try:
        return cls(**values, **fixed)
    except ConfigError:
        raise
    except (TypeError, ValueError, OverflowError) as e:
        raise ConfigError(f"{where}: {e}") from None


def _typed(cls, section: str, values: Mapping) -> dict:
    """``values`` checked against the types of ``cls``'s field defaults (bool, int, float, str, tuple of
    numbers or strings), each key named ``section.key`` in the :class:`ConfigError`; other keys as given."""
    out = dict(values)
    for f in dataclasses.fields(cls):
        d = f.default
        if f.name not in out or d is dataclasses.MISSING or d is None:
            continue
        v, key = out[f.name], f"{section}.{f.name}"
        if isinstance(d, bool):
            if not isinstance(v, bool):
                raise ConfigError(f"{key} must be true or false, got {v!r}")
        elif isinstance(d, int):
            out[f.name] = seed(v, key) if f.name == "seed" else integer(v, key)
        elif isinstance(d, float) and isinstance(v, list) and "tuple" in str(f.type):  # scalar or per period
            if not v:
                raise ConfigError(f"{key} must be a number or a non-empty list of numbers")
            out[f.name] = tuple(number(x, f"{key}[{k}]") for k, x in enumerate(v))
        elif isinstance(d, float):
            if not (math.isinf(d) and isinstance(v, float) and math.isinf(v)):  # e.g. p = "inf"
                out[f.name] = number(v, key)
        elif isinstance(d, str):
            if not isinstance(v, str):
                raise ConfigError(f"{key} must be a string, got {v!r}")
        elif isinstance(d, tuple):
            if not isinstance(v, (list, tuple)):
                raise ConfigError(f"{key} must be a list, got {v!r}")
            if d and all(isinstance(x, str) for x in d):
                bad = [x for x in v if not isinstance(x, str)]
                if bad:
                    raise ConfigError(f"{key} must be a list of names, got {bad[0]!r}")
                out[f.name] = tuple(v)
            elif d and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in d):
                out[f.name] = tuple(number(x, f"{key}[{k}]") for k, x in enumerate(v))
    return out


def _names(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{key} must be a list of names, got {value!r}")
    return tuple(value)


def _number(d: Mapping, key: str, where: str, default, *, lo=None, positive=False):
    from sopjax.config import number

    return number(d.get(key, default), f"{where}.{key}", lo=lo, positive=positive)


def study_from_config(cfg: Mapping[str, Any]) -> AllocationStudy:
    """Validate a config mapping and build the study.

    Raises:
        ConfigError, SopjaxError: naming the section, key, bus or branch at fault.
    """
    table(cfg, "the allocation config", allowed=_SECTIONS)
    netc = parse_network(cfg.get("network"), keys=_SECTIONS["network"])
    net = build_network(netc)

    load_shape, forecast = parse_profiles(_section(cfg, "profiles"), net)
    if forecast is None:
        forecast = np.zeros((len(load_shape), 0))
    day = OperatingDay(p_load_pu=np.outer(load_shape, net.p_load_pu), q_load_pu=np.outer(load_shape, net.q_load_pu),
                       p_pv_pu=np.asarray(forecast, float))

    alloc = _section(cfg, "allocation")
    sop = dict(sub_table(alloc, "sop", "[allocation.sop]", allowed=_SOP_KEYS))
    cb = dict(sub_table(alloc, "capacitors", "[allocation.capacitors]", allowed=_CB_KEYS))
    if "candidates" not in sop:
        raise ConfigError("[allocation.sop] candidates is required: a list of tie branches [bus_i, bus_j]")
    if not isinstance(sop["candidates"], list):
        raise ConfigError(f"allocation.sop.candidates must be a list of tie branches [bus_i, bus_j], "
                          f"got {sop['candidates']!r}")
    if not isinstance(cb.get("buses", []), list):
        raise ConfigError(f"allocation.capacitors.buses must be a list of bus numbers, got {cb['buses']!r}")
    space = make_space(net, sop_pairs=sop["candidates"], module_kva=sop.get("module_kva", 50.0),
                       max_modules=sop.get("max_modules", 6), cb_buses=cb.get("buses", []),
                       cb_unit_kvar=cb.get("unit_kvar", 50.0), cb_max_units=cb.get("max_units", 0))
    op = _section(cfg, "operation")
    ind = _section(cfg, "indices")
    settings = _make(EvalSettings, "[operation]", {**_typed(EvalSettings, "operation", op),
                                                    **_typed(EvalSettings, "indices", ind)},
                     sop_loss=_number(sop, "loss", "allocation.sop", 0.02, lo=0.0),
                     cb_on_threshold=_number(cb, "on_threshold", "allocation.capacitors", 0.7, lo=0.0))
    max_sw = cb.get("max_switching")
    if max_sw is not None:
        max_sw = integer(max_sw, "allocation.capacitors.max_switching", lo=0)

    cc = _section(cfg, "costs")
    cc = _typed(AllocationCosts, "costs", _typed(CostModel, "costs", cc))
    costs = _make(AllocationCosts, "[costs]", {k: (tuple(v) if isinstance(v, list) else v) for k, v in cc.items()
                                                if k in _ALLOC_COST_FIELDS},
                  sop=_make(CostModel, "[costs]", {k: v for k, v in cc.items() if k in _COST_FIELDS}))
    rc = _section(cfg, "robustness")
    refine = bool(rc.pop("refine_front", True))
    for k in ("tolerance", "tol_floor"):
        if k in rc:
            rc[k] = tuple(rc[k]) if isinstance(rc[k], list) else rc[k]
    if "p" in rc and isinstance(rc["p"], str):
        if rc["p"] != "inf":
            raise ConfigError(f"robustness.p must be 1, 2 or \"inf\", got {rc['p']!r}")
        rc["p"] = float("inf")
    robustness = _make(RobustnessSettings, "[robustness]", _typed(RobustnessSettings, "robustness", rc))
    model = make_model(net, space, day, settings=settings, pv_deviation=robustness.pv_deviation,
                       load_deviation=robustness.load_deviation, per_site_pv=robustness.per_site_pv,
                       cb_max_switching=max_sw)

    gc = _section(cfg, "ga")
    objectives = _names(gc.pop("objectives", ("cost", "offset", "utilization")), "ga.objectives")
    ga = _make(GASettings, "[ga]", _typed(GASettings, "ga", gc))

    cont, cases, cga = None, (), None
    if "contingency" in cfg:
        kc = _section(cfg, "contingency")
        cases = _names(kc.pop("cases", tuple(CONTINGENCY_CASES)), "contingency.cases")
        bad = [c for c in cases if c not in CONTINGENCY_CASES]
        if bad:
            raise ConfigError(f"contingency.cases: unknown case {bad[0]!r}; choose from {', '.join(CONTINGENCY_CASES)}")
        cga = _make(GASettings, "[contingency]", _typed(
            GASettings, "contingency", {k: kc.pop(k) for k in ("pop_size", "generations", "seed") if k in kc}))
        for k in ("fault_branches", "dr_buses"):
            if k in kc:
                if not isinstance(kc[k], list):
                    raise ConfigError(f"contingency.{k} must be a list of numbers, got {kc[k]!r}")
                kc[k] = tuple(integer(v, f"contingency.{k}[{i}]") for i, v in enumerate(kc[k]))
        cont = _make(ContingencySettings, "[contingency]", _typed(ContingencySettings, "contingency", kc))
    stage2 = None
    if "stage2" in cfg:
        s2 = _typed(Stage2Settings, "stage2", _section(cfg, "stage2"))
        stage2 = _make(Stage2Settings, "[stage2]", s2, max_switching=max_sw)
    return AllocationStudy(title=str(cfg.get("title", "")), model=model, costs=costs, robustness=robustness,
                           refine_front=refine, ga=ga, objectives=objectives, contingency=cont,
                           contingency_cases=cases, contingency_ga=cga, config=dict(cfg), stage2=stage2)


@dataclasses.dataclass
class AllocationStudyResult:
    """Outcome of :func:`run_allocation_study`."""

    study: AllocationStudy
    ga: GAResult
    front: dict
    compromise: int
    radius: dict
    cases: dict
    contingency: dict
    timings: dict
    stage2: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        sp, k = self.study.space, self.compromise
        f = self.front
        plan = {"sop_kva": dict(zip(sp.sop_labels, f["sop_kva"][k].tolist())),
                "cb_kvar": dict(zip(sp.cb_labels, (f["cb_units"][k] * sp.cb_unit_kvar).tolist())),
                "costs": {t[5:]: float(f[t][k]) for t in f if t.startswith("cost_")},
                "offset": float(f["offset"][k]), "utilization": float(f["utilization"][k]),
                "offset_robust": float(f["offset_robust"][k]), "utilization_robust": float(f["utilization_robust"][k]),
                "radius_first_order": float(f["radius_first_order"][k]),
                "radius_refined": float(self.radius["radius"][k]) if self.radius else None}
        return {"title": self.study.title, "objectives": list(self.study.objectives),
                "front_size": int(len(self.ga.X)), "evaluations": self.ga.n_evals,
                "hypervolume_final": float(hypervolume_history(self.ga.history)[-1]),
                "compromise": plan, "cases": self.cases, "contingency": self.contingency,
                "stage2": stage2_summary(self.stage2, sp), "timings_s": self.timings,
                "currency": self.study.costs.sop.currency}


def hypervolume_history(history: list) -> np.ndarray:
    """Hypervolume of every generation's front, objectives normalized by the bounds over all fronts.

    pymoo's ``HV`` with the reference point 1.1 in every normalized objective (so that the values
    of one run are comparable across generations).
    """
    from pymoo.indicators.hv import HV

    fronts = [np.atleast_2d(h) for h in history if np.size(h)]
    if not fronts:
        return np.zeros(len(history))
    allf = np.vstack(fronts)
    lo, hi = allf.min(0), allf.max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    hv = HV(ref_point=np.full(allf.shape[1], 1.1))
    return np.asarray([float(hv((np.atleast_2d(h) - lo) / span)) if np.size(h) else 0.0 for h in history])


def _case_rows(study: AllocationStudy, problem: AllocationProblem, x_comp: np.ndarray) -> dict:
    """Seed 001 cases 1-3 on the planning day: no SOP or CB / CB only / SOP + CB (the compromise)."""
    ns = study.space.n_sop
    x1 = np.zeros_like(x_comp)
    x2 = x_comp.copy()
    x2[:ns] = 0
    X = np.stack([x1, x2, x_comp])
    r = evaluate_plans(study.model, study.costs, study.robustness, X)
    names = ["case1_no_sop_no_cb", "case2_cb_only", "case3_sop_cb"]
    return {n: {"plan": X[i].tolist(), "line_loss_cost": float(r["cost_line_loss"][i]),
                "line_loss_kwh_day": float(r["line_loss_kwh_day"][i]), "total_cost": float(r["cost_total"][i]),
                "offset": float(r["offset"][i]), "utilization": float(r["utilization"][i]),
                "vcpi_max": float(r["vcpi_max"][i])} for i, n in enumerate(names)}


def _run_contingency(study: AllocationStudy, progress) -> dict:
    s, m = study.contingency, study.model
    t = int(np.argmax(m.day.p_load_pu.sum(1)))  # the peak period
    out = {"period": t}
    for case in study.contingency_cases:
        pr = ContingencyProblem(m.net, study.space, s, study.costs,
                                p_load_pu=m.day.p_load_pu[t], q_load_pu=m.day.q_load_pu[t], p_pv_pu=m.day.p_pv_pu[t],
                                case=case)
        res = run_nsga2(pr, study.contingency_ga, progress=progress)
        k = best_compromise(res.F)
        rec = pr.records[tuple(int(v) for v in res.X[k])]
        ns = study.space.n_sop
        x = res.X[k]
        out[case] = {"modules": dict(zip(study.space.sop_labels, x[:ns].tolist())),
                     "sop_kva": dict(zip(study.space.sop_labels, (x[:ns] * study.space.module_kva).tolist())),
                     "dr_reduction": dict(zip([str(b) for b in s.dr_buses], s.reduction(x[ns:]).tolist())),
                     **rec, "front_cost": res.F[:, 0].tolist(), "front_vcpi": res.F[:, 1].tolist()}
    return out


def stage2_summary(s2: dict, space: AllocationSpace) -> dict:
    """The JSON summary of :func:`~sopjax.problems.allocation.operation.stage2_front`'s output (empty if none).

    Per solved plan: status, the stage-2 model's operation cost, the GA-evaluated one, the stage-2
    capacitor schedule re-evaluated by the GA's evaluation, and their relative differences.
    """
    if not s2:
        return {}
    rows = []
    for k in s2["plans"]:
        k = int(k)
        ga, mip, rs = (float(s2[n][k]) for n in ("ga_operation_cost", "operation_cost", "resweep_operation_cost"))
        rows.append({"plan": k, "status": str(s2["status"][k]), "message": str(s2["message"][k]),
                     "operation_cost": mip, "ga_operation_cost": ga, "resweep_operation_cost": rs,
                     "model_vs_ga_pct": 100 * (mip - ga) / ga if ga else float("nan"),
                     "resweep_vs_ga_pct": 100 * (rs - ga) / ga if ga else float("nan"),
                     "resweep_converged": bool(s2["resweep_converged"][k]),
                     "cb_steps": s2["cb_steps"][k].tolist(), "cb_sites": space.cb_labels,
                     "solve_s": float(s2["solve_s"][k])})
    return {"formulation": s2["formulation"], "plans": rows}


def run_allocation_study(study: AllocationStudy, *, checkpoint: str | Path | None = None,
                         progress: bool | None = None, contingency: bool = True,
                         stage2: bool = True) -> AllocationStudyResult:
    """Run NSGA-II (stage 1 + normal operation), refine the front's robustness, pick the compromise,
    evaluate seed 001's cases 1-3, stage 2 (the cvxpy operation model, if ``[stage2]`` enables it and
    ``stage2``) and, if configured, the contingency cases 4-6.
    """
    t0 = time.perf_counter()
    study.model.set_batch_size(study.ga.pop_size)  # one compiled program for populations, front and cases
    problem = AllocationProblem(study.model, study.costs, study.robustness, study.objectives)
    ga = run_nsga2(problem, study.ga, checkpoint=checkpoint, fingerprint=study.fingerprint(), progress=progress)
    t_ga = time.perf_counter() - t0
    if len(ga.X) == 0:
        from sopjax.errors import SopjaxError

        raise SopjaxError("no feasible plan found: every plan violates the operating limits in some period "
                          "(check [operation] v_min_pu / v_max_pu and the PV sizes)")
    r = evaluate_plans(study.model, study.costs, study.robustness, ga.X)
    front = {k: np.asarray(v) for k, v in r.items()}
    front["F"] = np.asarray(ga.F)
    k = best_compromise(ga.F)
    t1 = time.perf_counter()
    radius = {}
    if study.refine_front:
        rr = refine_radius(study.robustness, study.model, front["sop_kva"], front["cb_units"],
                           np.stack([front["offset"], front["utilization"]], -1))
        radius = {"radius": rr.radius, "first_order": rr.first_order, "worst_ratio": rr.worst_ratio,
                  "worst_delta": rr.worst_delta}
    t_rob = time.perf_counter() - t1
    cases = _case_rows(study, problem, ga.X[k])
    t_s2 = time.perf_counter()
    s2 = {}
    if stage2 and study.stage2 is not None and study.stage2.enabled:
        rows = np.arange(len(ga.X)) if study.stage2.plans == "front" else np.asarray([k])
        ga_op = sum(front[f"cost_{t}"] for t in OPERATION_TERMS)
        s2 = stage2_front(study.model, study.costs, study.stage2, ga.X, ga_op, rows, progress=progress)
    t_s2 = time.perf_counter() - t_s2
    t2 = time.perf_counter()
    cont = _run_contingency(study, progress) if (contingency and study.contingency is not None) else {}
    timings = {"ga": t_ga, "robustness_refine": t_rob, "stage2": t_s2, "contingency": time.perf_counter() - t2,
               "total": time.perf_counter() - t0}
    return AllocationStudyResult(study=study, ga=ga, front=front, compromise=k, radius=radius, cases=cases,
                                 contingency=cont, timings=timings, stage2=s2)
