"""Monte Carlo over time: fixed SOP set-points vs per-sample re-dispatch, side by side (one run).

    nice python benchmarks/timeseries_bench.py                  # 64 strategies x 24 periods x 10 000 samples
    nice python benchmarks/timeseries_bench.py --samples 256    # a stated smaller size

On IEEE 33 with a 1 MVA PV at bus 30 and an SOP 8-21, after the fault on branch 2-3 (seed 002),
over 24 hourly periods (RTS-79 summer-weekday load, clear-sky PV with 500 kW at noon, AR(1)
forecast errors with rho = 0.8), ``run_timeseries`` scores S restoration strategies:

* a third with the SOP off (random radial reconfigurations), a third with the SOP in Vf mode
  (random reconfigurations, as benchmarks/montecarlo_bench.py), a third with the SOP in PQ mode
  (tie 12-22 closed so both terminals are fed, random set-points and shed loads);
* once with every strategy on ``fixed`` set-points and once on ``optimal`` control (per sample and
  period: the JAX dispatch for PQ-mode SOPs, the (U_set, Q_b) search for Vf islands; strategies
  without an active SOP are scored as fixed in both runs).

A third run (``--no-stall-row`` skips it) scores ``optimal`` control again with the dispatch's
stall test off (``ControlOptions.dispatch_stall_after = 0``: infeasible dispatches run to the
iteration limit), to show what the test saves.

It prints strategy-sample-periods per second of each run (sampling, power flow, control, scoring
and the streaming reductions included; compilation excluded: a warm-up run of one chunk compiles
first) and their ratio. The goal of the issue is re-dispatch < 20x fixed control.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from montecarlo_bench import FAULT, random_strategies, study_network  # noqa: E402

from sopjax.errors import SopjaxError  # noqa: E402
from sopjax.jax_config import configure_xla  # noqa: E402
from sopjax.kernels.scoring.control import ControlOptions  # noqa: E402
from sopjax.montecarlo import MonteCarloSettings  # noqa: E402
from sopjax.montecarlo.timeseries import ProfileSource, TimeSeriesSettings, run_timeseries  # noqa: E402
from sopjax.sampling import LoadNormal, PVForecastError, UncertaintyModel  # noqa: E402
from sopjax.sampling.profiles import clear_sky_pv_profile, load_profile  # noqa: E402
from sopjax.strategies import Strategy, compile_strategies  # noqa: E402

configure_xla()


def pq_strategies(net, count: int, seed: int = 1) -> list[Strategy]:
    """``count`` PQ-mode SOP strategies on the tie-12-22 topology: random P/Q set-points and shed loads."""
    rng = np.random.default_rng(seed)
    outage = list(range(3, 19)) + list(range(23, 34))
    out = []
    while len(out) < count:
        shed = sorted(rng.choice(outage, size=rng.integers(4, 12), replace=False).tolist())
        s = Strategy.build(
            net,
            f"pq{len(out):02d}",
            open=list(FAULT),
            close=[35],
            pickup={"shed": shed},
            sops=[
                {
                    "pair": [8, 21],
                    "mode": "pq",
                    "p_kw": float(rng.uniform(-800, 800)),
                    "q_i_kvar": float(rng.uniform(-600, 600)),
                    "q_j_kvar": float(rng.uniform(-600, 600)),
                }
            ],
        )
        try:
            compile_strategies(net, [s], fault_open=FAULT)
        except SopjaxError:
            continue
        out.append(s)
    return out


def strategies(net, count: int) -> list[Strategy]:
    """A third PQ-mode, the rest from montecarlo_bench (SOP off or in Vf mode, about half each)."""
    n_pq = count // 3
    return random_strategies(net, count - n_pq, seed=0) + pq_strategies(net, n_pq)


def source(net, n: int, periods: int):
    load = load_profile("rts79_summer_weekday")
    pv = clear_sky_pv_profile(latitude_deg=30.0, day_of_year=172, periods=24)
    idx = np.arange(periods) % 24
    model = UncertaintyModel(
        pv=PVForecastError(sigma_frac=0.1),
        load=LoadNormal(sigma_frac=0.1),
        load_profile=tuple(load[idx]),
        time_rho=0.8,
    )
    return ProfileSource(net, model, 0.05 * pv[idx, None], seed=0, n_samples=n)


def timed(net, strats, policy: str, n: int, periods: int, chunk: int, stall_after: int = 30):
    ts = TimeSeriesSettings(controls=policy, control=ControlOptions(dispatch_stall_after=stall_after))
    warm = MonteCarloSettings(n_samples=chunk, chunk_size=chunk, fault_open=FAULT)
    t0 = time.perf_counter()
    run_timeseries(net, strats, source(net, chunk, periods), warm, ts, progress=False)
    compile_s = time.perf_counter() - t0
    settings = MonteCarloSettings(n_samples=n, chunk_size=chunk, fault_open=FAULT)
    t0 = time.perf_counter()
    ds = run_timeseries(net, strats, source(net, n, periods), settings, ts, progress=sys.stderr.isatty())
    return ds, time.perf_counter() - t0, compile_s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strategies", type=int, default=64)
    ap.add_argument("--periods", type=int, default=24)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument(
        "--chunk-size", type=int, default=None, help="samples per chunk (default: min(samples, 128))"
    )
    ap.add_argument(
        "--no-stall-row", action="store_true",
        help="skip the third run: optimal control without the dispatch's stall test (dispatch_stall_after = 0)",
    )
    args = ap.parse_args(argv)
    net = study_network()
    strats = strategies(net, args.strategies)
    chunk = args.chunk_size or min(args.samples, 128)
    work = args.strategies * args.periods * args.samples
    full = (args.strategies, args.periods, args.samples) == (64, 24, 10_000)
    print(
        f"IEEE 33, fault on branch 2: {args.strategies} strategies x {args.periods} periods x "
        f"{args.samples} samples = {work:,} strategy-sample-periods, chunk {chunk} samples"
        + ("" if full else " (SMALLER than the issue's 64 x 24 x 10 000)")
    )
    pq = sum(bool(np.any(np.isin(s.sop_mode, (1, 2)))) for s in strats)
    vf = sum(bool(np.any(np.isin(s.sop_mode, (3, 4)))) for s in strats)
    print(
        f"strategies: {pq} PQ-mode SOP (dispatch), {vf} Vf-mode SOP (U_set, Q_b search), "
        f"{len(strats) - pq - vf} SOP off"
    )
    rows = []
    runs = [("fixed", 30), ("optimal", 30)] + ([] if args.no_stall_row else [("optimal", 0)])
    for policy, stall in runs:
        ds, sec, comp = timed(net, strats, policy, args.samples, args.periods, chunk, stall)
        policy = policy if stall else "optimal, no stall test"
        rate = work / sec
        failed = int(ds.control_failed.sum())
        rows.append((policy, rate, sec, comp, failed, float(ds.energy_recovery_mean.mean())))
        print(f"  {policy}: {sec:.1f} s ({comp:.1f} s warm-up with compilation)", flush=True)
    base = rows[0][1]
    print(
        f"{'control':<22} {'strategy-sample-periods/s':>26} {'seconds':>9} {'compile s':>10} {'vs fixed':>9} "
        f"{'ctl failed':>10} {'mean energy recovery':>21}"
    )
    for policy, rate, sec, comp, failed, rec in rows:
        print(
            f"{policy:<22} {rate:>26,.0f} {sec:>9.1f} {comp:>10.1f} {base / rate:>8.2f}x {failed:>10d} "
            f"{rec:>21.4f}"
        )
    print(f"re-dispatch costs {base / rows[1][1]:.1f}x fixed control (goal: < 20x)")
    if len(rows) > 2:
        print(f"the dispatch's stall test makes optimal control {rows[1][1] / rows[2][1]:.2f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
