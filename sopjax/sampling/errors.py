"""Errors raised by the uncertainty models (all are :class:`~sopjax.errors.SopjaxError`)."""

from __future__ import annotations

from sopjax.errors import SopjaxError

__all__ = ["UncertaintyError", "CorrelationError", "ProfileError"]


class UncertaintyError(SopjaxError):
    """An uncertainty model or its input is invalid (names the parameter or unit at fault)."""


class CorrelationError(UncertaintyError):
    """A correlation specification is invalid (rho out of range, matrix not a correlation matrix)."""


class ProfileError(UncertaintyError):
    """A time profile is invalid (wrong length, negative or non-finite values)."""
