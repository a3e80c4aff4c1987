"""Rerun every seed study and commit its small results: the numbers the docs quote come from here.

    python experiments/run_seeds.py                 # every study, 2 at a time, then the docs' blocks
    python experiments/run_seeds.py --list          # the studies, their commands and time limits
    python experiments/run_seeds.py --only seed002-table5 seed000-ieee33
    python experiments/run_seeds.py --docs-only     # re-render the docs' blocks from docs/seed_results/

Each study runs as its own process (``nice``), writes its raw output (netCDF, plots) under
``results/seeds/<study>/`` (git-ignored) and its markdown and JSON to
``docs/seed_results/<study>.md`` / ``.json`` (committed). The JSON gets a ``run`` record (command,
time limits, wall time, git commit, date) and ``tables``: the markdown tables of the study's
report, in order. Every table the docs quote sits between ``<!-- results: <study> table <i> -->``
and ``<!-- /results -->`` and is re-rendered here from that JSON; ``tests/test_seed_results.py``
checks that the docs' blocks equal the committed files.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "seed_results"
RAW = ROOT / "results" / "seeds"
DOCS = ("docs/seed000_results.md", "docs/seed002_results.md", "docs/allocation.md", "docs/reproducing.md")

S2 = "experiments/seed002"
#: study -> (command (run from the repository root; {out} = its raw folder), output stem, time limits)
STUDIES: dict[str, tuple[list[str], str, str]] = {
    "seed002-fig12": ([f"{S2}/fig12.py", "--out", "{out}"], "fig12", "SCIP 240 s per penetration point (7 points)"),
    "seed002-table7": ([f"{S2}/table7.py", "--out", "{out}"], "table7", "SCIP 300 s per SOP capacity (3)"),
    "seed002-table5_screen": ([f"{S2}/table5_screen.py", "--out", "{out}"], "table5_screen",
                              "HiGHS 60 s per LinDistFlow bound; SCIP 240 s for V3 case 3"),
    "seed002-table2_3": ([f"{S2}/table2_3.py", "--out", "{out}"], "table2_3", "SCIP 240 s per case (2)"),
    "seed002-table5": ([f"{S2}/table5.py", "--out", "{out}"], "table5", "SCIP 240 s per case (4)"),
    "seed001": (["experiments/seed001/run.py", "--config", "configs/seed001_allocation_quick.toml", "--out", "{out}"],
                "summary", "none (GA of fixed size: configs/seed001_allocation_quick.toml)"),
    "seed001-full": (["experiments/seed001/run.py", "--config", "configs/seed001_allocation.toml", "--out", "{out}"],
                     "summary", "none (GA of fixed size: configs/seed001_allocation.toml, 100 x 100)"),
    "seed000-ieee33": (["experiments/seed000/run.py", "configs/ieee33_planning.toml", "--out", "{out}"], "ieee33",
                       "branch-and-bound to a 1e-6 gap (configs/ieee33_planning.toml [solver])"),
    "seed000-ieee69": (["experiments/seed000/run.py", "configs/ieee69_planning.toml", "--out", "{out}"], "ieee69",
                       "branch-and-bound to a 1e-6 gap (configs/ieee69_planning.toml [solver])"),
    "seed002-table1": ([f"{S2}/table1.py", "--out", "{out}"], "table1", "SCIP 240 s (MISOCP), 300 s (MINLP)"),
}

_BLOCK = re.compile(r"<!-- results: (?P<study>[\w.-]+) table (?P<i>\d+) -->\n(?P<body>.*?)<!-- /results -->", re.S)


def tables(markdown: str) -> list[str]:
    """The markdown tables of a report, in order (each a block of consecutive ``|`` lines)."""
    out, cur = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cur.append(line)
        elif cur:
            out.append("\n".join(cur))
            cur = []
    if cur:
        out.append("\n".join(cur))
    return out


def render(study: str, i: int, root: Path = ROOT) -> str:
    """Block ``i`` of ``study`` as the docs show it: the table from the committed JSON."""
    data = json.loads((root / "docs" / "seed_results" / f"{study}.json").read_text())
    return data["tables"][i] + "\n"


def blocks(text: str) -> list[tuple[str, int, str]]:
    """The (study, table index, body) of every results block of a document."""
    return [(m["study"], int(m["i"]), m["body"]) for m in _BLOCK.finditer(text)]


def fill(text: str, root: Path = ROOT) -> str:
    """The document with every results block re-rendered from the committed JSON (blocks of studies
    with no committed JSON are left as they are; the test reports them)."""
    def sub(m):
        if not (root / "docs" / "seed_results" / f"{m['study']}.json").exists():
            return m[0]
        return f"<!-- results: {m['study']} table {m['i']} -->\n{render(m['study'], int(m['i']), root)}<!-- /results -->"

    return _BLOCK.sub(sub, text)


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "sopjax", "configs", "experiments"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    return r.stdout.strip() + ("+changes" if dirty else "")


def run_study(name: str, python: str) -> tuple[str, float, int]:
    """Run one study; copy its report and JSON (with the run record and tables) to docs/seed_results/."""
    cmd, stem, limits = STUDIES[name]
    out = RAW / name
    out.mkdir(parents=True, exist_ok=True)
    argv = ["nice", "-n", "10", python, *(a.replace("{out}", str(out.relative_to(ROOT))) for a in cmd)]
    log = out / "log.txt"
    print(f"[{name}] start: {' '.join(argv[3:])}", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        rc = subprocess.run(argv, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    wall = time.perf_counter() - t0
    print(f"[{name}] {'done' if rc == 0 else f'FAILED (exit {rc}, see {log})'} in {wall / 60:.1f} min", flush=True)
    if rc != 0:
        return name, wall, rc
    if not (out / f"{stem}.json").exists():  # seed 000 names its files after the network
        stem = next(p.stem for p in out.glob("*.json"))
    md = (out / f"{stem}.md").read_text()
    data = json.loads((out / f"{stem}.json").read_text())
    data["run"] = {"command": "python " + " ".join(a.replace("{out}", f"results/seeds/{name}") for a in cmd),
                   "time_limits": limits, "wall_s": round(wall, 1), "commit": _commit(),
                   "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M")}
    data["tables"] = tables(md)
    COMMITTED.mkdir(parents=True, exist_ok=True)
    (COMMITTED / f"{name}.md").write_text(md)
    (COMMITTED / f"{name}.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    for png in out.glob("*.png"):
        shutil.copy(png, COMMITTED / f"{name}.png")
    return name, wall, rc


def write_index() -> None:
    """``docs/seed_results/index.json`` / ``.md``: one row per committed study from its run record."""
    rows = ["| study | command | time limits | wall min | commit | date (UTC) |", "|---|---|---|---|---|---|"]
    for name in STUDIES:
        path = COMMITTED / f"{name}.json"
        if path.exists():
            r = json.loads(path.read_text())["run"]
            rows.append(f"| {name} | `{r['command']}` | {r['time_limits']} | {r['wall_s'] / 60:.1f} | {r['commit']} "
                        f"| {r['date_utc']} |")
    md = "# Seed studies: the last committed run of each\n\n" + "\n".join(rows) + "\n"
    (COMMITTED / "index.md").write_text(md)
    (COMMITTED / "index.json").write_text(json.dumps(
        {"run": {"command": "python experiments/run_seeds.py", "time_limits": "see each study", "wall_s": 0},
         "tables": tables(md)}, indent=1) + "\n")


def update_docs() -> None:
    write_index()
    for doc in DOCS:
        p = ROOT / doc
        text = p.read_text()
        new = fill(text)
        if new != text:
            p.write_text(new)
            print(f"updated the results blocks of {doc}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="STUDY", choices=sorted(STUDIES), help="run these studies only")
    ap.add_argument("--list", action="store_true", help="list the studies and exit")
    ap.add_argument("--jobs", type=int, default=2, help="studies run at once (default 2)")
    ap.add_argument("--docs-only", action="store_true", help="only re-render the docs' blocks")
    ap.add_argument("--python", default=sys.executable, help="the interpreter that runs the studies")
    args = ap.parse_args(argv)
    if args.list:
        for name, (cmd, _, limits) in STUDIES.items():
            print(f"{name:24s} python {' '.join(cmd).replace('{out}', f'results/seeds/{name}')}\n{'':24s} limits: {limits}")
        return 0
    if not args.docs_only:
        names = args.only or list(STUDIES)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            done = list(pool.map(lambda n: run_study(n, args.python), names))
        print("\n| study | wall min | status |\n|---|---|---|")
        for name, wall, rc in done:
            print(f"| {name} | {wall / 60:.1f} | {'ok' if rc == 0 else f'failed ({rc})'} |")
        if any(rc for _, _, rc in done):
            update_docs()
            return 1
    update_docs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
