"""Helpers shared by subcommands: branch lists, TOML configs, JSON output, the scheduler options."""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np

from sopjax.errors import SopjaxError


def branch_list(text: str | None, option: str) -> list[int]:
    """Parse ``"7,9,14"`` into branch numbers; a clear error on anything else."""
    if not text:
        return []
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(int(item))
        except ValueError:
            raise SopjaxError(f"{option}: {item!r} is not a branch number") from None
    return out


def _number_type(kind: type, *, lo: float, strict: bool, auto: bool = False):
    """An argparse ``type=``: a finite ``kind`` above ``lo`` (``> lo`` if ``strict``), or ``"auto"`` if ``auto``."""
    relation = ">" if strict else ">="

    def parse(text: str):
        if auto and text == "auto":
            return "auto"
        try:
            x = kind(text)
        except ValueError:
            x = None
        if x is None or not math.isfinite(x) or (x <= lo if strict else x < lo):
            extra = "'auto' or " if auto else ""
            raise argparse.ArgumentTypeError(f"expected {extra}a{'n integer' if kind is int else ' number'} "
                                              f"{relation} {lo:g}, got {text!r}")
        return x

    parse.__name__ = f"{kind.__name__}{relation}{lo:g}"  # argparse names the type in some messages
    return parse


#: argparse types: every numeric option refuses NaN, inf and out-of-range values before any work
positive_int = _number_type(int, lo=0, strict=True)
nonnegative_int = _number_type(int, lo=0, strict=False)
positive_float = _number_type(float, lo=0, strict=True)
nonnegative_float = _number_type(float, lo=0, strict=False)
#: ``--chunk-size``: ``auto`` or an integer >= 1; zero and negative sizes are refused
chunk_size = _number_type(int, lo=0, strict=True, auto=True)


def read_toml(path: str, error: type[Exception] = SopjaxError) -> dict:
    """Read a TOML config; a syntax error becomes ``error`` naming the file and line."""
    import tomllib

    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: {e}") from None
    except OSError as e:
        raise error(f"{path}: {e.strerror}") from None


def json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=json_default)
    sys.stdout.write("\n")


def add_scheduler_options(p) -> None:
    """``--scheduler`` and ``--scheduler-timeout`` (chunks on a Dask cluster; see docs/scaleout.md)."""
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run the chunks on a Dask cluster: a scheduler address (tcp://host:8786) or local:N "
                   "(N worker processes on this machine); default: in this process. Needs sopjax[dask]")
    p.add_argument("--scheduler-timeout", type=positive_float, default=10.0, metavar="S",
                   help="seconds to wait for the scheduler before giving up (default 10)")


def open_executor(args):
    """The executor of ``--scheduler`` (connects now, so a bad address fails before any work)."""
    from sopjax.scaleout import make_executor

    return make_executor(args.scheduler or None, timeout_s=args.scheduler_timeout)
