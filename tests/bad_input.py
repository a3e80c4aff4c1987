"""Bad-input fuzzing harness: Hypothesis strategies that mutate configs, case files and CLI options,
and the check every entry point must pass (run cleanly, or refuse with a :class:`SopjaxError`).

Used by ``tests/test_bad_input.py`` (the default suite, bounded profile) and by
``experiments/bad_input_report.py`` (the ``thorough`` profile, prints the counts of
``docs/bad_input.md``). Not a test module itself (no ``test_`` prefix).

Outcomes are recorded per entry point when ``SOPJAX_FUZZ_LOG`` names a JSON-lines file:
``{"entry": ..., "input": ..., "outcome": "ran" | "refused" | "FAILED", "error": class name}``;
``SOPJAX_FUZZ_KEEP_GOING=1`` records a failure without failing the test (to count every input
of a profile; the report script then fails on any recorded failure).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import tomllib
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from sopjax.errors import SopjaxError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs"
CASE_FILES = sorted((ROOT / "sopjax" / "data").glob("*.m")) + sorted(Path("/work/shared/cases").glob("*.m"))

#: per-example wall-clock limit (s): an example running longer counts as a hang
HANG_S = float(os.environ.get("SOPJAX_FUZZ_HANG_S", "240"))


def load_config(name: str) -> dict:
    with open(CONFIG_DIR / name, "rb") as fh:
        return tomllib.load(fh)


# ---------------------------------------------------------------------------------------------
# config mutations


#: values that replace a config value: wrong types, out-of-range numbers, NaN/inf, huge arrays
BAD_VALUES: tuple[Any, ...] = (
    "big", "", "auto", True, False, 0, -1, -5, 0.5, 1.5, 1e12, -1e12, 10**30, 1e-300,
    math.nan, math.inf, -math.inf, [], {}, [1, 2, 3], [[1, 2]], {"x": 1}, [math.nan],
    ["a", "b"], [0.5, -1.0],
)
HUGE_ARRAY = list(range(100_000))
EXTRA_KEYS = ("colour", "sampels", "Samples", "case ", "1")


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a parsed config (tables, arrays and leaves), depth first."""
    out = [prefix] if prefix else []
    if isinstance(value, Mapping):
        for k, v in value.items():
            out += paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, prefix + (i,))
    return out


def table_paths(value: Any) -> list[tuple]:
    """The paths of every table (the config itself included): where an extra key can go."""
    return [()] + [p for p in paths(value) if isinstance(get(value, p), Mapping)]


def get(cfg: Any, path: tuple) -> Any:
    for k in path:
        cfg = cfg[k]
    return cfg


def _parent(cfg: Any, path: tuple):
    return get(cfg, path[:-1]), path[-1]


def path_text(path: tuple) -> str:
    return ".".join(str(k) for k in path) or "<root>"


@st.composite
def config_mutation(draw, cfg: dict) -> tuple[dict, str]:
    """One mutation of ``cfg`` (deep-copied): replace, delete, empty, enlarge or add a key.

    Returns:
        (mutated config, a short description such as ``"replace montecarlo.samples = 'big'"``).
    """
    cfg = copy.deepcopy(cfg)
    kind = draw(st.sampled_from(("replace", "replace", "replace", "delete", "empty", "huge", "extra")))
    if kind == "extra":
        where = draw(st.sampled_from(table_paths(cfg)))
        key = draw(st.sampled_from(EXTRA_KEYS))
        get(cfg, where)[key] = draw(st.sampled_from(BAD_VALUES))
        return cfg, f"extra key {path_text(where + (key,))}"
    path = draw(st.sampled_from(paths(cfg)))
    parent, key = _parent(cfg, path)
    if kind == "delete":
        del parent[key]
        return cfg, f"delete {path_text(path)}"
    if kind == "empty":
        old = parent[key]
        parent[key] = {} if isinstance(old, Mapping) else [] if isinstance(old, list) else ""
        return cfg, f"empty {path_text(path)}"
    if kind == "huge":
        parent[key] = HUGE_ARRAY
        return cfg, f"huge array at {path_text(path)}"
    value = draw(st.sampled_from(BAD_VALUES) | st.floats(allow_nan=True, allow_infinity=True)
                 | st.integers(min_value=-(10**20), max_value=10**20) | st.text(max_size=8))
    parent[key] = value
    return cfg, f"replace {path_text(path)} = {value!r}"[:160]


def force(cfg: dict, path: tuple, value: Any, *, unless: str) -> None:
    """Set ``path`` to ``value`` (to keep a run tiny) unless the mutation touched it (``unless``)."""
    if path_text(path) in unless:
        return
    try:
        parent = get(cfg, path[:-1])
    except (KeyError, IndexError, TypeError):
        return
    if isinstance(parent, dict):
        parent[path[-1]] = value


# ---------------------------------------------------------------------------------------------
# case-file mutations


def _numbers(text: str) -> list[tuple[int, int]]:
    import re

    return [(m.start(), m.end()) for m in re.finditer(r"-?\d+(\.\d+)?([eE]-?\d+)?", text)]


@st.composite
def case_mutation(draw, text: str) -> tuple[bytes, str]:
    """One mutation of a MATPOWER file's text: truncation, non-numeric fields, missing blocks,
    unknown MATLAB code, binary data, extreme numbers.

    Returns:
        (file content, description).
    """
    lines = text.splitlines(keepends=True)
    kind = draw(st.sampled_from(("truncate", "field", "field", "drop_line", "drop_block", "code", "binary",
                                 "row_short", "duplicate_row")))
    if kind == "truncate":
        n = draw(st.integers(0, len(text)))
        return text[:n].encode(), f"truncated at char {n}"
    if kind == "field":
        spans = _numbers(text)
        a, b = spans[draw(st.integers(0, len(spans) - 1))]
        new = draw(st.sampled_from(("abc", "NaN", "Inf", "-Inf", "1e400", "0", "-1", "1e12", "[", "'x'", "")))
        return (text[:a] + new + text[b:]).encode(), f"number at char {a} -> {new!r}"
    if kind == "drop_line":
        k = draw(st.integers(0, len(lines) - 1))
        return "".join(lines[:k] + lines[k + 1:]).encode(), f"line {k + 1} deleted"
    if kind == "drop_block":
        block = draw(st.sampled_from(("mpc.bus ", "mpc.branch ", "mpc.baseMVA", "mpc.gen ", "];")))
        k = text.find(block)
        if k < 0:
            return text.encode(), "unchanged"
        end = text.find("];", k + 2)
        return (text[:k] + text[end + 2 if end >= 0 else len(text):]).encode(), f"block {block.strip()} removed"
    if kind == "code":
        stmt = draw(st.sampled_from((
            "mpc.bus(:, 3) = mpc.bus(:, 3) / 0;\n", "x = eval('1');\n", "for k = 1:3, end\n",
            "mpc.branch(:, 3) = -mpc.branch(:, 3);\n", "mpc.bus(5, 3) = NaN;\n", "mpc.baseMVA = 0;\n",
            "function y = f(x)\n", "mpc.branch(1, 2) = 999;\n", "mpc.bus(:, 1) = 1;\n",
        )))
        k = draw(st.integers(0, len(lines)))
        return "".join(lines[:k] + [stmt] + lines[k:]).encode(), f"line {k + 1}: inserted {stmt.strip()!r}"
    if kind == "binary":
        blob = draw(st.binary(min_size=1, max_size=64))
        k = draw(st.integers(0, len(text)))
        return text[:k].encode() + blob + text[k:].encode(), f"{len(blob)} binary bytes at char {k}"
    rows = [i for i, ln in enumerate(lines) if ln.strip() and ln.strip()[0].isdigit() and "\t" in ln]
    if not rows:
        return text.encode(), "unchanged"
    i = draw(st.sampled_from(rows))
    if kind == "row_short":
        cells = lines[i].split("\t")
        lines[i] = "\t".join(cells[: max(1, len(cells) // 2)]) + ";\n"
        return "".join(lines).encode(), f"row on line {i + 1} cut short"
    lines.insert(i, lines[i])
    return "".join(lines).encode(), f"row on line {i + 1} duplicated"


# ---------------------------------------------------------------------------------------------
# the check


class _Hang(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raise :class:`_Hang` after ``seconds`` (main thread, POSIX only; otherwise no limit)."""
    if not hasattr(signal, "SIGALRM") or seconds <= 0:
        yield
        return

    def handler(signum, frame):
        raise _Hang(f"no result after {seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _log(record: dict) -> None:
    path = os.environ.get("SOPJAX_FUZZ_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(record, default=str) + "\n")


def nonfinite(value: Any, where: str = "result") -> list[str]:
    """The places in a result (nested dicts/lists/numbers/arrays/xarray) holding NaN or inf."""
    import xarray as xr

    if isinstance(value, xr.Dataset):
        return [f"{where}.{k}" for k, v in value.data_vars.items()
                if v.dtype.kind == "f" and not np.all(np.isfinite(v.values))]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in nonfinite(v, f"{where}.{k}")]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in nonfinite(v, f"{where}[{i}]")]
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return [where]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        return [where]
    return []


def check(entry: str, description: str, fn: Callable[[], Any], *, finite: Callable[[Any], list[str]] = nonfinite):
    """Run ``fn``: it must return (with no NaN/inf in what ``finite`` inspects) or raise a SopjaxError
    with a one-line message; anything else (another exception, a NaN, a hang) fails the test.

    Returns:
        "ran" or "refused".
    """
    record = {"entry": entry, "input": description}
    try:
        with _deadline(HANG_S):
            result = fn()
    except SopjaxError as e:
        msg = str(e)
        record.update(outcome="refused", error=type(e).__name__)
        if not msg.strip() or "\n" in msg.strip() or "Traceback" in msg:
            record.update(outcome="FAILED", error=f"{type(e).__name__} with a bad message: {msg!r}")
    except BaseException as e:  # noqa: BLE001 - the point is to catch everything else
        if isinstance(e, KeyboardInterrupt):
            raise
        record.update(outcome="FAILED", error=f"{type(e).__name__}: {e}"[:500],
                      traceback=traceback.format_exc()[-3000:])
    else:
        bad = finite(result)
        record.update(outcome="ran", error="")
        if bad:
            record.update(outcome="FAILED", error=f"non-finite values in {bad[:5]}")
    _log(record)
    if record["outcome"] == "FAILED" and not os.environ.get("SOPJAX_FUZZ_KEEP_GOING"):
        raise AssertionError(f"{entry}: {description}\n  -> {record['error']}\n{record.get('traceback', '')}")
    return record["outcome"]
