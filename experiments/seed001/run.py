"""Seed 001 reproduction: robust multi-objective SOP + CB allocation on IEEE 33, paper next to ours.

    .venv/bin/python experiments/seed001/run.py                  # full: 100 x 100 GA per study
    .venv/bin/python experiments/seed001/run.py --pop 24 --gens 10   # quick

Runs ``configs/seed001_allocation.toml`` three ways and writes ``experiments/seed001/results/``:

* the main study (robust indices, objectives cost / offset / utilization): the front as netCDF,
  the front plot, cases 1-3 (loss cost without SOP or CB / CB only / SOP + CB) and the
  contingency cases 4-6 (DR only / SOP only / SOP + DR: VCPI and cost);
* cases 7-8: conventional (``robust_form = "none"``) vs robust indices; the compromise plan of each
  front re-evaluated with PV at -20 % and load at +10 % (``delta = (-1, +1)``): offset and
  utilization before -> after;
* cases 9-10: objectives (cost, offset) vs (cost, offset, utilization): compromise cost, offset
  and utilization.

``summary.json`` holds every number; ``summary.md`` the tables quoted in docs/allocation.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PAPER = {
    "cases_1_3_loss_cost": [146150.171, 117982.442, 103317.219],
    "cases_4_6": {"dr": (0.3463, 337500), "sop": (0.3339, 475000), "sop_dr": (0.2812, 365700)},
    "case7_offset": (0.10, 0.84), "case7_util": (57.9, 51.2),
    "case8_offset": (0.10, 0.79), "case8_util": (72.1, 71.3),
    "case9": (664194.91, 0.14, 55.19), "case10": (612101.97, 0.07, 74.74),
    "capacities_kva": {"12-22": 100, "8-21": 100, "9-15": 100, "18-33": 150, "25-29": 100},
}


def _run(cfg, checkpoint=None, contingency=True):
    from sopjax.problems.allocation import run_allocation_study, study_from_config

    study = study_from_config(cfg)
    return run_allocation_study(study, checkpoint=checkpoint, progress=True, contingency=contingency)


def _deviated(res, delta):
    """Offset and utilization of the compromise plan at the forecast and at ``delta``."""
    m = res.study.model
    k = res.compromise
    kva, cb = res.front["sop_kva"][k : k + 1], res.front["cb_units"][k : k + 1]
    nominal = m.operate(kva, cb)
    dev = m.operate(kva, cb, np.asarray([delta], float))
    return {"offset": [float(nominal.offset[0]), float(dev.offset[0])],
            "utilization_pct": [100 * float(nominal.utilization[0]), 100 * float(dev.utilization[0])]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "seed001_allocation.toml"))
    ap.add_argument("--pop", type=int)
    ap.add_argument("--gens", type=int)
    ap.add_argument("--out", default=str(ROOT / "experiments" / "seed001" / "results"))
    args = ap.parse_args(argv)
    import sopjax

    sopjax.configure_xla()
    from sopjax.problems.allocation.results import plot_front, to_dataset, write_dataset

    with open(args.config, "rb") as fh:
        base = tomllib.load(fh)
    if args.pop:
        base["ga"]["pop_size"] = args.pop
    if args.gens:
        base["ga"]["generations"] = args.gens
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    main_res = _run(base)
    ds = to_dataset(main_res)
    write_dataset(ds, out / "seed001_front.nc")
    plot_front(ds, out / "seed001_front.png")
    summary = {"main": main_res.as_dict(), "paper": PAPER,
               "ga_size": f"{base['ga']['pop_size']} x {base['ga']['generations']}"}

    n_par = len(main_res.study.model.param_names)
    delta = [-1.0] * (n_par - 1) + [1.0]
    summary["case8_robust"] = _deviated(main_res, delta)
    conv = copy.deepcopy(base)
    conv["robustness"]["robust_form"] = "none"
    conv["robustness"]["refine_front"] = False
    conv.setdefault("stage2", {})["enabled"] = False  # only the compromise is used
    summary["case7_conventional"] = _deviated(_run(conv, contingency=False), delta)

    no_util = copy.deepcopy(base)
    no_util["ga"]["objectives"] = ["cost", "offset"]
    no_util["robustness"]["refine_front"] = False
    no_util.setdefault("stage2", {})["enabled"] = False  # only the compromise is used
    r9 = _run(no_util, contingency=False).as_dict()["compromise"]
    r10 = summary["main"]["compromise"]
    summary["case9"] = {"cost": r9["costs"]["total"], "offset": r9["offset_robust"],
                        "utilization_pct": 100 * r9["utilization"], "sop_kva": r9["sop_kva"]}
    summary["case10"] = {"cost": r10["costs"]["total"], "offset": r10["offset_robust"],
                         "utilization_pct": 100 * r10["utilization"], "sop_kva": r10["sop_kva"]}
    summary["wall_s"] = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    (out / "summary.md").write_text(_markdown(summary))
    print(_markdown(summary))
    return 0


def _markdown(s: dict) -> str:
    m, p = s["main"], s["paper"]
    c = m["cases"]
    rows = ["| quantity | seed 001 | sopjax |", "|---|---|---|"]
    for i, name in enumerate(("case1_no_sop_no_cb", "case2_cb_only", "case3_sop_cb")):
        rows.append(f"| case {i + 1} loss cost ($/yr) | {p['cases_1_3_loss_cost'][i]:,.0f} | "
                    f"{c[name]['line_loss_cost']:,.0f} |")
    red = 100 * (1 - c["case3_sop_cb"]["line_loss_cost"] / c["case1_no_sop_no_cb"]["line_loss_cost"])
    rows.append(f"| loss-cost reduction case 3 vs 1 | 29.3 % | {red:.1f} % |")
    for case, (v, cost) in p["cases_4_6"].items():
        r = m["contingency"].get(case)
        if r:
            rows.append(f"| contingency `{case}`: VCPI / cost | {v} / {cost:,} | {r['vcpi']:.4f} / {r['cost']:,.0f} |")
    for name, key in (("case7_conventional", "case7"), ("case8_robust", "case8")):
        r = s[name]
        rows.append(f"| {key}: offset before -> after | {p[key + '_offset'][0]} -> {p[key + '_offset'][1]} | "
                    f"{r['offset'][0]:.4f} -> {r['offset'][1]:.4f} |")
        rows.append(f"| {key}: utilization % before -> after | {p[key + '_util'][0]} -> {p[key + '_util'][1]} | "
                    f"{r['utilization_pct'][0]:.1f} -> {r['utilization_pct'][1]:.1f} |")
    for key in ("case9", "case10"):
        r = s[key]
        rows.append(f"| {key}: cost / offset / utilization % | {p[key][0]:,.2f} / {p[key][1]} / {p[key][2]} | "
                    f"{r['cost']:,.0f} / {r['offset']:.4f} / {r['utilization_pct']:.1f} |")
    comp = m["compromise"]["sop_kva"]
    rows.append("| compromise capacities (kVA per VSC) | " + ", ".join(f"{k}: {v}" for k, v in p["capacities_kva"].items())
                + " | " + ", ".join(f"{k}: {v:.0f}" for k, v in comp.items()) + " |")
    t, ga = m["timings_s"], s.get("ga_size", "")
    rows.append(f"| main study: NSGA-II {ga} wall time / robustness refinement of the front | - | "
                f"{t['ga']:.0f} s / {t['robustness_refine']:.0f} s |")
    rows.append(f"| wall time of this script | - | {s['wall_s']:.0f} s |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.exit(main())
