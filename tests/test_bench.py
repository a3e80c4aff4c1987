"""Benchmark plumbing on tiny sizes: same samples, same answers, well-formed report (no timing asserts)."""

import json

import numpy as np
import pytest

import sopjax
from sopjax.bench.baselines import fused_reference, pandapower_loop, power_grid_model_batch
from sopjax.bench.cases import bench_case, radial_status
from sopjax.bench.powerflow_bench import format_report, make_samples, run_benchmark
from sopjax.cli.main import main
from sopjax.errors import CaseFormatError, NetworkError, SopjaxError
from sopjax.powerflow import make_grid
from sopjax.topology import compile_topology


def test_samples_are_reproducible_and_keep_the_power_factor():
    net = sopjax.ieee33()
    p1, q1 = make_samples(net, 7, seed=3)
    p2, q2 = make_samples(net, 7, seed=3)
    p3, _ = make_samples(net, 7, seed=4)
    assert p1.shape == (7, 33) and np.array_equal(p1, p2) and np.array_equal(q1, q2)
    assert not np.array_equal(p1, p3)
    k = net.bus_index(18)
    np.testing.assert_allclose(p1[:, k] / q1[:, k], net.p_load_pu[k] / net.q_load_pu[k])
    with pytest.raises(SopjaxError, match="sigma"):
        make_samples(net, 3, sigma=-1)
    with pytest.raises(SopjaxError, match="samples"):
        make_samples(net, 0)


@pytest.mark.parametrize("iteration", ["power", "current"])
def test_fused_reference_matches_sopjax_including_a_collapsed_sample(iteration):
    net = sopjax.ieee33()
    topo = compile_topology(net)
    grid = make_grid(net, topo)
    p, q = make_samples(net, 6, seed=1, sigma=0.2)
    p[2] *= 40  # voltage collapse: both must report it as not converged
    q[2] *= 40
    ref = fused_reference(net, topo, grid, p, q, repeats=1, iteration=iteration)
    res = sopjax.batched_solver(layout="bus_major", iteration=iteration)(topo, grid, net.f_bus, p, q)
    np.testing.assert_array_equal(ref.converged, res.converged)
    assert not ref.converged[2]
    np.testing.assert_array_equal(ref.iterations, res.iterations)
    ok = res.converged
    np.testing.assert_allclose(ref.vm_pu[ok], res.vm_pu[ok], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref.info["va_rad"][ok], res.va_rad[ok], rtol=0, atol=1e-12)


def test_power_grid_model_batch_agrees_with_sopjax_on_a_reconfigured_feeder():
    net = sopjax.ieee33()
    status = net.branch_status(open=[7, 9, 14, 32, 37], close=[33, 34, 35, 36])
    p, q = make_samples(net, 5, seed=2)
    res, _ = sopjax.solve(net, status=status, p_load_pu=p, q_load_pu=q)
    for method in ("newton_raphson", "iterative_current"):
        r = power_grid_model_batch(net, p, q, status=status, method=method)
        np.testing.assert_allclose(r.vm_pu, res.vm_pu, rtol=0, atol=1e-7)
        np.testing.assert_allclose(r.info["va_rad"], res.va_rad, rtol=0, atol=1e-7)


def test_run_benchmark_report_has_every_method_and_they_agree():
    rep = run_benchmark(
        "ieee33", samples=40, repeats=2, pgm_repeats=1, skip=("pandapower",)
    )  # pandapower: CLI test
    assert rep["case"] == "ieee33" and rep["samples"] == 40 and rep["dtype"] == "float64"
    assert set(rep["results"]) == {"sopjax", "power_grid_model", "fused_reference"}
    assert all(v > 0 for v in rep["results"].values())
    d = rep["details"]
    assert set(d["power_grid_model"]["methods"]) == {"newton_raphson", "iterative_current"}
    assert d["sopjax"]["converged"] == 40 and d["fused_reference"]["iterations_equal_sopjax"]
    assert d["fused_reference"]["max_dv_vs_sopjax"] < 1e-12
    for m in d["power_grid_model"]["methods"].values():
        assert m["max_dv_vs_sopjax"] < 1e-6
    for k, v in rep["ratios"].items():
        base = k.removeprefix("sopjax_vs_")
        assert v == pytest.approx(rep["results"]["sopjax"] / rep["results"][base])
    table = format_report(rep)
    assert "power-grid-model iterative_current" in table and "fused numba sweep" in table
    json.dumps(rep)  # JSON-able


def test_pandapower_loop_agrees_with_sopjax():
    net = sopjax.ieee33()
    p, q = make_samples(net, 3, seed=5)
    res, _ = sopjax.solve(net, p_load_pu=p, q_load_pu=q)
    r = pandapower_loop(net, p, q, numba=False)  # numba=False: no JIT warm-up in the test
    assert r.converged.all() and r.samples == 3
    np.testing.assert_allclose(r.vm_pu, res.vm_pu, rtol=0, atol=1e-7)
    np.testing.assert_allclose(r.info["va_rad"], res.va_rad, rtol=0, atol=1e-7)


def test_radial_status_opens_one_branch_per_loop():
    net = sopjax.ieee33()
    closed_all = np.ones(net.n_branch, dtype=bool)
    status, opened = radial_status(net, closed_all)
    assert len(opened) == 5 and status.sum() == 32
    compile_topology(net, status)  # no loop left
    assert all(net.switchable[net.branch_index(k)] for k in opened)  # tie switches are opened first
    assert bench_case("ieee33").opened == ()


def test_bad_case_specifications_are_named():
    with pytest.raises(CaseFormatError, match="empty"):
        bench_case(" ")
    with pytest.raises(CaseFormatError, match="after 'pp:'"):
        bench_case("pp:")
    with pytest.raises(NetworkError, match="no network builder 'nope'"):
        bench_case("pp:nope")
    with pytest.raises(SopjaxError, match="skip"):
        run_benchmark("ieee33", samples=2, skip=("numpy",))


def test_cli_json_and_errors(capsys):
    assert (
        main(
            [
                "bench",
                "--case",
                "ieee33",
                "--samples",
                "20",
                "--repeats",
                "1",
                "--pp-samples",
                "0",
                "--skip",
                "power_grid_model,fused_reference",
                "--json",
            ]
        )
        == 0
    )
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["results"]) == {"sopjax"} and rep["details"]["sopjax"]["converged"] == 20
    assert main(["bench", "--case", "nope", "--samples", "2"]) == 2
    assert "unknown case 'nope'" in capsys.readouterr().err
    assert main(["bench", "--samples", "2", "--skip", "gpu"]) == 2
    assert "gpu" in capsys.readouterr().err


def test_cli_names_a_missing_bench_extra(monkeypatch, capsys):
    import importlib.util

    from sopjax.cli.main import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numba" else real(name, *a))
    assert main(["bench", "--case", "ieee33", "--samples", "10"]) == 2
    err = capsys.readouterr().err
    assert "numba" in err and "sopjax[bench]" in err and "--skip fused_reference" in err
