"""A planning study from a config mapping (a parsed TOML file): sample, reduce, plan, compare, validate.

The library reads no files: ``sopjax plan CONFIG.toml`` parses the TOML and calls
:func:`study_from_config`, then :func:`run_planning_study`. Layout (every key
optional unless marked; see ``configs/ieee33_planning.toml``)::

    title = "..."
    [network]
    case = "ieee33"                     # required: built-in name or .m path
    v_min_pu = 0.95, v_max_pu = 1.05    # planning voltage limits (default: the case's)
    pv = [{bus = 18, s_rated_kva = 500, pf = 1.0}, ...]
    [profiles]
    periods = 24
    load = "rts79_summer_weekday"       # a sopjax.sampling load shape or `periods` numbers
    pv = "clear_sky"                    # or `periods` numbers in [0, 1]
    latitude_deg = 30.0, day_of_year = 172, pv_peak_frac = 1.0
    [uncertainty]                       # sopjax.sampling.UncertaintyModel.from_dict (no load_profile)
    [scenarios]
    samples = 500, count = 4, seed = 0, representative = "mean"
    [sop]
    candidates = "ties"                 # or [[8, 21], [12, 22]] (case bus ids)
    s_max_kva = 2000, loss = 0.02, max_sops = 3, budget = 1.0e6
    [costs]                             # sopjax.problems.planning.CostModel fields
    [solver]
    method = "bnb"                      # "bnb" | "enumerate" | "monolithic"
    tol = 1e-6, mip_gap = 1e-6, time_limit_s = 600, warm_start = true, heuristics = "off"
    [baselines]
    fixed_size_kva = 1000, standard_unit_kva = 250
    [validation]
    samples = 1000, seed = 1       # days scored with the lookup dispatch rule (and without SOP)
    optimal_days = 50              # the first of them also scored with optimal hourly dispatch
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from sopjax.config import (
    ConfigError, boolean, choice, integer, integer_list, number, number_list, parse_network, seed, string, sub_table,
    table,
)
from sopjax.network_builder import build_network
from sopjax.problems.planning.costs import CostModel
from sopjax.problems.planning.problem import PlanningProblem, make_planning_problem
from sopjax.problems.planning.results import PlanResult
from sopjax.problems.planning.scenarios import reduce_scenarios
from sopjax.problems.planning.validation import ValidationResult, validate_plan

__all__ = ["PlanningStudy", "PlanningStudyResult", "study_from_config", "run_planning_study"]

#: bounds that keep a config from asking for more memory than a study can use
MAX_PERIODS = 1440  # one-minute periods of a day
MAX_DAYS = 100_000  # sampled days (scenario reduction, validation)

_SECTIONS = {
    "title": None, "description": None,
    "network": {"case", "v_min_pu", "v_max_pu", "pv"},
    "profiles": {"periods", "load", "pv", "latitude_deg", "day_of_year", "pv_peak_frac"},
    "uncertainty": None,
    "scenarios": {"samples", "count", "seed", "representative"},
    "sop": {"candidates", "s_max_kva", "loss", "max_sops", "budget"},
    "costs": {f.name for f in dataclasses.fields(CostModel)},
    "solver": {"method", "tol", "mip_gap", "time_limit_s", "warm_start", "heuristics"},
    "baselines": {"fixed_size_kva", "standard_unit_kva"},
    "validation": {"samples", "seed", "optimal_days"},
}


@dataclasses.dataclass(frozen=True)
class PlanningStudy:
    """A validated planning study (everything needed to rerun it)."""

    title: str
    problem: PlanningProblem
    samples: dict
    solver: dict
    baselines: dict
    validation: dict
    uncertainty: Any
    pv_forecast_pu: np.ndarray
    config: dict


@dataclasses.dataclass
class PlanningStudyResult:
    """Outcome of :func:`run_planning_study`."""

    study: PlanningStudy
    plan: PlanResult
    baselines: dict
    rows: list
    comparison: dict
    validation: dict
    timings: dict

    def as_dict(self) -> dict:
        p = self.study.problem
        return {
            "title": self.study.title,
            "case": p.net.name,
            "candidates": p.labels,
            "scenarios": {"count": p.scenarios.n_scenarios, "periods": p.scenarios.n_periods,
                          "probability": p.scenarios.probability.tolist(),
                          "samples": self.study.samples["samples"]},
            "plan": self.plan.as_dict(),
            "baselines": self.rows,
            "comparison": self.comparison,
            "validation": {name: {rule: v.summary() for rule, v in d.items()}
                           for name, d in self.validation.items()},
            "timings_s": self.timings,
            "currency": p.costs.currency,
        }


def _section(cfg: Mapping, name: str) -> dict:
    return dict(sub_table(cfg, name, f"[{name}]", allowed=_SECTIONS[name]))


def parse_profiles(prof: Mapping, net) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``[profiles]`` table: the load shape (period,) and the PV forecast (period, pv) in p.u.

    Keys: ``periods`` (24), ``load`` (a :mod:`sopjax.sampling.profiles` shape name or ``periods``
    numbers), ``pv`` (``"clear_sky"`` or ``periods`` numbers in [0, 1]), ``latitude_deg``,
    ``day_of_year``, ``pv_peak_frac``. The forecast is None without PV units.

    Raises:
        ConfigError: naming the key at fault.
    """
    from sopjax.sampling.profiles import clear_sky_pv_profile, daily_profile, load_profile, pv_forecast

    periods = integer(prof.get("periods", 24), "profiles.periods", lo=1, hi=MAX_PERIODS)
    load = prof.get("load", "rts79_summer_weekday")
    load_shape = (load_profile(load) if isinstance(load, str)
                  else np.asarray(number_list(load, "profiles.load", lo=0.0, max_len=MAX_PERIODS), float))
    load_shape = daily_profile(load_shape, name="profiles.load", periods=periods)
    pv = prof.get("pv", "clear_sky")
    if isinstance(pv, str):
        if pv != "clear_sky":
            raise ConfigError(f"profiles.pv must be 'clear_sky' or {periods} numbers, got {pv!r}")
        pv_shape = clear_sky_pv_profile(
            latitude_deg=number(prof.get("latitude_deg", 30.0), "profiles.latitude_deg", lo=-90.0, hi=90.0),
            day_of_year=integer(prof.get("day_of_year", 172), "profiles.day_of_year", lo=1, hi=366), periods=periods)
    else:
        pv_shape = daily_profile(number_list(pv, "profiles.pv", lo=0.0, max_len=MAX_PERIODS), name="profiles.pv",
                                 periods=periods)
    peak = number(prof.get("pv_peak_frac", 1.0), "profiles.pv_peak_frac", lo=0.0)
    forecast = pv_forecast(net, pv_shape, peak_frac=peak) if net.pv.count else None
    return load_shape, forecast


def study_from_config(cfg: Mapping[str, Any]) -> PlanningStudy:
    """Validate a config mapping and build the study (samples drawn and reduced here).

    Raises:
        ConfigError (alias PlanningInputError), SopjaxError: naming the section, key, bus or candidate at fault.
    """
    import jax

    from sopjax.sampling import from_dict

    table(cfg, "the planning config", allowed=_SECTIONS)
    netc = parse_network(cfg.get("network"), keys=_SECTIONS["network"])
    net = build_network(netc)

    load_shape, forecast = parse_profiles(_section(cfg, "profiles"), net)

    unc = dict(_section(cfg, "uncertainty"))
    if "load_profile" in unc:
        raise ConfigError("give the load profile as profiles.load, not uncertainty.load_profile")
    unc["load_profile"] = tuple(float(v) for v in load_shape)
    umodel = from_dict(unc)

    scc = _section(cfg, "scenarios")
    n_samples = integer(scc.get("samples", 500), "scenarios.samples", lo=1, hi=MAX_DAYS)
    count = integer(scc.get("count", 4), "scenarios.count", lo=1, hi=1000)
    scenario_seed = seed(scc.get("seed", 0), "scenarios.seed")
    if count > n_samples:
        raise ConfigError(f"scenarios.count ({count}) exceeds scenarios.samples ({n_samples})")
    draw = umodel.sample(net, forecast, key=jax.random.key(scenario_seed), n=n_samples, dtype="float64")
    scenarios = reduce_scenarios(
        np.asarray(draw.p_load_pu), np.asarray(draw.q_load_pu), np.asarray(draw.p_pv_pu),
        count, seed=scenario_seed, representative=string(scc.get("representative", "mean"), "scenarios.representative"),
    )

    sop = _section(cfg, "sop")
    costs = CostModel(**_section(cfg, "costs"))
    optional = {k: (None if sop.get(k) is None else f(sop[k], f"sop.{k}"))
                for k, f in (("max_sops", lambda v, w: integer(v, w, lo=0)),
                             ("budget", lambda v, w: number(v, w, lo=0.0)))}
    problem = make_planning_problem(
        net, scenarios=scenarios, candidates=_candidates(sop.get("candidates", "ties")), costs=costs,
        s_max_kva=number(sop.get("s_max_kva", 2000.0), "sop.s_max_kva", positive=True),
        loss=number(sop.get("loss", 0.02), "sop.loss", lo=0.0, hi=1.0),
        v_min_pu=netc.v_min_pu, v_max_pu=netc.v_max_pu, **optional,
    )

    solver = _section(cfg, "solver")
    from sopjax.problems.planning.solve import METHODS

    method = choice(solver.get("method", "bnb"), "solver.method", METHODS)
    solver = _solver_section(solver)
    base = _section(cfg, "baselines")
    val = _section(cfg, "validation")
    val_n = integer(val.get("samples", 1000), "validation.samples", lo=0, hi=MAX_DAYS)
    opt_days = integer(val.get("optimal_days", min(50, val_n)), "validation.optimal_days", lo=0)
    if opt_days > val_n:
        raise ConfigError(f"validation.optimal_days ({opt_days}) exceeds validation.samples ({val_n})")
    val_seed = seed(val.get("seed", scenario_seed + 1), "validation.seed")
    if val_n and val_seed == scenario_seed:
        raise ConfigError("validation.seed must differ from scenarios.seed (out-of-sample days)")
    return PlanningStudy(
        title=string(cfg.get("title", ""), "title", allow_empty=True), problem=problem,
        samples={"samples": n_samples, "seed": scenario_seed},
        solver={"method": method, **{k: v for k, v in solver.items() if k != "method"}},
        baselines={k: number(base.get(k, d), f"baselines.{k}", positive=True)
                   for k, d in (("fixed_size_kva", 1000.0), ("standard_unit_kva", 250.0))},
        validation={"samples": val_n, "seed": val_seed, "optimal_days": opt_days},
        uncertainty=umodel, pv_forecast_pu=forecast, config=dict(cfg),
    )


def _candidates(value: Any) -> str | list[tuple[int, int]]:
    """``sop.candidates``: ``"ties"`` or a list of [bus_i, bus_j] pairs (case bus ids)."""
    if isinstance(value, str):
        return choice(value, "sop.candidates", ("ties",))
    if not isinstance(value, list) or not value:
        raise ConfigError(f"sop.candidates must be 'ties' or a non-empty list of [bus_i, bus_j] pairs, got {value!r}"[:200])
    pairs = [integer_list(v, f"sop.candidates[{k}]") for k, v in enumerate(value)]
    for k, pair in enumerate(pairs):
        if len(pair) != 2:
            raise ConfigError(f"sop.candidates[{k}] must hold two bus ids, got {pair}")
    return [(a, b) for a, b in pairs]


def _solver_section(s: Mapping[str, Any]) -> dict:
    """``[solver]`` with its values checked (types and ranges, key paths in messages)."""
    out = dict(s)
    for key, check in (("tol", lambda v, w: number(v, w, positive=True, hi=0.1)),
                       ("mip_gap", lambda v, w: number(v, w, lo=0.0, hi=1.0)),
                       ("time_limit_s", lambda v, w: number(v, w, positive=True)),
                       ("warm_start", boolean), ("heuristics", string)):
        if out.get(key) is not None:
            out[key] = check(out[key], f"solver.{key}")
    return out


def _solve_options(study: PlanningStudy, method: str) -> dict:
    s = study.solver
    if method == "monolithic":
        opts = {"mip_gap": float(s.get("mip_gap", 1e-6)), "warm_start": bool(s.get("warm_start", True)),
                "heuristics": s.get("heuristics", "off")}
        if s.get("time_limit_s") is not None:
            opts["time_limit"] = float(s["time_limit_s"])
        return opts
    if method == "bnb":
        return {"tol": float(s.get("tol", 1e-6))}
    return {}


def run_planning_study(study: PlanningStudy, *, method: str | None = None, validate: bool = True,
                       log=None) -> PlanningStudyResult:
    """Solve the plan, the baselines, the comparison and the out-of-sample validation.

    Args:
        study: from :func:`study_from_config`.
        method: override ``solver.method``.
        validate: run the out-of-sample validation (``validation.samples`` days).
        log: optional callable receiving progress lines.
    """
    import jax

    from sopjax.problems.planning import baselines as bl
    from sopjax.problems.planning.solve import solve_plan
    from sopjax.solvers.backends.solve import InfeasibleError

    say = log or (lambda msg: None)
    problem = study.problem
    method = method or study.solver["method"]
    timings = {}
    t0 = time.perf_counter()
    plan = solve_plan(problem, method, **_solve_options(study, method))
    timings["plan"] = time.perf_counter() - t0
    say(f"plan: {method} {plan.stats.status} in {plan.stats.time_s:.1f} s")

    t0 = time.perf_counter()
    baselines: dict[str, Any] = {"no SOP": bl.no_sop(problem)}
    for name, make in (
        ("fixed size", lambda: bl.fixed_size(problem, study.baselines["fixed_size_kva"])),
        ("standard units", lambda: bl.standard_units(problem, plan, study.baselines["standard_unit_kva"])),
    ):
        try:
            baselines[name] = make()
        except InfeasibleError as e:
            baselines[name] = None
            say(f"baseline {name}: infeasible ({e})")
    timings["baselines"] = time.perf_counter() - t0
    rows = [bl.plan_row("optimal", plan)] + [bl.plan_row(k, v) for k, v in baselines.items() if v is not None]
    comp = bl.comparison(rows)

    validation: dict[str, dict[str, ValidationResult]] = {}
    if validate and study.validation["samples"]:
        t0 = time.perf_counter()
        key = jax.random.key(study.validation["seed"])
        draw = study.uncertainty.sample(problem.net, study.pv_forecast_pu, key=key,
                                        n=study.validation["samples"], dtype="float64")
        arrays = (np.asarray(draw.p_load_pu), np.asarray(draw.q_load_pu), np.asarray(draw.p_pv_pu))
        plans = {"optimal": plan, **{k: v for k, v in baselines.items() if isinstance(v, PlanResult)}}
        k = study.validation["optimal_days"]
        validation["no SOP"] = {"none": validate_plan(problem, None, *arrays, name="no SOP")}
        if k:
            subset = tuple(a[:k] for a in arrays)
            validation["no SOP"]["none_subset"] = validate_plan(problem, None, *subset, name="no SOP")
        for name, p in plans.items():
            validation[name] = {"lookup": validate_plan(problem, p, *arrays, dispatch="lookup", name=name)}
            if k:
                validation[name]["optimal"] = validate_plan(problem, p, *subset, dispatch="optimal",
                                                            name=name)
        timings["validation"] = time.perf_counter() - t0
        say(f"validation: {study.validation['samples']} days in {timings['validation']:.1f} s")
    return PlanningStudyResult(study, plan, baselines, rows, comp, validation, timings)
