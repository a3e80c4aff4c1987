"""Numbers from a parsed config: type, finiteness, range and integrality, with the key path in the message.

TOML has no NaN-free float type (``nan`` and ``inf`` are valid TOML), and ``true``
is a Python ``int``; these checks refuse both where a number is meant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sopjax.errors import ConfigError, SopjaxError

__all__ = ["MAX_SEED", "number", "integer", "integer_list", "number_list", "seed"]


def _is_number(x: Any) -> bool:
    return not isinstance(x, (bool, np.bool_)) and isinstance(x, (int, float, np.integer, np.floating))


def number(
    x: Any,
    where: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    positive: bool = False,
    integer: bool = False,
    error: type[SopjaxError] = ConfigError,
) -> float | int:
    """A finite number in ``[lo, hi]`` (``> 0`` if ``positive``), an int if ``integer``.

    Args:
        x: the parsed value.
        where: its key path in messages, e.g. ``"[dispatch] tol"``.
        lo, hi: inclusive bounds (None: unbounded).
        positive: refuse zero and negative values.
        integer: refuse values with a fractional part (``3.0`` passes) and return an int.
        error: the exception type raised.

    Raises:
        ConfigError: not a number (booleans included), NaN or infinite, fractional, out of range.
    """
    if not _is_number(x):
        raise error(f"{where} must be a number, got {x!r}")
    if not math.isfinite(x):
        raise error(f"{where} must be finite, got {x!r}")
    if integer and int(x) != x:
        raise error(f"{where} must be an integer, got {x!r}")
    if lo is not None and hi is not None and not lo <= x <= hi:
        raise error(f"{where} must lie in [{lo}, {hi}], got {x!r}")
    if lo is not None and x < lo:
        raise error(f"{where} must be >= {lo}, got {x!r}")
    if hi is not None and x > hi:
        raise error(f"{where} must be <= {hi}, got {x!r}")
    if positive and x <= 0:
        raise error(f"{where} must be > 0, got {x!r}")
    return int(x) if integer else float(x)


def integer(
    x: Any, where: str, *, lo: int | None = None, hi: int | None = None, error: type[SopjaxError] = ConfigError
) -> int:
    """:func:`number` with ``integer=True``."""
    return number(x, where, lo=lo, hi=hi, integer=True, error=error)


#: the largest PRNG seed: JAX keys and numpy generators take a 64-bit signed integer
MAX_SEED = 2**63 - 1


def seed(x: Any, where: str, *, error: type[SopjaxError] = ConfigError) -> int:
    """A PRNG seed: an integer in [0, MAX_SEED] (a larger one overflows inside JAX or numpy)."""
    return integer(x, where, lo=0, hi=MAX_SEED, error=error)


def integer_list(value: Any, where: str, *, error: type[SopjaxError] = ConfigError) -> list[int]:
    """A list of integers (branch numbers, bus ids); ``None`` is an empty list.

    Unlike :func:`integer`, ``3.0`` is refused: these are identifiers, not amounts.

    Raises:
        ConfigError: not a list, or an element that is not an integer (named).
    """
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise error(f"{where} must be a list of numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise error(f"{where}: {v!r} is not an integer")
        out.append(int(v))
    return out


def number_list(
    value: Any,
    where: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    positive: bool = False,
    max_len: int | None = None,
    error: type[SopjaxError] = ConfigError,
) -> list[float]:
    """A list of finite numbers, each checked as :func:`number` does (its index named).

    Args:
        max_len: refuse longer lists (None: any length).

    Raises:
        ConfigError: not a list, too long, or an element that is not a number in range.
    """
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise error(f"{where} must be a list of numbers, got {value!r}"[:200])
    if max_len is not None and len(value) > max_len:
        raise error(f"{where} holds {len(value)} values, at most {max_len} allowed")
    return [number(v, f"{where}[{k}]", lo=lo, hi=hi, positive=positive, error=error) for k, v in enumerate(value)]
