"""`sopjax powerflow`: JSON contract and one-line errors."""

import json
import subprocess
import sys

import pytest

from sopjax.cli.main import main


def test_json_output(capsys):
    assert main(["powerflow", "ieee33", "--open", "7,9,14,32,37", "--close", "33,34,35,36", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["losses_kw"] == pytest.approx(139.55, abs=0.005)
    assert out["converged"] is True and out["iterations"] > 0
    assert len(out["vm_pu"]) == 33 and out["vmin_bus"] == 32
    assert out["open"] == [7, 9, 14, 32, 37]


def test_text_output_and_load_scale(capsys):
    assert main(["powerflow", "ieee33", "--load-scale", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "converged" in text and "losses" in text


@pytest.mark.parametrize("args, message", [
    (["powerflow", "ieee33", "--open", "99"], "unknown branch number 99"),
    (["powerflow", "ieee33", "--open", "7,x"], "'x' is not a branch number"),
    (["powerflow", "ieee33", "--close", "33"], "closed loop through branches"),
    (["powerflow", "nosuch.m"], "case file nosuch.m does not exist"),
    (["powerflow", "ieee33", "--load-scale", "nan"], "--load-scale: expected a number >= 0, got 'nan'"),
    (["powerflow", "ieee33", "--load-scale", "-1"], "--load-scale: expected a number >= 0, got '-1'"),
])
def test_errors_are_one_line_without_traceback(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "sopjax.cli.main", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "powerflow" in out.stdout


def test_closed_pipe_ends_quietly():
    """`sopjax ... | head -1`: no BrokenPipeError traceback when the reader goes away."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sopjax.cli.main", "powerflow", "ieee85", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # before the command (seconds of start-up) writes anything
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and "Traceback" not in err
