"""Radial power-flow kernels: physics invariants, batching, precision, failure as data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sopjax
from sopjax.kernels.radial import VfCoupling, lindistflow, sweep_power_flow
from sopjax.powerflow import batched_solver, make_grid
from sopjax.topology import compile_topology


@pytest.fixture(scope="module")
def ieee33():
    net = sopjax.ieee33()
    topo = compile_topology(net)
    return net, topo, make_grid(net, topo)


def random_loads(net, n, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    f = 1 + spread * rng.uniform(-1, 1, size=(n, net.n_bus))
    return np.asarray(net.p_load_pu) * f, np.asarray(net.q_load_pu) * f


def test_power_balance_and_nonnegative_losses(ieee33):
    net, topo, grid = ieee33
    p, q = random_loads(net, 16)
    res = batched_solver()(topo, grid, net.f_bus, p, q)
    assert res.converged.all()
    np.testing.assert_allclose(res.p_source_pu[:, 0], p.sum(1) + res.losses_pu, atol=1e-9)
    assert (res.p_loss_pu >= 0).all()
    # branch flow at the slack equals the slack injection
    k = net.branch_index(1)
    np.testing.assert_allclose(res.p_from_pu[:, k], res.p_source_pu[:, 0] - p[:, 0], atol=1e-9)


def test_vmap_equals_per_sample_loop_and_eager(ieee33):
    net, topo, grid = ieee33
    p, q = random_loads(net, 8, seed=1)
    p[3] *= 3.0  # a heavier sample takes more iterations
    q[3] *= 3.0
    batch = batched_solver(iteration="current")(topo, grid, net.f_bus, p, q)  # the per-sample kernel's iteration
    power = batched_solver(iteration="power")(topo, grid, net.f_bus, p, q)  # DistFlow recursion: to the tolerance
    np.testing.assert_allclose(power.vm_pu, batch.vm_pu, rtol=0, atol=1e-8)
    single = jax.jit(sweep_power_flow)
    for i in range(len(p)):
        one = single(topo, grid, net.f_bus, jnp.asarray(p[i]), jnp.asarray(q[i]))
        np.testing.assert_allclose(batch.vm_pu[i], one.vm_pu, rtol=0, atol=1e-14)
        assert int(batch.iterations[i]) == int(one.iterations)
    assert batch.iterations[3] > batch.iterations[0]
    eager = sweep_power_flow(topo, grid, net.f_bus, jnp.asarray(p[0]), jnp.asarray(q[0]))
    np.testing.assert_allclose(eager.vm_pu, batch.vm_pu[0], atol=1e-14)


def test_chunked_equals_unchunked(ieee33):
    net, topo, grid = ieee33
    p, q = random_loads(net, 50, seed=2)
    a = batched_solver()(topo, grid, net.f_bus, p, q)
    b = batched_solver(chunk_size=16)(topo, grid, net.f_bus, p, q)
    np.testing.assert_allclose(a.vm_pu, b.vm_pu, atol=1e-14)


def test_float32_within_1e4_of_float64(ieee33):
    net, topo, grid = ieee33
    p, q = random_loads(net, 32, seed=3)
    r64 = batched_solver()(topo, grid, net.f_bus, p, q)
    g32 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), grid)
    r32 = batched_solver(tol=1e-6)(topo, g32, net.f_bus, p.astype(np.float32), q.astype(np.float32))
    assert r32.vm_pu.dtype == np.float32 and r32.converged.all()
    assert np.max(np.abs(np.asarray(r32.vm_pu, float) - r64.vm_pu)) < 1e-4
    for case in ("ieee69", "ieee85"):
        r32c, _ = sopjax.solve(sopjax.load_case(case), dtype="float32", tol=1e-6)
        r64c, _ = sopjax.solve(sopjax.load_case(case))
        assert np.max(np.abs(r32c.vm_pu - r64c.vm_pu)) < 1e-4


def test_lindistflow_close_to_exact_at_light_load(ieee33):
    net, topo, grid = ieee33
    p, q = np.asarray(net.p_load_pu) * 0.1, np.asarray(net.q_load_pu) * 0.1
    exact = sweep_power_flow(topo, grid, net.f_bus, jnp.asarray(p), jnp.asarray(q))
    lin = lindistflow(topo, grid, net.f_bus, jnp.asarray(p), jnp.asarray(q))
    assert np.max(np.abs(exact.vm_pu - lin.vm_pu)) < 2e-4
    assert np.max(np.abs(exact.va_rad - lin.va_rad)) < 2e-4
    np.testing.assert_allclose(lin.losses_pu, exact.losses_pu, rtol=0.02)
    # LinDistFlow flows are lossless: the exact flow also carries the losses downstream
    active = np.asarray(exact.i_pu) > 0
    downstream_losses = np.asarray(exact.p_from_pu - lin.p_from_pu)[active]
    assert (downstream_losses >= -1e-12).all()
    assert downstream_losses.max() <= float(exact.losses_pu) + 1e-9


def test_divergence_is_reported_not_nan(ieee33):
    net, topo, grid = ieee33
    p, q = np.asarray(net.p_load_pu), np.asarray(net.q_load_pu)
    res = batched_solver(max_iter=200)(topo, grid, net.f_bus, np.stack([p, 8 * p]), np.stack([q, 8 * q]))
    assert bool(res.converged[0]) and not bool(res.converged[1])
    for leaf in jax.tree_util.tree_leaves(res):
        assert np.all(np.isfinite(np.asarray(leaf, dtype=float)))
    lin = jax.vmap(lindistflow, in_axes=(None, None, None, 0, 0))(
        topo, grid, net.f_bus, jnp.stack([p, 20 * p]), jnp.stack([q, 20 * q])
    )
    assert list(np.asarray(lin.converged)) == [True, False]


def test_max_iter_reached_is_not_converged(ieee33):
    net, topo, grid = ieee33
    res = sweep_power_flow(topo, grid, net.f_bus, jnp.asarray(net.p_load_pu), jnp.asarray(net.q_load_pu),
                           max_iter=2)
    assert not bool(res.converged) and int(res.iterations) == 2


def test_deenergized_buses_carry_nothing():
    net = sopjax.ieee33()
    res, topo = sopjax.solve(net, open=[2])
    off = ~topo.energized
    assert np.all(res.vm_pu[off] == 0)
    assert res.p_from_pu[net.branch_index(3)] == 0
    np.testing.assert_allclose(res.p_source_pu[0], net.p_load_pu[~off].sum() + res.losses_pu, atol=1e-10)


def test_vf_mode_sop_feeds_island_with_dc_balance():
    net = sopjax.ieee33()
    status = net.branch_status(open=[2])  # fault on 2-3: buses 3-18, 23-33 lose supply
    vf_bus, partner = net.bus_index(8), net.bus_index(21)
    a = 0.02
    vf = VfCoupling(
        vf_bus=np.array([vf_bus]), partner_bus=np.array([partner]),
        loss_vf=np.array([a]), loss_partner=np.array([a]), q_partner=np.array([0.0]),
        active=np.array([True]),
    )
    v_src = np.full(net.n_bus, 1.0)
    res, topo = sopjax.solve(net, status=status, sources=[vf_bus], v_source_pu=v_src, vf=vf)
    assert res.converged and topo.energized.all()
    island = topo.root == vf_bus
    assert abs(res.vm_pu[vf_bus] - 1.0) < 1e-12
    s_vf = res.p_source_pu[vf_bus] + 1j * res.q_source_pu[vf_bus]
    main_losses = res.p_loss_pu[[topo.branch_active[k] and island[topo.branch_child[k]] == 0
                                 for k in range(net.n_branch)]].sum()
    island_losses = res.losses_pu - main_losses
    np.testing.assert_allclose(s_vf.real, net.p_load_pu[island].sum() + island_losses, atol=1e-9)
    # partner VSC draws the island power plus both converter losses from the main feeder
    p_partner = res.p_source_pu[0] - net.p_load_pu[~island].sum() - main_losses
    conv_loss = a * abs(s_vf) + a * abs(p_partner)  # partner Q = 0
    np.testing.assert_allclose(p_partner, s_vf.real + conv_loss, atol=1e-9)


def test_compile_count_does_not_grow_with_batch(ieee33):
    net, topo, grid = ieee33
    run = batched_solver()
    for n in (4, 4, 4):
        p, q = random_loads(net, n, seed=n)
        run(topo, grid, net.f_bus, p, q)
    assert run._cache_size() == 1
