"""First-order vs refined worst-case radius vs brute-force sampling, on an analytic two-design case.

    .venv/bin/python experiments/seed001/radius_check.py

The case of ``tests/test_robustness.py``: ``f(delta) = A delta + 0.3 |delta|^2`` per design, tolerance
0.5 on both objectives. Prints, per norm p and design, the refined radius, the first-order estimate,
the brute-force radius (smallest sampled radius with a sampled point out of tolerance: 721
directions x 2001 radii on [0, 4]) and the first-order estimate's relative error.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.kernels.robustness import lp_norm, worst_case_radius

A = jnp.array([[[1.0, 2.0], [0.5, -1.0]], [[3.0, 0.0], [0.0, 0.2]]])


def fun(d):
    return jnp.einsum("dop,dp->do", A, d) + 0.3 * jnp.sum(d**2, -1, keepdims=True)


def brute_force(design, p, tol=0.5, n_dir=721, radii=np.linspace(0, 4, 2001)):
    th = np.linspace(0, 2 * np.pi, n_dir)
    u = np.stack([np.cos(th), np.sin(th)], 1)
    u = u / np.asarray(lp_norm(jnp.asarray(u), p))[:, None]
    f0 = np.asarray(fun(jnp.zeros((2, 2))))[design]
    pts = (radii[:, None, None] * u[None]).reshape(-1, 2)
    batch = jnp.zeros((len(pts), 2, 2)).at[:, design].set(jnp.asarray(pts))
    f = np.asarray(jax.vmap(fun)(batch))[:, design].reshape(len(radii), n_dir, -1)
    bad = np.any(np.max(np.abs(f - f0) / tol, -1) > 1, -1)
    return float(radii[np.argmax(bad)]) if bad.any() else math.inf


def main():
    print(f"{'p':>4} {'design':>6} {'refined':>9} {'first-order':>12} {'brute force':>12} {'first-order error':>18}")
    for p in (1.0, 2.0, math.inf):
        res = worst_case_radius(fun, jnp.full((2, 2), 0.5), 2, p=p, r_max=4.0, bisection_steps=14)
        for d in range(2):
            bf = brute_force(d, p)
            r1 = float(res.first_order[d])
            print(f"{p:>4} {d:>6} {float(res.radius[d]):9.4f} {r1:12.4f} {bf:12.4f} {100 * (r1 - bf) / bf:17.1f}%")


if __name__ == "__main__":
    main()
