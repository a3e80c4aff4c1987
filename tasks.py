#!/usr/bin/env python3
"""Set up and run sopjax from a fresh clone with nothing but Python 3.11+.

    python3 tasks.py main   # create .venv, install, run the main study
    python3 tasks.py test   # create .venv, install, run the test suite

Both steps are idempotent: the virtual environment is reused when its install
stamp matches pyproject.toml.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"

# The main job: seed 002's restoration study scored by Monte Carlo, then the same case over a day
# with fixed vs optimal (re-dispatched) SOP control; results in results/.
MAIN = [
    ["sopjax", "montecarlo", "configs/ieee33_restoration_mc.toml", "--out", "results/ieee33_restoration_mc.nc",
     "--parents", "--overwrite"],
    ["sopjax", "montecarlo", "configs/ieee33_restoration_day.toml", "--out", "results/ieee33_restoration_day.nc",
     "--parents", "--overwrite"],
]


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def setup() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"sopjax needs Python >= 3.11, this is {sys.version.split()[0]}")
    if not PY.exists():
        venv.create(VENV, with_pip=True)
    stamp = VENV / ".sopjax-install"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run([str(PY), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([str(PY), "-m", "pip", "install", "--quiet", "-e", ".[test]"])
    stamp.write_text(digest)


def main() -> None:
    setup()
    for cmd in MAIN:
        run([str(BIN / cmd[0]), *cmd[1:]])


def test(extra: list[str]) -> None:
    setup()
    run([str(PY), "-m", "pytest", "-q", "-n", "2", "--durations=15", *extra])


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "main":
        main()
    elif what == "test":
        test(sys.argv[2:])
    elif what == "setup":
        setup()
    else:
        sys.exit(__doc__)
