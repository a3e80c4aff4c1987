"""Scale-out: a fixed chunk plan run in-process or on a Dask cluster, merged in chunk order.

See docs/scaleout.md. The in-process executor is the default and imports no Dask;
:mod:`sopjax.scaleout.dask` is imported only when a scheduler is given.
"""

from sopjax.scaleout.cache import cache_stats, worker_cached
from sopjax.scaleout.executor import (
    DEFAULT_CONNECT_TIMEOUT_S,
    Executor,
    InProcessExecutor,
    make_executor,
    run_plan,
)
from sopjax.scaleout.plan import Chunk, check_chunk_size, chunk_plan

__all__ = [
    "Chunk", "DEFAULT_CONNECT_TIMEOUT_S", "Executor", "InProcessExecutor", "cache_stats", "check_chunk_size",
    "chunk_plan", "make_executor", "run_plan", "worker_cached",
]
