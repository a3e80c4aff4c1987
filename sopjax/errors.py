"""Exceptions raised at the Python boundary.

Every error names the offending element (bus, branch, parameter) so that a user
can fix their input without reading a traceback. The CLI prints ``str(error)``
on one line and exits non-zero.
"""


class SopjaxError(ValueError):
    """Base class for all user-facing sopjax errors."""


class ConfigError(SopjaxError):
    """A study config is malformed: unknown key, wrong type, value out of range, missing table.

    The one error type of every config parser (:mod:`sopjax.config` and the studies
    built on it); the message names the table and key (``[montecarlo] samples``).
    """


class CaseFormatError(SopjaxError):
    """A case file cannot be read (syntax, unsupported MATLAB code, missing table)."""


class NetworkError(SopjaxError):
    """Network data are invalid (unknown bus, duplicate branch, bad impedance, NaN...)."""


class TopologyError(SopjaxError):
    """A switch configuration is not radial (a closed loop, two sources joined)."""


class UnsupportedElementError(SopjaxError):
    """An input network holds an element sopjax does not model (e.g. a transformer)."""


class NothingToRestoreError(SopjaxError):
    """After a fault no closable switch or SOP connects the outage area to a source: the optimal
    restoration restores nothing (raised before any solver runs)."""
