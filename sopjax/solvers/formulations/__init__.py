"""Power-flow formulations: modules with the same function API.

``soc_distflow`` (SOC relaxation, MISOCP) and ``lindistflow`` (linear, MILP).
:func:`get` returns the module for a name.
"""

from __future__ import annotations

from types import ModuleType

from sopjax.errors import SopjaxError
from sopjax.solvers.formulations import lindistflow, soc_distflow

FORMULATIONS: dict[str, ModuleType] = {"soc": soc_distflow, "lindistflow": lindistflow}

__all__ = ["FORMULATIONS", "get", "soc_distflow", "lindistflow"]


def get(name: str) -> ModuleType:
    """The formulation module called ``name`` (``"soc"`` or ``"lindistflow"``)."""
    try:
        return FORMULATIONS[name]
    except KeyError:
        raise SopjaxError(f"unknown formulation {name!r}; choose from {sorted(FORMULATIONS)}") from None
