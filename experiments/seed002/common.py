"""Shared helpers of the seed 002 reproduction scripts (configs in ../../configs/seed002_*.toml).

Each script reads one config, plans every case with the MISOCP
(:func:`sopjax.problems.restoration.solve.solve_restoration`), re-checks
each plan with the exact power flow, scores the plans together with the Monte
Carlo engine and writes ``<out>/<name>.md`` (paper vs ours), ``<name>.nc`` and
``<name>.json`` (and a plot where the paper has a figure).
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
sys.path.insert(0, str(ROOT))

from sopjax.problems.restoration.check import exact_check  # noqa: E402
from sopjax.problems.restoration.study import (  # noqa: E402
    pv_summary,
    score_plans,
    solve_study,
    study_from_config,
)
from sopjax.cli.restore import pv_lines  # noqa: E402

from sopjax.jax_config import configure_xla  # noqa: E402

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)


def parse_args(name: str, doc: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--config", default=str(ROOT / "configs" / f"seed002_{name.split('_')[0]}.toml"))
    p.add_argument("--out", default=str(ROOT / "results" / "seed002"))
    p.add_argument("--samples", type=int, default=None, help="override [montecarlo] samples")
    p.add_argument("--time-limit", type=float, default=None, help="override [solver] time_limit (s)")
    args = p.parse_args()
    args.name = Path(args.config).stem.replace("seed002_", "") if "--config" in sys.argv else name
    return args


def load(path: str, args) -> dict:
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    if args.samples is not None:
        cfg.setdefault("montecarlo", {})["samples"] = args.samples
    if args.time_limit is not None:
        cfg.setdefault("solver", {})["time_limit"] = args.time_limit
    return cfg


def merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def case_config(cfg: dict, case: dict) -> dict:
    """The base config with one ``[[case]]`` table's overrides applied."""
    base = {k: v for k, v in cfg.items() if k not in ("case", "experiment")}
    patch = {k: v for k, v in case.items() if k not in ("name", "paper")}
    return merge(base, patch)


#: the PV distributions (kW) the cases of this run planned for and were scored under, in order, no repeats
PV_MODELS: list[dict] = []


def note_pv(study) -> None:
    """Print the study's PV distribution (parent, bounded mean/std, planner quantiles) once per distinct model."""
    d = pv_summary(study.net, study.settings)
    if d is not None and d not in PV_MODELS:
        PV_MODELS.append(d)
        for line in pv_lines(d):
            print(f"PV model: {line}", flush=True)


def plan_case(cfg: dict) -> dict:
    """Solve one case; return the study, the plan, the solved model and the exact check."""
    study = study_from_config(cfg)
    note_pv(study)
    t0 = time.perf_counter()
    plan, model = solve_study(study)
    wall = time.perf_counter() - t0
    check = exact_check(study.net, plan, study.settings, model=model)
    return {"study": study, "plan": plan, "model": model, "check": check, "wall_s": wall}


def run_cases(cfg: dict) -> list[tuple[str, dict]]:
    """Plan every ``[[case]]`` of a config (:func:`plan_case`), printing one line per case."""
    results = []
    for case in cfg["case"]:
        r = plan_case(case_config(cfg, case))
        results.append((case["name"], r))
        p = r["plan"]
        print(f"{case['name']}: {p.recovery_ratio:.2%} ({p.info.status}, gap {p.info.gap:.1e}) in {r['wall_s']:.1f} s",
              flush=True)
    return results


def score(results: list[tuple[str, dict]], cfg: dict):
    """Score all plans of one network together (one Monte Carlo run, common random numbers).

    The samples are drawn around the base config's ``[uncertainty]`` (the actual PV), whatever
    forecast a case planned for (a case may plan for another PV value, seed 002 Table 2 case 1).
    """
    first = results[0][1]["study"]
    base = case_config(cfg, cfg["case"][0])
    base["uncertainty"] = copy.deepcopy(cfg.get("uncertainty", {}))
    actual = study_from_config(base)
    note_pv(actual)
    plans = [(name, r["plan"]) for name, r in results]
    return score_plans(first.net, plans, actual.settings, actual.uncertainty, cfg["montecarlo"])


def plan_and_score(cfg: dict, name: str) -> tuple[dict, dict, object]:
    """Plan one case and score it alone (its own network, e.g. another SOP or PV size): (result, score, dataset)."""
    r = plan_case(cfg)
    st = r["study"]
    ds, mc = score_plans(st.net, [(name, r["plan"])], st.settings, st.uncertainty, cfg["montecarlo"])
    return r, mc[name], ds


def status(plan) -> str:
    """Solver status with the gap, e.g. ``optimal`` or ``time_limit (gap 3.1 %)``."""
    i = plan.info
    return i.status if i.status == "optimal" else f"{i.status} (gap {100 * i.gap:.1f} %)"


def pct(x) -> str:
    return "-" if x is None or x != x else f"{100 * x:.2f} %"


def write(out: str, name: str, markdown: str, payload: dict, ds=None) -> None:
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    if PV_MODELS:
        payload = {**payload, "pv_distribution_kw": PV_MODELS}
        markdown = markdown.rstrip("\n") + "\n\nPV models of this run (kW; `sopjax.sampling.pv_distribution`):\n\n" + \
            "\n".join(f"* {line}" for d_ in PV_MODELS for line in pv_lines(d_)) + "\n"
    (d / f"{name}.md").write_text(markdown)
    (d / f"{name}.json").write_text(json.dumps(payload, indent=2, default=_json))
    if ds is not None:
        from sopjax.montecarlo import write_dataset

        write_dataset(ds, d / f"{name}.nc")
    print(markdown)
    print(f"wrote {d / name}.md/.json" + ("/.nc" if ds is not None else ""))


def _json(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def buses(net, mask) -> str:
    ids = [net.bus_ids[b] for b in np.flatnonzero(mask)]
    if not ids:
        return "-"
    runs, start, prev = [], ids[0], ids[0]
    for b in ids[1:]:
        if b == prev + 1:
            prev = b
            continue
        runs.append(f"{start}-{prev}" if prev > start else f"{start}")
        start = prev = b
    runs.append(f"{start}-{prev}" if prev > start else f"{start}")
    return ", ".join(runs)
