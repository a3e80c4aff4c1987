"""First-order vs refined worst-case radius vs brute-force sampling, on an analytic two-design case.

    .venv/bin/python experiments/seed001/radius_check.py
    .venv/bin/python experiments/seed001/radius_check.py --ieee33 10   # and N plans of seed 001

With ``--ieee33 N``: the refined radius (full re-dispatch at every trial point) of ``N`` random
plans of ``configs/seed001_allocation.toml`` (every site with at least one module) next to the
GA's first-order estimate, and the wall time of the refinement (its first call, compilation
included, and a second call on the same plans).

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


def ieee33(n: int) -> None:
    import time
    import tomllib
    from pathlib import Path

    from sopjax.problems.allocation import evaluate_plans, study_from_config
    from sopjax.problems.allocation.robust import refine_radius

    root = Path(__file__).resolve().parents[2]
    with open(root / "configs" / "seed001_allocation.toml", "rb") as fh:
        study = study_from_config(tomllib.load(fh))
    m = study.model
    X = np.random.default_rng(0).integers(m.space.lower, m.space.upper + 1, (n, m.space.n_var))
    X[:, : m.space.n_sop] = np.maximum(X[:, : m.space.n_sop], 1)
    ev = evaluate_plans(m, study.costs, study.robustness, X)
    kva, cb = m.space.decode(X)
    f0 = np.stack([ev["offset"], ev["utilization"]], -1)
    walls = []
    for _ in range(2):
        t0 = time.perf_counter()
        rr = refine_radius(study.robustness, m, kva, cb, f0)
        walls.append(time.perf_counter() - t0)
    err = 100 * (rr.first_order - rr.radius) / rr.radius
    print(f"\nIEEE 33, seed 001 config (p = {study.robustness.p:g}), {n} random plans:")
    print(f"{'plan':>4} {'refined':>9} {'first-order':>12} {'first-order - refined':>22}")
    for k in range(n):
        print(f"{k:>4} {rr.radius[k]:9.4f} {rr.first_order[k]:12.4f} {err[k]:21.1f}%")
    print(f"refinement wall time: {walls[0]:.0f} s (first call, compilation included), {walls[1]:.0f} s (second call)"
          f"; first-order error median {np.median(np.abs(err)):.1f} %, max {np.max(np.abs(err)):.1f} %")


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ieee33", type=int, metavar="N", help="also refine N random plans of the seed 001 study")
    args = ap.parse_args()
    print(f"{'p':>4} {'design':>6} {'refined':>9} {'first-order':>12} {'brute force':>12} {'first-order error':>18}")
    for p in (1.0, 2.0, math.inf):
        res = worst_case_radius(fun, jnp.full((2, 2), 0.5), 2, p=p, r_max=4.0, bisection_steps=14)
        for d in range(2):
            bf = brute_force(d, p)
            r1 = float(res.first_order[d])
            print(f"{p:>4} {d:>6} {float(res.radius[d]):9.4f} {r1:12.4f} {bf:12.4f} {100 * (r1 - bf) / bf:17.1f}%")
    if args.ieee33:
        ieee33(args.ieee33)


if __name__ == "__main__":
    main()
