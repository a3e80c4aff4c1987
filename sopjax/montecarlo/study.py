"""A Monte Carlo restoration study: typed objects in (:func:`make_study`), or a parsed TOML file.

Python callers (the sweeps, experiments) build a :class:`Study` from a network,
strategies, an uncertainty model and :class:`~sopjax.montecarlo.MonteCarloSettings`
with :func:`make_study`. The library reads no files: the CLI (``sopjax montecarlo
CONFIG.toml``) parses the TOML and calls :func:`study_from_config`, a thin parse
on top of it. Layout (every key optional unless marked; ``[network]``: see
:mod:`sopjax.config.network`)::

    title = "..."
    [network]
    case = "ieee33"                       # required: built-in name or .m path
    pv  = [{bus = 30, s_rated_kva = 1000, pf = 0.95}]
    sop = [{pair = [8, 21], s_rated_kva = 2000, loss = 0.02}]
    [fault]
    open = [2]                            # branches isolated by the fault
    [uncertainty]
    pv_forecast_kw = [500]                # one per PV unit (default: set-points, else rated)
    ...                                   # the rest: sopjax.sampling.UncertaintyModel.from_dict
    [montecarlo]
    samples = 500, seed = 0, chunk_size = "auto" (or a number >= 1), confidence = 0.9921, ci_level = 0.95,
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sopjax.config import (
    ConfigError, boolean, choice, integer, integer_list, number, number_list, parse_network, string,
    sub_table, table, table_list,
)
from sopjax.kernels.scoring import ScoringOptions
from sopjax.montecarlo.runner import MonteCarloSettings, run_montecarlo
from sopjax.montecarlo.sources import ModelSource
from sopjax.network import Network
from sopjax.network_builder import build_network
from sopjax.powerflow import METHODS
from sopjax.sampling import UncertaintyModel
from sopjax.sampling.schemes import MAX_SAMPLES
from sopjax.strategies import Strategy, strategies_from_config

__all__ = [
    "Study", "make_study", "build_strategies", "settings_from_config", "fault_from_config", "study_from_config",
    "run_study", "chunk_size_value", "ConfigError",
]

_TOP = {"title", "description", "network", "fault", "uncertainty", "montecarlo", "strategy"}
#: the [network] keys a Monte Carlo study uses
NETWORK_KEYS = {"case", "pv", "sop", "capacitor"}
_MC = {
    "samples", "seed", "chunk_size", "confidence", "ci_level", "v_min_pu", "v_max_pu", "power_flow",
    "island_overload", "quantiles", "exact_limit", "dtype", "keep_samples", "tol", "max_iter", "layout",
    "sample_block",
}


@dataclasses.dataclass
class Study:
    """Everything a run needs: built by :func:`make_study` (typed) or :func:`study_from_config` (TOML)."""

    title: str
    net: Network
    strategies: list[Strategy]
    source: Any
    settings: MonteCarloSettings
    seed: int
    config: dict | None = None

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fault_from_config(value: Any, where: str = "[fault]") -> tuple[int, ...]:
    """The faulted branch numbers of a ``[fault]`` table (``open = [...]``)."""
    t = table(value, where, allowed={"open"}, missing_ok=True)
    return tuple(integer_list(t.get("open"), f"{where} open"))


def settings_from_config(
    value: Any,
    *,
    fault_open: Sequence[int] = (),
    samples: int | None = None,
    seed: int | None = None,
    chunk_size: int | str | None = None,
    where: str = "[montecarlo]",
) -> tuple[MonteCarloSettings, int]:
    """Validated run settings and PRNG seed from a ``[montecarlo]`` table.

    Args:
        value: the table (None: all defaults).
        fault_open: the faulted branches (from ``[fault]``).
        samples, seed, chunk_size: command-line overrides (chunk_size: an integer >= 1 or "auto").
        where: the table's name in messages.

    Returns:
        (settings, seed).
    """
    mc = dict(table(value, where, allowed=_MC, missing_ok=True))
    if samples is not None:
        mc["samples"] = samples
    if seed is not None:
        mc["seed"] = seed
    if chunk_size is not None:
        mc["chunk_size"] = chunk_size
    layout = choice(mc.get("layout", "auto"), f"{where} layout", ("auto", "map", "vmap"))
    if layout == "auto":  # one wide batch on a GPU, cache-sized blocks on a CPU
        import jax

        layout = "vmap" if jax.default_backend() == "gpu" else "map"
    block = mc.get("sample_block", None if layout == "vmap" else 64)
    block = None if block is None else integer(block, f"{where} sample_block", lo=0)
    options = ScoringOptions(
        method=choice(mc.get("power_flow", "sweep"), f"{where} power_flow", sorted(METHODS)),
        tol=number(mc.get("tol", 1e-8), f"{where} tol", positive=True, hi=0.1),
        max_iter=integer(mc.get("max_iter", 100), f"{where} max_iter", lo=1, hi=100_000),
        strategy_axis=layout,
        sample_block=block or None,
    )
    settings = MonteCarloSettings(
        island_overload=choice(mc.get("island_overload", "shed"), f"{where} island_overload", ("shed", "flag")),
        n_samples=integer(mc.get("samples", 500), f"{where} samples", lo=1, hi=MAX_SAMPLES),
        chunk_size=chunk_size_value(mc.get("chunk_size", "auto"), f"{where} chunk_size"),
        fault_open=tuple(int(k) for k in fault_open),
        v_min_pu=number(mc.get("v_min_pu", 0.95), f"{where} v_min_pu", positive=True, hi=2.0),
        v_max_pu=number(mc.get("v_max_pu", 1.05), f"{where} v_max_pu", positive=True, hi=2.0),
        options=options,
        quantiles=tuple(number_list(mc.get("quantiles", list(MonteCarloSettings.quantiles)), f"{where} quantiles",
                                    lo=0.0, hi=1.0, max_len=1000)),
        confidence=_open_unit(mc.get("confidence", 0.9921), f"{where} confidence"),
        ci_level=_open_unit(mc.get("ci_level", 0.95), f"{where} ci_level"),
        exact_limit=integer(mc.get("exact_limit", MonteCarloSettings.exact_limit), f"{where} exact_limit", lo=0),
        keep_samples=boolean(mc.get("keep_samples", False), f"{where} keep_samples"),
        dtype=choice(mc.get("dtype", "float64"), f"{where} dtype", ("float64", "float32")),
    )
    if settings.v_min_pu > settings.v_max_pu:
        raise ConfigError(f"{where} v_min_pu = {settings.v_min_pu} must not exceed v_max_pu = {settings.v_max_pu}")
    settings.validate()
    return settings, integer(mc.get("seed", 0), f"{where} seed", lo=0, hi=2**63 - 1)


def chunk_size_value(value: Any, where: str) -> int | None:
    """A chunk size: ``"auto"`` (None: sized from the sample and strategy counts) or an integer >= 1.

    Raises:
        ConfigError: zero, negative, fractional or any other value (``0`` is not a synonym of ``"auto"``).
    """
    if value is None or value == "auto":
        return None
    if isinstance(value, str):
        raise ConfigError(f"{where} must be 'auto' or a number of samples >= 1, got {value!r}")
    n = integer(value, where)
    if n < 1:
        raise ConfigError(f"{where} must be 'auto' or a number of samples >= 1, got {n}")
    return n


def _open_unit(value: Any, where: str) -> float:
    x = number(value, where)
    if not 0 < x < 1:
        raise ConfigError(f"{where} must lie strictly between 0 and 1, got {x!r}")
    return x


def _forecast_pu(net: Network, unc: dict) -> np.ndarray:
    """Pop ``pv_forecast_kw`` from ``unc`` and check it against the PV ratings.

    Default: the units' set-points where the network has them (imported sgens), else rated output.
    """
    kva = net.base_mva * 1e3
    if "pv_forecast_kw" not in unc:
        if net.pv.p_set_pu is not None:
            return np.asarray(net.pv.p_set_pu, float).copy()
        return np.asarray(net.pv.s_rated_pu, float).copy()
    fc = np.asarray(number_list(unc.pop("pv_forecast_kw"), "[uncertainty] pv_forecast_kw", max_len=net.pv.count + 1),
                    float)
    if fc.shape != (net.pv.count,):
        raise ConfigError(f"[uncertainty] pv_forecast_kw needs one value per PV unit ({net.pv.count}), "
                          f"got {fc.size}")
    rated = np.asarray(net.pv.s_rated_pu) * kva
    bad = np.flatnonzero(~np.isfinite(fc) | (fc < 0) | (fc > rated + 1e-9))
    if bad.size:
        b = net.bus_ids[int(np.asarray(net.pv.bus)[bad[0]])]
        raise ConfigError(f"[uncertainty] pv_forecast_kw = {fc[bad[0]]} at the PV on bus {b} must lie in "
                          f"[0, {rated[bad[0]]:g}] kW (its rating)")
    return fc / kva


def build_strategies(
    net: Network, tables: Sequence[Mapping[str, Any]], settings: MonteCarloSettings, pv_forecast_pu
) -> list[Strategy]:
    """Strategies from ``[[strategy]]`` tables; a greedy pickup is solved at the forecast under ``settings``."""
    return strategies_from_config(
        net, list(tables), fault_open=settings.fault_open, p_pv_forecast_pu=pv_forecast_pu,
        v_min_pu=settings.v_min_pu, v_max_pu=settings.v_max_pu, options=settings.options,
    )


def make_study(
    net: Network,
    strategies: Sequence[Strategy],
    *,
    model: UncertaintyModel,
    settings: MonteCarloSettings,
    seed: int = 0,
    pv_forecast_pu=None,
    title: str = "sopjax Monte Carlo study",
    config: dict | None = None,
) -> Study:
    """A study from typed objects (the Python entry point; :func:`study_from_config` parses TOML into it).

    Args:
        net: the network with its PV units and SOPs.
        strategies: the strategies to score.
        model: PV and load uncertainty.
        settings: run settings (faulted branches included).
        seed: PRNG seed of the samples.
        pv_forecast_pu: PV forecast (pv,) p.u. (default: rated output).
        title: the study's name in the dataset.
        config: the parsed config it came from, recorded in the dataset (optional).

    Raises:
        NetworkError: a faulted branch unknown to ``net``.
    """
    for k in settings.fault_open:
        net.branch_index(k)
    default = net.pv.p_set_pu if net.pv.p_set_pu is not None else net.pv.s_rated_pu
    forecast = np.asarray(default if pv_forecast_pu is None else pv_forecast_pu, float)
    kva = net.base_mva * 1e3
    source = ModelSource(net, model, forecast, seed=int(seed), n_samples=settings.n_samples,
                         description={"model": model.to_dict(), "pv_forecast_kw": (forecast * kva).tolist()})
    return Study(title=title, net=net, strategies=list(strategies), source=source, settings=settings,
                 seed=int(seed), config=config)


def study_from_config(
    cfg: Mapping[str, Any],
    *,
    samples: int | None = None,
    seed: int | None = None,
    chunk_size: int | str | None = None,
) -> Study:
    """Parse a config (see the module docstring) and build the study with :func:`make_study`.

    Args:
        cfg: the parsed config.
        samples, seed, chunk_size: command-line overrides of ``[montecarlo]``.

    Raises:
        ConfigError: malformed config (the key named).
        NetworkError / StrategyError / TopologyError: bad buses, branches, strategies (named).
    """
    table(cfg, "config", allowed=_TOP)
    net = build_network(parse_network(cfg.get("network"), keys=NETWORK_KEYS))
    fault_open = fault_from_config(cfg.get("fault"))
    for k in fault_open:
        net.branch_index(k)
    settings, seed_value = settings_from_config(cfg.get("montecarlo"), fault_open=fault_open, samples=samples,
                                                seed=seed, chunk_size=chunk_size)
    unc = dict(sub_table(cfg, "uncertainty", "[uncertainty]"))
    forecast = _forecast_pu(net, unc)
    model = UncertaintyModel.from_dict(unc)
    strategies = build_strategies(net, table_list(cfg.get("strategy"), "[[strategy]]"), settings, forecast)
    return make_study(
        net, strategies, model=model, settings=settings, seed=seed_value, pv_forecast_pu=forecast,
        title=string(cfg.get("title", "sopjax Monte Carlo study"), "title", allow_empty=True),
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
    scheduler=None,
    samples_out: str | Path | None = None,
):
    """Run a study; write the dataset (and plots next to it) when ``out`` is given.

    The checkpoint defaults to ``<out>.ckpt.npz`` and is removed once the
    dataset is written. ``scheduler`` and ``samples_out``: see
    :func:`~sopjax.montecarlo.runner.run_montecarlo` (Dask cluster, per-sample zarr store).

    Returns:
        (dataset, list of written paths).
    """
    from sopjax.montecarlo.io import write_dataset

    if out is not None and checkpoint is None:
        checkpoint = Path(str(out) + ".ckpt.npz")
    attrs = {"study": study.title, "seed": study.seed}
    if study.config is not None:
        attrs.update(config=study.config, config_hash=study.config_hash)
    ds = run_montecarlo(study.net, study.strategies, study.source, study.settings, checkpoint=checkpoint,
                        progress=progress, on_chunk=on_chunk, attrs=attrs, scheduler=scheduler,
                        samples_out=samples_out)
    written: list[Path] = []
    if out is not None:
        written.append(write_dataset(ds, out, checkpoint=checkpoint))
        if plots:
            from sopjax.montecarlo.plots import write_plots

            written.extend(write_plots(ds, out))
    return ds, written
