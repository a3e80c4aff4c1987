"""``sopjax train CONFIG.toml``: train a surrogate on a dataset, checkpoint it, report its errors."""

from __future__ import annotations

import argparse

from sopjax.cli.common import positive_int
from sopjax.cli.outputs import add_output_options


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a power-flow surrogate (MLP, GNN) or a learned SOP dispatch on a dataset",
        description="Train with optax (AdamW, warmup-cosine schedule, early stopping on the validation split), "
        "write the checkpoint, and report errors against the exact kernels' labels in p.u. and kW on the "
        "test and out-of-distribution splits (and on the extra datasets of [evaluate]). See docs/surrogates.md.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="train config (see configs/ieee33_train_gnn.toml)")
    p.add_argument("--steps", type=positive_int, metavar="N", help="override [training] steps")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no per-validation lines and no progress bar")
    add_output_options(p)  # they apply to [output] checkpoint (its .eqx and .json files)
    p.set_defaults(func=run)


def _table(metrics: dict) -> str:
    cols = [
        ("samples", "samples", "{:d}"),
        ("vm_mae_pu", "Vm MAE p.u.", "{:.2e}"),
        ("vm_max_pu", "Vm max p.u.", "{:.2e}"),
        ("p_mae_kw", "P MAE kW", "{:.3f}"),
        ("p_max_kw", "P max kW", "{:.2f}"),
        ("loss_mae_kw", "loss MAE kW", "{:.3f}"),
        ("residual_max_pu", "max resid. p.u.", "{:.1e}"),
    ]
    lines = []
    for store, per in metrics.items():
        lines.append(f"  {store}")
        if "skipped" in per:
            lines.append(f"    skipped: {per['skipped']}")
            continue
        lines.append("    " + f"{'split':<14}" + "".join(f"{h:>16}" for _, h, _ in cols))
        for split, m in per.items():
            lines.append("    " + f"{split:<14}" + "".join(f"{f.format(m[k]):>16}" for k, _, f in cols))
        for split, m in per.items():
            c = m.get("calibration")
            if c:
                lines.append(
                    f"    {split:<14}P(V outside [{c['v_min']}, {c['v_max']}]): Brier {c['brier']:.2e}, "
                    f"ECE {c['ece']:.2e}, missed {c['bus']['fn']} of {c['violations']} violating bus events "
                    f"({c['sample']['fn']} samples), false alarms {c['bus']['fp']}"
                )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from sopjax.cli.common import read_toml
    from sopjax.cli.outputs import check_output, output_lock
    from sopjax.config import ConfigError, table
    from sopjax.surrogates.checkpoint import files
    from sopjax.surrogates.study import parse_train_config

    cfg = read_toml(args.config, ConfigError)
    if args.steps is not None:
        training = table(cfg.get("training", {}), "[training]")
        cfg = {**cfg, "training": {**training, "steps": args.steps}}
    what = "[output] checkpoint"
    weights, header = files(parse_train_config(cfg)["checkpoint"])
    check_output(weights, overwrite=args.overwrite, parents=args.parents, suffixes=(".eqx",), what=what)
    check_output(header, overwrite=args.overwrite, parents=args.parents, suffixes=(".json",), what=what)
    with output_lock(weights, what=what):  # taken before any work: a second run on it is refused
        return _run(args, cfg)


def _run(args: argparse.Namespace, cfg: dict) -> int:
    from sopjax.cli.common import print_json
    from sopjax.surrogates import train_from_config

    log = None if args.quiet else (lambda s: print("  " + s, flush=True))
    res = train_from_config(cfg, progress=False if args.quiet else None, log=log)
    if args.json:
        print_json({k: v for k, v in res.items()})
        return 0
    h = res["history"]
    print(
        f"{res['title']}: {res['kind']}, {h.get('train_samples', '?')} training samples, best step "
        f"{h['best_step']} of {h['step'][-1] if h['step'] else 0}"
        f"{' (early stop)' if h['stopped_early'] else ''}, {h['seconds']:.1f} s; checkpoint {res['checkpoint']}"
    )
    if res["kind"] == "dispatch":
        for split, m in res["metrics"].items():
            print(f"  {split}: {m}")
    else:
        print(_table(res["metrics"]))
    return 0
