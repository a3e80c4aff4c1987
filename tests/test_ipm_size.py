"""The dispatch interior-point method stays at most half its size at a6d84a7 (issue 12).

The measure is ``benchmarks/ipm_size.py`` (what counts and why is in its docstring);
this test reruns it so that the IPM does not grow back unnoticed.
"""

import importlib.util
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ipm_size():
    spec = importlib.util.spec_from_file_location("ipm_size", ROOT / "benchmarks" / "ipm_size.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dispatch_ipm_is_at_most_half_its_old_size(capsys):
    mod = _ipm_size()
    probe = subprocess.run(["git", "cat-file", "-e", f"{mod.BEFORE}^{{commit}}"], cwd=ROOT, capture_output=True)
    if probe.returncode:
        pytest.skip(f"commit {mod.BEFORE} not in this clone (shallow?)")
    assert mod.main(brief=True) <= 0.5


def test_code_lines_skip_docstrings_comments_and_blanks():
    src = 'def f(x):\n    """Doc."""\n\n    # why\n    return (x +\n            1)\n'
    assert sorted(_ipm_size()._code_lines(src)) == [1, 5, 6]
