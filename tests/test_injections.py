"""Device injections: PV power factor, SOP DC-link balance with converter losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sopjax.kernels.injections import pv_net_load, sop_pq_net_load
from sopjax.kernels.radial import vdcq_power


def test_pv_is_negative_load_with_power_factor():
    p, q = pv_net_load(jnp.array([2, 2, 4]), jnp.array([0.95, 1.0, 0.8]), jnp.array([0.1, 0.2, 0.3]), 6)
    np.testing.assert_allclose(p, [0, 0, -0.3, 0, -0.3, 0])
    q_expected = -0.1 * np.tan(np.arccos(0.95))
    np.testing.assert_allclose(q, [0, 0, q_expected, 0, -0.3 * 0.75, 0], atol=1e-12)


@pytest.mark.parametrize("p_i, q_i, q_j, a", [(0.15, 0.05, -0.02, 0.02), (-0.1, 0.0, 0.08, 0.05), (0.0, 0.1, 0.1, 0.01)])
def test_sop_dc_balance(p_i, q_i, q_j, a):
    args = [jnp.array([x]) for x in (p_i, q_i, q_j)]
    p, q, p_j, loss = sop_pq_net_load(jnp.array([1]), jnp.array([3]), jnp.array([a]), jnp.array([a]),
                                      *args, 5)
    l_i = a * np.hypot(p_i, q_i)
    l_j = a * np.hypot(float(p_j[0]), q_j)
    assert p_i + float(p_j[0]) + l_i + l_j == pytest.approx(0, abs=1e-14)
    assert float(loss[0]) == pytest.approx(l_i + l_j)
    assert float(p[1]) == -p_i and float(p[3]) == pytest.approx(-float(p_j[0]))
    assert float(q[3]) == -q_j


