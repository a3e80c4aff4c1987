"""Helpers shared by subcommands: branch lists, TOML configs, JSON output, the scheduler options."""

from __future__ import annotations

import json
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
    p.add_argument("--scheduler-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for the scheduler before giving up (default 10)")


def open_executor(args):
    """The executor of ``--scheduler`` (connects now, so a bad address fails before any work)."""
    from sopjax.scaleout import make_executor

    return make_executor(args.scheduler or None, timeout_s=args.scheduler_timeout)


def positive_chunk_size(args) -> None:
    """Refuse ``--chunk-size`` below 1 with a one-line error (leave it out for the automatic size)."""
    if getattr(args, "chunk_size", None) is not None and args.chunk_size < 1:
        raise SopjaxError(f"--chunk-size must be >= 1, got {args.chunk_size} "
                          "(leave it out for the automatic size)")
