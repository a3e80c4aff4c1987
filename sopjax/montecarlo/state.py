"""The merged state of a Monte Carlo run, and its atomic checkpoint file.

The state holds only reductions (moments, histograms, counts) plus, when they
fit (``exact``), the per-sample scalar values behind exact quantiles. After
every chunk the runner merges the chunk's reductions into the state and, if a
checkpoint path is given, rewrites the checkpoint atomically (write a
temporary file, then ``os.replace``), so a run killed at any moment leaves the
last completed chunk on disk. A checkpoint records a fingerprint of everything
that determines the results except the chunk size; resuming with a different
configuration is refused.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from sopjax.errors import SopjaxError
from sopjax.kernels.scoring import EXACT_FIELDS
from sopjax.metrics import Moments

__all__ = ["RunState", "CheckpointError"]

CHECKPOINT_VERSION = 1


class CheckpointError(SopjaxError):
    """A checkpoint cannot be used (other configuration, corrupt file)."""


class RunState:
    """Merged reductions of the chunks done so far.

    Attributes:
        done: samples completed (chunks always cover ``[0, done)``).
        moments: field -> :class:`~sopjax.metrics.Moments` with leading strategy axis.
        hist: field -> int64 counts.
        n_valid, n_failed: per-strategy counts of converged / failed samples.
        exact: field -> (strategy, n_samples) values, or ``None`` (sketch mode).
        exact_valid: (strategy, n_samples) validity mask (exact mode).
        samples: optional per-sample arrays (``keep_samples``).
    """

    def __init__(self, n_strategies: int, n_samples: int, *, exact: bool, sample_shapes: dict | None = None):
        self.n_strategies = n_strategies
        self.n_samples = n_samples
        self.done = 0
        self.moments: dict[str, Moments] = {}
        self.hist: dict[str, np.ndarray] = {}
        self.n_valid = np.zeros(n_strategies, np.int64)
        self.n_failed = np.zeros(n_strategies, np.int64)
        self.exact = (
            {k: np.zeros((n_strategies, n_samples)) for k in EXACT_FIELDS} if exact else None
        )
        self.exact_valid = np.zeros((n_strategies, n_samples), bool) if exact else None
        self.samples = (
            {k: np.zeros((n_strategies, n_samples, *shape), dtype) for k, (shape, dtype) in sample_shapes.items()}
            if sample_shapes
            else None
        )

    # ------------------------------------------------------------------ merge
    def merge_chunk(self, red: dict, start: int, n: int, exact_vals: dict | None, valid: np.ndarray | None,
                    samples: dict | None) -> None:
        """Merge one chunk's reductions (numpy) covering samples ``[start, start + n)``."""
        if start != self.done:
            raise SopjaxError(f"chunk starts at sample {start}, the state holds {self.done}")
        for name, m in red["moments"].items():
            chunk = Moments(*(np.asarray(v, float) for v in m))
            self.moments[name] = self.moments[name].merge(chunk) if name in self.moments else _fresh(chunk)
        for name, c in red["hist"].items():
            c = np.asarray(c, np.int64)
            self.hist[name] = self.hist[name] + c if name in self.hist else c.copy()
        self.n_valid += np.asarray(red["n_valid"], np.int64)
        self.n_failed += np.asarray(red["n_failed"], np.int64)
        if self.exact is not None:
            for k in EXACT_FIELDS:
                self.exact[k][:, start:start + n] = np.asarray(exact_vals[k])[:, :n]
            self.exact_valid[:, start:start + n] = np.asarray(valid)[:, :n]
        if self.samples is not None:
            for k, v in samples.items():
                self.samples[k][:, start:start + n] = np.asarray(v)[:, :n]
        self.done = start + n

    # ------------------------------------------------------------- checkpoint
    def save(self, path: str | Path, fingerprint: str) -> None:
        """Write the state atomically to ``path`` (an ``.npz`` file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, np.ndarray] = {
            "_version": np.asarray(CHECKPOINT_VERSION),
            "_fingerprint": np.asarray(fingerprint),
            "_done": np.asarray(self.done),
            "_shape": np.asarray([self.n_strategies, self.n_samples]),
            "n_valid": self.n_valid,
            "n_failed": self.n_failed,
        }
        for name, m in self.moments.items():
            data.update(m.as_dict(f"m.{name}"))
        for name, c in self.hist.items():
            data[f"h.{name}"] = c
        if self.exact is not None:
            for k, v in self.exact.items():
                data[f"x.{k}"] = v[:, : self.done]
            data["x_valid"] = self.exact_valid[:, : self.done]
        if self.samples is not None:
            for k, v in self.samples.items():
                data[f"s.{k}"] = v[:, : self.done]
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def load(self, path: str | Path, fingerprint: str) -> None:
        """Restore from a checkpoint written by :meth:`save` for the same fingerprint.

        Raises:
            CheckpointError: if the file is unreadable or belongs to another configuration.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except Exception as e:  # noqa: BLE001 - any read failure means the file is unusable
            raise CheckpointError(f"checkpoint {path} cannot be read ({e}); delete it to start afresh") from None
        if int(data.get("_version", -1)) != CHECKPOINT_VERSION:
            raise CheckpointError(f"checkpoint {path} has an unknown format version; delete it to start afresh")
        if str(data["_fingerprint"]) != fingerprint:
            raise CheckpointError(
                f"checkpoint {path} was written by a different configuration (network, strategies, "
                "uncertainty, seed, sample count or scoring options differ); delete it or use another output"
            )
        if tuple(data["_shape"]) != (self.n_strategies, self.n_samples):
            raise CheckpointError(f"checkpoint {path} has shape {tuple(data['_shape'])}, expected "
                                  f"{(self.n_strategies, self.n_samples)}")
        done = int(data["_done"])
        self.done = done
        self.n_valid = data["n_valid"].astype(np.int64)
        self.n_failed = data["n_failed"].astype(np.int64)
        names = {k.split(".")[1] for k in data if k.startswith("m.")}
        self.moments = {n: Moments.from_dict(data, f"m.{n}") for n in names}
        self.hist = {k[2:]: data[k].astype(np.int64) for k in data if k.startswith("h.")}
        if self.exact is not None:
            for k in self.exact:
                self.exact[k][:, :done] = data[f"x.{k}"]
            self.exact_valid[:, :done] = data["x_valid"]
        if self.samples is not None:
            for k in self.samples:
                self.samples[k][:, :done] = data[f"s.{k}"]


def _fresh(m: Moments) -> Moments:
    return Moments(m.count.copy(), m.mean.copy(), m.m2.copy(), m.min.copy(), m.max.copy())
