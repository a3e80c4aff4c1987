"""Cross-check every pandapower distribution grid, SimBench LV/MV grids and MATPOWER's distribution cases.

    .venv/bin/python benchmarks/network_crosscheck.py --out docs/networks.md   # the table in the docs
    .venv/bin/python benchmarks/network_crosscheck.py --only pandapower        # a subset, printed

Each grid is imported by ``sopjax.from_pandapower`` and solved by the exact sweep
(tol 1e-10); pandapower's Newton-Raphson solves the same net. MATPOWER's own case
files (the ``matpower`` package) are read by ``sopjax.io.matpower`` and checked
against an independent Newton-Raphson on their bus admittance matrix. The table gives
size, max |dV| over the energized buses, total losses of both and their relative
difference, or the error that refused the grid (:mod:`sopjax.bench.networks`).
With ``--out`` the generated table replaces the block between the markers
``<!-- crosscheck:begin -->`` and ``<!-- crosscheck:end -->`` of that file.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from tqdm.auto import tqdm

from sopjax.bench.networks import TOL_LOSS_REL, TOL_V_PU, catalogue, check_grid, markdown_table
from sopjax.jax_config import configure_xla

BEGIN, END = "<!-- crosscheck:begin -->", "<!-- crosscheck:end -->"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=("all", "pandapower", "simbench", "matpower"), default="all")
    ap.add_argument("--out", type=Path, help="Markdown file whose crosscheck block is replaced by the table")
    args = ap.parse_args(argv)
    configure_xla()
    warnings.simplefilter("ignore")
    rows = []
    start = time.perf_counter()
    for name, source, build in tqdm(catalogue(args.only), unit="grid", dynamic_ncols=True):
        rows.append(check_grid(name, source, build))
    table = markdown_table(rows)
    n_ok = sum(r.agrees for r in rows)
    n_ref = sum(r.status == "refused" for r in rows)
    summary = (
        f"{n_ok} of {len(rows)} grids agree with pandapower (max |dV| <= {TOL_V_PU:g} p.u., losses within "
        f"{TOL_LOSS_REL:g} relative), {n_ref} refused with the reason, "
        f"{len(rows) - n_ok - n_ref} other; {time.perf_counter() - start:.0f} s."
    )
    print(table)
    print(summary)
    if args.out is not None:
        text = args.out.read_text() if args.out.exists() else f"{BEGIN}\n{END}\n"
        if BEGIN not in text or END not in text:
            print(f"{args.out} has no {BEGIN} ... {END} block", file=sys.stderr)
            return 2
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        args.out.write_text(f"{head}{BEGIN}\n{table}\n\n{summary}\n{END}{tail}")
    bad = [r for r in rows if r.status in ("differs", "failed")]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
