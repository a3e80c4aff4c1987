"""Constraint groups shared by the problem builders."""

from __future__ import annotations

from sopjax.solvers.model import Model
from sopjax.solvers.options import FormulationOptions


def constraint_switched_network(m: Model, form, options: FormulationOptions) -> None:
    """Source voltage, power balance, voltage drop, switched flows and branch cones.

    ``form`` is the formulation module (``soc_distflow`` or ``lindistflow``); every
    formulation takes the same arguments, so nothing here depends on which one it is.
    """
    form.constraint_source_voltage(m)
    form.constraint_power_balance(m)
    form.constraint_voltage_drop(m)
    form.constraint_switched_flow(m)
    form.constraint_branch_cone(m, perspective=options.perspective)
