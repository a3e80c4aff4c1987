"""A per-process cache for what a worker builds from a job (device arrays, compiled kernels).

A Dask worker process runs many chunks of one job; :func:`worker_cached` lets the task
build its device-resident inputs and jitted functions on the first chunk and reuse them
for the rest (JAX keeps the compiled programs of a jitted function for its lifetime).
Keys are job fingerprints; only the most recent few jobs are kept.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["worker_cached", "cache_stats", "clear_worker_cache"]

_MAX_JOBS = 4
_cache: OrderedDict = OrderedDict()
_lock = threading.Lock()
_stats = {"hits": 0, "builds": 0}


def worker_cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()`` once per ``key`` in this process; later calls return the same object."""
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return _cache[key]
    value = build()
    with _lock:
        _cache[key] = value
        _stats["builds"] += 1
        while len(_cache) > _MAX_JOBS:
            _cache.popitem(last=False)
    return value


def cache_stats() -> dict[str, int]:
    """``{"hits": ..., "builds": ...}`` of this process (tests check that a worker builds once)."""
    return dict(_stats)


def clear_worker_cache() -> None:
    with _lock:
        _cache.clear()
