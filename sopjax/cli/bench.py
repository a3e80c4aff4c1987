"""``sopjax bench``: power-flow throughput of sopjax against its baselines, in one run."""

from __future__ import annotations

import argparse
import sys


from sopjax.cli.common import chunk_size, nonnegative_float, nonnegative_int, positive_float, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark the batched power flow against pandapower, power-grid-model and numba",
        description="Solve the same random load samples (+-sigma normal noise per load, fixed seed) with "
        "sopjax (jit, bus-major sweep), a fused numba sweep, power-grid-model's batch calculation "
        "(newton_raphson and iterative_current) and a pandapower runpp loop; print samples/s side by "
        "side with ratios and the largest voltage difference to sopjax.",
    )
    p.add_argument(
        "--case",
        default="ieee33",
        metavar="CASE",
        help="built-in name, a .m file, or pp:<pandapower.networks builder> (e.g. pp:lv_schutterwald)",
    )
    p.add_argument("--samples", type=positive_int, default=100_000, metavar="N", help="load samples (default 100000)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="sopjax float type")
    p.add_argument(
        "--tol",
        type=positive_float,
        default=None,
        help="voltage tolerance in p.u. for every method (default 1e-8 in float64, 1e-6 in float32)",
    )
    p.add_argument("--max-iter", type=positive_int, default=100, help="iteration limit (default 100)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="sampling seed (default 0)")
    p.add_argument("--sigma", type=nonnegative_float, default=0.1, help="relative load noise (default 0.1)")
    p.add_argument(
        "--repeats", type=positive_int, default=5, help="timed runs of sopjax and numba; median (default 5)"
    )
    p.add_argument(
        "--pgm-repeats", type=positive_int, default=3, help="timed runs of each power-grid-model method (default 3)"
    )
    p.add_argument(
        "--pp-samples",
        type=nonnegative_int,
        default=200,
        metavar="N",
        help="samples for the pandapower loop, extrapolated (default 200; 0 skips it)",
    )
    p.add_argument("--chunk-size", type=chunk_size, default="auto", metavar="N|auto",
                   help="sopjax samples per block, or auto (default)")
    p.add_argument(
        "--layout", choices=("auto", "bus_major", "vmap"), default="auto", help="sopjax batch layout"
    )
    p.add_argument(
        "--iteration",
        choices=("current", "power"),
        default="power",
        help="bus-major iteration of sopjax and the fused reference: DistFlow recursion (power, default) "
        "or current-injection sweep (current)",
    )
    p.add_argument(
        "--devices",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="JAX CPU devices to split samples over (default 0: one per CPU core)",
    )
    p.add_argument(
        "--skip",
        default="",
        metavar="LIST",
        help="baselines to leave out: pandapower,power_grid_model,fused_reference",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def _set_cpu_devices(n: int) -> None:
    """Ask JAX for ``n`` CPU devices; only possible before its first computation."""
    import os

    import jax

    n = n or os.cpu_count() or 1
    try:
        jax.config.update("jax_num_cpu_devices", int(n))
    except Exception:  # backend already initialised (e.g. called in-process): keep what exists
        pass


# baseline name -> the module of the ``bench`` extra it needs (pandapower is a core dependency)
EXTRA_MODULES = {"power_grid_model": "power_grid_model", "fused_reference": "numba"}


def _require_bench_extra(skip: tuple[str, ...]) -> None:
    """Refuse, naming the package, when a baseline to run lacks its ``bench`` extra."""
    import importlib.util

    from sopjax.errors import SopjaxError

    missing = [mod for name, mod in EXTRA_MODULES.items() if name not in skip and importlib.util.find_spec(mod) is None]
    if missing:
        raise SopjaxError(f"the baselines need {', '.join(missing)}: pip install 'sopjax[bench]', "
                          f"or leave them out with --skip {','.join(n for n, m in EXTRA_MODULES.items() if m in missing)}")


def run(args: argparse.Namespace) -> int:
    from sopjax.errors import SopjaxError

    if args.devices < 0:
        raise SopjaxError(f"--devices must be >= 0, got {args.devices}")
    skip = tuple(s.strip() for s in args.skip.split(",") if s.strip())
    _require_bench_extra(skip)
    _set_cpu_devices(args.devices)
    from sopjax.bench.powerflow_bench import format_report, run_benchmark
    from sopjax.cli.common import print_json

    progress = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
    rep = run_benchmark(
        args.case,
        samples=args.samples,
        dtype=args.dtype,
        tol=args.tol,
        max_iter=args.max_iter,
        seed=args.seed,
        sigma=args.sigma,
        repeats=args.repeats,
        pgm_repeats=args.pgm_repeats,
        pp_samples=args.pp_samples,
        chunk_size=None if args.chunk_size == "auto" else args.chunk_size,
        layout=args.layout,
        iteration=args.iteration,
        skip=skip,
        progress=progress,
    )
    if args.json:
        print_json(rep)
    else:
        print(format_report(rep))
    return 0
