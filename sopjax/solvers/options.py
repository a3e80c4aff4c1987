"""Formulation options shared by the problem builders: the tight default and the naive baseline preset."""

from __future__ import annotations

import dataclasses

from sopjax.errors import SopjaxError
from sopjax.solvers.components.radiality import RADIALITY_METHODS

__all__ = ["BIG_M", "FormulationOptions", "NAIVE", "TIGHT"]


@dataclasses.dataclass(frozen=True)
class FormulationOptions:
    """How a problem builder writes switches and radiality.

    Attributes:
        formulation: ``"soc"`` (MISOCP) or ``"lindistflow"`` (MILP).
        radiality: ``"spanning_forest"`` (directed parent-child + fictitious flow) or
            ``"single_commodity"`` (naive).
        loop_cuts: add cycle-basis cuts.
        orientation: directed parent-child orientation in the spanning-forest radiality.
        minimal_connectivity: send the fictitious connectivity flow only to buses whose
            connection the power balance does not prove
            (:func:`sopjax.solvers.components.radiality.connectivity_buses`).
        perspective: perspective form of the branch cone on switchable branches.
        flow_direction: power flows parent -> child where valid (no exporting subtree).
        structure_cuts: (reconfiguration) fix closable bridges closed and add chain cuts
            (:func:`sopjax.solvers.components.radiality.closable_bridges`, ``constraint_chain_cuts``).
        voltage_ceiling: cap every voltage at the substation's where no bus can export
            power (no PV, no SOP, non-negative loads, no capacitive shunt or capacitor bank;
            see :mod:`sopjax.solvers.components.bounds`).
        continuous_energization: (restoration) energization variables continuous in [0, 1]
            (exact with oriented spanning-forest radiality and full connectivity flow;
            see :func:`sopjax.solvers.components.radiality.variable_energized`).
        load_bound_cut: (restoration) bound the restored load by the optimum of the LinDistFlow
            relaxation (a MILP solved first with HiGHS) and add ``restored <= bound`` to the
            MISOCP (:func:`sopjax.problems.restoration.solve.restored_load_bound`). Off by
            default: on IEEE 33 the bound (3455 kW vs an optimum of 3305 kW) did not shorten
            SCIP's search.
        big_m: ``None`` = data-derived bounds (:mod:`sopjax.solvers.components.bounds`); a number =
            one blanket big-M for every flow, current and voltage-drop bound (naive).
        loss_allowance: loss margin in the data-derived flow bounds.
        warm_start: give SCIP a first solution from a primal heuristic (reconfiguration:
            branch exchange with the exact power flow, :mod:`sopjax.problems.reconfiguration.heuristic`).
    """

    formulation: str = "soc"
    radiality: str = "spanning_forest"
    loop_cuts: bool = True
    orientation: bool = True
    minimal_connectivity: bool = True
    perspective: bool = True
    flow_direction: bool = True
    voltage_ceiling: bool = True
    structure_cuts: bool = True
    continuous_energization: bool = True
    load_bound_cut: bool = False
    big_m: float | None = None
    loss_allowance: float = 0.5
    warm_start: bool = True

    def __post_init__(self) -> None:
        if self.formulation not in ("soc", "lindistflow"):
            raise SopjaxError(f"unknown formulation {self.formulation!r}; choose 'soc' or 'lindistflow'")
        if self.radiality not in RADIALITY_METHODS:
            raise SopjaxError(f"unknown radiality method {self.radiality!r}; choose from {RADIALITY_METHODS}")
        if self.big_m is not None and not (self.big_m > 0):
            raise SopjaxError(f"big_m must be positive, got {self.big_m}")
        if not (self.loss_allowance >= 0):
            raise SopjaxError(f"loss_allowance must be >= 0, got {self.loss_allowance}")


TIGHT = FormulationOptions()
"""The tight default: data-derived bounds, oriented spanning-forest radiality, cuts, warm start."""

# one big-M (p.u. on the case base) for every switched bound
BIG_M = 100.0

NAIVE = FormulationOptions(
    formulation="soc",
    radiality="single_commodity",
    loop_cuts=False,
    orientation=False,
    minimal_connectivity=False,
    perspective=False,
    flow_direction=False,
    voltage_ceiling=False,
    structure_cuts=False,
    continuous_energization=False,
    load_bound_cut=False,
    big_m=BIG_M,
    warm_start=False,
)
"""The naive baseline of the speed benchmark.

What a first implementation typically writes: one blanket big-M for every
switched flow, current and voltage-drop bound (instead of the data-derived
bounds of :mod:`sopjax.solvers.components.bounds`), the plain cone ``P^2 + Q^2 <= l v``
(no perspective), and single-commodity-flow radiality with the counting
constraint ``sum alpha = n_energized - n_sources`` (no orientation, no cycle
cuts), and no warm start. Same variables, same physics, same optimum — only the relaxation is
weaker. Used by ``benchmarks/restoration_bench.py`` and in tests that check
both give the same optimum.
"""
