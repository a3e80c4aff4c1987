"""Property-based bad-input suite: every shipped config, case file and CLI option, mutated.

Each generated input goes through a subcommand's Python entry point and must either run (with no
NaN/inf in the result) or raise sopjax's own error type with a one-line message; another
exception, a NaN or a hang (``SOPJAX_FUZZ_HANG_S``) fails. Profiles (``tests/conftest.py``):
``default`` (bounded, in the default test command) and ``thorough``
(``SOPJAX_HYPOTHESIS_PROFILE=thorough``, run by ``experiments/bad_input_report.py``).
What each entry point gets and how deep is listed in docs/bad_input.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bad_input import CASE_FILES, case_mutation, check, config_mutation, force, load_config, nonfinite

THOROUGH = os.environ.get("SOPJAX_HYPOTHESIS_PROFILE") == "thorough"
#: examples per test: (validation entry points, real runs of cheap commands, real runs of solver commands)
N_PARSE, N_RUN, N_SOLVE = (300, 30, 6) if THOROUGH else (30, 3, 1)


def _examples(n: int):
    return settings(max_examples=n, suppress_health_check=list(HealthCheck))


# --- montecarlo -------------------------------------------------------------------------------

MC = load_config("ieee33_restoration_mc.toml")


def _tiny_mc(cfg: dict, desc: str) -> dict:
    force(cfg, ("montecarlo", "samples"), 4, unless=desc)
    force(cfg, ("montecarlo", "chunk_size"), 4, unless=desc)
    return cfg


@_examples(N_RUN)
@given(data=st.data())
def test_montecarlo_config_runs(data):
    from sopjax.montecarlo.study import run_study, study_from_config

    cfg, desc = data.draw(config_mutation(MC))
    cfg = _tiny_mc(cfg, desc)
    check("montecarlo: study_from_config + run_study", desc,
          lambda: run_study(study_from_config(cfg), progress=False, plots=False)[0], finite=mc_nonfinite)


def mc_nonfinite(ds) -> list[str]:
    """NaN/inf in a Monte Carlo dataset's per-strategy statistics, for strategies with valid samples.

    Per-bus and per-branch statistics are NaN by design where an element is never energized
    ("(when energized)" in their long names) or has no rating; a strategy whose samples all failed
    has NaN statistics and says so in ``n_failed`` (the summary prints None). Neither counts here.
    """
    import numpy as np

    valid = np.asarray(ds["n_valid"].values) > 0
    bad = []
    for name, v in ds.data_vars.items():
        if v.dtype.kind != "f" or "strategy" not in v.dims or {"bus", "branch", "vsc"} & set(v.dims):
            continue
        x = np.moveaxis(np.asarray(v.values), v.dims.index("strategy"), 0)[valid]
        if not np.all(np.isfinite(x)):
            bad.append(f"dataset.{name}")
    return bad


# --- sweep ------------------------------------------------------------------------------------

SWEEPS = ["pv_penetration_sweep.toml", "sop_capacity_sweep.toml", "capacity_grid_sweep.toml",
          "sop_capacity_optimization.toml"]


def _tiny_sweep(cfg: dict, desc: str) -> dict:
    force(cfg, ("sampling", "samples"), 2, unless=desc)
    force(cfg, ("restoration", "montecarlo", "samples"), 4, unless=desc)
    for k, axis in enumerate(cfg.get("axis", []) if isinstance(cfg.get("axis"), list) else []):
        if isinstance(axis, dict) and isinstance(axis.get("values"), list) and len(axis["values"]) <= 10:
            axis["values"] = axis["values"][:2]  # a shipped grid, mutated or not (a huge one is kept)
        if isinstance(axis, dict) and "num" in axis:
            force(cfg, ("axis", k, "num"), 2, unless=desc)
    force(cfg, ("optimization", "steps"), 3, unless=desc)
    force(cfg, ("optimization", "grid"), {"start": 0.0, "stop": 2.0, "num": 2}, unless=desc)
    return cfg


@pytest.mark.slow  # each run compiles the dispatch (~30-90 s): thorough profile / -m slow only
@_examples(N_SOLVE)
@given(data=st.data(), name=st.sampled_from(SWEEPS[:3]))
def test_sweep_config_runs(data, name):
    from sopjax.sweeps.config import spec_from_config
    from sopjax.sweeps.optimize import optimize_capacity
    from sopjax.sweeps.runner import run_sweep

    cfg, desc = data.draw(config_mutation(load_config(name)))
    cfg = _tiny_sweep(cfg, desc)

    def run():
        spec = spec_from_config(cfg)
        return (optimize_capacity if spec.kind == "optimization" else run_sweep)(spec)

    check("sweep: spec_from_config + run", f"{name}: {desc}", run)


# --- restore ----------------------------------------------------------------------------------

RESTORE = load_config("ieee33_restoration.toml")


def _tiny_restore(cfg: dict, desc: str) -> dict:
    force(cfg, ("montecarlo", "samples"), 4, unless=desc)
    force(cfg, ("solver", "time_limit"), 20, unless=desc)
    force(cfg, ("restoration", "uncertainty"), "forecast", unless=desc)
    force(cfg, ("restoration", "formulation"), "lindistflow", unless=desc)
    return cfg


@_examples(N_SOLVE)
@given(data=st.data())
def test_restore_config_runs(data):
    from sopjax.problems.restoration.study import run_restoration_study, study_from_config

    cfg, desc = data.draw(config_mutation(RESTORE))
    cfg = _tiny_restore(cfg, desc)
    check("restore: study_from_config + run_restoration_study", desc,
          lambda: run_restoration_study(study_from_config(cfg)))


# --- plan -------------------------------------------------------------------------------------

PLANS = ["ieee33_planning.toml", "ieee69_planning.toml"]


def _tiny_plan(cfg: dict, desc: str) -> dict:
    force(cfg, ("scenarios", "samples"), 8, unless=desc)
    force(cfg, ("scenarios", "count"), 1, unless=desc)
    force(cfg, ("validation", "samples"), 4, unless=desc)
    force(cfg, ("validation", "optimal_days"), 1, unless=desc)
    return cfg


@pytest.mark.slow  # branch and bound, baselines and validation (~60 s): thorough profile / -m slow only
@_examples(N_SOLVE)
@given(data=st.data())
def test_plan_config_runs(data):
    from sopjax.problems.planning.study import run_planning_study, study_from_config

    cfg, desc = data.draw(config_mutation(load_config(PLANS[0])))
    cfg = _tiny_plan(cfg, desc)
    check("plan: study_from_config + run_planning_study", desc,
          lambda: run_planning_study(study_from_config(cfg), validate=True).as_dict())


# --- every config's validation entry point -----------------------------------------------------


def _parsers():
    """subcommand -> (configs, entry point name, the parse, the tiny-run forcing); imported lazily."""
    from sopjax.datasets import dataset_from_config as dataset
    from sopjax.montecarlo.study import study_from_config as montecarlo
    from sopjax.problems.allocation.study import study_from_config as allocate
    from sopjax.problems.planning.study import study_from_config as plan
    from sopjax.problems.restoration.study import study_from_config as restore
    from sopjax.surrogates.study import parse_train_config as train
    from sopjax.sweeps.config import spec_from_config as sweep

    def parse_only(cfg: dict, desc: str) -> dict:  # these parses build no batch; nothing to shrink
        return cfg

    return {
        "montecarlo": (["ieee33_restoration_mc.toml"], "study_from_config", montecarlo, _tiny_mc),
        "sweep": (SWEEPS, "spec_from_config", sweep, _tiny_sweep),
        "restore": (["ieee33_restoration.toml"], "study_from_config", restore, _tiny_restore),
        "plan": (PLANS, "study_from_config", plan, _tiny_plan),
        "allocate": (["seed001_allocation.toml"], "study_from_config", allocate, parse_only),
        "dataset": (["ieee33_dataset.toml", "ieee69_dataset.toml", "ieee33_dataset_vf.toml"], "dataset_from_config",
                    dataset, parse_only),
        "train": (TRAINS, "parse_train_config", train, parse_only),
    }


TRAINS = sorted(p.name for p in (Path(__file__).parents[1] / "configs").glob("ieee33_train_*.toml"))


@pytest.mark.parametrize("command", ["montecarlo", "sweep", "restore", "plan", "allocate", "dataset", "train"])
@_examples(N_PARSE)
@given(data=st.data())
def test_config_validation(command, data):
    """Every shipped config of ``command``, mutated, through its parse (networks built, strategies
    checked, samples drawn for plan): a value, or a SopjaxError naming the key path."""
    names, entry, parse, tiny = _parsers()[command]
    name = data.draw(st.sampled_from(names))
    cfg, desc = data.draw(config_mutation(load_config(name)))
    check(f"{command}: {entry}", f"{name}: {desc}", lambda: parse(tiny(cfg, desc)) and None)


# --- case files (powerflow, reconfigure, and every [network] case) ----------------------------

CASE_TEXT = {p: p.read_text() for p in CASE_FILES}


@contextlib.contextmanager
def _case_file(content: bytes):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "mutated.m"
        path.write_bytes(content)
        yield str(path)


def _cli(argv: list[str]):
    """``sopjax ARGV`` in-process: (exit code, stdout); an argparse refusal is exit code 2."""
    from sopjax.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse: usage line + one error line, exit 2
            rc = e.code
    return rc, out.getvalue(), err.getvalue()


def _cli_result(argv: list[str]):
    """Run the CLI; a refusal (exit 2) becomes a SopjaxError so that :func:`check` counts it."""
    from sopjax.errors import SopjaxError

    rc, out, err = _cli(argv)
    if rc == 2:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        if not lines or "Traceback" in err:
            raise AssertionError(f"exit 2 without a one-line error: {err!r}")
        raise SopjaxError(lines[-1])
    assert rc in (0, 1), f"exit code {rc}: {err[-500:]}"
    if "--json" in argv:
        return json.loads(out) if rc == 0 else {}
    assert "nan" not in out.lower().split(), out
    return {}


@_examples(N_PARSE)
@given(data=st.data(), path=st.sampled_from(CASE_FILES))
def test_case_file_mutations_powerflow(data, path):
    content, desc = data.draw(case_mutation(CASE_TEXT[path]))
    with _case_file(content) as f:
        check("powerflow: case file", f"{path.name}: {desc}", lambda: _cli_result(["powerflow", f, "--json"]))


@_examples(N_PARSE)
@given(data=st.data(), path=st.sampled_from(CASE_FILES))
def test_case_file_mutations_network(data, path):
    """The same mutations reach every study through ``[network] case`` (montecarlo's parse)."""
    from sopjax.montecarlo.study import study_from_config

    content, desc = data.draw(case_mutation(CASE_TEXT[path]))
    with _case_file(content) as f:
        cfg = {"network": {"case": f}, "strategy": [{"name": "as is", "pickup": "all"}],
               "montecarlo": {"samples": 4}}
        check("montecarlo: [network] case file", f"{path.name}: {desc}", lambda: study_from_config(cfg) and None)


@_examples(N_SOLVE)
@given(data=st.data())
def test_case_file_mutations_reconfigure(data):
    content, desc = data.draw(case_mutation(CASE_TEXT[CASE_FILES[0]]))
    with _case_file(content) as f:
        check("reconfigure: case file", f"{CASE_FILES[0].name}: {desc}",
              lambda: _cli_result(["reconfigure", f, "--switchable", "ties", "--time-limit", "20", "--json"]))


# --- CLI options ------------------------------------------------------------------------------

BAD_OPTION_VALUES = ("0", "-1", "-5", "1e12", "nan", "inf", "-inf", "abc", "", "auto", "1.5", "3", "7,9,x", "0x10",
                     "/nonexistent/dir/r.nc", "/")

#: subcommand -> (base argv that runs tiny, {option: how it is fuzzed})
CLI = {
    "powerflow": (["powerflow", "ieee33", "--json"], ["--load-scale", "--tol", "--open", "--close"]),
    "montecarlo": (["montecarlo", str(Path(__file__).parents[1] / "configs/ieee33_restoration_mc.toml"),
                    "--samples", "4", "--json"], ["--samples", "--seed", "--chunk-size", "--out"]),
    "bench": (["bench", "--samples", "8", "--repeats", "1", "--pgm-repeats", "1", "--pp-samples", "0",
               "--skip", "pandapower,power_grid_model,fused_reference", "--devices", "1", "--json"],
              ["--samples", "--tol", "--max-iter", "--sigma", "--repeats", "--chunk-size", "--seed"]),
    "sweep": (["sweep", str(Path(__file__).parents[1] / "configs/sop_capacity_sweep.toml"), "--samples", "2",
               "--quiet", "--no-plots"], ["--samples", "--out"]),
    "reconfigure": (["reconfigure", "ieee33", "--switchable", "ties", "--json"],
                    ["--gap", "--time-limit", "--load-scale", "--switchable"]),
    "restore": (["restore", str(Path(__file__).parents[1] / "configs/ieee33_restoration.toml"),
                 "--uncertainty", "forecast", "--formulation", "lindistflow", "--samples", "4", "--json"],
                ["--samples", "--time-limit"]),
    "plan": (["plan", str(Path(__file__).parents[1] / "configs/ieee33_planning.toml"), "--json"],
             ["--time-limit", "--validation-samples", "--out"]),
    "allocate": (["allocate", str(Path(__file__).parents[1] / "configs/seed001_allocation.toml"), "--json",
                  "--no-progress", "--pop-size", "4", "--generations", "1", "--no-contingency"],
                 ["--pop-size", "--generations", "--out", "--plot", "--checkpoint"]),
    "dataset": (["dataset", str(Path(__file__).parents[1] / "configs/ieee33_dataset.toml"), "--out",
                 str(Path(tempfile.gettempdir()) / f"sopjax-fuzz-{os.getpid()}" / "d.zarr"), "--parents", "--samples", "4",
                 "--no-progress"], ["--samples", "--out"]),
    # train: a dataset that does not exist, so that no value ever starts training; its options are
    # parsed (and refused) before the dataset is opened
    "train": (["train", str(Path(__file__).parents[1] / "configs/ieee33_train_mlp.toml"), "--quiet", "--steps", "1"],
              ["--steps"]),
}
#: subcommands whose valid option values start an expensive run: only their refusals are exercised
REFUSAL_ONLY = {"sweep", "reconfigure", "restore", "plan", "allocate", "dataset", "train"}
#: --scheduler values (scheduler options of montecarlo and sweep); none starts a Dask cluster
SCHEDULER_VALUES = ("", "nonsense", "tcp://127.0.0.1:1", "local:0", "local:-1", "local:x", "local", "/",
                    "host:99999", "tcp://:8786")
CLI["montecarlo"][1].extend(["--scheduler", "--scheduler-timeout"])
CLI["sweep"][1].extend(["--scheduler", "--scheduler-timeout"])
for _command in ("montecarlo", "sweep"):
    CLI[_command][0].extend(["--scheduler-timeout", "1"])


def _replace_option(argv: list[str], option: str, value: str) -> list[str]:
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    return argv


@_examples(N_PARSE)
@given(data=st.data(), command=st.sampled_from(sorted(CLI)))
def test_cli_option_mutations(data, command):
    base, options = CLI[command]
    option = data.draw(st.sampled_from(options))
    value = data.draw(st.sampled_from(SCHEDULER_VALUES if option == "--scheduler" else BAD_OPTION_VALUES))
    argv = _replace_option(base, option, value)
    must_refuse = _refused_by_validation(command, option, value)
    if command in REFUSAL_ONLY and not must_refuse:
        return  # a valid value would start an MISOCP or a sweep; runs are covered by the config tests
    outcome = check(f"{command}: CLI option", f"{option} {value!r}", lambda: _cli_result(argv))
    if command in REFUSAL_ONLY:
        assert outcome == "refused", f"sopjax {command} {option} {value!r} was not refused"


def _refused_by_validation(command: str, option: str, value: str) -> bool:
    """Whether the CLI must refuse ``option value`` before any work: not a number, NaN/inf, below the
    option's range, or an --out path that breaks the output rule."""
    import math

    if option in ("--out", "--plot", "--checkpoint"):  # no value of BAD_OPTION_VALUES is a writable path
        return True                                     # with the suffix these options require
    if option == "--scheduler":  # only "" (in-process) is valid; none of the others reaches a scheduler
        return value != ""
    try:
        x = float(value)
    except ValueError:
        return option not in ("--switchable",) or value not in ("all", "ties")
    if option == "--switchable":  # a branch number of ieee33 (1..37) is a valid list
        return not (value.isdigit() and 1 <= int(value) <= 37)
    if not math.isfinite(x):
        return True
    if option in ("--samples", "--generations", "--steps"):
        return x < 1 or x != int(x) or x > 1e9
    if option == "--pop-size":
        return x < 4 or x != int(x) or x > 1e9
    if option == "--scheduler-timeout":
        return x <= 0
    if option == "--time-limit":
        return x <= 0
    if option == "--gap":
        return x < 0
    if option == "--validation-samples":
        return x < 0 or x != int(x)
    if option == "--load-scale":
        return x < 0
    return False


# --- the defects of issues 18 and 19, one test each ---------------------------------------------


@pytest.mark.parametrize("name,section", [("ieee69_planning.toml", "scenarios"),
                                          ("sop_capacity_sweep.toml", "sampling")])
def test_huge_seed_is_refused_naming_the_key(name, section):
    """Found by the thorough profile: ``scenarios.seed = 1.8e308`` overflowed inside JAX."""
    from sopjax.errors import ConfigError
    from sopjax.problems.planning.study import study_from_config as plan
    from sopjax.sweeps.config import spec_from_config as sweep

    cfg = load_config(name)
    cfg.setdefault(section, {})["seed"] = 1.7976931348623157e308
    with pytest.raises(ConfigError, match=rf"{section}\]? seed|{section}\.seed"):
        (plan if "planning" in name else sweep)(cfg)


def test_string_where_a_number_is_meant_names_the_key_path():
    """Issue 18: ``s_rated_kva = "big"`` ended in a ValueError traceback ([network] is covered by
    tests/test_config.py; these are the strategy and [montecarlo] tables, which still crashed)."""
    from sopjax.errors import ConfigError
    from sopjax.montecarlo.study import study_from_config
    from sopjax.strategies import StrategyError

    cfg = load_config("ieee33_restoration_mc.toml")
    cfg["strategy"][1]["sop"][0]["u_set_pu"] = "big"
    with pytest.raises(StrategyError, match=r"strategy 'SOP 8-21' sop\[0\]: u_set_pu must be a number, got 'big'"):
        study_from_config(cfg)
    cfg = load_config("ieee33_restoration_mc.toml")
    cfg["montecarlo"]["confidence"] = "high"
    with pytest.raises(ConfigError, match=r"\[montecarlo\] confidence must be a number, got 'high'"):
        study_from_config(cfg)


def test_chunk_size_auto_spelled_zero_and_negative_refused():
    """Issue 18: ``--chunk-size 0`` was accepted without a word; "auto" is now spelled."""
    from sopjax.errors import ConfigError
    from sopjax.montecarlo.study import settings_from_config

    assert settings_from_config({"chunk_size": "auto"})[0].chunk_size is None
    assert settings_from_config({}, chunk_size="auto")[0].chunk_size is None
    assert settings_from_config({"chunk_size": 64})[0].chunk_size == 64
    for bad in (0, -3, "0", 2.5, True):
        with pytest.raises(ConfigError, match=r"\[montecarlo\] chunk_size"):
            settings_from_config({"chunk_size": bad})
    for bad in ("0", "-3", "x"):
        rc, out, err = _cli(["montecarlo", CLI["montecarlo"][0][1], "--chunk-size", bad])
        assert rc == 2 and "--chunk-size: expected 'auto' or an integer > 0" in err and err.count("\n") == 1


def test_empty_switchable_list_refused():
    """Found by the thorough profile: ``--switchable ''`` ran a reconfiguration with no switch."""
    rc, out, err = _cli(["reconfigure", "ieee33", "--switchable", ""])
    assert rc == 2 and "--switchable: give 'all', 'ties' or branch numbers" in err


def test_powerflow_not_converged_prints_no_values():
    """Issue 19: ``--load-scale 1e6`` printed flat-start values (0 kW, 1.0 p.u.) beside NOT CONVERGED."""
    rc, out, err = _cli(["powerflow", "ieee33", "--load-scale", "1e6"])
    assert rc == 1 and out == "" and "NOT CONVERGED" in err and "no results" in err
    rc, out, err = _cli(["powerflow", "ieee33", "--load-scale", "1e6", "--json"])
    d = json.loads(out)
    assert rc == 1 and d["converged"] is False
    assert all(d[k] is None for k in ("losses_kw", "vmin_pu", "vm_pu", "p_slack_kw"))


def test_sweep_refuses_a_strategy_montecarlo_refuses():
    """Issue 19: a sweep strategy with ``u_set_pu = 1.5`` exited 0 with numbers as if there were no SOP."""
    from sopjax.strategies import StrategyError
    from sopjax.sweeps.config import spec_from_config

    cfg = _tiny_sweep(load_config("sop_capacity_sweep.toml"), "")
    for s in cfg["restoration"]["strategy"]:
        for sop in s.get("sop", []):
            sop["u_set_pu"] = 1.5
    # refused when the config is read, before any dispatch or Monte Carlo work
    with pytest.raises(StrategyError, match=r"U_set = 1.5 p.u. at bus 8 is outside the bus limits"):
        spec_from_config(cfg)


@pytest.mark.slow  # a dispatch compilation (~30 s)
def test_sweep_fallback_only_for_a_too_small_sop():
    """A strategy error that a 100 MVA SOP does not cure is raised at the grid point, never scored
    as "no SOP" (the fallback is kept for an SOP too small for its island)."""
    from sopjax.strategies import StrategyError
    from sopjax.sweeps.config import spec_from_config
    from sopjax.sweeps.runner import run_sweep

    cfg = _tiny_sweep(load_config("sop_capacity_sweep.toml"), "")
    cfg["axis"][0]["values"] = [1.0]
    for s in cfg["restoration"]["strategy"]:
        for sop in s.get("sop", []):
            sop["u_set_pu"] = 1.05
    spec = spec_from_config(cfg)
    bad = [{**t, "sop": [{**x, "u_set_pu": 1.5} for x in t["sop"]]} for t in spec.restoration.strategies]
    spec = dataclasses.replace(spec, restoration=dataclasses.replace(spec.restoration, strategies=tuple(bad)))
    with pytest.raises(StrategyError, match=r"U_set = 1.5 p.u. at bus 8 is outside the bus limits"):
        run_sweep(spec)


def test_allocation_config_conversion_names_the_key():
    """Issue 18 (follow-up): allocate's dataclasses converted with int()/float(); ``pop_size = ""`` ended
    in a ValueError traceback, ``dr_buses = -inf`` in a TypeError."""
    from sopjax.errors import ConfigError
    from sopjax.problems.allocation.study import study_from_config

    for section, key, value in (("ga", "pop_size", ""), ("contingency", "dr_buses", -math.inf),
                                ("costs", "purchase_price_per_kwh", "cheap"), ("robustness", "tolerance", [1, "x"])):
        cfg = load_config("seed001_allocation.toml")
        cfg[section][key] = value
        with pytest.raises(ConfigError, match=rf"{section}\.{key}"):
            study_from_config(cfg)


def test_malformed_scheduler_address_refused_before_a_client():
    """``--scheduler nonsense`` made a Dask client that printed a traceback when collected."""
    from sopjax.errors import ConfigError
    from sopjax.scaleout.executor import make_executor

    for address in ("nonsense", "/", "host:99999", "tcp://:8786"):
        with pytest.raises(ConfigError, match="write a scheduler address as tcp://HOST:PORT"):
            make_executor(address, timeout_s=1)
