"""The GA front's cost-minimum end against the direct cvxpy cost minimum over the same candidates (IEEE 33),
and stage 2 (the cvxpy operation model) of the GA's plan next to the GA's evaluation of it.

    .venv/bin/python experiments/seed001/cost_minimum_check.py [--config configs/seed001_allocation_quick.toml]
        [--front results/seed001.nc] [--pop N] [--gens N] [--formulations soc lindistflow] [--time-limit 600]
        [--descent 10] [--json FILE]

1. The GA front: read from ``--front`` (a dataset written by ``sopjax allocate --out``) or computed here by
   NSGA-II with the config's ``[ga]`` settings (the quick config: 20 plans x 6 generations).
2. ``x_GA``: the front's plan of least total yearly cost under the GA's evaluation.
3. ``x_MIP``: :func:`sopjax.problems.allocation.solve_cost_minimum` per formulation (one mixed-integer model:
   module counts, capacitor steps, the 24-period operation with the capacitor switching cap).
4. Both plans, and every plan one step (one module or one capacitor step) from ``x_MIP``, scored by the
   GA's own evaluator (:func:`sopjax.problems.allocation.evaluate_plans`).
5. A local check under the GA's evaluation: greedy one-step descent (every plan one module or one capacitor
   step away, the best taken while it improves, at most ``--descent`` steps) from ``x_GA`` and from each
   ``x_MIP``; the box (7^8 plans on IEEE 33) is too large to enumerate.
6. Agreement within the module granularity (:mod:`sopjax.problems.allocation.cost_optimum`): every site's
   module count within one module and the GA-evaluated totals within one module's yearly cost.
7. Stage 2 of ``x_GA`` per formulation: the model's operation cost, the GA's, and the stage-2 capacitor
   schedule re-run through the GA's evaluation (JAX SOP dispatch + exact sweep).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

import sopjax

ROOT = Path(__file__).resolve().parents[2]


def ga_front(study, front_path: str | None):
    """``(X, cost_total)`` of the front: from a dataset of ``sopjax allocate --out``, or by running NSGA-II."""
    from sopjax.problems.allocation import AllocationProblem, run_nsga2

    sp = study.space
    if front_path:
        import xarray as xr

        with xr.open_dataset(front_path) as ds:
            X = np.concatenate([np.rint(ds["sop_kva"].values / sp.module_kva),
                                np.rint(ds["cb_kvar"].values / sp.cb_unit_kvar)], 1).astype(int)
        return X, None
    res = run_nsga2(AllocationProblem(study.model, study.costs, study.robustness, study.objectives), study.ga)
    return res.X, None


def neighbours(x: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """``x`` and every plan one unit away in one coordinate (inside the box)."""
    out = [x]
    for k in range(len(x)):
        for d in (-1, 1):
            y = x.copy()
            y[k] += d
            if 0 <= y[k] <= upper[k]:
                out.append(y)
    return np.asarray(out)


def descend(m, costs, robustness, x: np.ndarray, steps: int) -> tuple[np.ndarray, float, int]:
    """Greedy one-step descent of the GA-evaluated total cost from ``x``: ``(plan, cost, steps taken)``."""
    from sopjax.problems.allocation import evaluate_plans

    upper = m.space.upper
    e = evaluate_plans(m, costs, robustness, x[None])
    best, c = x, float(e["cost_total"][0])
    for n in range(steps):
        nb = neighbours(best, upper)[1:]
        e = evaluate_plans(m, costs, robustness, nb)
        cost = np.where(e["failed_periods"] == 0, e["cost_total"], np.inf)
        j = int(np.argmin(cost))
        if not cost[j] < c:
            return best, c, n
        best, c = nb[j], float(cost[j])
    return best, c, steps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "seed001_allocation_quick.toml"))
    ap.add_argument("--front", help="dataset of `sopjax allocate --out` (default: run the config's GA here)")
    ap.add_argument("--formulations", nargs="+", default=["soc", "lindistflow"], choices=["soc", "lindistflow"])
    ap.add_argument("--time-limit", type=float, default=600.0, help="solver time limit per model (s)")
    ap.add_argument("--pop", type=int, help="GA population (overrides ga.pop_size)")
    ap.add_argument("--gens", type=int, help="GA generations (overrides ga.generations)")
    ap.add_argument("--descent", type=int, default=10, help="greedy descent steps under the GA evaluation")
    ap.add_argument("--scip-feastol", type=float, help="SCIP numerics/feastol (default: operation.SCIP_PARAMS, 1e-9)")
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args(argv)
    sopjax.configure_xla()

    from sopjax.problems.allocation import evaluate_plans, solve_cost_minimum, study_from_config
    from sopjax.problems.allocation.cost_optimum import agreement
    from sopjax.problems.allocation.operation import (
        OPERATION_TERMS,
        Stage2Settings,
        resweep_schedule,
        solve_operation,
    )

    with open(args.config, "rb") as fh:
        cfg = tomllib.load(fh)
    cfg["ga"] = {**cfg.get("ga", {}), **({"pop_size": args.pop} if args.pop else {}),
                 **({"generations": args.gens} if args.gens else {})}
    study = study_from_config(cfg)
    m, costs, sp = study.model, study.costs, study.space
    max_sw = cfg.get("allocation", {}).get("capacitors", {}).get("max_switching")
    m.set_batch_size(max(study.ga.pop_size, 2 * sp.n_var + 1))  # one compiled program: populations, neighbours
    t0 = time.perf_counter()
    X, _ = ga_front(study, args.front)
    t_ga = time.perf_counter() - t0
    ev = evaluate_plans(m, costs, study.robustness, X)
    ok = ev["failed_periods"] == 0
    k = int(np.flatnonzero(ok)[np.argmin(ev["cost_total"][ok])])
    x_ga = X[k]
    x_desc, c_desc, n_desc = descend(m, costs, study.robustness, x_ga, args.descent)
    out = {"config": args.config, "descent_from_x_ga": {"plan": x_desc.tolist(), "cost": c_desc, "steps": n_desc}, "front_size": len(X), "ga_s": t_ga, "max_switching": max_sw,
           "x_ga": x_ga.tolist(), "sop_sites": sp.sop_labels, "cb_sites": sp.cb_labels, "models": {}}
    lines = []
    for f in args.formulations:
        opt = solve_cost_minimum(m, costs, formulation=f, max_switching=max_sw, time_limit_s=args.time_limit,
                                 mip_gap=1e-4, scip_params=None if args.scip_feastol is None
                                 else {"numerics/feastol": args.scip_feastol})
        rec = {"status": opt.status, "solve_s": opt.info.total_s if opt.info else None, "gap": opt.info.gap
               if opt.info else None}
        if opt.solved:
            nb = neighbours(opt.plan, sp.upper)
            e2 = evaluate_plans(m, costs, study.robustness, np.vstack([x_ga[None], nb]))
            c_ga, c_mip = float(e2["cost_total"][0]), float(e2["cost_total"][1])
            ok2 = e2["failed_periods"][1:] == 0
            j = int(np.flatnonzero(ok2)[np.argmin(e2["cost_total"][1:][ok2])])
            a = agreement(m, costs, x_ga, opt.plan, c_ga, c_mip)
            xd, cd, nd = descend(m, costs, study.robustness, opt.plan, args.descent)
            rec["descent_from_x_mip"] = {"plan": xd.tolist(), "cost": cd, "steps": nd}
            rec.update({"x_mip": opt.plan.tolist(), "mip_model_total": opt.costs["total"],
                        "mip_converter_loss_kwh_day": float(opt.converter_loss_kw.sum() * costs.sop.period_hours),
                        "mip_model_terms": opt.costs, "ga_eval_total_x_ga": c_ga, "ga_eval_total_x_mip": c_mip,
                        "ga_eval_terms_x_mip": {t: float(e2[f"cost_{t}"][1]) for t in opt.costs},
                        "ga_eval_terms_x_ga": {t: float(e2[f"cost_{t}"][0]) for t in opt.costs},
                        "mip_failed_periods": float(e2["failed_periods"][1]),
                        "best_neighbour_of_x_mip": nb[j].tolist(), "best_neighbour_cost": float(e2["cost_total"][1:][j]),
                        "agree": a.agree, "max_module_difference": a.max_module_difference,
                        "cost_difference": a.cost_difference, "module_cost": a.module_cost,
                        "cb_unit_difference": list(a.cb_unit_difference)})
            # the MIP's model cost of x_GA: stage 2 of x_GA in the same formulation plus its investment
        s2 = solve_operation(m, costs, x_ga, settings=Stage2Settings(formulation=f, max_switching=max_sw,
                                                                        time_limit_s=args.time_limit))
        ga_op = float(sum(ev[f"cost_{t}"][k] for t in OPERATION_TERMS))
        rec["stage2_x_ga"] = {"status": s2.status, "operation_cost": s2.operation_cost, "ga_operation_cost": ga_op,
                              "cb_steps": s2.cb_steps.tolist(), "solve_s": s2.info.total_s if s2.info else None,
                              "bank_switchings": s2.bank_switchings.tolist()}
        if s2.solved:
            rs = resweep_schedule(m, costs, x_ga[None], s2.cb_steps[None])
            rec["stage2_x_ga"]["resweep_operation_cost"] = float(rs["operation_cost"][0])
            rec["stage2_x_ga"]["resweep_converged"] = bool(rs["converged"][0])
            rec["stage2_x_ga"]["model_total_x_ga"] = s2.costs["total"]
        out["models"][f] = rec

    cur = costs.sop.currency
    fmt = lambda v: "-" if v is None else (f"{v:,.0f}" if isinstance(v, float) else str(v))
    lines.append(f"config {args.config}: GA front of {len(X)} plans ({'read from ' + args.front if args.front else f'NSGA-II {study.ga.pop_size} x {study.ga.generations}, {t_ga:.0f} s'})")
    lines.append(f"plan vector = modules at SOP sites {sp.sop_labels} ({sp.module_kva:g} kVA each), "
                 f"steps at CB buses {sp.cb_labels} ({sp.cb_unit_kvar:g} kvar each); costs in {cur}/year")
    lines.append(f"x_GA (front's cost minimum): {x_ga.tolist()}, GA-evaluated total {fmt(float(ev['cost_total'][k]))}")
    lines.append(f"greedy descent from x_GA under the GA evaluation: {x_desc.tolist()} ({fmt(c_desc)}, {n_desc} steps)")
    for f, r in out["models"].items():
        lines.append("")
        lines.append(f"[{f}] direct minimum: status {r['status']}, {fmt(r['solve_s'])} s" if r["solve_s"] is None else
                     f"[{f}] direct minimum: status {r['status']}, {r['solve_s']:.1f} s, gap {r['gap']:.1e}")
        if "x_mip" in r:
            lines.append(f"  {'':<28}{'x_GA':>16}{'x_MIP':>16}")
            lines.append(f"  {'plan':<28}{x_ga.tolist()!s:>16}{r['x_mip']!s:>16}")
            lines.append(f"  {'total, GA evaluation':<28}{fmt(r['ga_eval_total_x_ga']):>16}{fmt(r['ga_eval_total_x_mip']):>16}")
            s2 = r["stage2_x_ga"]
            lines.append(f"  {'total, cvxpy model':<28}{fmt(s2.get('model_total_x_ga')):>16}{fmt(r['mip_model_total']):>16}"
                         "   (x_GA: stage 2 of the plan in this model)")
            lines.append(f"  agreement within the module granularity: {r['agree']} (max module difference "
                         f"{r['max_module_difference']}, GA-evaluated cost difference {r['cost_difference']:+,.0f} vs "
                         f"one module {r['module_cost']:,.0f}; CB step difference {r['cb_unit_difference']})")
            lines.append(f"  x_MIP's converter losses in its model: {r['mip_converter_loss_kwh_day']:.3f} kWh/day")
            lines.append(f"  best plan one step from x_MIP under the GA evaluation: {r['best_neighbour_of_x_mip']} "
                         f"({fmt(r['best_neighbour_cost'])})")
            d = r["descent_from_x_mip"]
            lines.append(f"  greedy descent from x_MIP under the GA evaluation: {d['plan']} ({fmt(d['cost'])}, "
                         f"{d['steps']} steps)")
        s2 = r["stage2_x_ga"]
        lines.append(f"  stage 2 of x_GA: {s2['status']}, operation cost model {fmt(s2['operation_cost'])} / GA "
                     f"{fmt(s2['ga_operation_cost'])} / stage-2 schedule in the GA evaluation "
                     f"{fmt(s2.get('resweep_operation_cost'))}; bank switchings {s2['bank_switchings']}")
    print("\n".join(lines))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
