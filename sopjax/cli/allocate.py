"""``sopjax allocate CONFIG.toml``: robust multi-objective SOP + capacitor allocation (seed 001)."""

from __future__ import annotations

import argparse

from sopjax.cli.common import positive_int
from sopjax.cli.outputs import add_output_options


def register(sub) -> None:
    p = sub.add_parser(
        "allocate",
        help="robust multi-objective SOP + capacitor allocation (NSGA-II over batched JAX evaluation)",
        description="Search SOP sites/module counts and capacitor banks with pymoo's NSGA-II; every "
        "generation's population is dispatched (JAX interior-point SOP dispatch), solved with the exact "
        "batched power flow and scored (cost, robust voltage offset, robust SOP utilization, VCPI) in one "
        "jitted call. Then: worst-case robustness radii of the front, the fuzzy best compromise, seed 001's "
        "cases 1-3 and the contingency stage (SOP + demand response). See configs/seed001_allocation.toml "
        "and docs/allocation.md.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="allocation config (see configs/seed001_allocation.toml)")
    p.add_argument("--out", metavar="FILE.nc", help="write the front as netCDF (.nc) or zarr (.zarr)")
    add_output_options(p)
    p.add_argument("--plot", metavar="FILE.png", help="write the Pareto-front projections")
    p.add_argument("--checkpoint", metavar="FILE.pkl", help="resumable GA checkpoint (continues if it exists; "
                   "--parents applies to it)")
    p.add_argument("--pop-size", type=positive_int, metavar="N", help="population size (overrides ga.pop_size)")
    p.add_argument("--generations", type=positive_int, metavar="N", help="generations (overrides ga.generations)")
    p.add_argument("--no-contingency", action="store_true", help="skip the contingency stage")
    p.add_argument("--no-stage2", action="store_true", help="skip stage 2 (the cvxpy operation model of [stage2])")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def format_report(d: dict) -> str:
    """The text summary printed by ``sopjax allocate``."""
    cur = d["currency"]
    c = d["compromise"]
    lines = [d["title"] or "SOP allocation", "",
             f"front: {d['front_size']} non-dominated plans ({', '.join(d['objectives'])}), "
             f"{d['evaluations']} evaluations, final hypervolume {d['hypervolume_final']:.4f}", "",
             "compromise plan (fuzzy membership):"]
    lines += [f"  SOP {k:<8} {v:7.0f} kVA per VSC" for k, v in c["sop_kva"].items()]
    lines += [f"  CB bus {k:<5} {v:7.0f} kvar" for k, v in c["cb_kvar"].items()]
    lines.append(f"  yearly cost ({cur}/year):")
    lines += [f"    {k:<16} {v:14,.0f}" for k, v in c["costs"].items()]
    rr = c["radius_refined"]
    lines.append(f"  offset {c['offset']:.4f} (robust {c['offset_robust']:.4f}), utilization "
                 f"{100 * c['utilization']:.1f} % (robust {100 * c['utilization_robust']:.1f} %), R_W first order "
                 f"{c['radius_first_order']:.3f}" + (f", refined {rr:.3f}" if rr is not None else ""))
    lines += ["", "seed 001 cases 1-3 (planning day):"]
    for name, r in d["cases"].items():
        lines.append(f"  {name:<20} loss cost {r['line_loss_cost']:12,.0f}  total {r['total_cost']:12,.0f}  "
                     f"offset {r['offset']:.4f}  VCPI {r['vcpi_max']:.4f}")
    s2 = d.get("stage2")
    if s2:
        lines += ["", f"stage 2 ({s2['formulation']}), operation cost ({cur}/year): model / GA evaluation / "
                  "stage-2 CB schedule in the GA evaluation:"]
        for r in s2["plans"]:
            lines.append(f"  plan {r['plan']:<3} {r['status']:<10} {r['operation_cost']:14,.0f} {r['ga_operation_cost']:14,.0f} "
                         f"{r['resweep_operation_cost']:14,.0f}  ({r['model_vs_ga_pct']:+.2f} %, {r['resweep_vs_ga_pct']:+.2f} %)")
            if r["message"]:
                lines.append(f"    {r['message']}")
    cont = d["contingency"]
    if cont:
        lines += ["", f"contingency stage (peak period {cont['period']}), compromise per case:"]
        for case, r in cont.items():
            if case == "period":
                continue
            lines.append(f"  {case:<7} VCPI {r['vcpi']:.4f}  cost {r['cost']:12,.0f}  cut {r['cut_kw']:.0f} kW  "
                         f"unserved {r['unserved_kw']:.0f} kW")
    lines += ["", "time: " + ", ".join(f"{k} {v:.1f} s" for k, v in d["timings_s"].items())]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import contextlib

    from sopjax.cli.common import read_toml
    from sopjax.cli.outputs import check_output, output_lock
    from sopjax.errors import ConfigError

    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite, parents=args.parents, suffixes=(".nc", ".zarr"))
    if args.plot is not None:
        check_output(args.plot, overwrite=args.overwrite, parents=args.parents, suffixes=(".png",), what="--plot")
    if args.checkpoint is not None:  # an existing checkpoint is resumed (no --overwrite needed)
        check_output(args.checkpoint, overwrite=True, parents=args.parents, suffixes=(".pkl",),
                     what="--checkpoint")
    with contextlib.ExitStack() as stack:  # taken before any work: a second run on this --out is refused
        stack.enter_context(output_lock(args.out))
        stack.enter_context(output_lock(args.checkpoint, what="--checkpoint"))
        return _run(args, read_toml(args.config, ConfigError))


def _run(args: argparse.Namespace, cfg: dict) -> int:
    import sys

    from sopjax.cli.common import print_json
    from sopjax.problems.allocation.results import plot_front, to_dataset, write_dataset
    from sopjax.problems.allocation.study import run_allocation_study, study_from_config

    from sopjax.config import table

    ga = dict(table(cfg.get("ga", {}), "[ga]"))
    if args.pop_size is not None:
        ga["pop_size"] = args.pop_size
    if args.generations is not None:
        ga["generations"] = args.generations
    cfg["ga"] = ga
    study = study_from_config(cfg)
    result = run_allocation_study(study, checkpoint=args.checkpoint, progress=not args.no_progress and None,
                                  contingency=not args.no_contingency, stage2=not args.no_stage2)
    ds = to_dataset(result)
    if args.out:
        print(f"wrote {write_dataset(ds, args.out)}", file=sys.stderr)
    if args.plot:
        print(f"wrote {plot_front(ds, args.plot)}", file=sys.stderr)
    d = result.as_dict()
    if args.json:
        print_json(d)
    else:
        print(format_report(d))
    return 0
