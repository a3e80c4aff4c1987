"""Helpers shared by subcommands: branch lists, TOML configs, JSON output."""

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
