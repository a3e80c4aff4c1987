"""Checkpoints: the weights (``equinox.tree_serialise_leaves``) plus a JSON header.

``save(path, kind, model, config, norm)`` writes ``path.eqx`` and ``path.json``; ``load``
rebuilds the model skeleton from the header and reads the weights into it. A header of
another kind (asking for a ``gnn``, finding an ``mlp``), or weights that do not fit the
skeleton, raise :class:`~sopjax.surrogates.errors.SurrogateError` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import equinox as eqx

from sopjax.surrogates.errors import SurrogateError

__all__ = ["files", "load", "save"]

FORMAT = "sopjax-surrogate-1"


def files(path) -> tuple[Path, Path]:
    """The ``(weights .eqx, header .json)`` files of the checkpoint ``path`` (with or without a suffix)."""
    p = Path(path)
    base = p.with_suffix("") if p.suffix in (".eqx", ".json") else p
    return base.with_name(base.name + ".eqx"), base.with_name(base.name + ".json")


def save(path, kind: str, model: eqx.Module, config: dict, extra: dict | None = None) -> Path:
    """Write ``model`` (of ``kind``, built from ``config``) and ``extra`` (e.g. normalizer, history).

    Returns:
        the ``.eqx`` path.
    """
    w, h = files(path)
    w.parent.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(w, model)
    h.write_text(
        json.dumps(
            {"format": FORMAT, "kind": kind, "config": config, **(extra or {})}, indent=1, default=float
        )
    )
    return w


def load(path, skeleton_fn, *, kind: str | None = None) -> tuple[eqx.Module, dict]:
    """Read a checkpoint.

    Args:
        path: the path given to :func:`save` (with or without ``.eqx``).
        skeleton_fn: ``skeleton_fn(kind, config) -> model`` building an untrained model of that shape.
        kind: the expected kind (None: any).

    Returns:
        ``(model, header)``.

    Raises:
        SurrogateError: missing files, another format or kind, weights that do not fit.
    """
    w, h = files(path)
    if not w.exists() or not h.exists():
        raise SurrogateError(f"no checkpoint at {w} (+ {h.name})")
    try:
        head = json.loads(h.read_text())
    except json.JSONDecodeError as e:
        raise SurrogateError(f"{h} is not a checkpoint header: {e}") from None
    if head.get("format") != FORMAT:
        raise SurrogateError(f"{h} is not a sopjax surrogate checkpoint (format {head.get('format')!r})")
    if kind is not None and head["kind"] != kind:
        raise SurrogateError(f"checkpoint {w} holds a {head['kind']!r} model, expected {kind!r}")
    skel = skeleton_fn(head["kind"], head["config"])
    try:
        model = eqx.tree_deserialise_leaves(w, skel)
    except Exception as e:  # noqa: BLE001 - equinox raises several types on a shape or structure mismatch
        raise SurrogateError(
            f"checkpoint {w} does not fit a {head['kind']!r} model with config "
            f"{head['config']}: {type(e).__name__}: {e}"
        ) from None
    return model, head
