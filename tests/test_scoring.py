"""Per-sample scoring kernel: physics, the seed 002 restoration convention, SOP and VCPI."""

import numpy as np
import pytest

import sopjax
from sopjax.kernels.radial import VfCoupling
from sopjax.strategies import Strategy, score_once
from sopjax.topology import compile_topology

KW = 1e4  # kW per p.u. on the 10 MVA base of case33bw
SOP_VF = [{"pair": [8, 21], "mode": "vf_i", "u_set_pu": 1.05}]


@pytest.fixture(scope="module")
def net():
    n = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    return sopjax.add_sops(n, pairs=[(8, 21)], s_rated_kva=2000, loss=0.02)


def _compliant_load(net, vm, energized, mask):
    ok = energized & (vm >= 0.95 - 1e-6) & (vm <= 1.05 + 1e-6) & mask
    return float(np.asarray(net.p_load_pu)[ok].sum())


def test_base_case_matches_powerflow(net):
    sc = score_once(net, Strategy.build(net, "base"), p_pv_pu=[0.0])
    assert sc.converged
    assert sc.line_loss_pu * KW == pytest.approx(202.677, abs=0.01)  # DESIGN.md reference
    assert sc.vmin_pu == pytest.approx(0.91309, abs=1e-5) and sc.vm_pu[net.bus_index(18)] == sc.vmin_pu
    assert sc.vm_pu[net.bus_index(1)] == 1.0 and np.all(sc.energized)
    # no fault: empty outage area, ratio 1; served load = load at the compliant buses only
    assert sc.outage_pu == 0 and sc.recovery_ratio == 1.0
    assert sc.served_pu == pytest.approx(_compliant_load(net, sc.vm_pu, np.ones(33, bool), np.ones(33, bool)))
    np.testing.assert_array_equal(sc.v_violation, sc.vm_pu < 0.95 - 1e-6)
    assert sc.v_violation.sum() == 21  # buses 6-18 and 26-33 are below 0.95 p.u. in the base case
    assert sc.sop_loss_pu == 0 and not sc.sop_overload.any()


def test_violating_buses_are_not_restored(net):
    """Seed 002: a picked-up, energized bus outside [0.95, 1.05] p.u. counts as not restored."""
    s = Strategy.build(net, "tie", open=[2], close=[33])  # whole outage area through 19-20-21
    sc = score_once(net, s, p_pv_pu=[0.05], fault_open=[2])
    outage = np.zeros(33, bool)
    outage[[net.bus_index(b) for b in list(range(3, 19)) + list(range(23, 34))]] = True
    assert sc.converged and sc.voltage_violation and sc.v_violation[outage].sum() > 20
    expected = _compliant_load(net, sc.vm_pu, sc.energized, outage)
    assert sc.restored_pu == pytest.approx(expected, abs=1e-12)
    assert sc.outage_pu * KW == pytest.approx(3255.0)
    assert sc.recovery_ratio == pytest.approx(expected / sc.outage_pu)
    assert np.all(sc.served[sc.v_violation] == 0)


def test_vf_island_power_balance_and_sop_loading(net):
    """Vf island: the kernel agrees with the power flow, and the substation balances everything."""
    s = Strategy.build(net, "sop", open=[2], sops=SOP_VF)
    sc = score_once(net, s, p_pv_pu=[0.05], fault_open=[2], island_overload="flag")
    i8, i21 = net.bus_index(8), net.bus_index(21)
    vf = VfCoupling(np.array([i8]), np.array([i21]), np.array([0.02]), np.array([0.02]), np.array([0.0]),
                    np.array([True]))
    vs = np.full(33, 1.0)
    vs[i8] = 1.05
    p = np.asarray(net.p_load_pu).copy()
    q = np.asarray(net.q_load_pu).copy()
    i30 = net.bus_index(30)
    p[i30] -= 0.05
    q[i30] -= 0.05 * np.tan(np.arccos(0.95))
    ref, _ = sopjax.solve(net, open=[2], p_load_pu=p, q_load_pu=q, sources=[i8], v_source_pu=vs, vf=vf)
    np.testing.assert_allclose(sc.vm_pu, ref.vm_pu, atol=1e-10)
    s_vf = np.hypot(ref.p_source_pu[i8], ref.q_source_pu[i8])
    assert sc.sop_loading[0, 0] == pytest.approx(s_vf / 0.2, rel=1e-9)  # 2 MVA on 10 MVA base
    # DC link: P_vf + P_21 + 0.02 (|S_vf| + |S_21|) = 0 with P_21 < 0 (Q_21 = 0)
    s_21 = sc.sop_loading[0, 1] * 0.2
    assert ref.p_source_pu[i8] - s_21 + 0.02 * (s_vf + s_21) == pytest.approx(0.0, abs=1e-12)
    assert sc.sop_loss_pu == pytest.approx(0.02 * (s_vf + s_21), rel=1e-12)
    # substation = all load - PV + line losses + converter losses
    slack = ref.p_source_pu[net.slack_bus]
    assert slack == pytest.approx(np.asarray(net.p_load_pu).sum() - 0.05 + sc.line_loss_pu + sc.sop_loss_pu,
                                  abs=1e-9)
    # the island (3.5 MVA) exceeds the 2 MVA converter: flagged, but counted as served when compliant
    assert sc.sop_violation and sc.sop_overload[0, 0] and not sc.island_lost
    assert sc.restored_pu > 0.9 * sc.outage_pu


def test_overloaded_island_is_shed(net):
    s = Strategy.build(net, "sop", open=[2], sops=SOP_VF)
    sc = score_once(net, s, p_pv_pu=[0.05], fault_open=[2])  # island_overload = "shed"
    assert sc.sop_violation and sc.island_lost and sc.any_violation
    assert sc.restored_pu == 0.0 and sc.recovery_ratio == 0.0  # the whole outage area is the island
    island = np.zeros(33, bool)
    island[[net.bus_index(b) for b in list(range(3, 19)) + list(range(23, 34))]] = True
    assert not sc.energized[island].any() and sc.energized[~island].all()
    assert not sc.v_violation[island].any()  # a dead bus has no voltage to violate


def test_pq_sop_injection_and_dc_balance(net):
    """Normal operation, SOP in PQ mode: loading, DC balance and its effect on the flow."""
    s = Strategy.build(net, "pq", sops=[{"pair": [8, 21], "mode": "pq", "p_kw": 500, "q_i_kvar": 100,
                                         "q_j_kvar": -200}])
    sc = score_once(net, s, p_pv_pu=[0.0])
    s_i = np.hypot(0.05, 0.01)
    assert sc.sop_loading[0, 0] == pytest.approx(s_i / 0.2, rel=1e-12)
    s_j = sc.sop_loading[0, 1] * 0.2
    p_j = -np.sqrt(s_j**2 - 0.02**2)
    assert 0.05 + p_j + 0.02 * (s_i + s_j) == pytest.approx(0.0, abs=1e-12)
    assert sc.sop_utilization[0] == pytest.approx((s_i + s_j) / 0.4, rel=1e-12)
    # the same injections as plain loads give the same voltages
    p = np.asarray(net.p_load_pu).copy()
    q = np.asarray(net.q_load_pu).copy()
    i8, i21 = net.bus_index(8), net.bus_index(21)
    p[i8] -= 0.05
    q[i8] -= 0.01
    p[i21] -= p_j
    q[i21] += 0.02
    # same iteration as the scoring kernel (current injection), so equal to rounding
    topo = compile_topology(net)
    ref = sopjax.batched_solver(iteration="current")(topo, sopjax.make_grid(net, topo), net.f_bus, p[None], q[None])
    np.testing.assert_allclose(sc.vm_pu, ref.vm_pu[0], atol=1e-9)
    assert sc.line_loss_pu == pytest.approx(float(ref.losses_pu[0]), abs=1e-12)


def test_vcpi_two_bus_analytic():
    """VCPI = P_r / P_r,max (Moghavvemi & Faruque): a load at half the line's maximum gives 0.5."""
    r, x, v_kv = 1.0, 2.0, 10.0
    z = np.hypot(r, x) / (v_kv**2 / 1.0)  # p.u. on 1 MVA
    theta, phi = np.arctan2(x, r), np.arctan(0.4)
    p_max = (1.0 / z) * np.cos(phi) / (4 * np.cos((theta - phi) / 2) ** 2)
    p_r = 0.5 * p_max
    two = sopjax.make_network(
        bus_ids=[1, 2], p_load_mw=[0.0, p_r], q_load_mvar=[0.0, p_r * np.tan(phi)], branch_from=[1],
        branch_to=[2], r_ohm=[r], x_ohm=[x], slack_bus=1, base_kv=v_kv, base_mva=1.0,
    )
    sc = score_once(two, Strategy.build(two, "line"), p_pv_pu=[], v_min_pu=0.5, v_max_pu=1.5)
    assert sc.converged
    # the sweep meets |dV| <= 1e-8 p.u., so VCPI is exact to ~1e-8
    assert sc.vcpi[0] == pytest.approx(0.5, rel=1e-7) and sc.vcpi_max == sc.vcpi[0]
    # an open branch carries no VCPI
    off = score_once(two, Strategy.build(two, "open", open=[1]), p_pv_pu=[], v_min_pu=0.5, v_max_pu=1.5)
    assert off.vcpi[0] == 0.0 and off.vcpi_max == 0.0 and not off.energized[1]


def test_blocked_map_with_zero_size_outputs():
    """Regression: ``jax.lax.map(batch_size=...)`` raised ZeroDivisionError on an output of shape (n, 0).

    The scoring kernel's SOP fields have that shape on a network without SOPs; :func:`blocked_map`
    must equal one wide vmap, remainder block included (10 samples in blocks of 4).
    """
    import jax
    import jax.numpy as jnp

    from sopjax.kernels.scoring import blocked_map

    def f(x):
        return {"sum": jnp.sum(x[0]) * x[1], "none": jnp.zeros((0,)), "pair": jnp.stack([x[1], -x[1]])}

    xs = (jnp.arange(30.0).reshape(10, 3), jnp.arange(10.0))
    wide = jax.vmap(f)(xs)
    for block in (4, 5, 20):
        out = jax.jit(lambda x, b=block: blocked_map(f, x, b))(xs)
        assert out["none"].shape == (10, 0) and out["pair"].shape == (10, 2)
        for k in wide:
            np.testing.assert_array_equal(np.asarray(out[k]), np.asarray(wide[k]))


@pytest.mark.slow
def test_sample_blocks_on_a_network_without_sops():
    """Blocked scoring (sample_block < samples) of a network with no SOP and no PV, end to end.

    ``jax.lax.map(batch_size=...)`` flattened outputs with ``reshape(-1, 0)`` and raised
    ZeroDivisionError on the zero-size SOP fields; the blocked map must equal one wide vmap,
    with a remainder block (10 samples in blocks of 4).
    """
    import jax

    from sopjax.kernels.scoring import ScoringOptions, score_batch
    from sopjax.strategies import compile_strategies, scoring_context

    plain = sopjax.ieee33()
    assert plain.sop.count == 0 and plain.pv.count == 0
    batch = compile_strategies(plain, [Strategy.build(plain, "tie", open=[2], close=[33])], fault_open=[2])
    ctx = scoring_context(plain, fault_open=[2])
    rng = np.random.default_rng(0)
    f = 1 + 0.05 * rng.standard_normal((10, plain.n_bus))
    p, q = np.asarray(plain.p_load_pu) * f, np.asarray(plain.q_load_pu) * f
    pv = np.zeros((10, 0))
    run = jax.jit(score_batch, static_argnames="options")
    wide = run(ctx, batch.arrays, p, q, pv, options=ScoringOptions(method="lindistflow", sample_block=None))
    blocked = run(ctx, batch.arrays, p, q, pv, options=ScoringOptions(method="lindistflow", sample_block=4))
    assert blocked.sop_loss_pu.shape == wide.sop_loss_pu.shape
    assert blocked.vm_pu.shape == (1, 10, plain.n_bus)
    for a, b in zip(wide, blocked):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-14)


def test_bus_major_scoring_matches_the_per_sample_kernel(net):
    """The default CPU layout scores through the bus-major DistFlow kernel; same scores to the tolerance.

    Strategies: a tie switch, an SOP island in Vf mode (overloaded and shed in some samples)
    and an SOP in PQ mode; a sample far beyond the feeder's capacity is reported as not
    converged by both.
    """
    import jax

    from sopjax.kernels.scoring import ScoringOptions, score_batch
    from sopjax.strategies import compile_strategies, scoring_context

    strategies = [
        Strategy.build(net, "tie", open=[2], close=[33]),
        Strategy.build(net, "sop", open=[2], sops=SOP_VF),
        Strategy.build(net, "pq", open=[2], close=[35], sops=[{"pair": [8, 21], "mode": "pq", "p_kw": 300}]),
    ]
    batch = compile_strategies(net, strategies, fault_open=[2])
    ctx = scoring_context(net, fault_open=[2])
    rng = np.random.default_rng(3)
    f = 1 + 0.1 * rng.standard_normal((40, net.n_bus))
    f[7] *= 9.0  # far beyond the feeder's capacity
    p, q = np.asarray(net.p_load_pu) * f, np.asarray(net.q_load_pu) * f
    pv = rng.uniform(0, 0.1, (40, 1))
    run = jax.jit(score_batch, static_argnames="options")
    per_sample = run(ctx, batch.arrays, p, q, pv, options=ScoringOptions(sweep_layout="per_sample"))
    bus_major = run(ctx, batch.arrays, p, q, pv, options=ScoringOptions())
    np.testing.assert_array_equal(bus_major.converged, per_sample.converged)
    conv = np.asarray(per_sample.converged)
    assert not conv.all() and conv.mean() > 0.9
    assert np.asarray(bus_major.island_lost).any()
    for name in bus_major._fields:
        if name in ("converged", "iterations"):
            continue
        a, b = np.asarray(getattr(bus_major, name)), np.asarray(getattr(per_sample, name))
        if a.dtype == bool:
            np.testing.assert_array_equal(a[conv], b[conv], err_msg=name)
        else:
            np.testing.assert_allclose(a[conv], b[conv], rtol=0, atol=1e-7, err_msg=name)
    with pytest.raises(ValueError, match="sweep_layout"):
        score_batch(ctx, batch.arrays, p, q, pv, options=ScoringOptions(sweep_layout="dense"))
