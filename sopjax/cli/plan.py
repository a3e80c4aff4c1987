"""``sopjax plan CONFIG.toml``: multi-period SOP siting and sizing under PV/load uncertainty."""

from __future__ import annotations

import argparse


from sopjax.cli.common import nonnegative_int, positive_float
from sopjax.cli.outputs import add_output_options


def register(sub) -> None:
    p = sub.add_parser(
        "plan",
        help="site and size SOPs (MISOCP, 24 periods, DG uncertainty) with baselines and validation",
        description="Sample PV/load days, reduce them to scenarios, choose SOP sites and per-VSC sizes that "
        "minimise annualised investment + operation + loss cost (SOC DistFlow, voltage limits), compare with "
        "baselines (no SOP, fixed-size SOPs everywhere, standard converter units) and validate every plan "
        "out of sample with the exact power flow. See configs/ieee33_planning.toml and docs/planning.md.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="planning config (see configs/ieee33_planning.toml)")
    p.add_argument("--method", choices=("bnb", "enumerate", "monolithic"),
                   help="solution method (overrides solver.method)")
    p.add_argument("--time-limit", type=positive_float, metavar="S", help="SCIP time limit in s (monolithic)")
    p.add_argument("--validation-samples", type=nonnegative_int, metavar="N",
                   help="out-of-sample days (overrides the config)")
    p.add_argument("--no-validation", action="store_true", help="skip the out-of-sample validation")
    p.add_argument("--out", metavar="FILE.nc", help="write the plan's per-scenario operation as netCDF")
    add_output_options(p)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=run)


def _money(x: float) -> str:
    return f"{x:,.0f}"


def format_report(d: dict) -> str:
    """The text summary printed by ``sopjax plan`` (from :meth:`PlanningStudyResult.as_dict`)."""
    cur = d["currency"]
    plan = d["plan"]
    s = plan["solve"]
    sc = d["scenarios"]
    probs = ", ".join(f"{p:.3f}" for p in sc["probability"])
    solve = (f"solve: {s['method']} ({s['solver']}) status {s['status']}, {s['total_s']:.1f} s, "
             f"gap {s['gap']:.1e}, {s['nodes']} nodes")
    if s["n_socp"]:
        solve += f", {s['n_socp']} SOCPs"
    if s["scip_status"]:
        solve += f" [SCIP: {s['scip_status']}]"
    lines = [
        d["title"] or d["case"], "",
        f"scenarios: {sc['count']} representative days x {sc['periods']} periods "
        f"from {sc['samples']} sampled days, probabilities {probs}",
        solve, "",
    ]
    if plan["sites"]:
        lines.append("SOPs installed (per-VSC capacity):")
        for site in plan["sites"]:
            lines.append(f"  {site['candidate']:<18} VSC i {site['s_i_kva']:8.1f} kVA   "
                         f"VSC j {site['s_j_kva']:8.1f} kVA")
    else:
        lines.append("no SOP installed")
    c = plan["costs"]
    lines += [
        "",
        f"yearly cost ({cur}/year):",
        f"  annualised investment {_money(c['annualized_investment']):>12}"
        f"   (investment {_money(c['investment'])})",
        f"  O&M                   {_money(c['om']):>12}",
        f"  converter losses      {_money(c['converter_loss_cost']):>12}",
        f"  line losses           {_money(c['line_loss_cost']):>12}",
        f"  total                 {_money(c['total']):>12}",
        f"losses: line {plan['line_loss_kwh_day']:.1f} kWh/day, "
        f"converters {plan['converter_loss_kwh_day']:.1f} kWh/day; "
        f"voltage {plan['vmin_pu']:.4f}-{plan['vmax_pu']:.4f} p.u.; "
        f"SOC relaxation gap {plan['relaxation_gap']:.1e}",
        "",
        "comparison on the scenarios:",
        f"  {'plan':<16}{'sites':>6}{'kVA':>8}{'line kWh/d':>12}{'conv kWh/d':>12}"
        f"{'SOP cost':>11}{'total':>11}{'Vmin':>8}{'Vmax':>8}",
    ]
    for r in d["baselines"]:
        flag = "  (violates voltage limits)" if r["voltage_violation"] else ""
        lines.append(
            f"  {r['plan']:<16}{len(r['sites']):>6}{r['capacity_kva']:>8.0f}"
            f"{r['line_loss_kwh_day']:>12.1f}{r['converter_loss_kwh_day']:>12.1f}"
            f"{_money(r['sop_cost']):>11}{_money(r['total']):>11}"
            f"{r['vmin_pu']:>8.4f}{r['vmax_pu']:>8.4f}{flag}"
        )
    comp = d["comparison"]
    if "loss_reduction_pct" in comp:
        lines.append(f"  line-loss reduction vs no SOP: {comp['loss_reduction_pct']:.1f} % "
                     f"(line + converter: {comp['total_loss_reduction_pct']:.1f} %)   [seed 000: ~15 %]")
    for name in ("fixed size", "standard units"):
        if name in comp and "sop_cost_reduction_pct" in comp[name]:
            lines.append(f"  SOP cost reduction vs {name}: {comp[name]['sop_cost_reduction_pct']:.1f} %, "
                         f"total cost {comp[name]['cost_reduction_pct']:.1f} %   [seed 000: ~12 %]")
    if d["validation"]:
        lines += [
            "", "out-of-sample validation (exact power flow on fresh sampled days):",
            f"  {'plan':<16}{'dispatch':<9}{'days':>6}{'E[cost]':>11}{'E[line kWh/d]':>15}"
            f"{'p95 kWh/d':>11}{'P(viol) h':>11}{'P(viol) d':>11}{'Vmin':>8}",
        ]
        for name, rules in d["validation"].items():
            for rule, v in rules.items():
                if rule == "none_subset":
                    continue
                bad = v["dispatch_not_converged"]
                note = f"  ({bad} h infeasible)" if bad else ""
                lines.append(
                    f"  {name:<16}{v['dispatch']:<9}{v['n_days']:>6}{_money(v['expected_cost']):>11}"
                    f"{v['line_loss_kwh_day']['mean']:>15.1f}{v['total_loss_kwh_day']['p95']:>11.1f}"
                    f"{v['voltage_violation_probability_hour']:>11.4f}"
                    f"{v['voltage_violation_probability_day']:>11.4f}{v['vmin_pu']:>8.4f}{note}"
                )
    t = d["timings_s"]
    lines += ["", "time: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items())]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import sys
    import time

    from sopjax.cli.common import print_json, read_toml
    from sopjax.errors import ConfigError
    from sopjax.problems.planning.study import run_planning_study, study_from_config

    from sopjax.cli.outputs import check_output, output_lock

    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite, parents=args.parents)
    with output_lock(args.out):  # taken before any work: a second run on this --out is refused at once
        cfg = read_toml(args.config, ConfigError)
        if args.validation_samples is not None and isinstance(cfg.get("validation", {}), dict):
            val = dict(cfg.get("validation", {}))  # not a table: the study refuses it
            val["samples"] = args.validation_samples
            days = val.get("optimal_days", 50)
            if isinstance(days, int) and not isinstance(days, bool):  # anything else: the study names it
                val["optimal_days"] = min(days, args.validation_samples)
            cfg["validation"] = val
        if args.time_limit is not None and isinstance(cfg.get("solver", {}), dict):
            cfg["solver"] = {**cfg.get("solver", {}), "time_limit_s": args.time_limit}
        t0 = time.perf_counter()
        study = study_from_config(cfg)
        t_study = time.perf_counter() - t0
        log = None if args.json else (lambda msg: print(msg, file=sys.stderr))
        result = run_planning_study(study, method=args.method, validate=not args.no_validation, log=log)
        result.timings = {"sampling + reduction": t_study, **result.timings}
        d = result.as_dict()
        if args.out:
            result.plan.to_dataset().to_netcdf(args.out)
            print(f"wrote {args.out}", file=sys.stderr)
    if args.json:
        print_json(d)
    else:
        print(format_report(d))
    return 0 if result.plan.stats.status == "optimal" else 1
