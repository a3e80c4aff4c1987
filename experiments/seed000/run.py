"""Seed 000 reproduction: SOP siting and sizing on IEEE 33 (and 69), paper's claims next to ours.

    .venv/bin/python experiments/seed000/run.py                      # IEEE 33 (configs/ieee33_planning.toml)
    .venv/bin/python experiments/seed000/run.py configs/ieee69_planning.toml

Writes ``experiments/seed000/results/<case>.json`` (everything ``sopjax plan --json``
prints) and ``<case>.md`` (the tables quoted in docs/seed000_results.md).
The paper (an abstract only) reports, on IEEE 33: line losses ~15 % lower than
without SOP, SOP configuration cost ~12 % lower, better voltage profiles.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAPER = {"loss_reduction_pct": 15.0, "sop_cost_reduction_pct": 12.0}


def _table(d: dict) -> str:
    cur = d["currency"]
    out = [f"### {d['title']}", ""]
    sc = d["scenarios"]
    s = d["plan"]["solve"]
    out.append(f"{sc['count']} scenarios x {sc['periods']} periods (k-means of {sc['samples']} sampled days, "
               f"probabilities {', '.join(f'{p:.3f}' for p in sc['probability'])}); "
               f"solved by {s['method']} ({s['solver']}): {s['status']}, {s['total_s']:.1f} s, gap {s['gap']:.0e}, "
               f"{s['n_socp']} SOCPs.")
    out += ["", f"| plan | SOPs (VSC i / VSC j kVA) | line kWh/day | converter kWh/day | SOP cost {cur}/yr "
                f"| total {cur}/yr | Vmin | Vmax |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    plan_sites = {x["candidate"]: x for x in d["plan"]["sites"]}
    for r in d["baselines"]:
        if r["plan"] == "optimal":
            sites = "; ".join(f"{k} ({v['s_i_kva']:.0f} / {v['s_j_kva']:.0f})" for k, v in plan_sites.items())
        else:
            sites = ", ".join(r["sites"]) or "none"
            if r["sites"]:
                sites += f" ({r['capacity_kva']:.0f} kVA in all)"
        flag = " (violates limits)" if r["voltage_violation"] else ""
        out.append(f"| {r['plan']} | {sites} | {r['line_loss_kwh_day']:.1f} | {r['converter_loss_kwh_day']:.1f} | "
                   f"{r['sop_cost']:,.0f} | {r['total']:,.0f} | {r['vmin_pu']:.4f}{flag} | {r['vmax_pu']:.4f} |")
    c = d["comparison"]
    out += ["", "| claim | seed 000 | sopjax |", "|---|---:|---:|",
            f"| line-loss reduction vs no SOP | ~{PAPER['loss_reduction_pct']:.0f} % | "
            f"{c['loss_reduction_pct']:.1f} % (line + converter: {c['total_loss_reduction_pct']:.1f} %) |"]
    for name in ("standard units", "fixed size"):
        if name in c and "sop_cost_reduction_pct" in c[name]:
            out.append(f"| SOP configuration cost reduction vs {name} | ~{PAPER['sop_cost_reduction_pct']:.0f} % | "
                       f"{c[name]['sop_cost_reduction_pct']:.1f} % (total cost {c[name]['cost_reduction_pct']:.1f} %) |")
    if "no SOP" in c:
        pct = c["no SOP"]["cost_reduction_pct"]
        word = f"{pct:.1f} % lower" if pct >= 0 else f"{-pct:.1f} % higher"
        out.append(f"| total yearly cost vs no SOP | lower | {word} |")
    if d["validation"]:
        out += ["", "Out of sample (fresh sampled days, exact power flow):", "",
                f"| plan | dispatch | days | E[cost] {cur}/yr | E[line kWh/day] | p5 / p50 / p95 total kWh/day "
                "| P(violation) hour | P(violation) day | Vmin | infeasible hours |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, rules in d["validation"].items():
            for rule, v in rules.items():
                if rule == "none_subset":
                    continue
                t = v["total_loss_kwh_day"]
                out.append(f"| {name} | {v['dispatch']} | {v['n_days']} | {v['expected_cost']:,.0f} | "
                           f"{v['line_loss_kwh_day']['mean']:.1f} | {t['p5']:.0f} / {t['p50']:.0f} / {t['p95']:.0f} | "
                           f"{v['voltage_violation_probability_hour']:.4f} | "
                           f"{v['voltage_violation_probability_day']:.3f} | {v['vmin_pu']:.4f} | "
                           f"{v['dispatch_not_converged']} |")
    out += ["", "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in d["timings_s"].items())]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default=str(ROOT / "configs" / "ieee33_planning.toml"))
    ap.add_argument("--out", default=str(ROOT / "experiments" / "seed000" / "results"))
    ap.add_argument("--render", metavar="JSON", help="only rewrite the tables from a results JSON (no solve)")
    args = ap.parse_args(argv)
    if args.render:
        path = Path(args.render)
        md = _table(json.loads(path.read_text()))
        path.with_suffix(".md").write_text(md)
        print(md)
        return 0

    from sopjax.problems.planning.study import run_planning_study, study_from_config

    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    t0 = time.perf_counter()
    study = study_from_config(cfg)
    t_study = time.perf_counter() - t0
    res = run_planning_study(study, log=lambda m: print(m, file=sys.stderr))
    res.timings = {"sampling + reduction": t_study, **res.timings}
    d = res.as_dict()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = study.problem.net.name
    (out / f"{name}.json").write_text(json.dumps(d, indent=1, default=float) + "\n")
    md = _table(d)
    (out / f"{name}.md").write_text(md)
    print(md)
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
