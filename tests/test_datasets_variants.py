"""sopjax.datasets SOP mode families (Vf islands) and MISOCP restoration labels: determinism, resume,
labels equal to direct calls of the exact kernel and of the restoration solver, bad input."""

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr
from test_allocation import tiny_net as allocation_net
from test_datasets import net as ieee33  # noqa: F401  (the fixture: IEEE 33 with 2 PV, 2 SOPs)

import sopjax
from sopjax.cli.main import main
from sopjax.config import ConfigError
from sopjax.datasets import (
    VARIANTS,
    DatasetError,
    DatasetSpec,
    build_dataset,
    chunks_done,
    configuration_pool,
    dataset_from_config,
    generate_chunk,
    open_restoration,
    open_store,
)
from sopjax.datasets.restoration import solve_scenario
from sopjax.kernels.scoring import ScoringOptions
from sopjax.problems.restoration import RestorationSettings, solve_restoration
from sopjax.strategies import VF_I, VF_J, Strategy, score_once

VF = VARIANTS.index("vf")


@pytest.fixture(scope="module")
def spec():
    return DatasetSpec(
        samples=32,
        chunk_size=16,
        seed=5,
        configurations=3,
        held_out=1,
        fault_fraction=0.2,
        split_fractions=(0.6, 0.1, 0.1, 0.1, 0.1),
        dispatch=False,
        sop_mode_mix={"pq": 0.3, "off": 0.2, "vf": 0.5},
        sop_capacity_kva=(300, 1500),
        vf_v_limits_pu=(0.9, 1.1),
    )


@pytest.fixture(scope="module")
def pool(ieee33, spec):
    return configuration_pool(ieee33, spec.configurations, spec.seed)


@pytest.fixture(scope="module")
def store(ieee33, spec, pool, tmp_path_factory):
    out = tmp_path_factory.mktemp("dsv") / "full.zarr"
    build_dataset(ieee33, spec, out, pool=pool, progress=False)
    return out


def _equal(a, b, skip=()):
    return all(np.array_equal(a[k].values, b[k].values, equal_nan=True) for k in a.data_vars if k not in skip)


def test_variant_dataset_is_deterministic_and_resumes(ieee33, spec, pool, store, tmp_path):
    full = open_store(store).load()
    var = full["variant"].values
    assert {int(v) for v in var} == {0, 1, 2}  # every family drawn
    c1 = generate_chunk(ieee33, spec, pool, 1)
    assert _equal(c1, generate_chunk(ieee33, spec, pool, 1))
    assert _equal(c1, full.sel(sample=c1["sample"].values)[list(c1.data_vars)])
    out = tmp_path / "resumed.zarr"
    assert build_dataset(ieee33, spec, out, pool=pool, progress=False, stop_after=1)["chunks_written"] == 1
    assert chunks_done(out, spec).tolist() == [True, False]
    assert build_dataset(ieee33, spec, out, pool=pool, progress=False)["chunks_written"] == 1
    assert _equal(open_store(out).load(), full)
    # a dataset of the default mix holds none of the new variables and keeps its old spec text
    assert "sop_mode_mix" not in DatasetSpec(samples=4).to_json() and "sop_mode_mix" in spec.to_json()
    assert "variant" not in generate_chunk(ieee33, dataclasses.replace(spec, sop_mode_mix={"pq": 1}), pool, 1)


def test_variant_labels_are_consistent(store):
    ds = open_store(store).load()
    var, mode = ds["variant"].values, ds["sop_mode"].values
    off, vf = var == VARIANTS.index("off"), var == VF
    assert (mode[off] == 0).all() and (ds["vsc_p_i_pu"].values[off] == 0).all()
    assert ((mode[vf] == VF_I) | (mode[vf] == VF_J)).sum(1).tolist() == [1] * vf.sum()  # one Vf SOP
    assert (ds["fault_branch"].values[vf] >= 0).all() and ds["converged"].values.all()
    on = ds["energized"].values
    assert (ds["vm_pu"].values[~on] == 0).all() and (ds["va_rad"].values[~on] == 0).all()
    # every outage-area bus of a vf sample is energized unless its island was shed
    kept = vf & ~ds["island_lost"].values
    assert kept.any() and (on[kept] | ~ds["outage"].values[kept]).all()
    assert (ds["recovery_ratio"].values[kept] > 0).any()
    # the Vf terminal holds U_set
    for r in np.flatnonzero(kept):
        k = int(np.flatnonzero(np.isin(mode[r], (VF_I, VF_J)))[0])
        bus = int(ds["sop_bus_i"].values[k] if mode[r, k] == VF_I else ds["sop_bus_j"].values[k])
        assert ds["vm_pu"].values[r, bus] == pytest.approx(ds["u_set_pu"].values[r, k], abs=1e-12)


def test_vf_labels_equal_a_direct_exact_kernel_call(ieee33, store):
    """Each vf sample rebuilt by hand as a Strategy and scored by the Monte Carlo engine's score_once."""
    ds = open_store(store).load()
    rows = np.flatnonzero(ds["variant"].values == VF)[:3]
    assert rows.size == 3
    for r in rows:
        s = ds.isel(sample=int(r))
        fault = int(s["fault_branch"].values)
        closed = s["branch_closed"].values.copy()
        closed[fault] = True
        si, sj = s["s_rated_i_pu"].values, s["s_rated_j_pu"].values
        sop = dataclasses.replace(ieee33.sop, s_rated_i_pu=si, s_rated_j_pu=sj, q_max_i_pu=si, q_max_j_pu=sj,
                                  q_min_i_pu=-si, q_min_j_pu=-sj)  # fmt: skip
        net_s = ieee33.replace(in_service=closed, sop=sop)
        mode = s["sop_mode"].values
        is_vf = np.isin(mode, (VF_I, VF_J))
        strat = Strategy.from_arrays(
            net_s, "direct", status=s["branch_closed"].values, sop_mode=mode,
            p_set_pu=np.where(is_vf, 0.0, s["sop_p_i_pu"].values), q_i_pu=s["sop_q_i_pu"].values,
            q_j_pu=s["sop_q_j_pu"].values, u_set_pu=np.where(is_vf, s["u_set_pu"].values, 1.0),
            pickup=s["pickup"].values,
        )  # fmt: skip
        sc = score_once(
            net_s, strat, p_pv_pu=s["p_pv_pu"].values, fault_open=[int(ieee33.branch_numbers[fault])],
            p_load_pu=s["p_load_pu"].values, q_load_pu=s["q_load_pu"].values, v_min_pu=0.9, v_max_pu=1.1,
            options=ScoringOptions(tol=1e-10),
        )  # fmt: skip
        np.testing.assert_array_equal(sc.energized, s["energized"].values)
        np.testing.assert_allclose(sc.vm_pu, s["vm_pu"].values, atol=1e-12)
        np.testing.assert_allclose(sc.sop_loading[:, 0], s["sop_loading_i"].values, atol=1e-12)
        np.testing.assert_allclose(sc.sop_loading[:, 1], s["sop_loading_j"].values, atol=1e-12)
        assert float(sc.recovery_ratio) == pytest.approx(float(s["recovery_ratio"].values), abs=1e-12)
        assert float(sc.line_loss_pu) == pytest.approx(float(s["losses_pu"].values), abs=1e-12)
        assert bool(sc.island_lost) == bool(s["island_lost"].values)
        assert float(s["p_loss_pu"].values.sum()) == pytest.approx(float(s["losses_pu"].values), abs=1e-12)


def tiny_net():
    """test_allocation's 7-bus feeder (substation 1; 1-2-3-4, 1-5-6-7, tie 4-7; PV at 4) with an SOP 3-6."""
    return sopjax.add_sops(allocation_net(), pairs=[(3, 6)], s_rated_kva=500, loss=0.02)


TINY = DatasetSpec(
    samples=16, chunk_size=16, seed=3, configurations=3, held_out=1, fault_fraction=0.6,
    split_fractions=(0.8, 0.1, 0.1, 0.0, 0.0), dispatch=False, sop_capacity_kva=(1000, 2000),
    restoration_labels=2, vf_v_limits_pu=(0.9, 1.1),
)  # fmt: skip (PQ samples only: the restoration labels start from the faulted state, whatever the family)


def test_misocp_labels_resume_and_equal_a_direct_solver_call(tmp_path):
    net = tiny_net()
    full, part = tmp_path / "full.zarr", tmp_path / "part.zarr"
    assert build_dataset(net, TINY, full, progress=False)["restoration_solved"] == 2
    assert build_dataset(net, TINY, part, progress=False, stop_restoration=1)["restoration_solved"] == 1
    assert open_restoration(part)["done"].values.tolist() == [True, False]
    assert build_dataset(net, TINY, part, progress=False)["restoration_solved"] == 1
    grp, again = open_restoration(full).load(), open_restoration(part).load()
    assert _equal(grp, again, skip=("solve_s",)) and json.loads(grp.attrs["samples"]) == grp["sample"].values.tolist()
    assert grp.sizes["scenario"] == 2 and grp["done"].values.all()

    ds = open_store(full).load()
    names = json.loads(grp.attrs["status_names"])
    for c in range(2):
        s = ds.sel(sample=int(grp["sample"].values[c]))
        fault = int(s["fault_branch"].values)
        assert fault >= 0 and fault == int(grp["fault_branch"].values[c])
        closed = s["branch_closed"].values.copy()
        closed[fault] = True
        si, sj = s["s_rated_i_pu"].values, s["s_rated_j_pu"].values
        sop = dataclasses.replace(net.sop, s_rated_i_pu=si, s_rated_j_pu=sj, q_max_i_pu=si, q_max_j_pu=sj,
                                  q_min_i_pu=-si, q_min_j_pu=-sj)  # fmt: skip
        net_s = net.replace(in_service=closed, sop=sop, p_load_pu=s["p_load_pu"].values, q_load_pu=s["q_load_pu"].values)
        settings = RestorationSettings(faulted=(int(net.branch_numbers[fault]),), switchable="ties",
                                       pv_forecast_pu=tuple(s["p_pv_pu"].values), v_min_pu=0.9, v_max_pu=1.1)
        plan, _ = solve_restoration(net_s, settings, time_limit=60)
        g = grp.isel(scenario=c)
        assert names[int(g["solve_status"].values)] == plan.info.status == "optimal"
        np.testing.assert_array_equal(g["branch_closed"].values, plan.status)
        np.testing.assert_array_equal(g["energized"].values, plan.energized)
        np.testing.assert_allclose(g["pickup"].values, plan.pickup, atol=1e-9)
        assert g["sop_mode"].values.tolist() == [sopjax.strategies.SOP_MODES[m] for m in plan.sop_modes]
        sp = plan.sop_setpoints[0]
        assert float(g["sop_p_i_pu"].values[0]) == pytest.approx(sp["p_i_kw"] / 1e3, abs=1e-9)
        assert float(g["sop_q_j_pu"].values[0]) == pytest.approx(sp["q_j_kvar"] / 1e3, abs=1e-9)
        assert float(g["objective"].values) == pytest.approx(plan.objective, rel=1e-9)
        assert float(g["recovery_ratio"].values) == pytest.approx(plan.recovery_ratio, abs=1e-9)
        assert float(g["gap"].values) == pytest.approx(plan.info.gap, abs=1e-12)
    # a fault whose outage area no switch or SOP reaches (3-4 with no switch: bus 4 has no SOP) is
    # labelled 'unrestorable' with recovery 0 (the solver refuses it), not dropped and not a crash
    row = ds.isel(sample=0).copy(deep=True)
    closed = ds["config_closed"].values[0].copy()
    closed[2] = False
    row["branch_closed"].values[:], row["fault_branch"].values[...] = closed, 2
    lab = solve_scenario(net, dataclasses.replace(TINY, restoration_switchable="none"), row)
    assert names[int(lab["solve_status"])] == "unrestorable" and float(lab["recovery_ratio"]) == 0.0
    assert np.isnan(lab["objective"]) and not lab["energized"].any()


def test_bad_mode_mix_and_restoration_subset_name_the_key(tmp_path, capsys):
    with pytest.raises(DatasetError, match="sop_mode_mix enables no mode"):
        DatasetSpec(samples=4, sop_mode_mix={"pq": 0.0, "vf": 0.0})
    with pytest.raises(DatasetError, match=r"sop_mode_mix\.vf must be a weight >= 0"):
        DatasetSpec(samples=4, sop_mode_mix={"pq": 1.0, "vf": -0.5})
    with pytest.raises(DatasetError, match=r"sop_mode_mix\.vx: unknown SOP mode family"):
        DatasetSpec(samples=4, sop_mode_mix={"vx": 1.0})
    with pytest.raises(DatasetError, match=r"restoration_labels \(5\) exceeds samples \(4\)"):
        DatasetSpec(samples=4, restoration_labels=5)
    with pytest.raises(ConfigError, match=r"\[dataset\] sop_mode_mix\.vf"):
        dataset_from_config({"network": {"case": "ieee33"}, "dataset": {"samples": 4, "sop_mode_mix": {"vf": -1}}})
    with pytest.raises(ConfigError, match=r"\[dataset\] sop_mode_mix"):
        dataset_from_config({"network": {"case": "ieee33"}, "dataset": {"samples": 4, "sop_mode_mix": {"qp": 1}}})
    cfg = tmp_path / "d.toml"
    cfg.write_text('[network]\ncase = "ieee33"\n[dataset]\nsamples = 4\nsop_mode_mix = { pq = 0, vf = 0 }\n')
    assert main(["dataset", str(cfg), "--out", str(tmp_path / "x.zarr")]) == 2
    assert "sop_mode_mix enables no mode" in capsys.readouterr().err
    # more MISOCP labels than faulted samples: named when the labels are made
    net = tiny_net()
    few = dataclasses.replace(TINY, fault_fraction=0.0)
    with pytest.raises(DatasetError, match="restoration_labels = 2, but the dataset has only 0"):
        build_dataset(net, few, tmp_path / "few.zarr", progress=False)
    assert xr.open_zarr(tmp_path / "few.zarr", consolidated=False)["done"].values.all()
