"""Executors run a chunk plan: in this process (the default) or on a Dask cluster.

The interface every chunked job uses (Monte Carlo, sweeps, datasets)::

    with make_executor(scheduler) as ex:            # None: in-process, no Dask import
        for chunk, result in run_plan(ex, task, job, chunks):
            merge(result)                           # in chunk-index order

``task(job, chunk)`` must be a module-level (picklable) function whose result depends
only on ``job`` and ``chunk``: a pure function of the configuration and the chunk
index. ``job`` is sent to each worker once; a worker keeps what it builds from it
(compiled kernels, device arrays) in :func:`sopjax.scaleout.cache.worker_cached`.
Results arrive in completion order and :func:`run_plan` hands them back in plan
order, so merged statistics do not depend on the cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from sopjax.errors import ConfigError
from sopjax.scaleout.plan import Chunk

__all__ = ["Executor", "InProcessExecutor", "make_executor", "run_plan", "DEFAULT_CONNECT_TIMEOUT_S"]

#: seconds to wait for a Dask scheduler before giving up with a ConfigError
DEFAULT_CONNECT_TIMEOUT_S = 10.0


class Executor(Protocol):
    """Runs ``task(job, chunk)`` for every chunk; yields ``(chunk, result)`` as results complete."""

    description: str
    n_workers: int

    def imap_unordered(self, task: Callable[[Any, Chunk], Any], job: Any,
                       chunks: Iterable[Chunk]) -> Iterator[tuple[Chunk, Any]]: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """Runs the chunks one after another in this process (imports no Dask)."""

    description = "in-process"
    n_workers = 1

    def imap_unordered(self, task, job, chunks):
        for c in chunks:
            yield c, task(job, c)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_executor(scheduler: Any = None, *, timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S) -> Executor:
    """The executor for a ``scheduler`` setting.

    Args:
        scheduler: ``None`` (in-process), ``"local:N"`` (a Dask ``LocalCluster`` of N
            single-threaded worker processes, closed with the executor), a scheduler
            address (``"tcp://host:8786"``, the ``--scheduler`` option), a
            ``distributed.Client`` (left open), or an executor (returned as is).
        timeout_s: how long to wait for the scheduler (seconds).

    Raises:
        ConfigError: unreachable scheduler, malformed ``local:N``, workers running another
            sopjax version, ``dask.distributed`` not installed.
    """
    if scheduler is None or scheduler == "":
        return InProcessExecutor()
    if hasattr(scheduler, "imap_unordered"):
        return scheduler
    from sopjax.scaleout.dask import DaskExecutor

    if isinstance(scheduler, str):
        if scheduler.startswith("local:") or scheduler == "local":
            return DaskExecutor.local(_local_workers(scheduler))
        _check_address(scheduler)
        return DaskExecutor.connect(scheduler, timeout_s=timeout_s)
    if hasattr(scheduler, "submit") and hasattr(scheduler, "scheduler_info"):
        return DaskExecutor(scheduler, owned=False)
    raise ConfigError(f"scheduler must be an address, 'local:N', a dask Client or None, got {scheduler!r}")


def _check_address(address: str) -> None:
    """Refuse a TCP/TLS scheduler address without a host and a port (checked before a Dask client
    exists: a client whose address fails to parse prints a traceback when it is collected)."""
    from urllib.parse import urlsplit

    text = address if "://" in address else "tcp://" + address
    scheme = text.partition("://")[0]
    if scheme not in ("tcp", "tls"):
        return
    try:
        parts = urlsplit(text)
        ok = bool(parts.hostname) and parts.port is not None
    except ValueError:  # a port that is not a number or out of range
        ok = False
    if not ok:
        raise ConfigError(f"scheduler {address!r}: write a scheduler address as tcp://HOST:PORT, or local:N")


def _local_workers(text: str) -> int:
    _, _, n = text.partition(":")
    try:
        k = int(n)
    except ValueError:
        k = 0
    if k < 1:
        raise ConfigError(f"scheduler {text!r}: write local:N with N >= 1 worker processes")
    return k


def run_plan(executor: Executor, task: Callable[[Any, Chunk], Any], job: Any, chunks: Iterable[Chunk], *,
             on_arrival: Callable[[Chunk, Any, bool], None] | None = None) -> Iterator[tuple[Chunk, Any]]:
    """``(chunk, result)`` for every chunk, in the order of ``chunks``, however they complete.

    Args:
        executor: where the chunks run.
        task, job: ``task(job, chunk)`` computes one chunk.
        chunks: the plan (in merge order).
        on_arrival: called as ``on_arrival(chunk, result, ahead)`` when a result arrives;
            ``ahead`` is True when it must wait for earlier chunks (e.g. to record it
            so that a restarted driver skips it).

    Out-of-order results wait in the driver until their turn; an executor bounds how
    many chunks are in flight, so this buffer is bounded too.
    """
    chunks = list(chunks)
    order = {c.index: k for k, c in enumerate(chunks)}
    pending: dict[int, tuple[Chunk, Any]] = {}
    nxt = 0
    for chunk, result in executor.imap_unordered(task, job, chunks):
        pos = order[chunk.index]
        if on_arrival is not None:
            on_arrival(chunk, result, pos != nxt)
        pending[pos] = (chunk, result)
        while nxt in pending:
            yield pending.pop(nxt)
            nxt += 1
    if nxt != len(chunks):  # an executor must deliver every chunk exactly once
        raise RuntimeError(f"executor {executor.description} delivered {nxt} of {len(chunks)} chunks")
