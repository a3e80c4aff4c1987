"""Sweeps: config validation, parameter maps, derivatives in the dataset, infeasibility, CLI, optax.

The default tests sweep with the cvxpylayers engine (no JAX compilation of the
interior-point solver); the JAX-engine sweep and the optax-vs-grid optimization
are marked slow (``configs/sop_capacity_optimization.toml`` is the full study).
"""

import copy
import json
import re

import jax.numpy as jnp
import numpy as np
import pytest

from sopjax.cli.main import main
from sopjax.kernels.dispatch import DispatchInfeasibleError
from sopjax.sweeps import SweepConfigError, build_scenario, run_sweep, spec_from_config
from sopjax.sweeps.runner import point_function

BASE = {
    "title": "test sweep",
    "network": {
        "case": "ieee33",
        "pv": [{"bus": 7, "s_rated_kva": 300, "pf": 0.95}, {"bus": 30, "s_rated_kva": 200, "pf": 0.95}],
        "sop": [{"pair": [12, 22], "s_rated_kva": 300}, {"pair": [25, 29], "s_rated_kva": 300}],
    },
    "dispatch": {"engine": "cvxpylayers"},
    "uncertainty": {"pv_forecast_frac": 0.8, "pv": {"kind": "normal", "sigma_frac": 0.1},
                    "load": {"kind": "normal", "sigma_frac": 0.1}},
    "sampling": {"samples": 3, "seed": 1},
    "baseline": {"pv_penetration": 0.3},
    "axis": [{"name": "capacity_mva", "values": [0.05, 0.1, 0.2]}],
    "quantities": ["losses_kw", "vmin_pu"],
}


#: a small config for the CLI tests (TOML)
CLI_BASE = """quantities = ["losses_kw"]
[network]
case = "ieee33"
sop = [{ pair = [18, 33], s_rated_kva = 300 }]
[dispatch]
engine = "cvxpylayers"
[sampling]
samples = 2
"""


def cfg(**changes):
    c = copy.deepcopy(BASE)
    c.update(changes)
    return c


def test_scenario_maps_parameters_to_inputs():
    spec = spec_from_config(cfg())
    scn = build_scenario(spec)
    # penetration = rated PV active power / nominal load: the fleet is scaled to it
    k = float(scn.pv_factor(0.3))
    assert k * scn.p_pv_rated_pu == pytest.approx(0.3 * scn.p_load_total_pu)
    inp = scn.inputs({"capacity_mva": jnp.asarray(0.25), "pv_penetration": jnp.asarray(0.6),
                      "load_scale": jnp.asarray(1.1)})
    np.testing.assert_allclose(inp.s_rated_i_pu, 0.25 / scn.net.base_mva)
    np.testing.assert_allclose(inp.p_pv_pu, np.asarray(scn.p_pv) * 2 * k)  # linear in the penetration
    np.testing.assert_allclose(inp.p_load_pu, np.asarray(scn.p_load) * 1.1)
    # PV samples respect the fleet's ratings and scatter around the forecast
    rated = np.asarray(scn.net.pv.s_rated_pu)
    assert np.all(np.asarray(scn.p_pv) <= rated + 1e-12) and np.all(np.asarray(scn.p_pv) >= 0)


def test_sweep_dataset_holds_quantities_and_exact_derivatives():
    spec = spec_from_config(cfg())
    ds = run_sweep(spec)
    assert set(ds.data_vars) == {"losses_kw", "vmin_pu", "dlosses_kw_dcapacity_mva", "dvmin_pu_dcapacity_mva"}
    assert ds["losses_kw"].dims == ("capacity_mva",)
    assert ds["dlosses_kw_dcapacity_mva"].attrs["units"] == "kW/MVA"
    # more capacity never raises the expected losses; the derivative says the same
    assert np.all(np.diff(ds["losses_kw"].values) <= 1e-6)
    assert np.all(ds["dlosses_kw_dcapacity_mva"].values <= 1e-6)
    # the derivative at 0.1 MVA against a central difference of the same Monte Carlo mean
    scn = build_scenario(spec)
    f = point_function(scn, spec, ("capacity_mva",))
    h = 2e-4
    up = f(jnp.asarray([0.1 + h]))[0]
    dn = f(jnp.asarray([0.1 - h]))[0]
    for q in ("losses_kw", "vmin_pu"):
        fd = (float(up[q]) - float(dn[q])) / (2 * h)
        ad = float(ds[f"d{q}_dcapacity_mva"].sel(capacity_mva=0.1))
        assert abs(ad - fd) <= 2e-2 * abs(fd) + 1e-6, (q, ad, fd)
    assert json.loads(ds.attrs["sops"]) == [[12, 22], [25, 29]]


def test_two_axis_sweep_has_a_derivative_per_axis():
    spec = spec_from_config(cfg(axis=[{"name": "capacity_mva", "values": [0.1, 0.2]},
                                      {"name": "load_scale", "values": [0.9, 1.1]}], quantities=["losses_kw"]))
    ds = run_sweep(spec)
    assert ds["losses_kw"].dims == ("capacity_mva", "load_scale")
    assert {"dlosses_kw_dcapacity_mva", "dlosses_kw_dload_scale"} <= set(ds.data_vars)
    # losses grow with load: d/d load_scale > 0, and roughly like the load squared
    d = ds["dlosses_kw_dload_scale"].values
    assert np.all(d > 0)
    L = ds["losses_kw"].values
    ratio = (L[:, 1] - L[:, 0]) / 0.2 / d.mean(axis=1)
    np.testing.assert_allclose(ratio, 1.0, rtol=0.05)


def test_axis_that_is_not_a_parameter_is_rejected():
    with pytest.raises(SweepConfigError, match=r"'sop_location' is not a sweep parameter; parameters: "
                                               r"\['capacity_mva', 'load_scale', 'pv_penetration'\]"):
        spec_from_config(cfg(axis=[{"name": "sop_location", "values": [1, 2]}]))
    with pytest.raises(SweepConfigError, match="unknown quantity 'losses'"):
        spec_from_config(cfg(quantities=["losses"]))
    with pytest.raises(SweepConfigError, match="needs a \\[restoration\\] table"):
        spec_from_config(cfg(quantities=["restored_kw"]))
    with pytest.raises(SweepConfigError, match="capacity_mva value 1 must be >= 0.0"):
        spec_from_config(cfg(axis=[{"name": "capacity_mva", "values": [0.5, -1.0]}]))
    with pytest.raises(SweepConfigError, match="unknown key 'engnie'"):
        spec_from_config(cfg(dispatch={"engnie": "jax"}))
    with pytest.raises(SweepConfigError, match="at least one 'sop'"):
        spec_from_config(cfg(network={"case": "ieee33"}))


def test_infeasible_operating_point_names_grid_point_sample_and_bus():
    spec = spec_from_config(cfg(axis=[{"name": "load_scale", "values": [1.0, 2.6]}],
                                baseline={"capacity_mva": 0.0, "pv_penetration": 0.3}))
    with pytest.raises(DispatchInfeasibleError,
                       match=r"load_scale=2\.6: .*sample 0.*bus \d+ cannot be held above v_min"):
        run_sweep(spec)


def test_cli_writes_the_dataset_and_figures(tmp_path, capsys):
    import tomllib  # noqa: F401  (the CLI parses TOML; write one by hand)

    text = 'title = "cli sweep"\n' + CLI_BASE.replace(
        "[network]\n", "[network]\npv = [{ bus = 30, s_rated_kva = 300, pf = 0.95 }]\n") + """
[baseline]
pv_penetration = 0.2
[[axis]]
name = "capacity_mva"
values = [0.0, 0.3]
"""
    path = tmp_path / "s.toml"
    path.write_text(text)
    out = tmp_path / "s.nc"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "dlosses_kw_dcapacity_mva" in printed and out.exists()
    assert (tmp_path / "s_losses_kw.png").exists()
    import xarray as xr

    ds = xr.open_dataset(out)
    assert ds["losses_kw"].values[1] < ds["losses_kw"].values[0]
    ds.close()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('name = "capacity_mva"', 'name = "sop_count"'))
    assert main(["sweep", str(bad)]) == 2
    assert "'sop_count' is not a sweep parameter" in capsys.readouterr().err


@pytest.mark.slow
def test_jax_engine_sweep_matches_the_cvxpylayers_engine():
    a = run_sweep(spec_from_config(cfg()))
    b = run_sweep(spec_from_config(cfg(dispatch={"engine": "jax"})))
    np.testing.assert_allclose(b["losses_kw"], a["losses_kw"], rtol=1e-3)
    np.testing.assert_allclose(b["dlosses_kw_dcapacity_mva"], a["dlosses_kw_dcapacity_mva"], rtol=2e-2, atol=1e-3)


@pytest.mark.slow
def test_optax_optimum_within_one_grid_step_of_the_grid_search():
    from sopjax.sweeps.optimize import optimize_capacity

    c = cfg(kind="optimization", dispatch={"engine": "jax"}, sampling={"samples": 12, "seed": 4},
            optimization={"grid": {"start": 0.0, "stop": 0.4, "num": 9}, "steps": 120, "batch": 6,
                          "learning_rate": 0.02, "init_mva": 0.3, "seed": 0},
            costs={"cost_per_kva": 100.0, "energy_price_per_kwh": 0.15, "days_per_year": 365.0,
                   "period_hours": 24.0})
    del c["axis"]
    ds = optimize_capacity(spec_from_config(c))
    grid = json.loads(ds.attrs["grid_optimum_mva"])[0]
    opt = json.loads(ds.attrs["optax_optimum_mva"])[0]
    assert 0.0 < grid < 0.4  # an interior optimum
    assert abs(opt - grid) <= ds.attrs["grid_step_mva"]
    assert ds.attrs["optax_optimum_cost"] <= ds.attrs["grid_optimum_cost"] * (1 + 1e-3)


def _cli_error(tmp_path, capsys, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["sweep", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err  # one clear line
    return err


def test_bad_input_gives_one_clear_line_each(tmp_path, capsys):
    base = 'title = "bad input"\n' + CLI_BASE
    # negative capacity on the axis, and as the baseline
    err = _cli_error(tmp_path, capsys, base + '[[axis]]\nname = "capacity_mva"\nvalues = [0.1, -0.2]\n')
    assert "[[axis]] capacity_mva value 1 must be >= 0.0, got -0.2" in err
    err = _cli_error(tmp_path, capsys, base + '[baseline]\ncapacity_mva = -1.0\n'
                     '[[axis]]\nname = "load_scale"\nvalues = [1.0]\n')
    assert "[baseline] capacity_mva" in err and ">= 0" in err
    # an axis that is not a parameter
    err = _cli_error(tmp_path, capsys, base + '[[axis]]\nname = "sop_bus"\nvalues = [1, 2]\n')
    assert "'sop_bus' is not a sweep parameter; parameters: ['capacity_mva', 'load_scale', 'pv_penetration']" in err
    # an infeasible operating point: grid point, sample and the bus that cannot be held
    err = _cli_error(tmp_path, capsys, base + '[baseline]\ncapacity_mva = 0.0\n'
                     '[[axis]]\nname = "load_scale"\nvalues = [2.6]\n')
    assert re.search(r"load_scale=2\.6: .*sample 0.*bus \d+ cannot be held above v_min", err), err


@pytest.mark.slow
def test_capacity_zero_in_a_restoration_sweep():
    """Capacity 0 works in a sweep with restoration quantities (configs/sop_capacity_sweep.toml)."""
    c = cfg(network={**BASE["network"], "sop": [{"pair": [8, 21], "s_rated_kva": 2000, "loss": 0.02}]},
            baseline={"pv_penetration": 0.4},
            axis=[{"name": "capacity_mva", "values": [0.0, 2.0]}],
            quantities=["losses_kw", "restored_kw"],
            restoration={"report": "case 4", "fault": {"open": [2]},
                         "montecarlo": {"samples": 4, "seed": 1, "v_min_pu": 0.95, "v_max_pu": 1.05},
                         "strategy": [{"name": "case 4", "close": [35], "open": [8], "pickup": "greedy",
                                       "sop": [{"pair": [8, 21], "mode": "vf_i", "u_set_pu": 1.05}]}]})
    ds = run_sweep(spec_from_config(c))
    # without capacity the SOP cannot form its island (scored without it); with 2 MVA it does
    np.testing.assert_array_equal(ds["restoration_sop_island"].values, [0.0, 1.0])
    r = ds["restored_kw"].values
    assert 0 < r[0] < r[1]
    d = ds["dlosses_kw_dcapacity_mva"].values
    assert np.all(np.isfinite(d)) and d[0] < 0  # the right derivative at 0: capacity lowers losses
