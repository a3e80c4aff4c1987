"""``sopjax sweep CONFIG.toml``: parameter sweeps with derivatives, or capacity optimization."""

from __future__ import annotations

import argparse

from sopjax.cli.common import add_scheduler_options


from sopjax.cli.common import positive_int
from sopjax.cli.outputs import add_output_options


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="sweep SOP capacity / PV penetration (quantities and their derivatives) or optimize capacity",
        description="Evaluate expected losses, minimum voltage and restorable load with their derivatives "
        "(d<quantity>_d<axis>) over a grid of SOP capacity, PV penetration or load scale "
        "(kind = \"sweep\"), or minimize yearly investment + loss cost over the SOP capacity with optax "
        "and compare with a grid search (kind = \"optimization\"). Writes an xarray dataset (netCDF).",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="sweep or optimization config (see configs/)")
    p.add_argument("--out", metavar="FILE.nc", help="write the dataset (netCDF) and PNG figures next to it")
    add_output_options(p)
    p.add_argument("--samples", type=positive_int, metavar="N", help="override [sampling] samples")
    p.add_argument("--engine", choices=("jax", "cvxpylayers", "learned"),
                   help="override [dispatch] engine (learned: needs [dispatch] checkpoint)")
    p.add_argument("--no-plots", action="store_true", help="do not write figures")
    p.add_argument("--quiet", action="store_true", help="no per-point progress lines")
    add_scheduler_options(p)
    p.set_defaults(func=run)


def _summary(ds) -> str:
    import json

    import numpy as np

    if ds.attrs.get("kind") == "optimization":
        g = json.loads(ds.attrs["grid_optimum_mva"])
        u = json.loads(ds.attrs["optax_optimum_mva"])
        cur = ds["grid_cost"].attrs["units"]
        a = ds.attrs
        return "\n".join([
            f"{ds.attrs['title']}",
            f"  grid search : {np.round(g, 4).tolist()} MVA per VSC, "
            f"cost {a['grid_optimum_cost']:.1f} {cur}",
            f"  optax       : {np.round(u, 4).tolist()} MVA per VSC, "
            f"cost {a['optax_optimum_cost']:.1f} {cur} (losses {a['optax_optimum_losses_kw']:.2f} kW)",
            f"  |optax - grid| = {a['optimum_gap_mva']:.4f} MVA (grid step {a['grid_step_mva']:.4g} MVA): "
            + ("within one grid step" if a["within_one_grid_step"] else "NOT within one grid step"),
            f"  time: grid {a['grid_seconds']:.1f} s, optax {a['optax_seconds']:.1f} s",
        ] + ([
            f"  interior point, same samples: grid {np.round(json.loads(a['ipm_grid_optimum_mva']), 4).tolist()} "
            f"MVA (cost {a['ipm_grid_optimum_cost']:.1f} {cur}), optax "
            f"{np.round(json.loads(a['ipm_optax_optimum_mva']), 4).tolist()} MVA (cost "
            f"{a['ipm_optax_optimum_cost']:.1f} {cur}); time: grid {a['ipm_grid_seconds']:.1f} s, "
            f"optax {a['ipm_optax_seconds']:.1f} s",
        ] if "ipm_optax_optimum_mva" in a else []))
    dims = list(ds.dims)
    derivs = [v for v in ds.data_vars if ds[v].attrs.get("method")]
    qs = [v for v in ds.data_vars if v not in derivs]
    cols = dims + qs + derivs
    width = {c: max(12, len(c) + 2) for c in cols}
    head = [f"{c:>{width[c]}}" for c in cols]
    a = ds.attrs
    lines = [f"{a['title']} ({a['n_samples']} samples, engine {a['engine']})", "".join(head)]
    flat = ds.stack(point=dims) if len(dims) > 1 else ds.rename({dims[0]: "point"})
    for k in range(flat.sizes["point"]):
        row = flat.isel(point=k)
        if len(dims) > 1:
            cells = [f"{float(row[d]):>{width[d]}.4g}" for d in dims]
        else:
            cells = [f"{float(row['point']):>{width[dims[0]]}.4g}"]
        cells += [f"{float(row[c]):>{width[c]}.5g}" for c in qs + derivs]
        lines.append("".join(cells))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from sopjax.cli.common import read_toml
    from sopjax.cli.outputs import check_output, output_lock
    from sopjax.errors import ConfigError
    from sopjax.sweeps.config import spec_from_config

    if args.out is not None:
        check_output(args.out, overwrite=args.overwrite, parents=args.parents)
    with output_lock(args.out):  # taken before any work: a second run on this --out is refused at once
        spec = spec_from_config(read_toml(args.config, ConfigError), samples=args.samples, engine=args.engine)
        return _run(spec, args)


def _run(spec, args) -> int:
    from pathlib import Path

    from sopjax.errors import SopjaxError  # the --scheduler refusal below used it without an import

    if spec.kind == "optimization":
        from sopjax.sweeps.optimize import optimize_capacity

        if args.scheduler:
            from sopjax.errors import SopjaxError

            raise SopjaxError("--scheduler runs sweeps (kind = \"sweep\"); "
                              "the optax optimization runs in-process")
        if spec.engine == "learned":
            from sopjax.surrogates.sweep import run_learned_optimization

            ds = run_learned_optimization(spec, progress=not args.quiet)
        else:
            ds = optimize_capacity(spec, progress=not args.quiet)
    else:
        from sopjax.cli.common import open_executor
        from sopjax.sweeps.runner import run_sweep

        with open_executor(args) as executor:
            if spec.engine == "learned":
                from sopjax.surrogates.sweep import run_learned_sweep

                ds = run_learned_sweep(spec, progress=not args.quiet, scheduler=executor)
            else:
                ds = run_sweep(spec, progress=not args.quiet, scheduler=executor)
    print(_summary(ds))
    if args.out:
        out = Path(args.out)
        ds.to_netcdf(out)
        print(f"wrote {out}")
        if not args.no_plots:
            from sopjax.sweeps.plots import write_plots

            for p in write_plots(ds, out):
                print(f"wrote {p}")
            if spec.engine == "learned" and spec.compare:
                from sopjax.surrogates.plots import learned_sweep_plot

                p = learned_sweep_plot(ds, out.with_name(out.stem + "_learned_vs_ipm.png"))
                if p is not None:
                    print(f"wrote {p}")
    return 0
