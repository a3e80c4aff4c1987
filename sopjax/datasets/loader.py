"""Reading a dataset for training: split selection, numpy arrays, a shuffling JAX batch iterator.

Only ``done`` samples are read. The iterator shuffles with ``numpy.random.default_rng([seed,
epoch])``, so the same seed gives the same batches in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import xarray as xr

from sopjax.datasets.spec import SPLITS, DatasetError
from sopjax.datasets.store import open_store

__all__ = ["batches", "load_split", "split_mask"]


def split_mask(ds: xr.Dataset, split: str | Sequence[str]) -> np.ndarray:
    """Samples of ``ds`` that are written (``done``) and in ``split`` (a name or several)."""
    names = [split] if isinstance(split, str) else list(split)
    bad = [s for s in names if s not in SPLITS]
    if bad:
        raise DatasetError(f"unknown split {bad[0]!r}; choose from {list(SPLITS)}")
    codes = [SPLITS.index(s) for s in names]
    return np.asarray(ds["done"].values, bool) & np.isin(np.asarray(ds["split"].values), codes)


def load_split(
    source: str | Path | xr.Dataset,
    split: str | Sequence[str],
    *,
    variables: Sequence[str] | None = None,
    where: np.ndarray | None = None,
) -> xr.Dataset:
    """The samples of ``split`` (loaded into memory), with the static arrays.

    Args:
        source: a store path or an opened dataset.
        split: split name(s), see :data:`~sopjax.datasets.spec.SPLITS`.
        variables: per-sample variables to keep (default all).
        where: an extra boolean mask over all samples (e.g. unfaulted ones).

    Raises:
        DatasetError: an unknown split or variable, or no sample in the selection.
    """
    ds = open_store(source) if not isinstance(source, xr.Dataset) else source
    mask = split_mask(ds, split)
    if where is not None:
        mask &= np.asarray(where, bool)
    if not mask.any():
        raise DatasetError(
            f"the dataset has no written sample in split {split!r}"
            + (" matching the filter" if where is not None else "")
        )
    if variables is not None:
        missing = [v for v in variables if v not in ds]
        if missing:
            raise DatasetError(f"the dataset has no variable {missing[0]!r}")
        static = [v for v in ds.data_vars if "sample" not in ds[v].dims]
        ds = ds[list(dict.fromkeys([*variables, *static]))]
    return ds.isel(sample=np.flatnonzero(mask)).load()


def batches(
    arrays: dict[str, np.ndarray],
    batch_size: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
) -> Iterator[dict[str, jnp.ndarray]]:
    """Batches of ``arrays`` (equal leading sample axis) as dicts of JAX arrays.

    Args:
        arrays: name -> array with the sample axis first.
        batch_size: samples per batch (>= 1).
        seed, epoch: the shuffle is ``default_rng([seed, epoch]).permutation``.
        shuffle: shuffle the samples.
        drop_last: drop the last incomplete batch (one compiled shape for training).
    """
    if batch_size < 1:
        raise DatasetError(f"batch_size must be >= 1, got {batch_size}")
    sizes = {k: np.shape(v)[0] for k, v in arrays.items()}
    n = next(iter(sizes.values()), 0)
    if any(s != n for s in sizes.values()):
        raise DatasetError(f"arrays have different sample counts: {sizes}")
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for a in range(0, stop, batch_size):
        idx = order[a : a + batch_size]
        yield {k: jnp.asarray(v[idx]) for k, v in arrays.items()}
