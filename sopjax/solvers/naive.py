"""The naive baseline formulation for the speed benchmark.

What a first implementation typically writes: one blanket big-M for every
switched flow, current and voltage-drop bound (instead of the data-derived
bounds of :mod:`sopjax.solvers.bounds`), the plain cone ``P^2 + Q^2 <= l v``
(no perspective), and single-commodity-flow radiality with the counting
constraint ``sum alpha = n_energized - n_sources`` (no orientation, no cycle
cuts), and no warm start. Same variables, same physics, same optimum — only the relaxation is
weaker. Used by ``benchmarks/restoration_bench.py`` and in tests that check
both give the same optimum.
"""

from __future__ import annotations

from sopjax.solvers.options import FormulationOptions

__all__ = ["NAIVE", "BIG_M"]

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
