"""``sopjax montecarlo CONFIG.toml``: score restoration strategies by Monte Carlo."""

from __future__ import annotations

import argparse

from sopjax.cli.common import add_scheduler_options, chunk_size, nonnegative_int, positive_int
from sopjax.cli.outputs import add_output_options


def register(sub) -> None:
    p = sub.add_parser(
        "montecarlo",
        help="score restoration strategies under PV/load uncertainty (Monte Carlo)",
        description="Score the strategies of a study config on Monte Carlo samples of PV and load: "
        "recovery ratio, voltage compliance, losses, VCPI and SOP loading per strategy. Prints a summary "
        "table; --out writes an xarray dataset (.nc or .zarr) and two plots next to it. An interrupted run "
        "resumes from its checkpoint (<out>.ckpt.npz) when rerun with the same arguments. A config with a "
        "[timeseries] table scores the strategies over a horizon of periods (docs/montecarlo.md).",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="study config (see configs/ieee33_restoration_mc.toml)")
    p.add_argument("--samples", type=positive_int, metavar="N", help="number of samples (overrides the config)")
    p.add_argument("--seed", type=nonnegative_int, metavar="S", help="PRNG seed (overrides the config)")
    p.add_argument("--chunk-size", type=chunk_size, metavar="C|auto",
                   help="samples per chunk, or 'auto' (sized from the sample and strategy counts); "
                   "results do not depend on it")
    p.add_argument("--out", metavar="FILE.nc", help="write the dataset (.nc or .zarr) and plots")
    add_output_options(p)
    p.add_argument("--samples-out", metavar="FILE.zarr",
                   help="stream per-sample arrays into this zarr store (written by region from the workers)")
    add_scheduler_options(p)
    p.add_argument("--no-plots", action="store_true", help="with --out: skip the figures")
    p.add_argument("--json", action="store_true", help="print the aggregates as JSON instead of a table")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from sopjax.cli.common import open_executor, print_json, read_toml
    from sopjax.errors import ConfigError
    from sopjax.montecarlo.study import run_study, study_from_config
    from sopjax.montecarlo.summary import summary_dict, summary_table

    from sopjax.cli.outputs import check_output, output_lock

    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite, parents=args.parents, suffixes=(".nc", ".zarr"))
    if args.samples_out is not None:
        check_output(args.samples_out, overwrite=args.overwrite, parents=args.parents, suffixes=(".zarr",))
    with output_lock(args.out):  # taken before any work: a second run on this --out is refused at once
        cfg = read_toml(args.config, ConfigError)
        with open_executor(args) as executor:
            if "timeseries" in cfg:  # Monte Carlo over time (sopjax.montecarlo.timeseries_study)
                return _run_timeseries(args, cfg, executor)
            study = study_from_config(cfg, samples=args.samples, seed=args.seed, chunk_size=args.chunk_size)
            ds, written = run_study(study, out=args.out, progress=args.progress, plots=not args.no_plots,
                                    scheduler=executor, samples_out=args.samples_out)
    if args.json:
        print_json(summary_dict(ds))
    else:
        print(summary_table(ds))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _run_timeseries(args: argparse.Namespace, cfg, executor) -> int:
    import json
    import sys

    from sopjax.montecarlo.timeseries_study import run_timeseries_study, timeseries_study_from_config
    from sopjax.montecarlo.timeseries_summary import summary_table_timeseries

    study = timeseries_study_from_config(cfg, samples=args.samples, seed=args.seed,
                                         chunk_size=args.chunk_size)
    ds, written = run_timeseries_study(study, out=args.out, progress=args.progress, plots=not args.no_plots,
                                       scheduler=executor, samples_out=args.samples_out)
    if args.json:
        keep = [v for v in ds.data_vars if ds[v].dims in (("strategy",), ("pair",))]
        print(json.dumps(ds[keep].to_dict(data="list")["data_vars"], default=str, indent=1))
    else:
        print(summary_table_timeseries(ds))
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
