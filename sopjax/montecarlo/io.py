"""netCDF and zarr writers for Monte Carlo datasets (and a reader for netCDF)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from sopjax.errors import SopjaxError

__all__ = ["write_dataset", "read_dataset"]


def _portable(ds: xr.Dataset) -> xr.Dataset:
    """Booleans as int8 (netCDF has no bool type); string coordinates as str."""
    out = ds.copy()
    for name, var in list(out.variables.items()):
        if var.dtype == bool:
            out[name] = var.astype(np.int8)
    if "strategy" in out.coords:
        out = out.assign_coords(strategy=out["strategy"].astype(str))
    if "vsc" in out.coords:
        out = out.assign_coords(vsc=out["vsc"].astype(str))
    return out


def write_dataset(ds: xr.Dataset, path: str | Path, *, checkpoint: str | Path | None = None) -> Path:
    """Write ``ds`` to ``.nc`` (netCDF4) or ``.zarr``; the format follows the suffix.

    netCDF files are written to a temporary name and moved into place, so an
    existing file is never left half-written. When ``checkpoint`` is given it is
    deleted after the write succeeded.

    Raises:
        SopjaxError: unknown suffix, or a ``.zarr`` path that exists and is not a zarr store.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".nc", ".zarr"):
        raise SopjaxError(f"output {path} must end in .nc (netCDF) or .zarr")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = _portable(ds)
    if suffix == ".nc":
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            ds.to_netcdf(tmp, engine="netcdf4")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    else:
        if path.exists() and not ((path / ".zgroup").is_file() or (path / "zarr.json").is_file()):
            # mode="w" empties the directory: never do that to one that is not a zarr store
            raise SopjaxError(f"output {path} exists and is not a zarr store; refusing to replace it")
        ds.to_zarr(path, mode="w")
    if checkpoint is not None and Path(checkpoint).exists():
        Path(checkpoint).unlink()
    return path


def read_dataset(path: str | Path) -> xr.Dataset:
    """Open a dataset written by :func:`write_dataset` (loaded into memory)."""
    path = Path(path)
    if path.suffix.lower() == ".zarr":
        return xr.open_zarr(path).load()
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()
