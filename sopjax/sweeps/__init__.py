"""Sensitivity sweeps and capacity optimization on top of the differentiable SOP dispatch.

    spec = spec_from_config(tomllib.load(open("configs/sop_capacity_sweep.toml", "rb")))
    ds = run_sweep(spec)                       # xarray: quantities and d<quantity>_d<axis>
    opt = optimize_capacity(spec_of_an_optimization_config)
"""

from sopjax.sweeps.config import PARAMETERS, QUANTITIES, SweepConfigError, SweepSpec, spec_from_config
from sopjax.sweeps.runner import run_sweep
from sopjax.sweeps.scenario import Scenario, build_scenario

__all__ = [
    "PARAMETERS", "QUANTITIES", "Scenario", "SweepConfigError", "SweepSpec", "build_scenario", "run_sweep",
    "spec_from_config",
]
