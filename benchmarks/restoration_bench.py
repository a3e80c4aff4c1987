"""Speed of sopjax's MISOCP formulation vs a naive one, same solver (SCIP), side by side in one run.

    python benchmarks/restoration_bench.py                       # all problems
    python benchmarks/restoration_bench.py --problems reconf33   # one problem
    python benchmarks/restoration_bench.py --problems reconf33 --repeat 3 --ablation

Problems: ``reconf33`` loss-minimising reconfiguration of IEEE 33 (every branch switchable),
``restore33`` seed 002 case 4 (SOP 8-21 + reconfiguration after a fault on branch 2-3, at the
PV forecast; PV 3 x 500 kW on 526.3 kVA units, substation 1.05 p.u., as docs/seed002_results.md A2-A3), ``reconf69`` reconfiguration of IEEE 69 (sopjax formulation only; the naive one is
given the same time limit and reported as it ends).

Variants, each solved to proven optimality (relative gap 1e-6 for reconfiguration, 1e-4 for
restoration):

* ``sopjax``: :data:`sopjax.solvers.options.TIGHT` with :data:`sopjax.solvers.backends.solve.SCIP_DEFAULTS`
  (what ``sopjax reconfigure`` / ``sopjax restore`` run);
* ``sopjax, SCIP defaults``: the same model with SCIP's own parameter defaults;
* ``naive``: :data:`sopjax.solvers.options.NAIVE` (blanket big-M, single-commodity-flow radiality,
  plain cones) with SCIP's own defaults -- what a first implementation gets;
* ``naive, sopjax SCIP settings``: the naive model with the tuned parameters.

``--ablation`` instead runs sopjax's model with one ingredient removed at a time (no warm start;
warm start but no :data:`~sopjax.solvers.backends.solve.SCIP_WARM_STARTED`; the aggregation separator on).
``--repeat N`` runs every variant N times, interleaved (variant 1, 2, ..., 1, 2, ...), and adds
the median row per variant (``MEDIAN``); ratios in the median rows are ratios of medians.

Wall and CPU seconds are printed (CPU time is insensitive to other jobs on a shared machine); the
ratio column divides the naive time by the sopjax time. Every variant's optimum is checked against
the sopjax one.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sopjax  # noqa: E402
from sopjax.solvers.options import NAIVE  # noqa: E402
from sopjax.solvers.options import TIGHT  # noqa: E402
from sopjax.problems.reconfiguration.build import build_reconfiguration, reconfiguration_warm_start  # noqa: E402
from sopjax.problems.restoration import RestorationSettings, build_restoration  # noqa: E402
from sopjax.problems.restoration.study import network_from_config  # noqa: E402
from sopjax.solvers.backends.scip import solve_scip  # noqa: E402
from sopjax.solvers.backends.solve import SCIP_DEFAULTS, SCIP_WARM_STARTED  # noqa: E402

from sopjax.jax_config import configure_xla  # noqa: E402

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)


#: seed 002 case 4 under the current setting (docs/seed002_results.md A2, A3; configs/seed002_table5.toml):
#: three 526.3 kVA PV units at buses 7, 13, 30 (pf 0.95) forecast at 500 kW each, substation 1.05 p.u.
RESTORE33 = {"case": "ieee33", "v_slack_pu": 1.05,
             "pv": [{"bus": b, "s_rated_kva": 526.3, "pf": 0.95} for b in (7, 13, 30)],
             "sop": [{"pair": [8, 21], "s_rated_kva": 2000, "loss": 0.02}]}
RESTORE33_FORECAST_KW = (500.0, 500.0, 500.0)


def restore33_net():
    return network_from_config({"network": RESTORE33})


def build(problem: str, options):
    """(model, cvxpy problem, relative gap, SCIP hints) -- the hints as the library's solve path computes them."""
    if problem in ("reconf33", "reconf69"):
        net = sopjax.load_case("ieee33" if problem == "reconf33" else "ieee69")
        m, prob = build_reconfiguration(net, options=options)
        hints = {"warm_start": reconfiguration_warm_start(m)} if options.warm_start else {}
        return m, prob, 1e-6, hints
    net = restore33_net()
    fc = tuple(np.array(RESTORE33_FORECAST_KW) / (net.base_mva * 1e3))
    st = RestorationSettings(faulted=(2,), switchable="all", keep_open=(33,), use_sop=True, pv_forecast_pu=fc,
                             options=options)
    m, prob = build_restoration(net, st)
    return m, prob, 1e-4, {}


def run(problem: str, options, params: dict, time_limit: float, warm_params: bool = True) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    _, prob, gap, hints = build(problem, options)
    if hints and warm_params:
        hints = {**hints, "params_if_warm": SCIP_WARM_STARTED}  # as solve_problem does
    out = solve_scip(prob, params={**params, "limits/time": time_limit, "limits/gap": gap}, **hints)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "status": out["status"],
            "objective": out["objective"], "bound": out["bound"], "nodes": out["nodes"]}


def _row(problem, name, r, base, flag=""):
    print(f"{problem:<10} {name:<36} {r['status']:<10} {r['objective']:>14.6g} {r['nodes']:>7d} "
          f"{r['wall']:>8.1f} {r['cpu']:>8.1f} {r['wall'] / base['wall']:>20.1f} {r['cpu'] / base['cpu']:>7.1f}{flag}",
          flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default="reconf33,restore33,reconf69")
    ap.add_argument("--time-limit", type=float, default=1800.0, help="per solve (s)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per variant, interleaved; medians printed")
    ap.add_argument("--ablation", action="store_true", help="sopjax with one ingredient removed at a time")
    args = ap.parse_args()
    # (name, formulation options, SCIP parameters, SCIP_WARM_STARTED when the warm start is accepted)
    if args.ablation:
        aggregation_on = {k: v for k, v in SCIP_DEFAULTS.items() if k != "separating/aggregation/freq"}
        variants = [
            ("sopjax", TIGHT, SCIP_DEFAULTS, True),
            ("sopjax, no warm start", dataclasses.replace(TIGHT, warm_start=False), SCIP_DEFAULTS, True),
            ("sopjax, no SCIP_WARM_STARTED", TIGHT, SCIP_DEFAULTS, False),
            ("sopjax, aggregation separator on", TIGHT, aggregation_on, True),
        ]
    else:
        variants = [
            ("sopjax", TIGHT, SCIP_DEFAULTS, True),
            ("sopjax, SCIP defaults", TIGHT, {}, False),
            ("naive", NAIVE, {}, False),
            ("naive, sopjax SCIP settings", NAIVE, SCIP_DEFAULTS, True),
        ]
    print(f"{'problem':<10} {'variant':<36} {'status':<10} {'objective':>14} {'nodes':>7} {'wall s':>8} {'CPU s':>8} "
          f"{'naive/sopjax (wall)':>20} {'(CPU)':>7}")
    for problem in args.problems.split(","):
        chosen = [v for v in variants if args.ablation or problem != "reconf69" or v[0] in ("sopjax", "naive")]
        runs: dict[str, list] = {v[0]: [] for v in chosen}
        base = None
        for _ in range(max(1, args.repeat)):
            for name, opts, params, warm in chosen:
                r = run(problem, opts, params, args.time_limit, warm)
                runs[name].append(r)
                base = base or r
                same = abs(r["objective"] - base["objective"]) <= 1e-3 * max(1.0, abs(base["objective"]))
                _row(problem, name, r, base, "" if same or r["status"] != "optimal" else "  (different optimum!)")
        if args.repeat > 1:
            med = {n: {"wall": float(np.median([r["wall"] for r in rs])), "cpu": float(np.median([r["cpu"] for r in rs])),
                       "nodes": int(np.median([r["nodes"] for r in rs])), "objective": rs[0]["objective"],
                       "status": "/".join(sorted({r["status"] for r in rs}))} for n, rs in runs.items()}
            b = med[chosen[0][0]]
            for n, r in med.items():
                _row(problem, "MEDIAN " + n, r, b)
    return 0


if __name__ == "__main__":
    sys.exit(main())
