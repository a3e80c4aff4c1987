"""Speed of sopjax's MISOCP formulation vs a naive one, same solver (SCIP), side by side in one run.

    python benchmarks/restoration_bench.py                       # all problems
    python benchmarks/restoration_bench.py --problems reconf33   # one problem

Problems: ``reconf33`` loss-minimising reconfiguration of IEEE 33 (every branch switchable),
``restore33`` seed 002 case 4 (SOP 8-21 + reconfiguration after a fault on branch 2-3, at the
PV forecast), ``reconf69`` reconfiguration of IEEE 69 (sopjax formulation only; the naive one is
given the same time limit and reported as it ends).

Variants, each solved to proven optimality (relative gap 1e-6 for reconfiguration, 1e-4 for
restoration):

* ``sopjax``: :data:`sopjax.solvers.options.TIGHT` with :data:`sopjax.solvers.solve.SCIP_DEFAULTS`
  (what ``sopjax reconfigure`` / ``sopjax restore`` run);
* ``sopjax, SCIP defaults``: the same model with SCIP's own parameter defaults;
* ``naive``: :data:`sopjax.solvers.naive.NAIVE` (blanket big-M, single-commodity-flow radiality,
  plain cones) with SCIP's own defaults -- what a first implementation gets;
* ``naive, sopjax SCIP settings``: the naive model with the tuned parameters.

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
from sopjax.solvers.naive import NAIVE  # noqa: E402
from sopjax.solvers.options import TIGHT  # noqa: E402
from sopjax.solvers.problems.reconfiguration import build_reconfiguration, reconfiguration_warm_start  # noqa: E402
from sopjax.solvers.problems.restoration import RestorationSettings, build_restoration  # noqa: E402
from sopjax.solvers.scip_direct import solve_scip  # noqa: E402
from sopjax.solvers.solve import SCIP_DEFAULTS  # noqa: E402


def restore33_net():
    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=[300, 200, 200], pf=0.95)
    return sopjax.add_sops(net, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)


def build(problem: str, options):
    """(model, cvxpy problem, relative gap, SCIP hints) -- the hints as the library's solve path computes them."""
    if problem in ("reconf33", "reconf69"):
        net = sopjax.load_case("ieee33" if problem == "reconf33" else "ieee69")
        m, prob = build_reconfiguration(net, options=options)
        hints = {"warm_start": reconfiguration_warm_start(m)} if options.warm_start else {}
        return m, prob, 1e-6, hints
    net = restore33_net()
    fc = tuple(np.array([300.0, 200.0, 200.0]) * 500 / 700 / (net.base_mva * 1e3))
    st = RestorationSettings(faulted=(2,), switchable="all", keep_open=(33,), use_sop=True, pv_forecast_pu=fc,
                             options=options)
    m, prob = build_restoration(net, st)
    return m, prob, 1e-4, {}


def run(problem: str, options, params: dict, time_limit: float) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    _, prob, gap, hints = build(problem, options)
    out = solve_scip(prob, params={**params, "limits/time": time_limit, "limits/gap": gap}, **hints)
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "status": out["status"],
            "objective": out["objective"], "bound": out["bound"], "nodes": out["nodes"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default="reconf33,restore33,reconf69")
    ap.add_argument("--time-limit", type=float, default=1800.0, help="per solve (s)")
    args = ap.parse_args()
    variants = [
        ("sopjax", TIGHT, SCIP_DEFAULTS),
        ("sopjax, SCIP defaults", TIGHT, {}),
        ("naive", NAIVE, {}),
        ("naive, sopjax SCIP settings", NAIVE, SCIP_DEFAULTS),
    ]
    print(f"{'problem':<10} {'variant':<30} {'status':<10} {'objective':>14} {'nodes':>7} {'wall s':>8} {'CPU s':>8} "
          f"{'naive/sopjax (wall)':>20} {'(CPU)':>7}")
    for problem in args.problems.split(","):
        base = None
        for name, opts, params in variants:
            if problem == "reconf69" and name != "sopjax" and name != "naive":
                continue
            r = run(problem, opts, params, args.time_limit)
            if base is None:
                base = r
            same = abs(r["objective"] - base["objective"]) <= 1e-3 * max(1.0, abs(base["objective"]))
            ratio_w = r["wall"] / base["wall"]
            ratio_c = r["cpu"] / base["cpu"]
            flag = "" if same or r["status"] != "optimal" else "  (different optimum!)"
            print(f"{problem:<10} {name:<30} {r['status']:<10} {r['objective']:>14.6g} {r['nodes']:>7d} "
                  f"{r['wall']:>8.1f} {r['cpu']:>8.1f} {ratio_w:>20.1f} {ratio_c:>7.1f}{flag}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
