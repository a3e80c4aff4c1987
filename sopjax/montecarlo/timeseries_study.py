"""A Monte Carlo restoration study over time: a TOML study with a ``[timeseries]`` table.

The one-period study (:mod:`sopjax.montecarlo.study`) plus::

    [uncertainty]
    pv_forecast_kw = [500]          # PV forecast at the PV profile's peak, one per unit
    load_profile = "rts79_summer_weekday"   # or a list, one multiplier per period
    time_rho = 0.8                  # AR(1) correlation of forecast errors between periods, [-1, 1]
    [timeseries]
    periods = 24                    # default: the load profile's length, else 24
    period_h = 1.0                  # hours per period
    start_hour = 0.0                # clock time of period 0
    pv_profile = "clear_sky"        # or a list of per-period multipliers in [0, 1]; default flat
    latitude_deg = 30.0, day_of_year = 172   # for "clear_sky"
    controls = ["fixed", "optimal"] # every strategy is scored under each policy (side by side)
    pickup_per_period = false       # true: greedy pickup re-planned at each period's forecast
    droop_q = 0.05, droop_p = 0.05, v_ref_pu = 1.0, iterations = 8, damping = 0.5,
    u_set_candidates = 3, q_candidates = 5, q_span = 0.5   # the local rule and the Vf search
    island_overload = "priority"    # or "resolve"; default: [montecarlo] island_overload
    shed_order = [18, 17, 33]       # bus ids shed first by "priority" (then largest load first)
    [[strategy]]
    control = "local"               # optional: this strategy under one policy only

The CLI (``sopjax montecarlo CONFIG.toml``) runs this module when ``[timeseries]`` is present.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sopjax.config import ConfigError, parse_network, sub_table, table
from sopjax.kernels.scoring.control import CONTROL_POLICIES, ControlOptions
from sopjax.montecarlo.study import (
    NETWORK_KEYS,
    _forecast_pu,
    build_strategies,
    fault_from_config,
    settings_from_config,
)
from sopjax.montecarlo.timeseries import ProfileSource, TimeSeriesSettings, run_timeseries
from sopjax.network_builder import build_network
from sopjax.sampling import UncertaintyModel
from sopjax.sampling.profiles import HOURS, check_profile, clear_sky_pv_profile

__all__ = ["TimeSeriesStudy", "timeseries_study_from_config", "run_timeseries_study", "TIMESERIES_KEYS"]

#: [timeseries] keys of ControlOptions
CONTROL_KEYS = ("droop_q", "droop_p", "v_ref_pu", "iterations", "damping", "u_set_candidates", "q_candidates",
                "q_span")
TIMESERIES_KEYS = {
    "periods", "period_h", "start_hour", "pv_profile", "latitude_deg", "day_of_year", "controls",
    "pickup_per_period", "island_overload", "shed_order", *CONTROL_KEYS,
}
_TOP = {"title", "description", "network", "fault", "uncertainty", "montecarlo", "strategy", "timeseries"}


@dataclasses.dataclass
class TimeSeriesStudy:
    """Everything :func:`run_timeseries` needs (built by :func:`timeseries_study_from_config`)."""

    title: str
    net: Any
    strategies: list
    source: ProfileSource
    settings: Any
    ts: TimeSeriesSettings
    bases: list[str]
    seed: int
    config: dict | None = None


def _pv_profile(ts: Mapping, periods: int) -> np.ndarray:
    v = ts.get("pv_profile", "flat")
    if isinstance(v, str):
        if v == "flat":
            return np.ones(periods)
        if v == "clear_sky":
            return clear_sky_pv_profile(
                latitude_deg=float(ts.get("latitude_deg", 30.0)),
                day_of_year=int(ts.get("day_of_year", 172)),
                periods=periods,
            )
        raise ConfigError(f"[timeseries] pv_profile must be 'flat', 'clear_sky' or a list, got {v!r}")
    try:
        prof = check_profile(v, name="[timeseries] pv_profile", length=periods)
    except Exception as e:  # noqa: BLE001 - ProfileError: re-raised as a config error
        raise ConfigError(str(e)) from None
    if prof.max() > 1 + 1e-12:
        raise ConfigError(f"[timeseries] pv_profile[{int(np.argmax(prof))}] = {prof.max()} exceeds 1")
    return prof


def _controls(ts: Mapping, tables) -> list[tuple[int, str]]:
    """(table index, policy) of every scored strategy."""
    cs = ts.get("controls", ["fixed"])
    cs = [cs] if isinstance(cs, str) else list(cs)
    out = []
    for k, c in enumerate(cs):
        if c not in CONTROL_POLICIES:
            raise ConfigError(
                f"[timeseries] controls[{k}] = {c!r} is not a control policy; "
                f"choose from {', '.join(CONTROL_POLICIES)}"
            )
    for i, t in enumerate(tables):
        own = t.get("control")
        if own is not None and own not in CONTROL_POLICIES:
            raise ConfigError(
                f"[[strategy]] {t.get('name', i)!r}: control = {own!r} is not a control policy; "
                f"choose from {', '.join(CONTROL_POLICIES)}"
            )
        out.extend((i, c) for c in ([own] if own is not None else cs))
    return out


def timeseries_study_from_config(
    cfg: Mapping[str, Any], *, samples=None, seed=None, chunk_size=None
) -> TimeSeriesStudy:
    """Parse a study config with a ``[timeseries]`` table (see the module docstring).

    Raises:
        ConfigError: a malformed key (named), a profile of the wrong length or with a negative
            value, ``time_rho`` outside [-1, 1], an unknown control policy.
    """
    table(cfg, "config", allowed=_TOP)
    ts = dict(sub_table(cfg, "timeseries", "[timeseries]", allowed=TIMESERIES_KEYS))
    net = build_network(parse_network(cfg.get("network"), keys=NETWORK_KEYS))
    fault_open = fault_from_config(cfg.get("fault"))
    for k in fault_open:
        net.branch_index(k)
    settings, seed_value = settings_from_config(
        cfg.get("montecarlo"), fault_open=fault_open, samples=samples, seed=seed, chunk_size=chunk_size
    )
    unc = dict(sub_table(cfg, "uncertainty", "[uncertainty]"))
    peak = _forecast_pu(net, unc)
    try:
        model = UncertaintyModel.from_dict(unc)
    except Exception as e:  # noqa: BLE001 - sampling errors name the key; report them as config errors
        raise ConfigError(f"[uncertainty] {e}") from None
    lp = model.profile_array()
    periods = int(ts.get("periods", lp.shape[0] if lp is not None else HOURS))
    if periods < 1:
        raise ConfigError(f"[timeseries] periods must be >= 1, got {periods}")
    if lp is not None and lp.shape[0] != periods:
        raise ConfigError(
            f"[uncertainty] load_profile has {lp.shape[0]} periods; [timeseries] periods = {periods}"
        )
    forecast = _pv_profile(ts, periods)[:, None] * peak[None, :]
    try:
        control = ControlOptions(**{k: ts[k] for k in CONTROL_KEYS if k in ts})
        control.validate()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"[timeseries] {e}") from None
    tables = [dict(t) for t in cfg.get("strategy", [])]
    pairs = _controls(ts, tables)
    clean = [{k: v for k, v in t.items() if k != "control"} for t in tables]
    if bool(ts.get("pickup_per_period", False)):
        prof = np.ones(periods) if lp is None else lp
        per = []
        for t in range(periods):
            net_t = dataclasses.replace(
                net, p_load_pu=net.p_load_pu * prof[t], q_load_pu=net.q_load_pu * prof[t]
            )
            per.append(
                [
                    dataclasses.replace(s, info={**s.info, "period": t})
                    for s in build_strategies(net_t, clean, settings, forecast[t])
                ]
            )
        plans = [[per[t][i] for t in range(periods)] for i in range(len(clean))]
    else:
        plans = build_strategies(net, clean, settings, peak)
    multi = len({c for _, c in pairs}) > 1
    strategies, policies, bases = [], [], []
    for i, c in pairs:
        p = plans[i]
        base = p[0].name if isinstance(p, list) else p.name
        name = f"{base} [{c}]" if multi else base
        rename = lambda s: dataclasses.replace(s, name=name)  # noqa: E731
        strategies.append([rename(s) for s in p] if isinstance(p, list) else rename(p))
        policies.append(c)
        bases.append(base)
    kva = net.base_mva * 1e3
    source = ProfileSource(
        net,
        model,
        forecast,
        seed=seed_value,
        n_samples=settings.n_samples,
        periods=periods,
        description={"model": model.to_dict(), "pv_forecast_kw": (forecast * kva).tolist()},
    )
    island = ts.get("island_overload")
    shed = ts.get("shed_order", [])
    if not isinstance(shed, list) or not all(isinstance(b, int) for b in shed):
        raise ConfigError(f"[timeseries] shed_order must be a list of bus ids, got {shed!r}")
    tss = TimeSeriesSettings(
        period_h=float(ts.get("period_h", 1.0)),
        controls=tuple(policies),
        control=control,
        start_hour=float(ts.get("start_hour", 0.0)),
        island_overload=None if island is None else str(island),
        shed_order=tuple(shed),
    )
    try:
        tss.validate()
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"[timeseries] {e}") from None
    return TimeSeriesStudy(
        title=str(cfg.get("title", "sopjax Monte Carlo study over time")),
        net=net,
        strategies=strategies,
        source=source,
        settings=settings,
        ts=tss,
        bases=bases,
        seed=seed_value,
        config=json.loads(json.dumps(dict(cfg), default=str)),
    )


def run_timeseries_study(
    study: TimeSeriesStudy,
    *,
    out: str | Path | None = None,
    progress=None,
    plots: bool = True,
    on_chunk=None,
    scheduler=None,
    samples_out: str | Path | None = None,
):
    """Run a study; write the dataset and the plot over time when ``out`` is given; (dataset, paths).

    ``scheduler`` and ``samples_out``: see :func:`~sopjax.montecarlo.timeseries.run_timeseries`
    (Dask cluster, per-sample zarr store with a time dimension).
    """
    from sopjax.montecarlo.io import write_dataset

    checkpoint = Path(str(out) + ".ckpt.npz") if out is not None else None
    attrs = {"study": study.title, "seed": study.seed}
    if study.config is not None:
        attrs["config"] = study.config
    ds = run_timeseries(
        study.net,
        study.strategies,
        study.source,
        study.settings,
        study.ts,
        bases=study.bases,
        checkpoint=checkpoint,
        progress=progress,
        on_chunk=on_chunk,
        attrs=attrs,
        scheduler=scheduler,
        samples_out=samples_out,
    )
    written: list[Path] = []
    if out is not None:
        written.append(write_dataset(ds, out, checkpoint=checkpoint))
        if plots:
            from sopjax.montecarlo.timeseries_plots import plot_recovery_over_time

            written.append(
                plot_recovery_over_time(ds, Path(str(out)).with_suffix("").as_posix() + "_recovery_time.png")
            )
    return ds, written
