"""The output rule of every subcommand with ``--out`` (sopjax.cli.outputs), checked before any work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sopjax.cli.main import main
from sopjax.cli.outputs import check_output, output_lock
from sopjax.errors import SopjaxError

ROOT = Path(__file__).resolve().parents[1]
#: subcommand -> a config it accepts; the config is never read when --out is refused (checked first)
COMMANDS = {"montecarlo": "configs/ieee33_restoration_mc.toml", "sweep": "configs/sop_capacity_sweep.toml",
            "plan": "configs/ieee33_planning.toml"}


def _err(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_existing_output_refused_before_any_work(command, tmp_path, capsys):
    out = tmp_path / "r.nc"
    out.write_text("keep me")
    # a missing config proves the refusal comes first: nothing was read or run
    err = _err([command, str(tmp_path / "missing.toml"), "--out", str(out)], capsys)
    assert "exists; give --overwrite" in err and out.read_text() == "keep me"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_missing_parent_refused_unless_parents(command, tmp_path, capsys):
    out = tmp_path / "new" / "dir" / "r.nc"
    err = _err([command, str(tmp_path / "missing.toml"), "--out", str(out)], capsys)
    assert "does not exist; give --parents" in err and not out.parent.exists()
    # with --parents the directory is made, then the (missing) config is the error
    err = _err([command, str(tmp_path / "missing.toml"), "--out", str(out), "--parents"], capsys)
    assert "missing.toml" in err and out.parent.is_dir()


def test_suffix_and_directories(tmp_path):
    with pytest.raises(SopjaxError, match="must end in .nc"):
        check_output(tmp_path / "r.txt", overwrite=False, parents=False)
    (tmp_path / "plain.nc").mkdir()
    with pytest.raises(SopjaxError, match="not a zarr store"):
        check_output(tmp_path / "plain.nc", overwrite=True, parents=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SopjaxError, match="is not a directory"):
        check_output(blocker / "r.nc", overwrite=False, parents=False)


def test_zarr_directory_with_other_contents_is_never_emptied(tmp_path, capsys):
    """Issue 19: --out onto an existing .zarr directory used to delete its other contents."""
    from sopjax.montecarlo.io import write_dataset
    import xarray as xr

    store = tmp_path / "mine.zarr"
    store.mkdir()
    (store / "notes.txt").write_text("precious")
    err = _err(["montecarlo", str(tmp_path / "missing.toml"), "--out", str(store), "--overwrite"], capsys)
    assert "not a zarr store" in err
    with pytest.raises(SopjaxError, match="not a zarr store"):  # the library refuses too
        write_dataset(xr.Dataset({"x": ("a", [1.0])}), store)
    assert (store / "notes.txt").read_text() == "precious"
    # a real zarr store may be replaced with --overwrite
    real = tmp_path / "real.zarr"
    write_dataset(xr.Dataset({"x": ("a", [1.0])}), real)
    assert check_output(real, overwrite=True, parents=False, suffixes=(".zarr",)) == real
    with pytest.raises(SopjaxError, match="exists; give --overwrite"):
        check_output(real, overwrite=False, parents=False, suffixes=(".zarr",))


def test_second_run_on_the_same_out_is_refused(tmp_path, capsys):
    """Two runs with the same --out (hence the same checkpoint): the second is refused, the first's
    lock and results untouched; a lock left by a dead process is taken over."""
    out = tmp_path / "r.nc"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from sopjax.cli.outputs import output_lock\n"
         "with output_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = _err(["montecarlo", str(ROOT / COMMANDS["montecarlo"]), "--out", str(out), "--samples", "4"], capsys)
        assert f"pid {holder.pid}" in err and "being written by another run" in err
        assert Path(str(out) + ".lock").exists() and not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock is stale and is taken over
    assert Path(str(out) + ".lock").exists()
    with output_lock(out) as lock:
        assert lock.read_text().split()[0] == str(os.getpid())
    assert not lock.exists()


def test_lock_refuses_in_process(tmp_path):
    with output_lock(tmp_path / "a.nc"):
        with pytest.raises(SopjaxError, match="being written by another run"):
            with output_lock(tmp_path / "a.nc"):
                pass
    with output_lock(tmp_path / "a.nc"):  # released
        pass


# --- allocate, dataset, train (merged after the rule; the same rule through the same module) ----


def _train_config(tmp_path, checkpoint) -> str:
    cfg = tmp_path / "train.toml"
    cfg.write_text(f'[data]\ndataset = "{tmp_path / "missing.zarr"}"\n[model]\nkind = "mlp"\n'
                   f'[output]\ncheckpoint = "{checkpoint}"\n')
    return str(cfg)


def test_allocate_output_rule(tmp_path, capsys):
    out = tmp_path / "front.nc"
    out.write_text("keep me")
    missing = str(tmp_path / "missing.toml")
    assert "exists; give --overwrite" in _err(["allocate", missing, "--out", str(out)], capsys)
    assert out.read_text() == "keep me"
    deep = tmp_path / "new" / "front.nc"
    assert "does not exist; give --parents" in _err(["allocate", missing, "--out", str(deep)], capsys)
    assert "missing.toml" in _err(["allocate", missing, "--out", str(deep), "--parents"], capsys)
    with output_lock(tmp_path / "f2.nc"):
        assert "being written by another run" in _err(["allocate", missing, "--out", str(tmp_path / "f2.nc")],
                                                      capsys)
    with output_lock(tmp_path / "ga.pkl"):  # the GA checkpoint is locked too
        err = _err(["allocate", missing, "--checkpoint", str(tmp_path / "ga.pkl")], capsys)
        assert "--checkpoint" in err and "being written by another run" in err


def test_dataset_output_rule(tmp_path, capsys):
    missing = str(tmp_path / "missing.toml")
    not_store = tmp_path / "mine.zarr"
    not_store.mkdir()
    (not_store / "notes.txt").write_text("precious")
    assert "not a zarr store" in _err(["dataset", missing, "--out", str(not_store)], capsys)
    fake = tmp_path / "fake.zarr"  # a zarr group, but no sopjax dataset store
    import zarr

    zarr.open_group(str(fake), mode="w")
    assert "not a sopjax dataset store" in _err(["dataset", missing, "--out", str(fake)], capsys)
    assert (not_store / "notes.txt").read_text() == "precious"
    deep = tmp_path / "new" / "d.zarr"
    assert "does not exist; give --parents" in _err(["dataset", missing, "--out", str(deep)], capsys)
    assert "missing.toml" in _err(["dataset", missing, "--out", str(deep), "--parents"], capsys)
    assert "must end in .zarr" in _err(["dataset", missing, "--out", str(tmp_path / "d.nc")], capsys)
    with output_lock(tmp_path / "d.zarr"):
        assert "being written by another run" in _err(["dataset", missing, "--out", str(tmp_path / "d.zarr")],
                                                      capsys)


def test_train_output_rule(tmp_path, capsys):
    ckpt = tmp_path / "model"
    (tmp_path / "model.eqx").write_text("keep me")
    err = _err(["train", _train_config(tmp_path, ckpt)], capsys)
    assert "[output] checkpoint" in err and "exists; give --overwrite" in err
    assert (tmp_path / "model.eqx").read_text() == "keep me"
    deep = tmp_path / "new" / "model"
    err = _err(["train", _train_config(tmp_path, deep)], capsys)
    assert "does not exist; give --parents" in err and not deep.parent.exists()
    err = _err(["train", _train_config(tmp_path, deep), "--parents"], capsys)  # then the missing dataset
    assert "missing.zarr" in err and deep.parent.is_dir()
    with output_lock(tmp_path / "other.eqx"):
        err = _err(["train", _train_config(tmp_path, tmp_path / "other")], capsys)
        assert "being written by another run" in err
