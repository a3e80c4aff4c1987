"""The Python boundary: clear errors for bad input, batched loads."""

import numpy as np
import pytest

import sopjax
from sopjax.errors import SopjaxError, TopologyError


def test_batch_of_loads_matches_single_solves():
    net = sopjax.ieee33()
    p = np.stack([net.p_load_pu * s for s in (0.5, 1.0, 1.5)])
    q = np.stack([net.q_load_pu * s for s in (0.5, 1.0, 1.5)])
    batch, _ = sopjax.solve(net, p_load_pu=p, q_load_pu=q)
    assert batch.vm_pu.shape == (3, 33)
    single, _ = sopjax.solve(net, load_scale=1.5)
    np.testing.assert_allclose(batch.vm_pu[2], single.vm_pu, atol=1e-14)
    assert np.all(np.diff(batch.losses_pu) > 0)


def test_nan_load_names_bus_and_sample():
    net = sopjax.ieee33()
    p = np.tile(net.p_load_pu, (4, 1))
    p[2, 17] = np.nan
    with pytest.raises(SopjaxError, match="p_load is not finite at bus 18 in sample 2"):
        sopjax.solve(net, p_load_pu=p, q_load_pu=np.tile(net.q_load_pu, (4, 1)))


def test_wrong_load_shape():
    net = sopjax.ieee33()
    with pytest.raises(SopjaxError, match="p_load has 32 buses, the network has 33"):
        sopjax.solve(net, p_load_pu=np.ones(32), q_load_pu=np.ones(33))


def test_meshed_topology_is_an_error():
    with pytest.raises(TopologyError, match="closed loop through branches"):
        sopjax.solve(sopjax.ieee33(), close=[33])


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="newton"), "unknown power-flow method 'newton'"),
    (dict(dtype="float16"), "dtype must be float32 or float64"),
    (dict(tol=-1.0), "tol must be positive"),
    (dict(dtype="float32", tol=1e-8), "tol 1e-08 is below what float32 resolves"),
    (dict(load_scale=float("nan")), "load_scale must be finite"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(SopjaxError, match=message):
        sopjax.solve(sopjax.ieee33(), **kwargs)


def test_float32_default_tolerance_is_one_it_can_meet():
    # the float64 default (1e-8) is below float32 rounding near 1 p.u.: the default follows the dtype
    net = sopjax.ieee33()
    f = np.random.default_rng(5).uniform(0.5, 1.5, size=(200, net.n_bus))
    res, _ = sopjax.solve(net, p_load_pu=net.p_load_pu * f, q_load_pu=net.q_load_pu * f, dtype="float32")
    assert res.vm_pu.dtype == np.float32 and res.converged.all() and res.iterations.max() < 20
    assert sopjax.powerflow.resolve_tol(None, "float64") == 1e-8
