"""sopjax.kernels.indices against numpy references written from the definitions."""

import jax.numpy as jnp
import numpy as np
import pytest

from sopjax.kernels.indices import line_vcpi, sop_utilization_index, voltage_offset_index


def test_voltage_offset_index_matches_numpy_reference():
    rng = np.random.default_rng(0)
    vm = 1.0 + 0.05 * rng.standard_normal((3, 4, 6))  # plan, period, bus
    mask = np.array([0, 1, 1, 1, 1, 1.0])
    dev = np.abs(vm - 1.0)
    ref_mean = np.mean(np.sum(dev * mask, -1) / 5, -1)
    ref_rms = np.sqrt(np.mean(np.sum(dev**2 * mask, -1) / 5, -1))
    ref_max = np.mean(np.max(dev * mask, -1), -1)
    for norm, ref in (("mean_abs", ref_mean), ("rms", ref_rms), ("max_abs", ref_max)):
        got = voltage_offset_index(jnp.asarray(vm), norm=norm, bus_mask=mask)
        np.testing.assert_allclose(got, ref, rtol=1e-12)
    with pytest.raises(ValueError, match="offset norm"):
        voltage_offset_index(jnp.asarray(vm), norm="l7")


def test_sop_utilization_matches_numpy_reference_and_is_zero_without_sop():
    rng = np.random.default_rng(1)
    p_i, q_i, p_j, q_j = (rng.uniform(-0.1, 0.1, (2, 5, 3)) for _ in range(4))
    cap = np.array([[0.2, 0.15, 0.1], [0.0, 0.0, 0.0]])
    used = np.hypot(p_i, q_i) + np.hypot(p_j, q_j)
    ref0 = used[0].sum() / (2 * cap[0].sum() * 5)
    got = np.asarray(sop_utilization_index(*(jnp.asarray(a) for a in (p_i, q_i, p_j, q_j)), jnp.asarray(cap)))
    np.testing.assert_allclose(got, [ref0, 0.0], rtol=1e-12)


def test_line_vcpi_equals_the_moghavvemi_faruque_ratio():
    """VCPI = P_r / P_r,max with the textbook P_r,max (cos form), receiving end = downstream end."""
    r, x = np.array([0.02, 0.05]), np.array([0.04, 0.03])
    p_f, q_f = np.array([0.3, -0.2]), np.array([0.1, -0.05])
    vm = np.array([1.0, 0.97, 0.99])
    f_bus, t_bus = np.array([0, 0]), np.array([1, 2])
    i = np.array([np.hypot(0.3, 0.1) / 1.0, np.hypot(0.2, 0.05) / 0.99])
    got = np.asarray(line_vcpi(*(jnp.asarray(a) for a in (p_f, q_f, i, vm)), f_bus, t_bus, r, x))
    ref = []
    for k in range(2):
        z, theta = np.hypot(r[k], x[k]), np.arctan2(x[k], r[k])
        if p_f[k] >= 0:  # power flows f -> t: receiving end t, sending voltage at f
            pr, qr, vs = p_f[k] - r[k] * i[k] ** 2, q_f[k] - x[k] * i[k] ** 2, vm[f_bus[k]]
        else:
            pr, qr, vs = -p_f[k], -q_f[k], vm[t_bus[k]]
        phi = np.arctan2(qr, pr)
        pmax = vs**2 / z * np.cos(phi) / (4 * np.cos((theta - phi) / 2) ** 2)
        ref.append(pr / pmax)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
