"""Loss-minimising reconfiguration (sopjax.problems.reconfiguration.build) and ``sopjax reconfigure``."""

import json

import numpy as np
import pytest

import sopjax
from sopjax.cli.main import main
from sopjax.errors import SopjaxError
from sopjax.solvers.options import NAIVE
from sopjax.solvers.options import FormulationOptions
from sopjax.problems.reconfiguration.build import build_reconfiguration, solve_reconfiguration


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_ieee33_opens_7_9_14_32_37_at_139_55_kw(capsys):
    code, out, _ = run_cli(capsys, "reconfigure", "ieee33", "--json")
    assert code == 0
    d = json.loads(out)
    assert d["open"] == [7, 9, 14, 32, 37]
    assert d["losses_kw"] == pytest.approx(139.55, abs=0.01)  # exact sweep of the optimal topology
    assert d["losses_relaxed_kw"] == pytest.approx(d["losses_kw"], abs=0.05)  # SOC optimum, tight
    assert d["status"] == "optimal" and d["solver"] == "SCIP" and d["gap"] <= 1e-6
    assert d["solve_s"] > 0 and d["vmin_bus"] == 32 and d["vmin_pu"] == pytest.approx(0.9378, abs=1e-4)


def test_cli_text_output_with_switch_subset(capsys):
    code, out, _ = run_cli(capsys, "reconfigure", "ieee33", "--switchable", "7,9,14,28,32,33,34,35,36,37")
    assert code == 0
    assert "open branches   7, 9, 14, 32, 37" in out and "139.55 kW" in out


def test_lindistflow_milp_gives_a_radial_plan_no_better_than_the_soc_optimum():
    net = sopjax.ieee33()
    sw = np.zeros(net.n_branch, bool)
    sw[[net.branch_index(k) for k in (6, 7, 8, 9, 14, 28, 32, 33, 34, 35, 36, 37)]] = True
    r = solve_reconfiguration(net, options=FormulationOptions(formulation="lindistflow"), switchable=sw)
    assert r.info.solver == "HIGHS" and r.info.status == "optimal"
    sopjax.compile_topology(net, r.status)  # radial: raises on a loop
    assert r.losses_kw >= 139.55 - 0.01
    assert len(r.open) == 5
    assert np.isnan(r.max_relaxation_gap)


def test_every_bus_energized_and_structure_cuts_keep_the_optimum_of_a_zero_load_feeder():
    """IEEE 69 has 21 zero-load buses: minimal connectivity + chain/symmetry cuts on a small switch set."""
    net = sopjax.ieee69()
    sw = np.zeros(net.n_branch, bool)
    sw[[net.branch_index(k) for k in (12, 13, 14, 69, 70)]] = True
    r = solve_reconfiguration(net, switchable=sw)
    topo = sopjax.compile_topology(net, r.status)
    assert np.all(topo.energized)
    naive = solve_reconfiguration(net, switchable=sw, options=NAIVE)
    assert naive.losses_kw == pytest.approx(r.losses_kw, abs=1e-3)


def test_bad_input(capsys):
    code, _, err = run_cli(capsys, "reconfigure", "ieee34")
    assert code == 2 and "unknown case 'ieee34'" in err
    code, _, err = run_cli(capsys, "reconfigure", "ieee33", "--switchable", "7,x")
    assert code == 2 and "'x' is not a branch number" in err
    code, _, err = run_cli(capsys, "reconfigure", "ieee33", "--switchable", "7,99")
    assert code == 2 and "unknown branch number 99" in err
    with pytest.raises(SopjaxError, match="load_scale"):
        build_reconfiguration(sopjax.ieee33(), load_scale=float("nan"))
    with pytest.raises(SopjaxError, match="one flag per branch"):
        build_reconfiguration(sopjax.ieee33(), switchable=np.ones(3, bool))
    with pytest.raises(SopjaxError, match="unknown radiality"):
        FormulationOptions(radiality="mst")


@pytest.mark.slow
def test_ieee69_optimum_and_naive_ieee33_agree():
    r = solve_reconfiguration(sopjax.ieee69())
    assert r.info.status == "optimal"
    assert r.losses_kw == pytest.approx(98.6, abs=0.1)
    assert r.open == [14, 57, 61, 69, 70]
    naive = solve_reconfiguration(sopjax.ieee33(), options=NAIVE)
    assert naive.open == [7, 9, 14, 32, 37]
