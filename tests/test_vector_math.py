"""The elementwise atan2 used by the batched kernels agrees with numpy's to about 1 ulp."""

import jax
import numpy as np

from sopjax.kernels.vector_math import atan2


def test_atan2_matches_numpy_in_every_quadrant_and_range():
    rng = np.random.default_rng(0)
    n = 200_000
    y = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 3, n)
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 3, n)
    edges_y = np.array([0.0, 1.0, -1.0, 1.0, -1.0, 1e-300, 2.4142135623730951, 0.66, -0.66])
    edges_x = np.array([1.0, 0.0, 0.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0])
    y, x = np.concatenate([y, edges_y]), np.concatenate([x, edges_x])
    got = np.asarray(jax.jit(atan2)(y, x))
    want = np.arctan2(y, x)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=5e-16, atol=5e-16)


def test_atan2_float32():
    rng = np.random.default_rng(1)
    y, x = rng.standard_normal((2, 10_000)).astype(np.float32)
    got = np.asarray(jax.jit(atan2)(y, x))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.arctan2(y, x), rtol=0, atol=1e-6)
