"""The driver loop of a chunked Monte Carlo run: results merged in chunk order, checkpointed, spooled.

:func:`merge_plan` is shared by :func:`~sopjax.montecarlo.run_montecarlo` and
:func:`~sopjax.montecarlo.run_timeseries`: it runs the chunks of ``[state.done, n)``
through an executor (:mod:`sopjax.scaleout`: this process or Dask workers), merges each
result into the :class:`~sopjax.montecarlo.state.RunState` in chunk order (so the
aggregates do not depend on where or in which order chunks ran), checkpoints after every
merged chunk, and keeps chunks that finished ahead of their turn in the spool
(:mod:`sopjax.montecarlo.spool`) so that a killed driver's rerun skips them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sopjax.montecarlo.spool import ChunkSpool
from sopjax.montecarlo.state import RunState
from sopjax.scaleout import Chunk, chunk_plan, run_plan

__all__ = ["merge_plan"]


def merge_plan(
    executor,
    task: Callable[[Any, Chunk], dict],
    job: Any,
    state: RunState,
    *,
    chunk: int,
    fingerprint: str,
    checkpoint: str | Path | None = None,
    bar=None,
    on_chunk: Callable[[int, int], None] | None = None,
    on_result: Callable[[dict], None] | None = None,
) -> None:
    """Run and merge the chunks of samples ``[state.done, state.n_samples)``.

    Args:
        executor: where the chunks run (:func:`sopjax.scaleout.make_executor`).
        task, job: ``task(job, chunk)`` returns ``{"red", "exact", "ok", "samples", ...}``
            (numpy; see :meth:`RunState.merge_chunk`); ``chunk.size == 0`` scores the
            forecast alone (run when every chunk is merged or spooled already).
        state: the run state (loaded from the checkpoint when resuming); merged in place.
        chunk: samples per chunk.
        fingerprint: the run's fingerprint (checkpoint and spool files of other runs are refused / ignored).
        checkpoint: ``.npz`` path rewritten after every merged chunk; ``<checkpoint>.chunks/``
            holds chunks that finished ahead of their turn until the checkpoint covers them.
        bar: a progress bar (``update(samples)``) or None.
        on_chunk: called as ``on_chunk(chunk_index, samples_done)`` after each merged chunk.
        on_result: called with every computed result (not the spooled ones), in chunk order,
            e.g. to keep the forecast scores.
    """
    n = state.n_samples
    ckpt = Path(checkpoint) if checkpoint is not None else None
    spool = ChunkSpool(str(ckpt) + ".chunks", fingerprint) if ckpt is not None else None
    spooled = spool.load() if spool is not None else {}
    plan = chunk_plan(n, chunk, start=state.done)
    todo = [c for c in plan if (c.start, c.stop) not in spooled]
    if not todo:  # everything merged or spooled: score the forecast alone
        todo = [Chunk(len(plan), n, n)]

    def keep_ahead(c: Chunk, result: dict, ahead: bool) -> None:
        if ahead and spool is not None and c.size:
            spool.put(c.start, c.stop, result)

    computed = run_plan(executor, task, job, todo, on_arrival=keep_ahead)
    for c in plan:
        result = spooled.get((c.start, c.stop))
        if result is None:
            got, result = next(computed)
            if got != c:
                raise RuntimeError(f"chunk {got} arrived in place of {c}")
            if on_result is not None:
                on_result(result)
        state.merge_chunk(result["red"], c.start, c.size, result["exact"], result["ok"], result["samples"])
        if ckpt is not None:
            state.save(ckpt, fingerprint)
            spool.drop(c.start)
        if bar is not None:
            bar.update(c.size)
        if on_chunk is not None:
            on_chunk(c.start // chunk, state.done)
    for _, result in computed:  # the forecast-only chunk, if one was needed
        if on_result is not None:
            on_result(result)
    if spool is not None:
        spool.clear()
