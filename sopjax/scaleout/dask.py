"""The Dask executor: chunks as ``dask.distributed`` tasks, retried on other workers when one dies.

Imported only when a scheduler is given (``--scheduler ADDRESS`` or ``local:N``), so the
in-process default never imports Dask. What it guarantees:

* **One job per worker, compiled once.** The job is one task of the graph (recomputed by
  the scheduler if the worker holding it dies); each worker fetches it once and keeps
  what it builds from it (:mod:`sopjax.scaleout.cache`).
* **No chunk lost or doubled.** A chunk is a task with a unique key; the scheduler reruns
  the tasks of a dead worker elsewhere, and a task raising an unexpected error is retried
  ``retries`` times. The driver takes exactly one result per chunk.
* **Bounded driver memory.** At most ``window`` chunks are in flight; finished results
  are released as soon as they are handed over.
* **Clear errors.** An unreachable scheduler, a worker with another sopjax version, or a
  chunk that keeps killing its workers is a :class:`~sopjax.errors.ConfigError` /
  :class:`~sopjax.errors.SopjaxError` with one line of explanation.
"""

from __future__ import annotations

import logging
import uuid

from sopjax.errors import ConfigError, SopjaxError

__all__ = ["DaskExecutor", "worker_versions"]


def _sopjax_version() -> str:
    import sys

    # the package root is imported before any of its submodules (this one included); read its
    # version from there instead of importing the root, which would import every layer
    return sys.modules["sopjax"].__version__


def worker_versions() -> dict[str, str]:
    """Versions that must match between the driver and every worker (runs on a worker)."""
    import sys

    import jax

    return {"sopjax": _sopjax_version(), "jax": jax.__version__,
            "python": ".".join(map(str, sys.version_info[:2]))}


class _TaskError:
    """A user-facing error raised by a task: returned, not raised, so Dask does not retry it."""

    def __init__(self, error: Exception):
        self.error = error


def _materialize(job):
    return job


def _call(task, job, chunk, version: str):
    if _sopjax_version() != version:
        return _TaskError(ConfigError(f"Dask worker runs sopjax {_sopjax_version()}, the driver {version}; "
                                      "install the same version on every worker"))
    try:
        return task(job, chunk)
    except SopjaxError as e:
        return _TaskError(e)


class DaskExecutor:
    """Runs a chunk plan on a ``dask.distributed`` cluster.

    Args:
        client: a connected ``distributed.Client``.
        owned: close the client (and ``cluster``) in :meth:`close`.
        cluster: the ``LocalCluster`` behind ``local:N`` (closed with the executor).
        retries: reruns of a chunk whose task raised an unexpected error (a dead worker's
            chunks are rerun by the scheduler without counting against this).
        window: chunks in flight at once (default: 3 per worker, at least 4).

    Raises:
        ConfigError: no worker, or a worker whose sopjax / jax / Python version differs
            from the driver's.
    """

    def __init__(self, client, *, owned: bool = True, cluster=None, retries: int = 3,
                 window: int | None = None):
        self.client = client
        self.cluster = cluster
        self.owned = owned
        self.retries = int(retries)
        try:
            self._check_versions()
        except BaseException:
            self.close()
            raise
        self.n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
        self.window = int(window) if window else max(4, 3 * self.n_workers)
        self.description = f"dask ({self.n_workers} workers at {client.scheduler.address})"

    # ---------------------------------------------------------------- construction
    @classmethod
    def connect(cls, address: str, *, timeout_s: float = 10.0, **kw) -> "DaskExecutor":
        """Connect to a running scheduler; :class:`ConfigError` if it does not answer within ``timeout_s``."""
        client_cls = _client_class()
        try:
            client = client_cls(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ConfigError(f"cannot reach the Dask scheduler at {address!r} within {timeout_s:g} s "
                              f"({reason[:160]}); check --scheduler and that the scheduler runs") from None
        try:
            client.wait_for_workers(1, timeout=timeout_s)
        except (OSError, TimeoutError):
            client.close()
            raise ConfigError(f"the Dask scheduler at {address!r} has no worker after {timeout_s:g} s; "
                              "start workers with `dask worker ADDRESS`") from None
        return cls(client, **kw)

    @classmethod
    def local(cls, n_workers: int, **kw) -> "DaskExecutor":
        """A ``LocalCluster`` of ``n_workers`` single-threaded worker processes on this machine."""
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = _client_class()(cluster, set_as_default=False)
        return cls(client, cluster=cluster, **kw)

    def _check_versions(self) -> None:
        mine = worker_versions()
        theirs = self.client.run(worker_versions)
        if not theirs:
            raise ConfigError("the Dask cluster has no worker")
        for addr, v in sorted(theirs.items()):
            for name in ("sopjax", "jax", "python"):
                if v.get(name) != mine[name]:
                    raise ConfigError(f"Dask worker {addr} runs {name} {v.get(name)}, "
                                      f"the driver {mine[name]}; "
                                      "install the same versions on every worker")

    # ------------------------------------------------------------------- running
    def imap_unordered(self, task, job, chunks):
        """Submit the chunks (at most ``window`` in flight); yield ``(chunk, result)`` as they finish."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        run_id = uuid.uuid4().hex[:8]
        version = _sopjax_version()
        job_f = self.client.submit(_materialize, job, key=f"sopjax-job-{run_id}", pure=False)
        todo = iter(chunks)
        live: dict[str, tuple] = {}  # key -> (chunk, future)
        ac = as_completed(loop=self.client.loop)

        def submit_next() -> bool:
            c = next(todo, None)
            if c is None:
                return False
            f = self.client.submit(_call, task, job_f, c, version, key=f"sopjax-chunk-{run_id}-{c.index}",
                                   retries=self.retries, pure=False)
            live[f.key] = (c, f)
            ac.add(f)
            return True

        for _ in range(self.window):
            if not submit_next():
                break
        try:
            for f in ac:
                c, _ = live.pop(f.key)
                try:
                    result = f.result()
                except KilledWorker:
                    raise SopjaxError(f"chunk {c.index} (items {c.start}..{c.stop - 1}) killed every worker "
                                      "that ran it (out of memory?); use a smaller chunk size") from None
                f.release()
                if isinstance(result, _TaskError):
                    raise result.error
                yield c, result
                submit_next()
        finally:
            if live and self.client.status == "running":  # stopped early (an error, the caller broke off)
                self.client.cancel([f for _, f in live.values()])
            job_f.release()

    def close(self) -> None:
        if not self.owned:
            return
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _client_class():
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("--scheduler needs dask.distributed: pip install 'sopjax[dask]'") from None
    return Client
