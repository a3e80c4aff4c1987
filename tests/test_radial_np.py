"""numpy twins equal the JAX kernels they mirror (sopjax.kernels.radial_np vs sopjax.kernels.radial)."""

import numpy as np
import pytest

import sopjax
from sopjax.kernels.radial import sweep_power_flow, vdcq_power
from sopjax.kernels.radial_np import radial_sweep, vdcq_power_np
from sopjax.powerflow import make_grid
from sopjax.topology import compile_topology


def test_vdcq_power_np_equals_the_kernel():
    rng = np.random.default_rng(3)
    p_other = rng.uniform(-0.3, 0.3, 50)
    q_other = rng.uniform(-0.2, 0.2, 50)
    loss_other, a = rng.uniform(0.0, 0.05, 50), rng.uniform(0.0, 0.05, 50)
    q = rng.uniform(-0.2, 0.2, 50)
    s_other = np.hypot(p_other, q_other)
    expected = np.asarray(vdcq_power(p_other, loss_other, s_other, a, q))  # sopjax enables float64
    np.testing.assert_allclose(vdcq_power_np(p_other, loss_other, s_other, a, q), expected, rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("opened", [[33, 34, 35, 36, 37], [7, 9, 14, 32, 37]])
def test_radial_sweep_equals_the_sweep_kernel(opened):
    net = sopjax.ieee33()
    status = net.branch_status(open=opened, close=[k for k in (33, 34, 35, 36, 37) if k not in opened])
    rng = np.random.default_rng(5)
    p = np.asarray(net.p_load_pu) * rng.uniform(0.5, 1.5, net.n_bus)
    q = np.asarray(net.q_load_pu) * rng.uniform(0.5, 1.5, net.n_bus)
    losses, vm = radial_sweep(net, status, p, q, tol=1e-12)
    topo = compile_topology(net, status)
    grid = make_grid(net, topo, np.full(net.n_bus, float(net.v_slack_pu)))
    res = sweep_power_flow(topo, grid, np.asarray(net.f_bus), p, q, tol=1e-12)
    assert bool(res.converged)
    np.testing.assert_allclose(vm, np.asarray(res.vm_pu), atol=1e-10)
    assert losses == pytest.approx(float(np.sum(res.p_loss_pu)), rel=1e-9)
