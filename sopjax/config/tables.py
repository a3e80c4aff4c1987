"""Checks on the tables of a parsed config (TOML tables are mappings, arrays of tables are lists).

Every check names where it looked (``[network] pv[0]``) so that a user can fix the
file without a traceback. The checks raise :class:`~sopjax.errors.ConfigError`
unless told otherwise: ``error`` lets a parser whose callers catch a narrower
type (the strategy tables raise :class:`~sopjax.strategies.StrategyError`) keep it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sopjax.errors import ConfigError, SopjaxError

__all__ = ["table", "sub_table", "table_list", "require"]


def table(
    value: Any,
    where: str,
    *,
    allowed: Iterable[str] | None = None,
    missing_ok: bool = False,
    error: type[SopjaxError] = ConfigError,
) -> Mapping:
    """``value`` as a table whose keys all lie in ``allowed``.

    Args:
        value: the parsed table.
        where: its name in messages, e.g. ``"[montecarlo]"``.
        allowed: the known keys (None: any key).
        missing_ok: a ``None`` value stands for an empty table.
        error: the exception type raised.

    Raises:
        ConfigError: not a table, or an unknown key (the first one, sorted, and the allowed keys named).
    """
    if value is None and missing_ok:
        return {}
    if not isinstance(value, Mapping):
        raise error(f"{where} must be a table, got {type(value).__name__}")
    if allowed is not None:
        allowed = set(allowed)
        unknown = sorted(set(value) - allowed, key=str)
        if unknown:
            raise error(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    return value


def sub_table(
    parent: Mapping,
    key: str,
    where: str,
    *,
    allowed: Iterable[str] | None = None,
    error: type[SopjaxError] = ConfigError,
) -> Mapping:
    """The table ``parent[key]`` (empty when absent), checked as :func:`table` does."""
    return table(parent.get(key), where, allowed=allowed, missing_ok=True, error=error)


def table_list(value: Any, where: str, *, error: type[SopjaxError] = ConfigError) -> list[Mapping]:
    """An array of tables (``pv = [{...}, ...]``); ``None`` is an empty array.

    Raises:
        ConfigError: not a list, or an element that is not a table (its index named).
    """
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise error(f"{where} must be a list of tables, got {type(value).__name__}")
    for k, row in enumerate(value):
        if not isinstance(row, Mapping):
            raise error(f"{where}[{k}] must be a table, got {type(row).__name__}")
    return list(value)


def require(
    value: Mapping, keys: Sequence[str], where: str, *, hint: str = "", error: type[SopjaxError] = ConfigError
) -> None:
    """Raise unless every key of ``keys`` is in the table ``value``.

    Args:
        hint: appended to the message, e.g. ``"(ieee33, ieee69, ieee85 or a .m file)"``.

    Raises:
        ConfigError: ``"<where> needs 'a' and 'b' <hint> (missing 'b')"``.
    """
    missing = [k for k in keys if k not in value]
    if missing:
        need = " and ".join(repr(k) for k in keys)
        extra = f" {hint}" if hint else ""
        which = f" (missing {missing[0]!r})" if len(keys) > 1 else ""
        raise error(f"{where} needs {need}{extra}{which}")
