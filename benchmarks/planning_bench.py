"""Planning speed: structured solves (branch-and-bound, enumeration over SOCPs) vs the monolithic MISOCP.

    .venv/bin/python benchmarks/planning_bench.py          # IEEE 33, 24 periods, 1 and 4 scenarios
    .venv/bin/python benchmarks/planning_bench.py --scenarios 1 2 4 --time-limit 900

For each number of reduced scenarios K (same sampled days, same k-means seed)
the three methods solve the same model (sopjax.problems.planning.model):

* ``bnb``        best-first branch-and-bound over the siting binaries, SOCP
                 relaxations by Clarabel (the model is canonicalised once, DPP);
* ``enumerate``  one fixed-site SOCP per site set (2^candidates);
* ``monolithic`` the whole MISOCP in SCIP (limits/gap = 1e-6), warm-started with
                 the rounded root relaxation, under ``--time-limit``.

Printed side by side: status, wall time (model building included, sampling
excluded), yearly cost, proven gap, sites, and the time ratio against the
monolithic solve; ``agree`` checks that a method found the same sites and a
cost within 1e-4 of the monolithic optimum (SCIP's cone tolerance is 1e-6 p.u.).
Timings depend on the machine's load: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "ieee33_planning.toml"))
    ap.add_argument("--scenarios", type=int, nargs="+", default=[1, 4], metavar="K")
    ap.add_argument("--time-limit", type=float, default=600.0, metavar="S", help="SCIP time limit (s)")
    ap.add_argument("--methods", nargs="+", default=["bnb", "enumerate", "monolithic"])
    args = ap.parse_args(argv)

    from sopjax.problems.planning.study import study_from_config
    from sopjax.problems.planning.solve import solve_plan

    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    print(f"config {args.config}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}")
    print(f"{'K':>3} {'method':<11}{'status':<11}{'time s':>9}{'cost/yr':>13}{'gap':>9}{'nodes':>7}"
          f"{'SOCPs':>7}  {'sites':<28}{'x faster':>9}  agree")
    ok_all = True
    for k in args.scenarios:
        cfg["scenarios"] = {**cfg.get("scenarios", {}), "count": k}
        study = study_from_config(cfg)
        problem = study.problem
        results = {}
        for method in args.methods:
            opts = {"time_limit": args.time_limit, "mip_gap": 1e-6} if method == "monolithic" else {}
            t0 = time.perf_counter()
            try:
                res = solve_plan(problem, method, **opts)
            except Exception as e:  # report and continue: a benchmark row, not a crash
                print(f"{k:>3} {method:<11}failed: {e}")
                continue
            res_time = time.perf_counter() - t0
            results[method] = (res, res_time)
        ref = results.get("monolithic")
        for method, (res, wall) in results.items():
            sites = ",".join(problem.labels[c].split(" ")[0]
                             for c in range(problem.n_candidates) if res.site[c])
            ratio = f"{ref[1] / wall:9.1f}" if ref else f"{'-':>9}"
            agree = ""
            if ref and method != "monolithic":
                same = bool((res.site == ref[0].site).all())
                close = abs(res.costs["total"] - ref[0].costs["total"]) <= 1e-4 * abs(ref[0].costs["total"])
                if ref[0].stats.status != "optimal":  # SCIP stopped: its plan is only an upper bound
                    better = res.costs["total"] <= ref[0].costs["total"] * (1 + 1e-4)
                    agree = "n/a (SCIP not proven; ours cheaper)" if better else "NO (SCIP cheaper)"
                    ok_all &= better
                else:
                    agree = "yes" if (same and close) else "NO"
                    ok_all &= agree == "yes"
            s = res.stats
            print(f"{k:>3} {method:<11}{s.status:<11}{wall:>9.1f}{res.costs['total']:>13,.0f}{s.gap:>9.1e}"
                  f"{s.nodes:>7}{s.n_socp:>7}  {sites or 'none':<28}{ratio}  {agree}")
        sys.stdout.flush()
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main())
