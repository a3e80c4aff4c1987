"""The bus-major batched sweep equals vmap of the per-sample kernel, sample by sample.

``iteration="current"`` is the per-sample kernel's iteration (equal to rounding, same
iteration counts); ``"power"`` (DistFlow recursion) converges to the same
voltages and flows within the tolerance, in fewer iterations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sopjax
from sopjax.errors import SopjaxError
from sopjax.kernels.radial import VfCoupling
from sopjax.kernels.sweep_batch import divisor_block, default_block, sweep_batch
from sopjax.powerflow import batched_solver, make_grid, shard_samples
from sopjax.topology import compile_topology, stack_topologies


def loads(net, n, seed, spread=0.3):
    rng = np.random.default_rng(seed)
    f = 1 + spread * rng.uniform(-1, 1, size=(n, net.n_bus))
    return np.asarray(net.p_load_pu) * f, np.asarray(net.q_load_pu) * f


def assert_same(a, b, atol):
    np.testing.assert_array_equal(a.iterations, b.iterations)
    np.testing.assert_array_equal(a.converged, b.converged)
    for name in a._fields:
        np.testing.assert_allclose(
            np.asarray(getattr(a, name), float),
            np.asarray(getattr(b, name), float),
            rtol=0,
            atol=atol,
            err_msg=name,
        )


def test_equals_vmap_with_islands_extra_source_collapse_and_padding():
    net = sopjax.ieee33()
    # branch 6 open: buses 7..18 go dark; branch 29 open and bus 30 a second source at 1.02 p.u.
    status = net.branch_status(open=[6, 29])
    topo = compile_topology(net, status, sources=[net.bus_index(30)])
    assert (~topo.energized).sum() > 0 and topo.is_source.sum() == 2
    v = np.full(net.n_bus, 1.0)
    v[net.bus_index(30)] = 1.02
    grid = make_grid(net, topo, v_source_pu=v)
    p, q = loads(net, 37, seed=4)
    p[5] *= 60  # voltage collapse in one sample
    q[5] *= 60
    ref = batched_solver(layout="vmap")(topo, grid, net.f_bus, p, q)
    got = batched_solver(layout="bus_major", chunk_size=8, iteration="current")(topo, grid, net.f_bus, p, q)
    assert not ref.converged[5] and ref.converged.sum() == 36  # 5 blocks of 8, the last one padded
    assert_same(ref, got, atol=1e-13)


@pytest.mark.parametrize("case", ["ieee33", "ieee69", "ieee85"])
def test_power_summation_agrees_with_the_current_sweep(case):
    net = sopjax.load_case(case)
    topo = compile_topology(net)
    grid = make_grid(net, topo)
    p, q = loads(net, 21, seed=9)
    p[3] *= 60  # voltage collapse: reported, not NaN
    q[3] *= 60
    ref = batched_solver(layout="vmap")(topo, grid, net.f_bus, p, q)
    got = batched_solver(layout="bus_major", chunk_size=8, iteration="power")(topo, grid, net.f_bus, p, q)
    np.testing.assert_array_equal(got.converged, ref.converged)
    assert not got.converged[3] and got.converged.sum() == 20
    ok = ref.converged
    for name in got._fields:
        if name not in ("converged", "iterations"):
            a, b = np.asarray(getattr(got, name))[ok], np.asarray(getattr(ref, name))[ok]
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-8, err_msg=name)  # both stop at tol = 1e-8
    assert np.all(np.isfinite(np.asarray(got.vm_pu)))
    assert np.all(got.iterations[ok] < ref.iterations[ok])  # the recursion contracts faster, sample by sample


def test_float32_keeps_dtype_and_agrees():
    net = sopjax.ieee69()
    topo = compile_topology(net)
    grid = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), make_grid(net, topo))
    p, q = loads(net, 16, seed=5)
    got = batched_solver(layout="bus_major", tol=1e-5)(
        topo, grid, net.f_bus, p.astype(np.float32), q.astype(np.float32)
    )
    ref = batched_solver(layout="vmap", tol=1e-5)(
        topo, grid, net.f_bus, p.astype(np.float32), q.astype(np.float32)
    )
    assert got.vm_pu.dtype == np.float32 and got.converged.all()
    np.testing.assert_allclose(got.vm_pu, ref.vm_pu, atol=2e-6)


def test_vmap_over_stacked_topologies():
    net = sopjax.ieee33()
    statuses = [net.branch_status(), net.branch_status(open=[7, 9, 14, 32, 37], close=[33, 34, 35, 36])]
    topos = [compile_topology(net, s) for s in statuses]
    grids = [make_grid(net, t) for t in topos]
    stacked = stack_topologies(topos)
    grid_s = jax.tree_util.tree_map(lambda *a: np.stack(a), *grids)
    p, q = loads(net, 5, seed=6)
    run = batched_solver(layout="bus_major", iteration="current")
    both = jax.vmap(run, in_axes=(0, 0, None, None, None))(stacked, grid_s, net.f_bus, p, q)
    ref = batched_solver(layout="vmap")
    for i, (t, g) in enumerate(zip(topos, grids)):
        one = ref(t, g, net.f_bus, p, q)
        assert_same(jax.tree_util.tree_map(lambda a, i=i: a[i], both), one, atol=1e-13)
    kw = float(np.mean(both.losses_pu[1])) * net.base_mva * 1e3
    assert kw < float(np.mean(both.losses_pu[0])) * net.base_mva * 1e3  # the reconfiguration cuts losses


def test_direct_kernel_call_and_default_block():
    net = sopjax.ieee85()
    topo = compile_topology(net)
    grid = make_grid(net, topo)
    p, q = loads(net, 3, seed=7)
    res = jax.jit(sweep_batch)(topo, grid, jnp.asarray(net.f_bus), p, q)
    np.testing.assert_allclose(res.p_source_pu[:, net.slack_bus], p.sum(1) + res.losses_pu, atol=1e-9)
    assert default_block(33) == 256 and default_block(3000) == 64 and default_block(5) == 2048


def test_each_sample_solves_alike_whatever_the_block_and_the_batch():
    # the default block divides the sample count where it can (no padding copy);
    # a sample's result must not depend on the block or on the other samples
    assert divisor_block(50_000, 256) == 250 and divisor_block(1_000, 64) == 50
    assert divisor_block(257, 256) == 256  # a prime count: padded blocks instead
    net = sopjax.ieee33()
    topo = compile_topology(net)
    grid = make_grid(net, topo)
    p, q = loads(net, 500, seed=11)
    run = batched_solver(layout="bus_major")
    whole = run(topo, grid, net.f_bus, p, q)  # blocks of 250
    part = run(topo, grid, net.f_bus, p[:7], q[:7])  # one block of 7
    sharded = run(topo, grid, net.f_bus, shard_samples(p), shard_samples(q))
    for got in (part, jax.tree_util.tree_map(lambda a: a[:7], sharded)):
        np.testing.assert_array_equal(np.asarray(got.iterations), np.asarray(whole.iterations)[:7])
        np.testing.assert_array_equal(np.asarray(got.vm_pu), np.asarray(whole.vm_pu)[:7])
        np.testing.assert_array_equal(np.asarray(got.va_rad), np.asarray(whole.va_rad)[:7])


def test_layout_errors_are_clear():
    with pytest.raises(SopjaxError, match="unknown layout 'gpu'"):
        batched_solver(layout="gpu")
    with pytest.raises(SopjaxError, match="sweep only|method 'sweep' only"):
        batched_solver("lindistflow", layout="bus_major")
    with pytest.raises(SopjaxError, match="chunk_size"):
        batched_solver(chunk_size=0)
    with pytest.raises(SopjaxError, match="unknown iteration 'newton'"):
        batched_solver(iteration="newton")
    net = sopjax.ieee33()
    topo = compile_topology(net)
    vf = VfCoupling(
        np.array([5]), np.array([20]), np.array([0.02]), np.array([0.02]), np.array([0.0]), np.array([True])
    )
    p, q = loads(net, 2, seed=8)
    with pytest.raises(SopjaxError, match="Vf-mode"):
        batched_solver(layout="bus_major", iteration="current")(topo, make_grid(net, topo), net.f_bus, p, q, vf)


def test_vf_mode_sop_island_in_the_bus_major_layout_matches_the_per_sample_kernel():
    # fault on 2-3; the VSC at bus 8 forms an island in Vf mode, its partner at 21 draws from the feeder
    net = sopjax.ieee33()
    status = net.branch_status(open=[2])
    vf_bus, partner = net.bus_index(8), net.bus_index(21)
    vf = VfCoupling(
        vf_bus=np.array([vf_bus, 0]), partner_bus=np.array([partner, 0]),
        loss_vf=np.array([0.02, 0.02]), loss_partner=np.array([0.03, 0.02]), q_partner=np.array([0.05, 0.0]),
        active=np.array([True, False]),  # an unused row, as in stacked strategies
    )  # fmt: skip
    topo = compile_topology(net, status, sources=[vf_bus])
    v = np.full(net.n_bus, 1.0)
    v[vf_bus] = 1.03
    grid = make_grid(net, topo, v_source_pu=v)
    p, q = loads(net, 13, seed=12)
    p[4] *= 80  # voltage collapse: reported, not NaN
    q[4] *= 80
    ref = batched_solver(layout="vmap")(topo, grid, net.f_bus, p, q, vf)
    got = batched_solver(layout="bus_major", chunk_size=8)(topo, grid, net.f_bus, p, q, vf)
    np.testing.assert_array_equal(got.converged, ref.converged)
    assert not got.converged[4] and got.converged.sum() == 12
    assert np.all(np.isfinite(np.asarray(got.vm_pu)))
    ok = np.asarray(ref.converged)
    for name in got._fields:
        if name not in ("converged", "iterations"):
            a, b = np.asarray(getattr(got, name))[ok], np.asarray(getattr(ref, name))[ok]
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-8, err_msg=name)
    # the partner draws the island's power plus both converter losses (DC balance)
    s_vf = got.p_source_pu[ok, vf_bus] + 1j * got.q_source_pu[ok, vf_bus]
    island = np.asarray(topo.root) == vf_bus
    assert np.all(s_vf.real > p[ok][:, island].sum(1))  # island load plus its line losses
    with pytest.raises(SopjaxError, match="iteration 'current' does not handle Vf"):
        batched_solver(layout="bus_major", iteration="current")(topo, grid, net.f_bus, p, q, vf)
