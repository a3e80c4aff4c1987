"""sopjax.kernels.robustness: first-order and refined worst-case radius against brute force."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from sopjax.kernels.robustness import first_order_radius, lp_norm, project_ball, worst_case_radius

A = jnp.array([[[1.0, 2.0], [0.5, -1.0]], [[3.0, 0.0], [0.0, 0.2]]])  # design, objective, param


def _fun(d):
    return jnp.einsum("dop,dp->do", A, d) + 0.3 * jnp.sum(d**2, -1, keepdims=True)


def _brute_force(fun, tol, design, p, n_dir=361, radii=np.linspace(0, 4, 801)):
    """Smallest sampled radius with a sampled point out of tolerance (an upper bound of R_W)."""
    th = np.linspace(0, 2 * np.pi, n_dir)
    u = np.stack([np.cos(th), np.sin(th)], 1)
    u = u / np.asarray(lp_norm(jnp.asarray(u), p))[:, None]
    f0 = np.asarray(fun(jnp.zeros((2, 2))))[design]
    pts = (radii[:, None, None] * u[None]).reshape(-1, 2)  # (radius * direction, param)
    d = np.zeros((pts.shape[0], 2))
    batch = jnp.asarray(np.stack([d, d], 1)).at[:, design].set(pts)  # (point, design, param)
    f = np.asarray(jax.vmap(fun)(batch))[:, design].reshape(len(radii), n_dir, -1)
    bad = np.any(np.max(np.abs(f - f0) / tol, -1) > 1, -1)
    return float(radii[np.argmax(bad)]) if bad.any() else math.inf


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
def test_refined_radius_agrees_with_brute_force_sampling(p):
    tol = jnp.full((2, 2), 0.5)
    res = worst_case_radius(_fun, tol, 2, p=p, r_max=4.0, bisection_steps=12)
    resolution = 4.0 / 2**12 + 4.0 / 800
    for design in range(2):
        bf = _brute_force(_fun, 0.5, design, p)
        assert abs(float(res.radius[design]) - bf) <= 2 * resolution + 2e-3 * bf, (p, design, res.radius, bf)
        # the first-order estimate's error on this quadratic case (reported, bounded)
        assert abs(float(res.first_order[design]) - bf) / bf < 0.1
        assert float(res.worst_ratio[design]) > 1.0


def test_a_supplied_value_and_jacobian_gives_the_same_radius():
    """``jac=`` (e.g. the allocation's batched implicit derivatives) replaces the per-direction JVPs."""
    def value_and_jac(d):  # analytic Jacobian of _fun
        return _fun(d), A + 0.6 * d[:, None, :]

    tol = jnp.full((2, 2), 0.5)
    ref = worst_case_radius(_fun, tol, 2, p=2.0, r_max=4.0, bisection_steps=10)
    got = worst_case_radius(_fun, tol, 2, p=2.0, r_max=4.0, bisection_steps=10, jac=value_and_jac)
    for a, b in zip(ref, got):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-12, atol=1e-12)


def test_first_order_radius_is_exact_for_affine_objectives():
    J = jnp.array([[[1.0, 2.0], [0.5, -1.0]]])
    tol = jnp.array([[0.5, 0.25]])
    r2 = float(first_order_radius(J, tol, 2.0)[0])
    assert r2 == pytest.approx(min(0.5 / np.hypot(1, 2), 0.25 / np.hypot(0.5, 1)))
    res = worst_case_radius(lambda d: jnp.einsum("dop,dp->do", J, d), tol, 2, p=2.0, bisection_steps=14)
    assert float(res.radius[0]) == pytest.approx(r2, abs=4.0 / 2**14)


def test_projection_lands_in_the_ball():
    x = jnp.array([[3.0, -1.0, 0.5], [0.1, 0.1, 0.1]])
    r = jnp.array([1.0, 1.0])
    for p in (1.0, 2.0, math.inf):
        y = project_ball(x, r, p)
        assert np.all(np.asarray(lp_norm(y, p)) <= 1.0 + 1e-12)
        np.testing.assert_allclose(y[1], x[1])  # inside: unchanged


def _radius(t):
    return worst_case_radius(_fun, t, 2, p=2.0, r_max=4.0, bisection_steps=10).radius


@settings(max_examples=10, deadline=None)
@given(t1=hst.floats(0.05, 1.0), factor=hst.floats(1.0, 3.0))
def test_loosening_a_tolerance_never_shrinks_the_radius(t1, factor):
    run = _radius
    tight = jnp.array([[t1, 0.5], [t1, 0.5]])
    loose = tight.at[:, 0].multiply(factor)
    assert np.all(np.asarray(run(loose)) >= np.asarray(run(tight)) - 1e-12)
