"""The one output rule of every subcommand that writes a file (``--out``), checked before any work.

* The suffix must be one the subcommand writes (``.nc``; ``.zarr`` for ``sopjax montecarlo``).
* An existing output is refused unless ``--overwrite`` is given; even then a directory that is not
  a zarr store (e.g. ``results/``) is never replaced, and a ``.nc`` path may not be a directory.
* A missing parent directory is refused unless ``--parents`` is given (then it is created, as
  ``mkdir -p`` does); a parent that is a file or not writable is refused.
* While a run writes ``OUT``, it holds the lock file ``OUT.lock`` (its pid and host inside): a
  second run given the same ``--out`` (hence the same checkpoint ``OUT.ckpt.npz``) is refused
  instead of overwriting the first one's results. A lock left by a process that no longer
  exists on this host is taken over; one from another host must be deleted by hand.

Every refusal is a :class:`~sopjax.errors.SopjaxError` (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path

from sopjax.errors import SopjaxError

__all__ = ["add_output_options", "check_output", "output_lock", "is_zarr_store"]


def add_output_options(p: argparse.ArgumentParser) -> None:
    """Add ``--overwrite`` and ``--parents`` (the output rule above) to a subcommand with ``--out``."""
    p.add_argument("--overwrite", action="store_true", help="with --out: replace an existing output")
    p.add_argument("--parents", action="store_true",
                   help="with --out: create missing parent directories (otherwise refused)")


def is_zarr_store(path: Path) -> bool:
    """Whether the directory ``path`` holds a zarr store (v2 ``.zgroup`` or v3 ``zarr.json``)."""
    return (path / ".zgroup").is_file() or (path / "zarr.json").is_file()


def check_output(path: str | os.PathLike, *, overwrite: bool, parents: bool,
                 suffixes: Sequence[str] = (".nc",), what: str = "--out") -> Path:
    """Apply the output rule to ``path`` before any work starts.

    Args:
        path: the ``--out`` value.
        overwrite: ``--overwrite`` was given.
        parents: ``--parents`` was given (missing parent directories are created here).
        suffixes: the allowed suffixes (lower case).
        what: how the path is named in messages (``--out``, ``[output] checkpoint``).

    Returns:
        The path.

    Raises:
        SopjaxError: the rule is broken (the reason and the path named).
    """
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise SopjaxError(f"{what} {path}: the name must end in {' or '.join(suffixes)}")
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise SopjaxError(f"{what} {path} exists; give --overwrite to replace it")
        if path.is_dir() and not (path.suffix.lower() == ".zarr" and is_zarr_store(path)):
            raise SopjaxError(f"{what} {path} is a directory that is not a zarr store; refusing to replace it")
    parent = path.parent
    if not parent.exists():
        if not parents:
            raise SopjaxError(f"{what} {path}: directory {parent} does not exist; give --parents to create it")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SopjaxError(f"{what} {path}: cannot create {parent}: {e.strerror}") from None
    if not parent.is_dir():
        raise SopjaxError(f"{what} {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise SopjaxError(f"{what} {path}: directory {parent} is not writable")
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def output_lock(path: str | os.PathLike | None, *, what: str = "--out") -> Iterator[Path | None]:
    """Hold ``<path>.lock`` while a run writes ``path`` (and its checkpoint); no-op when ``path`` is None.

    ``what`` names the path in messages (``--out``, ``[output] checkpoint``).

    Raises:
        SopjaxError: another live run holds the lock (its pid and host named).
    """
    if path is None:
        yield None
        return
    lock = Path(str(path) + ".lock")
    host = socket.gethostname()
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _read_owner(lock)
            if owner is not None and owner[1] == host and not _alive(owner[0]):
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()  # stale: its process is gone
                continue
            who = f"pid {owner[0]} on {owner[1]}" if owner else "an unknown process"
            raise SopjaxError(f"{what} {path} is being written by another run ({who}; lock file {lock}); "
                              "wait for it, or delete the lock file if no run is active") from None
        except OSError as e:  # a missing or unwritable directory
            raise SopjaxError(f"{what} {path}: cannot create the lock file {lock}: {e.strerror}") from None
        with os.fdopen(fd, "w") as fh:
            fh.write(f"{os.getpid()} {host}\n")
        break
    else:
        raise SopjaxError(f"{what} {path}: cannot take the lock file {lock}")
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


def _read_owner(lock: Path) -> tuple[int, str] | None:
    try:
        pid, host = lock.read_text().split()[:2]
        return int(pid), host
    except (OSError, ValueError):
        return None
