"""Done-markers of finished chunks that the driver has not merged yet (next to the checkpoint).

Chunks finish out of order on a cluster, but the state merges them in chunk order
(:func:`sopjax.scaleout.run_plan`). When a result arrives ahead of its turn the
driver writes it here (``<checkpoint>.chunks/<start>.npz``, atomically); once the
checkpoint covers it the file is removed. A driver killed in between loses nothing:
the rerun loads these results and skips their chunks, so no finished chunk is
computed twice. Each file records the run's fingerprint and is ignored otherwise.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["ChunkSpool"]


def _flatten(result: dict) -> dict[str, np.ndarray]:
    red = result["red"]
    out = {"n_valid": np.asarray(red["n_valid"]), "n_failed": np.asarray(red["n_failed"]),
           "ok": np.asarray(result["ok"])}
    for name, m in red["moments"].items():
        for k, v in enumerate(m):
            out[f"m/{name}/{k}"] = np.asarray(v)
    for name, v in red["hist"].items():
        out[f"h/{name}"] = np.asarray(v)
    for group, key in (("exact", "x"), ("samples", "s")):
        for name, v in (result.get(group) or {}).items():
            out[f"{key}/{name}"] = np.asarray(v)
    return out


def _unflatten(data: dict[str, np.ndarray]) -> dict:
    moments: dict[str, list] = {}
    for key in sorted(k for k in data if k.startswith("m/")):
        _, name, k = key.split("/")
        moments.setdefault(name, [None] * 5)[int(k)] = data[key]
    red = {"moments": {n: tuple(v) for n, v in moments.items()},
           "hist": {k[2:]: data[k] for k in data if k.startswith("h/")},
           "n_valid": data["n_valid"], "n_failed": data["n_failed"]}
    ex = {k[2:]: data[k] for k in data if k.startswith("x/")} or None
    smp = {k[2:]: data[k] for k in data if k.startswith("s/")} or None
    return {"red": red, "exact": ex, "ok": data["ok"], "samples": smp, "nominal": None}


class ChunkSpool:
    """Finished-chunk results of one run, stored in ``directory``.

    Args:
        directory: where the files go (created on the first write).
        fingerprint: the run's fingerprint; files of another run are ignored.
    """

    def __init__(self, directory: str | Path, fingerprint: str):
        self.dir = Path(directory)
        self.fingerprint = fingerprint

    def _path(self, start: int) -> Path:
        return self.dir / f"{start}.npz"

    def put(self, start: int, stop: int, result: dict) -> None:
        """Record the result of samples ``[start, stop)`` (atomic write)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        data = _flatten(result) | {"_fingerprint": np.asarray(self.fingerprint), "_stop": np.asarray(stop)}
        fd, tmp = tempfile.mkstemp(prefix=f"{start}.", suffix=".tmp", dir=self.dir)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **data)
            os.replace(tmp, self._path(start))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self) -> dict[tuple[int, int], dict]:
        """``{(start, stop): result}`` of this run's recorded chunks (unreadable files are skipped)."""
        out = {}
        if not self.dir.is_dir():
            return out
        for p in self.dir.glob("*.npz"):
            try:
                with np.load(p, allow_pickle=False) as z:
                    data = {k: z[k] for k in z.files}
                if str(data.pop("_fingerprint")) != self.fingerprint:
                    continue
                out[(int(p.stem), int(data.pop("_stop")))] = _unflatten(data)
            except Exception:  # noqa: BLE001 - a torn or foreign file: recompute that chunk
                continue
        return out

    def drop(self, start: int) -> None:
        self._path(start).unlink(missing_ok=True)

    def clear(self) -> None:
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                p.unlink(missing_ok=True)
            self.dir.rmdir()
