"""Monte Carlo over time: fixed SOP set-points vs per-sample re-dispatch, side by side (one run).

    python benchmarks/timeseries_bench.py --log results/ts_full.jsonl   # 64 strategies x 24 periods x 10 000 samples
    python benchmarks/timeseries_bench.py --samples 256                 # a stated smaller size
    python benchmarks/timeseries_bench.py --samples 512 --rows fixed,optimal,nostall,oneblock

On IEEE 33 with a 1 MVA PV at bus 30 and an SOP 8-21, after the fault on branch 2-3 (seed 002),
over 24 hourly periods (RTS-79 summer-weekday load, clear-sky PV with 500 kW at noon, AR(1)
forecast errors with rho = 0.8), ``run_timeseries`` scores S restoration strategies:

* a third with the SOP off (random radial reconfigurations), a third with the SOP in Vf mode
  (random reconfigurations, as benchmarks/montecarlo_bench.py), a third with the SOP in PQ mode
  (tie 12-22 closed so both terminals are fed, random set-points and shed loads);
* once with every strategy on ``fixed`` set-points and once on ``optimal`` control (per sample and
  period: the JAX dispatch for PQ-mode SOPs, the (U_set, Q_b) search for Vf islands; strategies
  without an active SOP are scored as fixed in both runs).

Optional rows (``--rows``): ``nostall`` scores ``optimal`` control with the dispatch's stall test
off (``ControlOptions.dispatch_stall_after = 0``: infeasible dispatches run to the iteration
limit); ``oneblock`` solves each chunk's dispatch problems in one batched call
(``ControlOptions.dispatch_block`` = all of them) instead of blocks of 256.

The rows are **interleaved chunk by chunk**: chunk k (samples ``[k c, (k+1) c)`` of the one
10 000-sample design) is scored by every row before chunk k+1, so a change of the machine's load
hits all rows alike. Each chunk is one ``run_timeseries`` call on those samples (sampling, power
flow, control, scoring and the streaming reductions included; compilation excluded: each row
first scores one chunk untimed). With ``--log FILE`` every finished (chunk, row) is appended to a
JSON-lines file and a rerun of the same command skips it, so the full size (hours on 2 cores)
can be interrupted and resumed; a log of another configuration is refused.

It prints strategy-sample-periods per second of each row, the ratio of total times and the
median of the per-chunk ratios. The goal of the issue is re-dispatch < 20x fixed control.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

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


ROWS = {
    "fixed": ("fixed", {}),
    "optimal": ("optimal", {}),
    "nostall": ("optimal, no stall test", {"dispatch_stall_after": 0}),
    "oneblock": ("optimal, one dispatch call", {"dispatch_block": 1 << 30}),
}


class ChunkOf:
    """Samples ``[offset, offset + n)`` of ``source`` as a design of ``n`` samples (same draws)."""

    def __init__(self, source, offset: int, n: int):
        self.inner, self.offset, self.n_samples = source, offset, n
        self.n_periods = source.n_periods

    def draw(self, start: int, n: int):
        return self.inner.draw(self.offset + start, n)

    def nominal(self):
        return self.inner.nominal()

    def fingerprint(self) -> str:
        return f"{self.inner.fingerprint()}:{self.offset}+{self.n_samples}"

    def describe(self) -> dict:
        return {**self.inner.describe(), "offset": self.offset}


def score_chunk(net, strats, src, row: str, k: int, chunk: int) -> dict:
    """Score chunk ``k`` with ``row``'s control; its seconds and summary."""
    policy, extra = ROWS[row]
    policy = "fixed" if row == "fixed" else "optimal"
    ts = TimeSeriesSettings(controls=policy, control=ControlOptions(**extra))
    m = min(chunk, src.n_samples - k * chunk)
    settings = MonteCarloSettings(n_samples=m, chunk_size=m, fault_open=FAULT)
    t0 = time.perf_counter()
    ds = run_timeseries(net, strats, ChunkOf(src, k * chunk, m), settings, ts, progress=False)
    sec = time.perf_counter() - t0
    return {
        "chunk": k, "row": row, "samples": m, "seconds": sec, "load": os.getloadavg()[0],
        "failed": int(ds.control_failed.sum()), "recovery_sum": float(ds.energy_recovery_mean.mean()) * m,
    }


def read_log(path: Path | None, header: dict) -> list[dict]:
    """Finished (chunk, row) records of ``path`` (checked against ``header``); writes the header if new."""
    if path is None:
        return []
    if not path.exists() or path.stat().st_size == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(header) + "\n")
        return []
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    old = {k: v for k, v in lines[0].items() if k != "commit"}
    if old != {k: v for k, v in header.items() if k != "commit"}:
        raise SystemExit(f"{path} holds another configuration: {lines[0]}; use another --log")
    return lines[1:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strategies", type=int, default=64)
    ap.add_argument("--periods", type=int, default=24)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--chunk-size", type=int, default=250, help="samples per chunk (default 250)")
    ap.add_argument("--rows", default="fixed,optimal",
                    help="comma-separated rows among fixed, optimal, nostall, oneblock (default fixed,optimal)")
    ap.add_argument("--log", type=Path, help="JSON-lines log: finished chunks are kept and skipped on a rerun")
    args = ap.parse_args(argv)
    rows = args.rows.split(",")
    if rows[0] != "fixed" or any(r not in ROWS for r in rows) or len(set(rows)) != len(rows):
        ap.error(f"--rows must start with fixed and name distinct rows among {sorted(ROWS)}")
    net = study_network()
    strats = strategies(net, args.strategies)
    chunk = min(args.chunk_size, args.samples)
    n_chunks = -(-args.samples // chunk)
    work = args.strategies * args.periods * args.samples
    full = (args.strategies, args.periods, args.samples) == (64, 24, 10_000)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    header = {"strategies": args.strategies, "periods": args.periods, "samples": args.samples,
              "chunk": chunk, "rows": rows, "commit": commit}
    done = read_log(args.log, header)
    print(
        f"IEEE 33, fault on branch 2: {args.strategies} strategies x {args.periods} periods x "
        f"{args.samples} samples = {work:,} strategy-sample-periods, {n_chunks} chunks of {chunk} samples"
        + ("" if full else " (SMALLER than the issue's 64 x 24 x 10 000)")
    )
    pq = sum(bool(np.any(np.isin(s.sop_mode, (1, 2)))) for s in strats)
    vf = sum(bool(np.any(np.isin(s.sop_mode, (3, 4)))) for s in strats)
    print(
        f"strategies: {pq} PQ-mode SOP (dispatch), {vf} Vf-mode SOP (U_set, Q_b search), "
        f"{len(strats) - pq - vf} SOP off"
    )
    src = source(net, args.samples, args.periods)
    have = {(r["chunk"], r["row"]) for r in done}
    todo = [(k, row) for k in range(n_chunks) for row in rows if (k, row) not in have]
    if done:
        print(f"resuming {args.log}: {len(have)} of {n_chunks * len(rows)} (chunk, row) runs already done")
    if todo:
        for row in rows:  # compile every row once (and for a shorter last chunk), untimed
            for k in [0] + ([n_chunks - 1] if args.samples % chunk else []):
                score_chunk(net, strats, src, row, k, chunk)
        from tqdm.auto import tqdm

        for k, row in tqdm(todo, desc="chunk x row", disable=not sys.stderr.isatty()):
            rec = score_chunk(net, strats, src, row, k, chunk)
            done.append(rec)
            if args.log is not None:
                with open(args.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    report(done, rows, args.strategies * args.periods)
    return 0


def report(done: list[dict], rows: list[str], per_sample: int) -> None:
    by = {row: {r["chunk"]: r for r in done if r["row"] == row} for row in rows}
    sec = {row: sum(r["seconds"] for r in by[row].values()) for row in rows}
    n = {row: sum(r["samples"] for r in by[row].values()) for row in rows}
    loads = [r["load"] for r in done]
    print(f"load average during the timed chunks: {min(loads):.1f} to {max(loads):.1f} (median {np.median(loads):.1f})")
    print(
        f"{'control':<27} {'strategy-sample-periods/s':>26} {'seconds':>9} {'vs fixed':>9} "
        f"{'median chunk ratio':>19} {'ctl failed':>10} {'mean energy recovery':>21}"
    )
    base = n["fixed"] * per_sample / sec["fixed"]
    for row in rows:
        rate = n[row] * per_sample / sec[row]
        med = np.median([r["seconds"] / by["fixed"][k]["seconds"] for k, r in by[row].items()])
        failed = sum(r["failed"] for r in by[row].values())
        rec = sum(r["recovery_sum"] for r in by[row].values()) / n[row]
        print(f"{ROWS[row][0]:<27} {rate:>26,.0f} {sec[row]:>9.1f} {base / rate:>8.2f}x {med:>18.2f}x "
              f"{failed:>10d} {rec:>21.4f}")
    if "optimal" in rows:
        print(f"re-dispatch costs {sec['optimal'] / sec['fixed']:.1f}x fixed control (goal: < 20x)")
    if "nostall" in rows:
        print(f"the dispatch's stall test makes optimal control {sec['nostall'] / sec['optimal']:.2f}x faster")
    if "oneblock" in rows:
        print(f"dispatch blocks of 256 make optimal control {sec['oneblock'] / sec['optimal']:.2f}x faster")


if __name__ == "__main__":
    raise SystemExit(main())
