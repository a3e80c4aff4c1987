"""Sweep and capacity-optimization configs: a parsed TOML mapping -> validated spec.

The library reads no files; ``sopjax sweep CONFIG.toml`` parses the TOML and
calls :func:`spec_from_config`. Layout (keys optional unless marked)::

    title = "..."
    kind = "sweep"                         # or "optimization"
    [network]                              # required
    case = "ieee33"                        # required
    pv  = [{bus = 7, s_rated_kva = 300, pf = 0.95}, ...]   # the PV fleet's *shape*
    sop = [{pair = [12, 22], s_rated_kva = 1000, loss = 0.02}, ...]   # required
    [dispatch]
    v_min_pu = 0.90, v_max_pu = 1.10, voltage_weight = 0.0
    engine = "jax"                         # or "cvxpylayers", or "learned" (sopjax.surrogates.sweep):
    checkpoint = "results/ieee33_dispatch" #   a learned dispatch (engine = "learned" only)
    compare = true                         #   also the interior point: side by side, gap per point
    [uncertainty]                          # sopjax.sampling.UncertaintyModel.from_dict,
    pv_forecast_frac = 1.0                 #   plus the forecast as a fraction of PV rating
    pv = {kind = "normal", sigma_frac = 0.1}
    load = {kind = "normal", sigma_frac = 0.1}
    [sampling]
    samples = 64, seed = 0
    [baseline]                             # values of the parameters that are not swept
    capacity_mva = 1.0, pv_penetration = 0.4, load_scale = 1.0
    [[axis]]                               # kind = "sweep": one or two axes
    name = "capacity_mva"                  # a parameter: see PARAMETERS
    values = [0, 0.5, 1.0]                 # or start / stop / num
    quantities = ["losses_kw", "vmin_pu", "restored_kw"]
    [restoration]                          # optional: restorable load by the Monte Carlo engine
    strategy = "SOP + reconfiguration"     # which [[restoration.strategy]] is reported
    fault = {open = [2]}
    montecarlo = {samples = 200, v_min_pu = 0.95, ...}   # sopjax.montecarlo.study [montecarlo]
    uncertainty = {...}                    # defaults to [uncertainty] (minus pv_forecast_frac)
    [[restoration.strategy]] ...           # sopjax.strategies.config tables
    [optimization]                         # kind = "optimization"
    capacity = "common"                    # one capacity for all SOPs, or "per_sop"
    grid = {start = 0, stop = 3, num = 13} # grid search (MVA per VSC)
    steps = 300, batch = 16, learning_rate = 0.05, init_mva = 1.0, seed = 1
    [costs]                                # sopjax.problems.planning.costs.CostModel fields

PV penetration is the fleet's rated active power over the nominal active load:
``sum(s_rated * pf) / sum(P_load)``; the fleet keeps the shape of ``[network] pv``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sopjax.config import NetworkSpec, choice, number, parse_network, string, sub_table, table, table_list
from sopjax.config import seed as seed_number
from sopjax.errors import ConfigError
from sopjax.montecarlo.runner import MonteCarloSettings
from sopjax.montecarlo.study import fault_from_config, settings_from_config
from sopjax.sampling import UncertaintyModel

__all__ = ["SweepConfigError", "SweepSpec", "Axis", "OptimizationSpec", "RestorationSpec", "spec_from_config",
           "PARAMETERS", "QUANTITIES"]

# The old name of the one config error, kept as an alias because users and tests catch it.
SweepConfigError = ConfigError

#: sweepable parameters -> (units, description)
PARAMETERS: dict[str, tuple[str, str]] = {
    "capacity_mva": ("MVA", "capacity of every SOP VSC"),
    "pv_penetration": ("1", "PV rated active power / nominal active load"),
    "load_scale": ("1", "factor on all nominal loads"),
}

#: quantities -> (units, description, source)
QUANTITIES: dict[str, tuple[str, str, str]] = {
    "losses_kw": ("kW", "expected line + converter losses at the optimal SOP dispatch", "dispatch"),
    "line_loss_kw": ("kW", "expected line losses at the optimal SOP dispatch", "dispatch"),
    "converter_loss_kw": ("kW", "expected SOP converter losses at the optimal dispatch", "dispatch"),
    "vmin_pu": ("pu", "expected lowest bus voltage at the optimal SOP dispatch", "dispatch"),
    "objective_kw": ("kW", "expected dispatch objective (losses + voltage penalty)", "dispatch"),
    "restored_kw": ("kW", "expected restored outage-area load (Monte Carlo restoration)", "montecarlo"),
    "recovery_ratio": ("1", "expected recovery ratio (Monte Carlo restoration)", "montecarlo"),
    "restoration_vmin_pu": ("pu", "expected lowest voltage after restoration (Monte Carlo)", "montecarlo"),
    "restoration_loss_kw": ("kW", "expected line + SOP losses after restoration (Monte Carlo)", "montecarlo"),
}

_TOP = {"title", "description", "kind", "network", "dispatch", "uncertainty", "sampling", "baseline", "axis",
        "quantities", "restoration", "optimization", "costs"}
_DISPATCH = {"v_min_pu", "v_max_pu", "voltage_weight", "engine", "tol", "max_iter", "checkpoint", "compare"}
#: dispatch engines: the interior point, the cvxpylayers layer, a learned dispatch + repair
ENGINES = ("jax", "cvxpylayers", "learned")
_SAMPLING = {"samples", "seed"}
_RESTORATION = {"strategy", "fault", "montecarlo", "uncertainty", "report"}
_OPT = {"capacity", "grid", "steps", "batch", "learning_rate", "init_mva", "seed", "max_mva"}
_COSTS = {"cost_per_kva", "fixed_cost_per_site", "discount_rate", "lifetime_years", "om_fraction",
          "energy_price_per_kwh", "days_per_year", "period_hours", "currency"}


#: the [network] keys a sweep uses
NETWORK_KEYS = {"case", "pv", "sop"}


#: grid points per axis (each point is a batch of dispatch solves)
MAX_POINTS = 10_000


def _grid(t: Mapping, where: str, *, lo: float | None = None) -> np.ndarray:
    """Values from ``values = [...]`` or ``start``/``stop``/``num``."""
    if "values" in t:
        vals = t["values"]
        if not isinstance(vals, Sequence) or isinstance(vals, str) or len(vals) == 0:
            raise ConfigError(f"{where}: values must be a non-empty list of numbers")
        if len(vals) > MAX_POINTS:
            raise ConfigError(f"{where}: {len(vals)} values, at most {MAX_POINTS} per axis")
        out = np.asarray([number(v, f"{where} value {k}", lo=lo) for k, v in enumerate(vals)])
    else:
        missing = [k for k in ("start", "stop", "num") if k not in t]
        if missing:
            raise ConfigError(
                f"{where} needs 'values' or 'start', 'stop' and 'num' (missing {missing[0]!r})"
            )
        a = number(t["start"], f"{where} start", lo=lo)
        b = number(t["stop"], f"{where} stop", lo=lo)
        n = number(t["num"], f"{where} num", lo=1, hi=MAX_POINTS, integer=True)
        out = np.linspace(a, b, n)
    if np.unique(out).size != out.size:
        raise ConfigError(f"{where}: values must be distinct")
    return out


@dataclasses.dataclass(frozen=True)
class Axis:
    name: str
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class OptimizationSpec:
    """Gradient-based capacity optimization (``kind = "optimization"``)."""

    capacity: str  # "common" or "per_sop"
    grid_mva: np.ndarray
    steps: int
    batch: int
    learning_rate: float
    init_mva: float
    seed: int
    max_mva: float
    costs: Any  # sopjax.problems.planning.costs.CostModel


@dataclasses.dataclass(frozen=True)
class RestorationSpec:
    """Monte Carlo restoration at every grid point (the ``[restoration]`` table).

    Attributes:
        strategies: the ``[[restoration.strategy]]`` tables; built into strategies at each
            grid point, because a greedy pickup depends on the network there.
        report: the name of the strategy whose quantities are reported.
        settings: Monte Carlo settings (the faulted branches included).
        seed: PRNG seed of the Monte Carlo samples.
        uncertainty: PV and load uncertainty of the Monte Carlo samples.
    """

    strategies: tuple[Mapping[str, Any], ...]
    report: str
    settings: MonteCarloSettings
    seed: int
    uncertainty: UncertaintyModel


def _restoration(value: Any, sweep_uncertainty: Mapping) -> RestorationSpec:
    r = table(value, "[restoration]", allowed=_RESTORATION)
    strategies = table_list(r.get("strategy"), "[[restoration.strategy]]")
    if not strategies:
        raise ConfigError("[restoration] needs at least one [[restoration.strategy]]")
    names = [s.get("name") for s in strategies]
    report = r.get("report", names[-1])
    if report not in names:
        raise ConfigError(f"[restoration] report = {report!r} is not a strategy name; names: {names}")
    fault_open = fault_from_config(r.get("fault"), "[restoration] fault")
    settings, seed = settings_from_config(r.get("montecarlo"), fault_open=fault_open,
                                          where="[restoration] montecarlo")
    unc = dict(table(r.get("uncertainty", sweep_uncertainty), "[restoration] uncertainty"))
    unc.pop("pv_forecast_frac", None)
    if "pv_forecast_kw" in unc:
        raise ConfigError("[restoration] uncertainty takes no pv_forecast_kw: the PV forecast is "
                          "[uncertainty] pv_forecast_frac of the (scaled) PV fleet")
    return RestorationSpec(strategies=tuple(strategies), report=report, settings=settings, seed=seed,
                           uncertainty=UncertaintyModel.from_dict(unc))


#: an SOP capacity (kVA per VSC) that no strategy's set-point exceeds: the static check below
#: separates a bad strategy from an SOP too small for its island (which the sweep scores without it)
LARGE_SOP_KVA = 1e5


def check_strategies(network: NetworkSpec, r: RestorationSpec) -> None:
    """Check the ``[[restoration.strategy]]`` tables before any work: branches, SOP names, modes,
    U_set against the bus limits, topology, on the configured network with 100 MVA SOPs.

    The greedy pickup, which depends on each grid point's PV and SOP capacity, runs later.

    Raises:
        StrategyError / NetworkError / TopologyError: naming the strategy and element at fault.
    """
    from sopjax.network_builder import build_network
    from sopjax.strategies import compile_strategies, strategy_from_config

    net = build_network(network.scaled(sop_kva=LARGE_SOP_KVA))
    greedy_keys = ("pickup", "pickup_margin_pu", "pickup_capacity_margin")
    strategies = []
    for t in r.strategies:
        static = t if not (isinstance(t.get("pickup"), str) and t["pickup"].lower() == "greedy") else {
            k: v for k, v in t.items() if k not in greedy_keys}
        strategies.append(strategy_from_config(net, static, fault_open=r.settings.fault_open))
    compile_strategies(net, strategies, fault_open=r.settings.fault_open)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep / optimization spec (the network is built by :mod:`sopjax.sweeps.scenario`)."""

    title: str
    kind: str
    network: NetworkSpec
    v_min_pu: float
    v_max_pu: float
    voltage_weight: float
    engine: str
    checkpoint: str | None
    compare: bool
    tol: float
    max_iter: int
    uncertainty: dict
    pv_forecast_frac: float
    samples: int
    seed: int
    baseline: dict[str, float]
    axes: tuple[Axis, ...]
    quantities: tuple[str, ...]
    restoration: RestorationSpec | None
    optimization: OptimizationSpec | None
    config: dict


def spec_from_config(
    cfg: Mapping[str, Any], *, samples: int | None = None, engine: str | None = None
) -> SweepSpec:
    """Validate a parsed config (see the module docstring).

    Args:
        cfg: the parsed TOML mapping.
        samples: command-line override of ``[sampling] samples``.
        engine: command-line override of ``[dispatch] engine``.

    Raises:
        ConfigError: naming the key, axis or parameter at fault.
    """
    table(cfg, "config", allowed=_TOP)
    kind = choice(cfg.get("kind", "sweep"), "kind", ("sweep", "optimization"))
    net = parse_network(cfg.get("network"), keys=NETWORK_KEYS)
    if not net.sop:
        raise ConfigError("[network] needs at least one 'sop' (the dispatch moves SOP set-points)")
    d = sub_table(cfg, "dispatch", "[dispatch]", allowed=_DISPATCH)
    eng = choice(engine or d.get("engine", "jax"), "[dispatch] engine", ENGINES)
    checkpoint = d.get("checkpoint")
    if eng == "learned":
        if checkpoint is None:
            raise ConfigError("[dispatch] engine = \"learned\" needs checkpoint = \"PATH\" (a `sopjax train` "
                              "dispatch checkpoint)")
        checkpoint = string(checkpoint, "[dispatch] checkpoint")
    elif d.get("engine", "jax") != "learned" and (checkpoint is not None or "compare" in d):
        raise ConfigError(f"[dispatch] checkpoint and compare apply to engine = \"learned\", not {eng!r}")
    compare = d.get("compare", False)
    if not isinstance(compare, bool):
        raise ConfigError(f"[dispatch] compare must be true or false, got {compare!r}")
    unc = dict(sub_table(cfg, "uncertainty", "[uncertainty]"))
    frac = number(unc.pop("pv_forecast_frac", 1.0), "[uncertainty] pv_forecast_frac", lo=0.0, hi=1.0)
    UncertaintyModel.from_dict(unc)  # checked before any work
    smp = sub_table(cfg, "sampling", "[sampling]", allowed=_SAMPLING)
    n = samples if samples is not None else smp.get("samples", 64)
    n = number(n, "[sampling] samples", lo=1, integer=True)
    seed = seed_number(smp.get("seed", 0), "[sampling] seed")

    base = dict(sub_table(cfg, "baseline", "[baseline]"))
    for k in base:
        if k not in PARAMETERS:
            raise ConfigError(
                f"[baseline] {k!r} is not a sweep parameter; parameters: {sorted(PARAMETERS)}"
            )
    baseline = {"capacity_mva": None, "pv_penetration": None, "load_scale": 1.0}
    for k, v in base.items():
        baseline[k] = number(v, f"[baseline] {k}", lo=0.0)

    axes: list[Axis] = []
    raw_axes = cfg.get("axis", [])
    if kind == "sweep":
        if not isinstance(raw_axes, Sequence) or not raw_axes:
            raise ConfigError("a sweep needs one or two [[axis]] tables (name = one of "
                                   f"{sorted(PARAMETERS)})")
        if len(raw_axes) > 2:
            raise ConfigError(f"at most two [[axis]] tables are supported, got {len(raw_axes)}")
        for k, t in enumerate(raw_axes):
            t = table(t, f"[[axis]] {k}", allowed={"name", "values", "start", "stop", "num"})
            name = t.get("name")
            if not isinstance(name, str) or name not in PARAMETERS:
                raise ConfigError(
                    f"[[axis]] {k}: {name!r} is not a sweep parameter; parameters: {sorted(PARAMETERS)}"
                )
            if any(a.name == name for a in axes):
                raise ConfigError(f"[[axis]] {k}: {name!r} is swept twice")
            axes.append(Axis(name, _grid(t, f"[[axis]] {name}", lo=0.0)))
    elif raw_axes:
        raise ConfigError("an optimization config takes no [[axis]]; the grid is [optimization] grid")

    quantities = cfg.get("quantities", ["losses_kw", "vmin_pu"])
    if not isinstance(quantities, list) or not quantities:
        raise ConfigError(f"quantities must be a non-empty list of names, got {quantities!r}"[:200])
    quantities = tuple(quantities)
    for q in quantities:
        if not isinstance(q, str) or q not in QUANTITIES:
            raise ConfigError(f"unknown quantity {q!r}; quantities: {sorted(QUANTITIES)}")
    restoration = None
    if "restoration" in cfg:
        restoration = _restoration(cfg["restoration"], unc)
        check_strategies(net, restoration)
    mc_q = [q for q in quantities if QUANTITIES[q][2] == "montecarlo"]
    if mc_q and restoration is None:
        raise ConfigError(f"quantity {mc_q[0]!r} needs a [restoration] table (Monte Carlo restoration)")

    opt = None
    if kind == "optimization":
        o = sub_table(cfg, "optimization", "[optimization]", allowed=_OPT)
        cap = choice(o.get("capacity", "common"), "[optimization] capacity", ("common", "per_sop"))
        grid_t = table(o.get("grid", {"start": 0.0, "stop": 3.0, "num": 13}), "[optimization] grid")
        grid = _grid(grid_t, "[optimization] grid", lo=0.0)
        from sopjax.problems.planning.costs import CostModel

        costs = CostModel(**dict(sub_table(cfg, "costs", "[costs]", allowed=_COSTS)))
        opt = OptimizationSpec(
            capacity=cap,
            grid_mva=np.sort(grid),
            steps=number(o.get("steps", 300), "[optimization] steps", lo=1, integer=True),
            batch=number(o.get("batch", 16), "[optimization] batch", lo=1, integer=True),
            learning_rate=number(o.get("learning_rate", 0.05), "[optimization] learning_rate", lo=0.0),
            init_mva=number(o.get("init_mva", 1.0), "[optimization] init_mva", lo=0.0),
            seed=seed_number(o.get("seed", 1), "[optimization] seed"),
            max_mva=number(o.get("max_mva", float(np.max(grid))), "[optimization] max_mva", lo=0.0),
            costs=costs,
        )
    elif "optimization" in cfg:
        raise ConfigError("[optimization] needs kind = \"optimization\"")

    return SweepSpec(
        title=string(cfg.get("title", "sopjax sweep"), "title", allow_empty=True),
        kind=kind,
        network=net,
        v_min_pu=number(d.get("v_min_pu", 0.90), "[dispatch] v_min_pu", positive=True, hi=2.0),
        v_max_pu=number(d.get("v_max_pu", 1.10), "[dispatch] v_max_pu", positive=True, hi=2.0),
        voltage_weight=number(d.get("voltage_weight", 0.0), "[dispatch] voltage_weight", lo=0.0),
        engine=eng,
        checkpoint=checkpoint,
        compare=compare,
        tol=number(d.get("tol", 1e-9), "[dispatch] tol", positive=True, hi=0.1),
        max_iter=number(d.get("max_iter", 150), "[dispatch] max_iter", lo=1, integer=True),
        uncertainty=unc,
        pv_forecast_frac=frac,
        samples=n,
        seed=seed,
        baseline=baseline,
        axes=tuple(axes),
        quantities=quantities,
        restoration=restoration,
        optimization=opt,
        config=dict(cfg),
    )
