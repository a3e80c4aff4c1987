"""Power-flow benchmark runs behind docs/benchmarks.md.

    .venv/bin/python benchmarks/powerflow_bench.py            # IEEE 33 (1e5 samples) + lv_schutterwald (2000)
    .venv/bin/python benchmarks/powerflow_bench.py --quick    # small sizes, a smoke run

Each case runs every method on the same samples in one process (see
``sopjax.bench.powerflow_bench``), prints the side-by-side table and writes the
JSON report to ``benchmarks/results/powerflow_<case>.json``. The same numbers come
from ``sopjax bench --case ... --json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# one JAX CPU device per core, before JAX's first computation
import jax

jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)

from sopjax.bench.powerflow_bench import format_report, run_benchmark  # noqa: E402
from sopjax.cli.common import json_default  # noqa: E402

from sopjax.jax_config import configure_xla  # noqa: E402

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)

RUNS = {
    # case: (samples, pandapower samples)
    "ieee33": (100_000, 200),
    "pp:lv_schutterwald": (2_000, 50),
}
QUICK = {"ieee33": (2_000, 5), "ieee69": (2_000, 5)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--case", action="append", help="run only this case (repeatable)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"), help="folder for JSON reports")
    args = ap.parse_args(argv)
    runs = QUICK if args.quick else RUNS
    if args.case:
        runs = {c: runs.get(c, (2_000, 20)) for c in args.case}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for case, (samples, pp_samples) in runs.items():
        rep = run_benchmark(
            case,
            samples=samples,
            pp_samples=pp_samples,
            repeats=args.repeats,
            progress=lambda m: print(m, file=sys.stderr, flush=True),
        )
        print(format_report(rep), flush=True)
        print(flush=True)
        name = case.replace("pp:", "").replace("/", "_")
        if not args.quick:
            (out / f"powerflow_{name}.json").write_text(json.dumps(rep, indent=2, default=json_default) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
