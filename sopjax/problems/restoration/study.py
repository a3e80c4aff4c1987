"""A restoration study from a parsed config: plan (MISOCP), exact re-check, Monte Carlo score.

The config mapping (a parsed TOML file; the library never reads files) has the
same ``[network]``, ``[fault]``, ``[uncertainty]`` and ``[montecarlo]`` tables as
``sopjax montecarlo`` configs, plus::

    [network]
    v_slack_pu = 1.05         # optional substation voltage (default: the case's)

    [restoration]
    switchable = "all"        # "all" | "ties" | "none" | [branch numbers]
    keep_open = [33]          # branches that stay open (a tie replaced by an SOP)
    use_sop = true
    eta_d = 100.0             # weight of restored load
    eta_l = 1.0               # weight of line + converter losses
    u_set_pu = 1.0            # minimum Vf-side voltage
    load_blocks = 1           # pickup blocks per bus
    max_switch_operations = 4 # optional
    v_min_pu = 0.95
    v_max_pu = 1.05
    i_max_pu = 0.05           # optional, per branch current limit (p.u.)
    uncertainty = "forecast"  # "forecast" | "quantile" | "scenarios"
    scenarios = 10
    seed = 0
    formulation = "soc"       # "soc" | "lindistflow"
    naive = false             # the naive baseline formulation
    gap_threshold = 1e-3      # relative SOC gap that flags a branch

    [solver]
    name = "scip"             # any installed cvxpy solver; default SCIP / HiGHS
    time_limit = 600
    mip_gap = 1e-4

The PV forecast (``[uncertainty] pv_forecast_kw``), its error
(``pv.sigma_frac``) and bound handling (``pv.truncation``: ``"clip"`` = output
above the rating curtailed to it, ``"inverse_cdf"`` = the normal truncated to
``[0, rating]``; docs/sampling.md), the load error (``load.sigma_frac``) and the confidence
(``[montecarlo] confidence``) feed both the planner (quantile / scenarios) and
the Monte Carlo score, so that a plan is judged under the uncertainty it was
planned for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from sopjax.config import (
    ConfigError, boolean, choice, integer, integer_list, number, number_list, parse_network, string, sub_table, table,
)
from sopjax.network import Network
from sopjax.network_builder import build_network
from sopjax.solvers.options import NAIVE, TIGHT
from sopjax.problems.restoration.check import exact_check
from sopjax.problems.restoration.results import RestorationPlan
from sopjax.problems.restoration.settings import UNCERTAINTY_MODES, RestorationSettings, with_limits
from sopjax.problems.restoration.solve import solve_restoration

__all__ = ["RestorationStudy", "study_from_config", "run_restoration_study", "score_plans", "network_from_config",
           "pv_summary"]

_TOP = {"title", "network", "fault", "restoration", "solver", "uncertainty", "montecarlo", "study", "sweep", "case",
        "experiment"}
#: the [network] keys a restoration study uses
NETWORK_KEYS = {"case", "pv", "sop", "capacitor", "v_slack_pu"}
_RESTORATION = {
    "switchable", "keep_open", "use_sop", "eta_d", "eta_l", "u_set_pu", "load_blocks", "max_switch_operations",
    "v_min_pu", "v_max_pu", "i_max_pu", "uncertainty", "scenarios", "seed", "formulation", "naive",
    "gap_threshold", "quantile_sides", "shed_outside", "v_margin_pu",
}
_SOLVER = {"name", "time_limit", "mip_gap", "threads", "scip_params"}
_MC = {"samples", "seed", "confidence", "ci_level", "v_min_pu", "v_max_pu", "power_flow", "island_overload",
       "chunk_size", "enabled"}


def network_from_config(cfg: Mapping) -> Network:
    """The network of ``[network]``: case, substation voltage, PV units and SOPs (user units, case bus ids)."""
    return build_network(parse_network(cfg.get("network"), keys=NETWORK_KEYS))


@dataclasses.dataclass(frozen=True)
class RestorationStudy:
    """Everything a restoration study needs (built by :func:`study_from_config`)."""

    title: str
    net: Network
    settings: RestorationSettings
    solver: dict
    gap_threshold: float
    montecarlo: dict | None
    uncertainty: dict


def _sigma(unc: Mapping, key: str) -> float:
    if key not in unc or unc[key] in (None, False, "none"):
        return 0.0
    t = sub_table(unc, key, f"[uncertainty] {key}")
    return number(t.get("sigma_frac", 0.1 if key == "pv" else 0.05), f"[uncertainty] {key}.sigma_frac", lo=0.0)


#: [restoration] key -> its check (value, key path) -> typed value
_TYPED = {
    "keep_open": lambda v, w: tuple(integer_list(v, w)),
    "use_sop": boolean,
    "eta_d": lambda v, w: number(v, w, positive=True),
    "eta_l": lambda v, w: number(v, w, lo=0.0),
    "u_set_pu": lambda v, w: number(v, w, positive=True, hi=2.0),
    "load_blocks": lambda v, w: integer(v, w, lo=1, hi=100),
    "max_switch_operations": lambda v, w: integer(v, w, lo=0),
    "v_min_pu": lambda v, w: number(v, w, positive=True, hi=2.0),
    "v_max_pu": lambda v, w: number(v, w, positive=True, hi=2.0),
    "uncertainty": lambda v, w: choice(v, w, UNCERTAINTY_MODES),
    "scenarios": lambda v, w: integer(v, w, lo=1, hi=10_000),
    "seed": lambda v, w: integer(v, w, lo=0, hi=2**63 - 1),
    "formulation": lambda v, w: choice(v, w, ("soc", "lindistflow")),
    "naive": boolean,
    "gap_threshold": lambda v, w: number(v, w, positive=True),
    "quantile_sides": lambda v, w: choice(v, w, ("both", "low")),
    "shed_outside": boolean,
    "v_margin_pu": lambda v, w: number(v, w, lo=0.0),
}


def _switchable(value: Any) -> str | tuple[int, ...]:
    if isinstance(value, str):
        return choice(value, "[restoration] switchable", ("all", "ties", "none"))
    return tuple(integer_list(value, "[restoration] switchable"))


def _i_max(value: Any) -> float | tuple[float, ...] | None:
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if value is None else number(value, "[restoration] i_max_pu", positive=True)
    return tuple(number_list(value, "[restoration] i_max_pu", positive=True))


def study_from_config(cfg: Mapping[str, Any], **overrides) -> RestorationStudy:
    """Build a :class:`RestorationStudy` from a parsed config; ``overrides`` replace ``[restoration]`` keys.

    Raises:
        ConfigError: unknown keys, missing fault (named). SopjaxError: bad buses, branches, settings (named).
    """
    table(cfg, "config", allowed=_TOP)
    net = network_from_config(cfg)
    fault = sub_table(cfg, "fault", "[fault]", allowed={"open"})
    faulted = tuple(integer_list(fault.get("open"), "[fault] open"))
    if not faulted:
        raise ConfigError("[fault] needs 'open' = [faulted branch numbers]")
    rest = dict(sub_table(cfg, "restoration", "[restoration]", allowed=_RESTORATION))
    rest.update({k: v for k, v in overrides.items() if v is not None})
    solver = dict(sub_table(cfg, "solver", "[solver]", allowed=_SOLVER))
    unc = dict(sub_table(cfg, "uncertainty", "[uncertainty]"))
    mc = dict(sub_table(cfg, "montecarlo", "[montecarlo]", allowed=_MC)) if "montecarlo" in cfg else None
    rest = {k: (_TYPED[k](v, f"[restoration] {k}") if k in _TYPED else v) for k, v in rest.items()}
    solver = _solver_table(solver)
    mc_settings = None
    if mc is not None:
        boolean(mc.get("enabled", True), "[montecarlo] enabled")
        mc_settings = montecarlo_settings(mc, faulted, rest.get("v_min_pu"), rest.get("v_max_pu"))
    from sopjax.sampling import UncertaintyModel

    # checked before solving; its PV model is the one the planner's quantiles/scenarios use
    unc_model = UncertaintyModel.from_dict({k: v for k, v in unc.items() if k != "pv_forecast_kw"})
    kva = net.base_mva * 1e3
    fc = None
    if "pv_forecast_kw" in unc:
        fc = tuple(x / kva for x in number_list(unc["pv_forecast_kw"], "[uncertainty] pv_forecast_kw",
                                                max_len=net.pv.count + 1))
    options = NAIVE if rest.pop("naive", False) else TIGHT
    options = dataclasses.replace(options, formulation=rest.pop("formulation", "soc"))
    gap_threshold = rest.pop("gap_threshold", 1e-3)
    settings = RestorationSettings(
        faulted=faulted,
        switchable=_switchable(rest.pop("switchable", "all")),
        keep_open=rest.pop("keep_open", ()),
        pv_forecast_pu=fc,
        pv_sigma_frac=_sigma(unc, "pv"),
        pv_model=unc_model.pv if net.pv.count else None,
        load_sigma_frac=_sigma(unc, "load"),
        confidence=mc_settings.confidence if mc_settings is not None else 0.9921,
        i_max_pu=_i_max(rest.pop("i_max_pu", None)),
        options=options,
        **{k: v for k, v in rest.items()},
    )
    settings.validate(net)
    return RestorationStudy(
        title=string(cfg.get("title", "restoration"), "title", allow_empty=True),
        net=net,
        settings=settings,
        solver=solver,
        gap_threshold=gap_threshold,
        montecarlo=mc if mc is None or mc.get("enabled", True) else None,
        uncertainty=unc,
    )


def _solver_table(solver: Mapping) -> dict:
    """``[solver]`` with its values checked (name, time_limit s, mip_gap, threads; scip_params a table)."""
    out = dict(solver)
    if "name" in out:
        out["name"] = string(out["name"], "[solver] name")
    if "time_limit" in out:
        out["time_limit"] = number(out["time_limit"], "[solver] time_limit", positive=True)
    if "mip_gap" in out:
        out["mip_gap"] = number(out["mip_gap"], "[solver] mip_gap", lo=0.0, hi=1.0)
    if "threads" in out:
        out["threads"] = integer(out["threads"], "[solver] threads", lo=1, hi=1024)
    if "scip_params" in out:
        out["scip_params"] = dict(table(out["scip_params"], "[solver] scip_params"))
    return out


def montecarlo_settings(mc: Mapping, fault_open, v_min_pu: float | None, v_max_pu: float | None):
    """The Monte Carlo settings of a restoration study's ``[montecarlo]`` (parsed as ``sopjax montecarlo``
    parses its own table); the voltage limits default to the restoration's."""
    from sopjax.montecarlo.study import settings_from_config

    mc = {k: v for k, v in mc.items() if k != "enabled"}
    mc.setdefault("v_min_pu", v_min_pu or 0.95)
    mc.setdefault("v_max_pu", v_max_pu or 1.05)
    return settings_from_config(mc, fault_open=fault_open)[0]


def solve_study(study: RestorationStudy, *, time_limit: float | None = None) -> tuple[RestorationPlan, Any]:
    """Solve the study's restoration problem with its solver settings."""
    s = study.solver
    return solve_restoration(
        study.net,
        study.settings,
        solver=s.get("name"),
        time_limit=time_limit if time_limit is not None else s.get("time_limit"),
        mip_gap=s.get("mip_gap", 1e-4),
        scip_params=s.get("scip_params"),
        gap_threshold=study.gap_threshold,
    )


def score_plans(
    net: Network,
    plans: list[tuple[str, RestorationPlan]],
    settings: RestorationSettings,
    uncertainty: Mapping,
    montecarlo: Mapping,
    *,
    progress: bool | None = False,
):
    """Score plans with the Monte Carlo engine under the study's uncertainty.

    Returns:
        (xarray Dataset of the run, {name: summary dict}) where each summary holds
        ``recovery_nominal`` (at the forecast), ``recovery_mean``, ``recovery_guaranteed``
        (reached with probability ``confidence``), ``p_violation`` and the buses whose
        voltage leaves the limits in more than 1 % of the samples.
    """
    from sopjax.montecarlo import ModelSource, run_montecarlo
    from sopjax.montecarlo.summary import value_or_none
    from sopjax.sampling import UncertaintyModel

    netl = with_limits(net, settings)
    strategies = [p.strategy(netl, name) for name, p in plans]
    unc = {k: v for k, v in uncertainty.items() if k != "pv_forecast_kw"}
    model = UncertaintyModel.from_dict(unc)
    forecast = np.asarray(settings.pv_forecast_pu if settings.pv_forecast_pu is not None else net.pv.s_rated_pu,
                          float)
    ms = montecarlo_settings(montecarlo, tuple(settings.faulted) + tuple(settings.keep_open), settings.v_min_pu,
                             settings.v_max_pu)
    n = ms.n_samples
    source = ModelSource(netl, model, forecast, seed=int(montecarlo.get("seed", 0)), n_samples=n,
                         description={"model": model.to_dict()})
    ds = run_montecarlo(netl, strategies, source, ms, progress=progress)
    out = {}
    for name, _ in plans:
        sub = ds.sel(strategy=name)
        pv = np.asarray(sub["p_bus_violation"].values, float)
        out[name] = {
            # None where a statistic is undefined (every sample failed: "failed" == "samples")
            "recovery_nominal": value_or_none(sub["recovery_ratio_nominal"].values),
            "recovery_mean": value_or_none(sub["recovery_ratio_mean"].values),
            "recovery_guaranteed": value_or_none(sub["recovery_ratio_guaranteed"].values),
            "confidence": ms.confidence,
            "p_voltage_violation": value_or_none(sub["p_voltage_violation"].values),
            "p_any_violation": value_or_none(sub["p_any_violation"].values),
            "vmin_mean_pu": value_or_none(sub["vmin_pu_mean"].values),
            "buses_violating_1pct": [int(b) for b, p in zip(ds["bus"].values, pv) if p > 0.01],
            "samples": int(ds.attrs["n_samples"]),
            "failed": int(sub["n_failed"].values),
        }
    return ds, out


def pv_summary(net: Network, settings: RestorationSettings) -> dict | None:
    """The PV distribution the plan and the score assume (kW): parent, bounded mean/std, the planner's quantiles.

    None when the network has no PV unit.
    """
    if not net.pv.count:
        return None
    from sopjax.problems.restoration.periods import forecast_pu, pv_model
    from sopjax.sampling import pv_distribution

    c = settings.confidence
    model = pv_model(settings)
    d = pv_distribution(model, forecast_pu(net, settings), net.pv.s_rated_pu, net.pv.pf, levels=(1 - c, 0.5, c))
    return {"model": model.to_dict(), **d.to_dict(scale=net.base_mva * 1e3)}


def run_restoration_study(study: RestorationStudy, *, with_montecarlo: bool = True) -> dict:
    """Plan, re-check and (if configured) score one study; a JSON-able dict."""
    plan, model = solve_study(study)
    check = exact_check(study.net, plan, study.settings, model=model)
    out = {
        "title": study.title,
        "network": study.net.name,
        "faulted": list(study.settings.faulted),
        "uncertainty": study.settings.uncertainty,
        "pv_distribution_kw": pv_summary(study.net, study.settings),
        "plan": plan.as_dict(study.net),
        "exact_check": {k: v for k, v in check.items() if k != "vm_pu"},
    }
    if with_montecarlo and study.montecarlo is not None:
        _, score = score_plans(study.net, [("plan", plan)], study.settings, study.uncertainty, study.montecarlo)
        out["montecarlo"] = score["plan"]
    return out
