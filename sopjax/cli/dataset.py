"""``sopjax dataset CONFIG.toml --out DIR.zarr``: generate a labelled dataset (resumable, growable)."""

from __future__ import annotations

import argparse

from sopjax.cli.common import add_scheduler_options, positive_int
from sopjax.cli.outputs import add_output_options


def register(sub) -> None:
    p = sub.add_parser(
        "dataset",
        help="generate a labelled ML dataset (power-flow and dispatch labels) as a chunked zarr store",
        description="Draw network variants (radial reconfigurations, faults, SOP modes incl. Vf-mode islands "
        "with load pickup, SOP capacities and set-points, PV and load levels) and label them with the exact "
        "power flow, the Monte Carlo engine's Vf-island kernel, the JAX SOP dispatch and, for a few faults, "
        "the restoration MISOCP (group 'restoration'). Writes a "
        "chunked zarr store; rerunning the same command resumes an interrupted run, and a larger "
        "'samples' grows the store. --scheduler runs the chunks on a Dask cluster (docs/scaleout.md). "
        "See docs/surrogates.md.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="dataset config (see configs/ieee33_dataset.toml)")
    p.add_argument("--out", metavar="DIR.zarr", required=True, help="zarr store to create, resume or grow "
                   "(an existing path must be a sopjax dataset store)")
    add_output_options(p)
    p.add_argument("--samples", type=positive_int, metavar="N", help="override [dataset] samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_scheduler_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sopjax.cli.common import read_toml
    from sopjax.cli.outputs import check_output, output_lock
    from sopjax.config import ConfigError
    from sopjax.datasets import open_store

    # the output rule, except that an existing store is resumed or grown (no --overwrite needed)
    out = check_output(args.out, overwrite=True, parents=args.parents, suffixes=(".zarr",))
    with output_lock(out):  # taken before any work: two runs on one store would corrupt it
        if out.exists() or out.is_symlink():
            open_store(out)  # refuses a path that is not a sopjax dataset store
        return _run(args, read_toml(args.config, ConfigError))


def _run(args: argparse.Namespace, cfg: dict) -> int:
    import dataclasses

    import numpy as np

    from sopjax.cli.common import open_executor
    from sopjax.datasets import DatasetSpec, build_dataset, dataset_from_config, open_store

    net, spec, attrs = dataset_from_config(cfg)
    if args.samples is not None:
        spec = DatasetSpec(**{**dataclasses.asdict(spec), "samples": args.samples})
    with open_executor(args) as executor:
        info = build_dataset(net, spec, args.out, progress=False if args.no_progress else None, attrs=attrs,
                             scheduler=executor)
    ds = open_store(args.out)
    done = np.asarray(ds["done"].values)
    split = np.asarray(ds["split"].values)[done]
    names = __import__("json").loads(ds.attrs["split_names"])
    counts = ", ".join(f"{n} {int((split == k).sum())}" for k, n in enumerate(names))
    print(f"{attrs['title']}: {int(done.sum())} samples in {args.out} ({counts})")
    print(
        f"  this run: {info['samples_written']} samples in {info['chunks_written']} chunks "
        f"({info['chunks_skipped']} already done) in {info['seconds']:.1f} s: "
        f"{info['samples_per_s']:.1f} labelled samples/s ({info['executor']})"
    )
    conv = np.asarray(ds["converged"].values)[done]
    dv = np.asarray(ds["dispatch_valid"].values)[done]
    dc = np.asarray(ds["dispatch_converged"].values)[done]
    print(
        f"  power flow converged {int(conv.sum())}/{conv.size}; dispatch labels {int(dv.sum())} "
        f"(interior point converged on {int(dc.sum())})"
    )
    if "variant" in ds:
        _print_variants(ds, done)
    if spec.restoration_labels:
        from sopjax.datasets import open_restoration

        grp = open_restoration(args.out)
        st = np.asarray(grp["solve_status"].values)[np.asarray(grp["done"].values, bool)]
        names = __import__("json").loads(grp.attrs["status_names"])
        print(
            f"  MISOCP restoration labels (group 'restoration'): {st.size}/{spec.restoration_labels} "
            f"({', '.join(f'{n} {int((st == k).sum())}' for k, n in enumerate(names))}); this run "
            f"{info['restoration_solved']} in {info['restoration_seconds']:.1f} s"
        )
    return 0


def _print_variants(ds, done) -> None:
    import numpy as np

    from sopjax.datasets import VARIANTS

    var = np.asarray(ds["variant"].values)[done]
    vf = var == VARIANTS.index("vf")
    counts = ", ".join(f"{n} {int((var == k).sum())}" for k, n in enumerate(VARIANTS))
    line = f"  SOP mode families: {counts}"
    if vf.any():
        rec = np.asarray(ds["recovery_ratio"].values)[done][vf]
        lost = np.asarray(ds["island_lost"].values)[done][vf]
        line += f"; Vf islands: mean recovery {rec.mean():.3f}, shed (converter overload) {int(lost.sum())}"
    print(line)
