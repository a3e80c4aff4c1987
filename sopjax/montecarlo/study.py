"""A Monte Carlo restoration study from a config mapping (a parsed TOML file).

The library reads no files: the CLI (``sopjax montecarlo CONFIG.toml``) parses
the TOML and calls :func:`study_from_config`. Layout (every key optional
unless marked)::

    title = "..."
    [network]
    case = "ieee33"                       # required: built-in name or .m path
    pv  = [{bus = 30, s_rated_kva = 1000, pf = 0.95}]
    sop = [{pair = [8, 21], s_rated_kva = 2000, loss = 0.02}]
    [fault]
    open = [2]                            # branches isolated by the fault
    [uncertainty]
    pv_forecast_kw = [500]                # one per PV unit (default: rated)
    ...                                   # the rest: sopjax.sampling.UncertaintyModel.from_dict
    [montecarlo]
    samples = 500, seed = 0, chunk_size = 0 (auto), confidence = 0.9921, ci_level = 0.95,
    v_min_pu = 0.95, v_max_pu = 1.05, power_flow = "sweep", island_overload = "shed",
    quantiles = [...], exact_limit = 2000000, dtype = "float64", keep_samples = false,
    layout = "auto" ("map" on CPU, "vmap" on GPU), sample_block = 64 (CPU)
    [[strategy]]                          # see sopjax.strategies.config
    name = "..."
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sopjax.cases import load_case
from sopjax.devices import add_pv, add_sops
from sopjax.errors import SopjaxError
from sopjax.kernels.scoring import ScoringOptions
from sopjax.montecarlo.runner import MonteCarloSettings, run_montecarlo
from sopjax.montecarlo.sources import ModelSource
from sopjax.network import Network
from sopjax.strategies import Strategy, strategies_from_config

__all__ = ["Study", "study_from_config", "run_study", "ConfigError"]


class ConfigError(SopjaxError):
    """A study config is malformed (unknown key, wrong type, missing section)."""


_TOP = {"title", "description", "network", "fault", "uncertainty", "montecarlo", "strategy"}
_NETWORK = {"case", "pv", "sop"}
_PV = {"bus", "s_rated_kva", "pf"}
_SOP = {"pair", "s_rated_kva", "loss", "q_max_kvar"}
_MC = {
    "samples", "seed", "chunk_size", "confidence", "ci_level", "v_min_pu", "v_max_pu", "power_flow",
    "island_overload", "quantiles", "exact_limit", "dtype", "keep_samples", "tol", "max_iter", "layout",
    "sample_block",
}


def _check_keys(table: Any, allowed: set[str], where: str) -> Mapping:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, got {type(table).__name__}")
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}; allowed: {sorted(allowed)}")
    return table


@dataclasses.dataclass
class Study:
    """Everything a run needs, built from a config."""

    title: str
    net: Network
    strategies: list[Strategy]
    source: Any
    settings: MonteCarloSettings
    seed: int
    config: dict

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _network(cfg: Mapping) -> Network:
    table = _check_keys(cfg.get("network"), _NETWORK, "[network]")
    if "case" not in table:
        raise ConfigError("[network] needs 'case' (ieee33, ieee69, ieee85 or a .m file)")
    net = load_case(table["case"])
    pv = table.get("pv", [])
    if pv:
        for k, row in enumerate(pv):
            _check_keys(row, _PV, f"[network] pv {k}")
            if "bus" not in row or "s_rated_kva" not in row:
                raise ConfigError(f"[network] pv {k} needs 'bus' and 's_rated_kva'")
        net = add_pv(net, buses=[r["bus"] for r in pv], s_rated_kva=[r["s_rated_kva"] for r in pv],
                     pf=[r.get("pf", 1.0) for r in pv])
    sop = table.get("sop", [])
    if sop:
        for k, row in enumerate(sop):
            _check_keys(row, _SOP, f"[network] sop {k}")
            if "pair" not in row or "s_rated_kva" not in row:
                raise ConfigError(f"[network] sop {k} needs 'pair' and 's_rated_kva'")
        qmax = [r.get("q_max_kvar", r["s_rated_kva"]) for r in sop]
        net = add_sops(net, pairs=[tuple(r["pair"]) for r in sop], s_rated_kva=[r["s_rated_kva"] for r in sop],
                       loss=[r.get("loss", 0.02) for r in sop], q_max_kvar=qmax)
    return net


def _uncertainty_model(table: Mapping):
    try:
        from sopjax.sampling import UncertaintyModel
    except ImportError as e:  # pragma: no cover - the sampling package ships with sopjax
        raise ConfigError(f"[uncertainty] needs sopjax.sampling ({e})") from None
    return UncertaintyModel.from_dict(dict(table))


def study_from_config(
    cfg: Mapping[str, Any],
    *,
    samples: int | None = None,
    seed: int | None = None,
    chunk_size: int | None = None,
) -> Study:
    """Build the network, strategies, sample source and settings of a study.

    Args:
        cfg: the parsed config (see the module docstring).
        samples, seed, chunk_size: command-line overrides of ``[montecarlo]``.

    Raises:
        ConfigError: malformed config (the key named).
        NetworkError / StrategyError / TopologyError: bad buses, branches, strategies (named).
    """
    _check_keys(cfg, _TOP, "config")
    net = _network(cfg)
    fault = _check_keys(cfg.get("fault", {}), {"open"}, "[fault]")
    fault_open = tuple(int(k) for k in fault.get("open", []))
    for k in fault_open:
        net.branch_index(k)
    mc = dict(_check_keys(cfg.get("montecarlo", {}), _MC, "[montecarlo]"))
    if samples is not None:
        mc["samples"] = samples
    if seed is not None:
        mc["seed"] = seed
    if chunk_size is not None:
        mc["chunk_size"] = chunk_size
    layout = str(mc.get("layout", "auto"))
    if layout not in ("auto", "map", "vmap"):
        raise ConfigError(f"[montecarlo] layout must be 'auto', 'map' or 'vmap', got {layout!r}")
    if layout == "auto":  # one wide batch on a GPU, cache-sized blocks on a CPU
        import jax

        layout = "vmap" if jax.default_backend() == "gpu" else "map"
    block = mc.get("sample_block", None if layout == "vmap" else 64)
    sweep_layout = str(mc.get("sweep_layout", "bus_major"))
    if sweep_layout not in ("bus_major", "per_sample"):
        raise ConfigError(f"[montecarlo] sweep_layout must be 'bus_major' or 'per_sample', got {sweep_layout!r}")
    options = ScoringOptions(
        method=str(mc.get("power_flow", "sweep")),
        tol=float(mc.get("tol", 1e-8)),
        max_iter=int(mc.get("max_iter", 100)),
        strategy_axis=layout,
        sample_block=None if block in (None, 0) else int(block),
        sweep_layout=sweep_layout,
    )
    settings = MonteCarloSettings(
        island_overload=str(mc.get("island_overload", "shed")),
        n_samples=int(mc.get("samples", 500)),
        chunk_size=int(mc["chunk_size"]) if mc.get("chunk_size") else None,
        fault_open=fault_open,
        v_min_pu=float(mc.get("v_min_pu", 0.95)),
        v_max_pu=float(mc.get("v_max_pu", 1.05)),
        options=options,
        quantiles=tuple(float(q) for q in mc.get("quantiles", MonteCarloSettings.quantiles)),
        confidence=float(mc.get("confidence", 0.9921)),
        ci_level=float(mc.get("ci_level", 0.95)),
        exact_limit=int(mc.get("exact_limit", MonteCarloSettings.exact_limit)),
        keep_samples=bool(mc.get("keep_samples", False)),
        dtype=str(mc.get("dtype", "float64")),
    )
    settings.validate()
    seed_value = int(mc.get("seed", 0))

    unc = dict(_check_keys(cfg.get("uncertainty", {}), set(cfg.get("uncertainty", {})), "[uncertainty]"))
    kva = net.base_mva * 1e3
    if "pv_forecast_kw" in unc:
        fc = np.asarray(unc.pop("pv_forecast_kw"), float).reshape(-1)
        if fc.shape != (net.pv.count,):
            raise ConfigError(f"[uncertainty] pv_forecast_kw needs one value per PV unit ({net.pv.count}), "
                              f"got {fc.size}")
        rated = np.asarray(net.pv.s_rated_pu) * kva
        bad = np.flatnonzero(~np.isfinite(fc) | (fc < 0) | (fc > rated + 1e-9))
        if bad.size:
            b = net.bus_ids[int(np.asarray(net.pv.bus)[bad[0]])]
            raise ConfigError(f"[uncertainty] pv_forecast_kw = {fc[bad[0]]} at the PV on bus {b} must lie in "
                              f"[0, {rated[bad[0]]:g}] kW (its rating)")
        forecast = fc / kva
    else:
        forecast = np.asarray(net.pv.s_rated_pu, float).copy()
    model = _uncertainty_model(unc)
    source = ModelSource(net, model, forecast, seed=seed_value, n_samples=settings.n_samples,
                         description={"model": model.to_dict(), "pv_forecast_kw": (forecast * kva).tolist()})
    strategies = strategies_from_config(
        net, list(cfg.get("strategy", [])), fault_open=fault_open, p_pv_forecast_pu=forecast,
        v_min_pu=settings.v_min_pu, v_max_pu=settings.v_max_pu, options=options,
    )
    return Study(
        title=str(cfg.get("title", "sopjax Monte Carlo study")),
        net=net,
        strategies=strategies,
        source=source,
        settings=settings,
        seed=seed_value,
        config=json.loads(json.dumps(dict(cfg), default=str)),
    )


def run_study(
    study: Study,
    *,
    out: str | Path | None = None,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    plots: bool = True,
    on_chunk=None,
):
    """Run a study; write the dataset (and plots next to it) when ``out`` is given.

    The checkpoint defaults to ``<out>.ckpt.npz`` and is removed once the
    dataset is written.

    Returns:
        (dataset, list of written paths).
    """
    from sopjax.montecarlo.io import write_dataset

    if out is not None and checkpoint is None:
        checkpoint = Path(str(out) + ".ckpt.npz")
    attrs = {"study": study.title, "seed": study.seed, "config": study.config, "config_hash": study.config_hash}
    ds = run_montecarlo(study.net, study.strategies, study.source, study.settings, checkpoint=checkpoint,
                        progress=progress, on_chunk=on_chunk, attrs=attrs)
    written: list[Path] = []
    if out is not None:
        written.append(write_dataset(ds, out, checkpoint=checkpoint))
        if plots:
            from sopjax.montecarlo.plots import write_plots

            written.extend(write_plots(ds, out))
    return ds, written
