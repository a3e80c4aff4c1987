"""Benchmarks of the batched power flow against its baselines (``sopjax bench``).

* :mod:`sopjax.bench.baselines` -- pandapower loop, power-grid-model batch, fused numba sweep;
* :mod:`sopjax.bench.cases` -- benchmark networks (built-ins, ``.m``, ``pp:<builder>``), radialised;
* :mod:`sopjax.bench.powerflow_bench` -- one run of every method on the same samples, report and table.

Importing this package imports no baseline library; each is imported when used.
"""

from sopjax.bench.cases import BenchCase, bench_case, radial_status
from sopjax.bench.powerflow_bench import BASELINES, format_report, make_samples, run_benchmark

__all__ = [
    "BASELINES",
    "BenchCase",
    "bench_case",
    "format_report",
    "make_samples",
    "radial_status",
    "run_benchmark",
]
