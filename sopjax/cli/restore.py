"""``sopjax restore CONFIG.toml``: optimal restoration plan, exact re-check and Monte Carlo score."""

from __future__ import annotations

import argparse


from sopjax.cli.common import positive_float, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "restore",
        help="plan service restoration with SOPs and reconfiguration (MISOCP)",
        description="Plan the restoration of a fault from a TOML config (see configs/ieee33_restoration.toml): "
        "switch states, load pickup, SOP modes and set-points maximising eta_D * restored load - eta_L * "
        "losses (SOC DistFlow MISOCP, SCIP; or LinDistFlow MILP, HiGHS). The plan is re-checked with the "
        "exact power flow and, when the config has a [montecarlo] table, scored by the Monte Carlo engine.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="restoration config")
    p.add_argument("--uncertainty", choices=("forecast", "quantile", "scenarios"), default=None,
                   help="override [restoration] uncertainty")
    p.add_argument("--formulation", choices=("soc", "lindistflow"), default=None,
                   help="override [restoration] formulation")
    p.add_argument("--time-limit", type=positive_float, default=None, metavar="S", help="solver time limit (s)")
    p.add_argument("--samples", type=positive_int, default=None, metavar="N", help="override [montecarlo] samples")
    p.add_argument("--no-montecarlo", action="store_true", help="skip the Monte Carlo score")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def pv_lines(d: dict | None) -> list[str]:
    """One line per PV unit: parent normal, bounded mean/std and the quantiles the planner uses (kW)."""
    from sopjax.sampling.pv_stats import describe_pv

    return describe_pv(d) if d else []


def _print(out: dict) -> None:
    plan = out["plan"]
    s = plan["solver"]
    print(f"{out['title']}")
    print(f"  solve        {s['status']} ({s['solver']}, {s['total_s']:.2f} s, gap {s['gap']:.1e}, "
          f"{s['nodes']} nodes), formulation {plan['formulation']}, periods {len(plan['periods'])}")
    for line in pv_lines(out.get("pv_distribution_kw")):
        print(f"  PV model     {line}")
    print(f"  fault        branch(es) {', '.join(map(str, out['faulted']))}; outage load {plan['outage_kw']:.1f} kW")
    print(f"  switching    close {plan['closed'] or '-'}, open {plan['opened'] or '-'} "
          f"({plan['switch_operations']} operations)")
    for sop in plan["sops"]:
        if sop["mode"] in ("vf_i", "vf_j"):
            print(f"  SOP {sop['sop']:<8} {sop['mode']}: U_set {sop['u_set_pu']:.4f} p.u., "
                  f"P_i {sop['p_i_kw']:.1f} kW, Q_i {sop['q_i_kvar']:.1f} kvar, P_j {sop['p_j_kw']:.1f} kW, "
                  f"Q_j {sop['q_j_kvar']:.1f} kvar, loss {sop['loss_kw']:.1f} kW")
        else:
            print(f"  SOP {sop['sop']:<8} {sop['mode']}: P_i {sop['p_i_kw']:.1f} kW, Q_i {sop['q_i_kvar']:.1f} kvar, "
                  f"P_j {sop['p_j_kw']:.1f} kW, Q_j {sop['q_j_kvar']:.1f} kvar, loss {sop['loss_kw']:.1f} kW")
    print(f"  restored     {plan['restored_kw']:.1f} kW = {plan['recovery_ratio']:.2%} of the outage load")
    print(f"  shed buses   {plan['shed_buses'] or '-'}; de-energized {plan['de_energized_buses'] or '-'}")
    print(f"  losses       line {plan['line_losses_kw']:.2f} kW, converters {plan['sop_losses_kw']:.2f} kW; "
          f"objective {plan['objective']:.1f}")
    gap = plan["max_relaxation_gap"]
    if gap is not None:
        flag = f"; flagged branches {plan['gap_flagged_branches']}" if plan["gap_flagged_branches"] else ""
        print(f"  SOC gap      max {gap:.2e} (threshold {plan['gap_threshold']:.0e}){flag}")
    ex = out["exact_check"]
    print(f"  exact check  {'converged' if ex['converged'] else 'NOT converged'}, recovery "
          f"{ex['recovery_ratio']:.2%}, Vmin {ex['vmin_pu']:.4f}, Vmax {ex['vmax_pu']:.4f}, line losses "
          f"{ex['line_losses_kw']:.2f} kW, violation {'yes' if ex['any_violation'] else 'no'}"
          + (f", max |dV| model-exact {ex['dv_max_pu']:.1e} p.u." if ex.get("dv_max_pu") is not None else ""))
    mc = out.get("montecarlo")
    if mc and mc["recovery_mean"] is None:
        print(f"  Monte Carlo  {mc['samples']} samples, {mc['failed']} failed (no power-flow solution): "
              "no statistics")
    elif mc:
        print(f"  Monte Carlo  {mc['samples']} samples: recovery at forecast {mc['recovery_nominal']:.2%}, mean "
              f"{mc['recovery_mean']:.2%}, guaranteed @{mc['confidence']:.2%} {mc['recovery_guaranteed']:.2%}, "
              f"P(voltage violation) {mc['p_voltage_violation']:.1%}")


def run(args: argparse.Namespace) -> int:
    from sopjax.cli.common import print_json, read_toml
    from sopjax.errors import ConfigError
    from sopjax.problems.restoration.study import run_restoration_study, study_from_config

    cfg = read_toml(args.config, ConfigError)
    for table, key, value in (("montecarlo", "samples", args.samples), ("solver", "time_limit", args.time_limit)):
        if value is not None and isinstance(cfg.setdefault(table, {}), dict):  # not a table: the study names it
            cfg[table][key] = value
    study = study_from_config(cfg, uncertainty=args.uncertainty, formulation=args.formulation)
    out = run_restoration_study(study, with_montecarlo=not args.no_montecarlo)
    if args.json:
        print_json(out)
    else:
        _print(out)
    return 0 if out["plan"]["solver"]["status"] == "optimal" else 1
