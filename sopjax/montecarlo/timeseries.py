"""Monte Carlo over time: strategies scored over a horizon of periods, with corrective SOP control.

:func:`run_timeseries` is :func:`~sopjax.montecarlo.run_montecarlo` with a ``time`` axis:

* a :class:`ProfileSource` draws each sample as a whole horizon ``(time, bus)`` from an
  :class:`~sopjax.sampling.UncertaintyModel` (load profile, per-period PV forecast, AR(1)
  correlation of the forecast errors between periods, ``time_rho``); sample ``i`` depends
  only on ``i``, so chunking, resume and determinism are as for one period, and the chunks
  run in this process or on a Dask cluster (``scheduler=``; the task is
  :func:`sopjax.montecarlo.timeseries_chunks.series_chunk`, merged in chunk order);
* strategies are fixed over the horizon or given per period (a list of ``time`` strategies);
* each strategy has a corrective control policy (:mod:`sopjax.kernels.scoring.control`):
  ``fixed``, ``local`` or ``optimal`` (per sample and period re-dispatch);
* every (strategy, period) pair is reduced exactly like a strategy of the one-period
  engine (same moments, histograms, exact quantiles, intervals), so the per-period
  statistics are the one-period engine's, and a one-period run equals it (tested);
* the horizon: per sample, energy not supplied and the energy recovery ratio,
  ``ENS = dt sum_t (outage_t - restored_t)``, ``E_rec = sum_t restored_t / sum_t outage_t``
  (kW, kWh with ``dt = period_h``), line and converter energy losses; their moments,
  histogram quantiles and intervals are merged in the same run state and checkpoint;
* paired differences of each controlled strategy against the same strategy with fixed
  set-points (same samples): the value of corrective control.

The dataset is built by :mod:`sopjax.montecarlo.timeseries_dataset`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from sopjax.errors import SopjaxError
from sopjax.kernels.scoring.control import (
    CONTROL_POLICIES,
    ISLAND_POLICIES,
    ControlOptions,
    SOPLimits,
    check_policy,
)
from sopjax.montecarlo.drive import merge_plan
from sopjax.montecarlo.redispatch import optimal_setpoints
from sopjax.montecarlo.runner import (
    SAMPLE_FIELDS,
    MonteCarloSettings,
    _fingerprint,
    _progress,
    default_chunk_size,
    kernel_block,
)
from sopjax.montecarlo.sources import ProfileSource, TimeSeriesError
from sopjax.montecarlo.state import RunState
from sopjax.montecarlo.timeseries_chunks import SeriesJob, series_chunk
from sopjax.network import Network
from sopjax.scaleout import make_executor
from sopjax.strategies import Strategy, StrategyBatch, compile_strategies, scoring_context

__all__ = [
    "ProfileSource",
    "TimeSeriesSettings",
    "TimeSeriesError",
    "run_timeseries",
    "optimal_setpoints",
    "shed_priority",
    "expand_strategies",
    "HORIZON_FIELDS",
    "GAIN_FIELDS",
    "CONTROL_POLICIES",
]


# horizon quantities per (strategy, sample); the ratio has a histogram (quantiles)
HORIZON_FIELDS = (
    "hz_energy_ratio",
    "hz_restored_pu_h",
    "hz_outage_pu_h",
    "hz_ens_pu_h",
    "hz_loss_pu_h",
    "hz_any_violation",
)
# paired differences controlled - fixed per (pair, sample)
GAIN_FIELDS = ("gain_energy_ratio", "gain_loss_pu_h", "gain_ens_pu_h")


@dataclasses.dataclass(frozen=True)
class TimeSeriesSettings:
    """Time-axis settings of :func:`run_timeseries` (the rest is :class:`MonteCarloSettings`).

    Attributes:
        period_h: length of one period in hours (energy = power x ``period_h``).
        controls: control policy per strategy (one string applies to all):
            ``"fixed"``, ``"local"`` or ``"optimal"`` (:mod:`sopjax.kernels.scoring.control`).
        control: settings of the local rule, the U_set search and the dispatch.
        start_hour: clock time of period 0 (labels only).
        island_overload: ``None`` (the run settings' ``"shed"`` or ``"flag"``), or ``"resolve"``
            (a tripped Vf island's load is dropped and the network solved again) or ``"priority"``
            (buses of an overloaded island are shed one at a time, by ``shed_order``, and the
            network re-solved until the island fits); see
            :func:`~sopjax.kernels.scoring.control.repair_islands`.
        shed_order: bus ids in the order they are shed by ``"priority"``; buses not listed come
            after them, largest nominal load first.
    """

    period_h: float = 1.0
    controls: str | tuple[str, ...] = "fixed"
    control: ControlOptions = ControlOptions()
    start_hour: float = 0.0
    island_overload: str | None = None
    shed_order: tuple[int, ...] = ()

    def policies(self, n_strategies: int) -> tuple[str, ...]:
        """The policy of each strategy (validated)."""
        c = (self.controls,) * n_strategies if isinstance(self.controls, str) else tuple(self.controls)
        if len(c) != n_strategies:
            raise TimeSeriesError(f"controls has {len(c)} entries for {n_strategies} strategies")
        for k, p in enumerate(c):
            try:
                check_policy(p, f"controls[{k}]")
            except ValueError as e:
                raise TimeSeriesError(str(e)) from None
        return c

    def validate(self) -> None:
        if not (np.isfinite(self.period_h) and self.period_h > 0):
            raise TimeSeriesError(f"period_h must be a positive number of hours, got {self.period_h}")
        if self.island_overload is not None and self.island_overload not in ISLAND_POLICIES:
            raise TimeSeriesError(
                f"island_overload must be one of {', '.join(ISLAND_POLICIES)}, got {self.island_overload!r}"
            )
        try:
            self.control.validate()
        except ValueError as e:
            raise TimeSeriesError(str(e)) from None


# ----------------------------------------------------------------------------- strategies


def expand_strategies(strategies, n_periods: int) -> list[list[Strategy]]:
    """Each entry (a :class:`Strategy` or ``n_periods`` of them) as a list of ``n_periods`` strategies.

    Raises:
        TimeSeriesError: a per-period list of another length (the strategy named).
    """
    out = []
    for k, s in enumerate(strategies):
        if isinstance(s, Strategy):
            out.append([s] * n_periods)
            continue
        seq = list(s)
        name = seq[0].name if seq and isinstance(seq[0], Strategy) else f"#{k}"
        if len(seq) != n_periods or not all(isinstance(x, Strategy) for x in seq):
            raise TimeSeriesError(
                f"strategy {name!r} is given per period with {len(seq)} entries; "
                f"the horizon has {n_periods} periods"
            )
        out.append(seq)
    names = [seq[0].name for seq in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise TimeSeriesError(f"strategy name {sorted(dup)[0]!r} is used twice")
    return out


def _row_batch(net: Network, per_period: list[list[Strategy]], fault_open) -> StrategyBatch:
    """One compiled strategy per (strategy, period) row, row = s * time + t (names ``name@t``).

    Each distinct strategy object is validated and compiled once, then repeated over its periods.
    """
    flat = [s for seq in per_period for s in seq]
    index: dict[int, int] = {}
    unique: list[Strategy] = []
    for s in flat:
        if id(s) not in index:
            index[id(s)] = len(unique)
            unique.append(dataclasses.replace(s, name=f"{s.name}@{len(unique)}"))
    compiled = compile_strategies(net, unique, fault_open=fault_open)
    idx = np.asarray([index[id(s)] for s in flat])
    rows = tuple(
        dataclasses.replace(s, name=f"{seq[0].name}@{t}") for seq in per_period for t, s in enumerate(seq)
    )
    arrays = jax.tree_util.tree_map(lambda a: np.asarray(a)[idx], compiled.arrays)
    topologies = tuple(compiled.topologies[i] for i in idx)
    return StrategyBatch(strategies=rows, topologies=topologies, arrays=arrays)


def _limits(net: Network, batch: StrategyBatch, ctx) -> SOPLimits:
    """Reactive and Vf voltage limits in each row's a/b orientation, (row, sop)."""
    a = batch.arrays
    sop = net.sop
    a_i = np.asarray(a.sop_a_is_i)
    pick = lambda xi, xj: np.where(a_i, np.asarray(xi, float)[None], np.asarray(xj, float)[None])  # noqa: E731
    a_bus = np.asarray(a.sop_a_bus)
    u_lo = np.maximum(np.asarray(net.v_min_pu, float), np.asarray(ctx.v_min_pu, float))[a_bus]
    u_hi = np.minimum(np.asarray(net.v_max_pu, float), np.asarray(ctx.v_max_pu, float))[a_bus]
    return SOPLimits(
        pick(sop.q_min_i_pu, sop.q_min_j_pu),
        pick(sop.q_max_i_pu, sop.q_max_j_pu),
        pick(sop.q_min_j_pu, sop.q_min_i_pu),
        pick(sop.q_max_j_pu, sop.q_max_i_pu),
        u_lo,
        np.maximum(u_hi, u_lo),
    )


def _row_kinds(batch: StrategyBatch, policies: Sequence[str], n_t: int) -> np.ndarray:
    """Kernel of each row: 'fixed', 'local', 'vf' (U_set search) or 'pq' (dispatch)."""
    a = batch.arrays
    pq, vf = np.asarray(a.sop_is_pq), np.asarray(a.sop_is_vf)
    kinds = []
    for r in range(len(batch)):
        pol = policies[r // n_t]
        if pol == "fixed" or not (pq[r].any() or vf[r].any()):
            kinds.append("fixed")
        elif pol == "local":
            kinds.append("local")
        elif vf[r].any() and pq[r].any():
            raise TimeSeriesError(
                f"strategy {batch.names[r].rsplit('@', 1)[0]!r}: optimal control of a PQ-mode SOP next "
                "to a Vf island is not supported (the dispatch models one substation-fed tree); "
                "use 'local' or 'fixed'"
            )
        else:
            kinds.append("vf" if vf[r].any() else "pq")
    return np.asarray(kinds)


# ----------------------------------------------------------------------------- shedding


def shed_priority(net: Network, shed_order: Sequence[int]) -> np.ndarray:
    """Priority of each bus for ``"priority"`` shedding (highest shed first), (bus,).

    Raises:
        TimeSeriesError: an unknown or repeated bus id in ``shed_order``.
    """
    prio = np.asarray(net.p_load_pu, float).copy()
    ids = list(net.bus_ids)
    seen = set()
    top = prio.max(initial=0.0) + 1.0
    for k, b in enumerate(shed_order):
        if b not in ids or b in seen:
            raise TimeSeriesError(
                f"shed_order[{k}] = {b} is {'repeated' if b in seen else 'not a bus of the network'}"
            )
        seen.add(b)
        prio[ids.index(b)] = top + len(shed_order) - k
    return prio


# ----------------------------------------------------------------------------- the run


def _pairs(names: Sequence[str], policies: Sequence[str], bases: Sequence[str]):
    """(controlled index, fixed index) per strategy that has a fixed twin with the same base name."""
    fixed = {b: k for k, (b, p) in enumerate(zip(bases, policies)) if p == "fixed"}
    return [(k, fixed[b]) for k, (b, p) in enumerate(zip(bases, policies)) if p != "fixed" and b in fixed]


def run_timeseries(
    net: Network,
    strategies: Sequence[Strategy | Sequence[Strategy]],
    source: ProfileSource,
    settings: MonteCarloSettings,
    ts: TimeSeriesSettings = TimeSeriesSettings(),
    *,
    bases: Sequence[str] | None = None,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
    attrs: dict[str, Any] | None = None,
    scheduler: Any = None,
    samples_out: str | Path | None = None,
):
    """Score strategies over the source's horizon; return an xarray Dataset with a ``time`` dimension.

    Args:
        net: the network.
        strategies: one entry per strategy: a :class:`Strategy` (fixed over the horizon) or a
            sequence of one strategy per period (same name first).
        source: a :class:`ProfileSource` (or any source whose draws are (sample, time, .)).
        settings: the one-period run settings (samples, chunk size, limits, statistics).
        ts: the time-axis settings (period length, control policy per strategy).
        bases: per strategy, the name of the plan it controls (default: its name); a controlled
            strategy with a ``fixed`` twin of the same base is compared with it (value of control).
        checkpoint, progress, on_chunk, attrs: as :func:`~sopjax.montecarlo.run_montecarlo`.
        scheduler: where the chunks run (:func:`sopjax.scaleout.make_executor`), as
            :func:`~sopjax.montecarlo.run_montecarlo`: the chunks' reductions are merged in
            chunk order, so the dataset equals the in-process run's.
        samples_out: a ``.zarr`` path: per-sample arrays (strategy, time, sample[, bus]) are
            written there by region from wherever each chunk runs, never held by the driver
            (:mod:`sopjax.montecarlo.sample_store`; implies ``keep_samples``).

    Raises:
        TimeSeriesError: strategies per period of the wrong length, an unknown control policy,
            optimal control of a PQ-mode SOP next to a Vf island.
        SopjaxError: as :func:`~sopjax.montecarlo.run_montecarlo`.
    """
    from sopjax.montecarlo.timeseries_dataset import build_timeseries_dataset

    settings.validate()
    ts.validate()
    if samples_out is not None and not settings.keep_samples:
        settings = dataclasses.replace(settings, keep_samples=True)
    n_t = int(source.n_periods)
    per_period = expand_strategies(strategies, n_t)
    n_s = len(per_period)
    policies = ts.policies(n_s)
    names = [seq[0].name for seq in per_period]
    bases = list(bases) if bases is not None else names
    if len(bases) != n_s:
        raise TimeSeriesError(f"bases has {len(bases)} entries for {n_s} strategies")
    batch = _row_batch(net, per_period, settings.fault_open)
    kinds = _row_kinds(batch, policies, n_t)
    island = ts.island_overload or settings.island_overload
    ctx = scoring_context(
        net,
        fault_open=settings.fault_open,
        v_min_pu=settings.v_min_pu,
        v_max_pu=settings.v_max_pu,
        island_overload="flag" if island == "flag" else "shed",
    )
    lim = _limits(net, batch, ctx)
    prio = shed_priority(net, ts.shed_order)
    pairs = _pairs(names, policies, bases)
    n_r, n = len(batch), int(settings.n_samples)
    chunk = min(int(settings.chunk_size or default_chunk_size(n_r, n)), n)
    exact = n_r * n <= settings.exact_limit
    if settings.keep_samples and samples_out is None and n_r * n * net.n_bus > 200_000_000:
        raise SopjaxError(
            f"keep_samples would hold {n_r} x {n} x {net.n_bus} voltages; reduce samples or strategies, "
            "or stream them to a zarr store with samples_out="
        )
    ts_key = dataclasses.replace(ts, controls=tuple(policies))
    fp = hashlib.sha256(
        (_fingerprint(net, batch, source, settings) + repr(ts_key) + repr(bases)).encode()
    ).hexdigest()
    store = None
    if samples_out is not None:
        from sopjax.montecarlo.sample_store import create_store

        store = create_store(samples_out, fingerprint=fp, strategies=names, bus_ids=net.bus_ids, n_samples=n,
                             chunk=chunk, kw_per_pu=net.base_mva * 1e3, n_periods=n_t)
    shapes = (
        {k: (tuple(net.n_bus for _ in dims), dt) for k, (dims, dt) in SAMPLE_FIELDS.items()}
        if settings.keep_samples and store is None
        else None
    )
    state = RunState(n_r, n, exact=exact, sample_shapes=shapes)
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and ckpt.exists():
        state.load(ckpt, fp)
    resumed_from = state.done

    job = SeriesJob(
        token=fp, net=net, batch=batch, ctx=jax.device_get(ctx), lim=lim, prio=prio, kinds=kinds,
        t_of_row=np.tile(np.arange(n_t, dtype=np.int32), n_s),
        pairs_a=np.asarray([a for a, _ in pairs], np.int32), pairs_b=np.asarray([b for _, b in pairs], np.int32),
        source=source, options=settings.options, control=ts.control, island=island, n_s=n_s, n_t=n_t,
        period_h=float(ts.period_h), exact=exact, keep_samples=settings.keep_samples,
        block=kernel_block(chunk), dtype=settings.dtype, store=store,
    )
    seen: dict[str, Any] = {}

    def keep(result: dict) -> None:
        seen["nominal"], seen["nominal_hz"] = result["nominal"], result["nominal_hz"]

    executor = make_executor(scheduler)
    t0 = time.perf_counter()
    bar = _progress(n, state.done, progress)
    try:
        merge_plan(executor, series_chunk, job, state, chunk=chunk, fingerprint=fp, checkpoint=ckpt, bar=bar,
                   on_chunk=on_chunk, on_result=keep)
    finally:
        bar.close()
        if executor is not scheduler:
            executor.close()
    info = {
        "chunk_size": chunk,
        "elapsed_s": time.perf_counter() - t0,
        "resumed_from_sample": resumed_from,
        "quantile_method": "exact" if exact else "histogram",
        "fingerprint": fp,
        "device": str(jax.devices()[0].platform),
        "executor": executor.description,
    }
    if store is not None:
        info["samples_store"] = str(store.path)
    return build_timeseries_dataset(
        net,
        batch,
        ctx,
        state,
        seen["nominal"],
        seen["nominal_hz"],
        settings,
        ts,
        source,
        info,
        attrs or {},
        names=names,
        policies=policies,
        bases=bases,
        pairs=pairs,
        n_t=n_t,
    )
