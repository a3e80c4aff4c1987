"""A fixed plan of chunks over ``n`` work items (samples, grid points, dataset rows).

Chunk ``k`` covers items ``[start + k * size, min(start + (k + 1) * size, n))``: every
chunk but the last has the same size, so a worker compiles one program for all of
them (the caller pads the last). The plan depends only on ``(n, size, start)``;
a chunk's results must depend only on its items (e.g. samples seeded by their
global index, or by ``fold_in(key, chunk)``), never on which worker ran it.
"""

from __future__ import annotations

import dataclasses

from sopjax.errors import SopjaxError

__all__ = ["Chunk", "chunk_plan", "check_chunk_size"]


@dataclasses.dataclass(frozen=True)
class Chunk:
    """One work unit of a plan.

    Attributes:
        index: position in the plan (0-based); results are merged in this order.
        start: first item.
        stop: one past the last item (``stop - start`` items; 0 only for the
            empty chunk a finished run uses to recompute what is not checkpointed).
    """

    index: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def check_chunk_size(size, what: str = "chunk size") -> int:
    """``size`` as an int >= 1, else :class:`SopjaxError` naming ``what``."""
    try:
        value = int(size)
    except (TypeError, ValueError):
        raise SopjaxError(f"{what} must be an integer >= 1, got {size!r}") from None
    if value != size or value < 1:
        raise SopjaxError(f"{what} must be an integer >= 1, got {size!r}")
    return value


def chunk_plan(n: int, size: int, *, start: int = 0) -> list[Chunk]:
    """The chunks covering items ``[start, n)`` in pieces of ``size``.

    Args:
        n: number of items.
        size: items per chunk (>= 1).
        start: first item not yet done (a resumed run).

    Raises:
        SopjaxError: ``size < 1`` or ``start`` outside ``[0, n]``.
    """
    size = check_chunk_size(size)
    if not 0 <= start <= n:
        raise SopjaxError(f"plan start {start} outside [0, {n}]")
    return [Chunk(k, a, min(a + size, n)) for k, a in enumerate(range(start, n, size))]
