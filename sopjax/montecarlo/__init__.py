"""Monte Carlo scoring of restoration strategies: chunked, streaming, resumable, to xarray.

    ds = run_montecarlo(net, strategies, source, MonteCarloSettings(n_samples=500, fault_open=(2,)))
    write_dataset(ds, "results/study.nc")
"""

from sopjax.montecarlo.io import read_dataset, write_dataset
from sopjax.montecarlo.runner import MonteCarloSettings, default_chunk_size, run_montecarlo
from sopjax.montecarlo.sources import ArraySource, ModelSource, SampleSource
from sopjax.montecarlo.state import CheckpointError, RunState
from sopjax.montecarlo.timeseries import ProfileSource, TimeSeriesSettings, run_timeseries

__all__ = [
    "ArraySource", "CheckpointError", "ModelSource", "MonteCarloSettings", "RunState", "SampleSource",
    "default_chunk_size", "read_dataset", "run_montecarlo", "write_dataset",
    "ProfileSource", "TimeSeriesSettings", "run_timeseries",
]
