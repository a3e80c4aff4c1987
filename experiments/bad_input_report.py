"""Run the bad-input suite (tests/test_bad_input.py) and print what every input got, per entry point.

    python experiments/bad_input_report.py                      # thorough profile (about 30-60 min on 2 cores)
    python experiments/bad_input_report.py --profile default    # the bounded profile of the test suite

Every generated input is recorded (``SOPJAX_FUZZ_LOG``) without stopping at the first failure
(``SOPJAX_FUZZ_KEEP_GOING``); the table counts, per subcommand and entry point, the inputs tried,
how many ran, how many were refused with sopjax's own error (by type), and how many FAILED (a
traceback of another exception, a NaN in a result, or a hang). Exit code 1 if any failed.
The figures of docs/bad_input.md come from this command; it also writes them as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_suite(profile: str, log: Path, pytest_args: list[str]) -> int:
    env = {**os.environ, "SOPJAX_HYPOTHESIS_PROFILE": profile, "SOPJAX_FUZZ_LOG": str(log),
           "SOPJAX_FUZZ_KEEP_GOING": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
           str(ROOT / "tests" / "test_bad_input.py"), "-m", "", "-k", "mutations or validation or runs",
           *pytest_args]  # -m "": the slow-marked sweep and plan runs too
    return subprocess.run(cmd, cwd=ROOT / "tests", env=env).returncode


def tally(records: list[dict]) -> dict:
    """{entry: {"inputs", "ran", "refused", "failed", "errors": {type: n}, "failures": [...]}}."""
    out: dict[str, dict] = {}
    for r in records:
        t = out.setdefault(r["entry"], {"inputs": 0, "ran": 0, "refused": 0, "failed": 0,
                                        "errors": collections.Counter(), "failures": []})
        t["inputs"] += 1
        if r["outcome"] == "ran":
            t["ran"] += 1
        elif r["outcome"] == "refused":
            t["refused"] += 1
            t["errors"][r["error"]] += 1
        else:
            t["failed"] += 1
            t["failures"].append(f"{r['input']}: {r['error']}")
    return out


def table(t: dict) -> str:
    lines = ["| subcommand | entry point | inputs | ran | refused (sopjax error types) | failed |",
             "|---|---|---:|---:|---|---:|"]
    for entry in sorted(t):
        v = t[entry]
        command, _, point = entry.partition(": ")
        errs = ", ".join(f"{k} {n}" for k, n in v["errors"].most_common())
        lines.append(f"| {command} | {point} | {v['inputs']} | {v['ran']} | {v['refused']} ({errs}) | {v['failed']} |")
    per = collections.Counter()
    for entry, v in t.items():
        per[entry.partition(": ")[0]] += v["inputs"]
    total = sum(v["inputs"] for v in t.values())
    failed = sum(v["failed"] for v in t.values())
    lines += ["", "inputs per subcommand: " + ", ".join(f"{k} {n}" for k, n in sorted(per.items())),
              f"total {total} inputs, {failed} failed (tracebacks, NaN results or hangs)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", choices=("default", "thorough"), default="thorough")
    p.add_argument("--json", metavar="FILE", help="also write the tally as JSON")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k montecarlo)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        log = Path(d) / "log.jsonl"
        log.touch()
        rc = run_suite(args.profile, log, args.pytest_args)
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    t = tally(records)
    print(f"\nbad-input suite, profile {args.profile!r} (pytest exit code {rc})\n")
    print(table(t))
    for entry, v in sorted(t.items()):
        for f in v["failures"][:10]:
            print(f"FAILED {entry}: {f}")
    if args.json:
        Path(args.json).write_text(json.dumps({k: {**v, "errors": dict(v["errors"])} for k, v in t.items()},
                                              indent=2))
    return 1 if rc != 0 or any(v["failed"] for v in t.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
