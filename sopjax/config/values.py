"""Non-numeric config values: strings, choices and booleans, with the key path in the message.

TOML is typed, so a value of the wrong type is a user's mistake to name, never to
coerce: ``str(["a"])`` would pass a list as a name and ``bool("no")`` is true.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from sopjax.errors import ConfigError, SopjaxError

__all__ = ["string", "choice", "boolean"]


def string(x: Any, where: str, *, allow_empty: bool = False, error: type[SopjaxError] = ConfigError) -> str:
    """A string (non-blank unless ``allow_empty``).

    Raises:
        ConfigError: not a string, or blank.
    """
    if not isinstance(x, str):
        raise error(f"{where} must be a string, got {x!r}")
    if not allow_empty and not x.strip():
        raise error(f"{where} must not be empty")
    return x


def choice(x: Any, where: str, allowed: Iterable[str], *, error: type[SopjaxError] = ConfigError) -> str:
    """One of the strings ``allowed``; an unknown value names the choices.

    Raises:
        ConfigError: not a string or not an allowed value.
    """
    allowed = tuple(allowed)
    if not isinstance(x, str) or x not in allowed:
        raise error(f"{where} must be one of {', '.join(map(repr, allowed))}, got {x!r}")
    return x


def boolean(x: Any, where: str, *, error: type[SopjaxError] = ConfigError) -> bool:
    """``true`` or ``false`` (TOML booleans only; ``0``, ``1`` and ``"yes"`` are refused).

    Raises:
        ConfigError: not a boolean.
    """
    if not isinstance(x, (bool, np.bool_)):
        raise error(f"{where} must be true or false, got {x!r}")
    return bool(x)
