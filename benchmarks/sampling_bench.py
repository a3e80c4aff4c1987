"""``python benchmarks/sampling_bench.py``: sampler throughput and scheme accuracy on IEEE 33.

Prints, in one run:

1. samples per second of :meth:`UncertaintyModel.sample` for each scheme
   (IEEE 33 with a 1 MVA PV unit at bus 30, single period, float64; first-call
   compile time shown separately), next to a NumPy/SciPy baseline doing the
   same maths on the host (``Generator.random`` uniforms,
   ``scipy.stats.truncnorm.ppf`` for the PV, ``scipy.stats.norm.ppf`` for the loads);
2. the same for a 24-hour model (RTS-79 summer profile, clear-sky PV, AR(1));
3. the spread (standard deviation over ``--reps`` keys) of two sample-mean
   estimates at ``n = --n-est`` for each scheme, relative to plain Monte Carlo:
   the mean PV output (truncated at the rating) and the probability that the
   total net load exceeds its nominal value.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np


def _timed(fn, repeat: int = 3) -> tuple[float, float]:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return first, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks/sampling_bench.py", description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2**16, help="samples per timed call (default 65536)")
    ap.add_argument("--n-est", type=int, default=1024, help="samples per estimate (default 1024)")
    ap.add_argument("--reps", type=int, default=32, help="keys per scheme for the spread (default 32)")
    args = ap.parse_args(argv)

    from scipy import stats

    import sopjax

    from sopjax.sampling import UncertaintyModel, clear_sky_pv_profile, pv_forecast

    net = sopjax.add_pv(sopjax.ieee33(), buses=[30], s_rated_kva=1000, pf=0.95)
    fc = np.array([950.0 / 1e3 / net.base_mva])  # forecast 950 kW: truncation at the rating matters
    key = jax.random.key(0)
    n = args.n
    print(f"sopjax.sampling on {jax.devices()[0].platform}, IEEE 33 + PV 1 MVA at bus 30, forecast 950 kW")
    print(f"\n1) single period, n = {n}, float64 (best of 3 after a first, compiling call)")
    print(f"{'scheme':<22}{'first call s':>14}{'best s':>10}{'samples/s':>14}{'vs numpy/scipy':>16}")

    p0, q0 = np.asarray(net.p_load_pu), np.asarray(net.q_load_pu)
    s_rated = float(net.pv.s_rated_pu[0])

    def host():
        u = np.random.default_rng(0).random((n, 34))
        mu, sd = fc[0], 0.1 * fc[0]
        pv = stats.truncnorm.ppf(u[:, :1], -mu / sd, (s_rated - mu) / sd, loc=mu, scale=sd)
        f = np.maximum(1.0 + 0.05 * stats.norm.ppf(u[:, 1:]), 0.0)
        return pv, f * p0, f * q0

    t0 = time.perf_counter()
    host()
    t_host = time.perf_counter() - t0
    for scheme in ("mc", "lhs", "sobol"):
        model = UncertaintyModel(scheme=scheme)
        first, best = _timed(lambda m=model: m.sample(net, fc, key=key, n=n).p_load_pu)
        print(f"{scheme:<22}{first:>14.2f}{best:>10.3f}{n / best:>14.3g}{t_host / best:>15.1f}x")
    print(f"{'numpy/scipy (host)':<22}{'':>14}{t_host:>10.3f}{n / t_host:>14.3g}{1.0:>15.1f}x")

    n24 = max(n // 16, 1)
    fc24 = pv_forecast(net, clear_sky_pv_profile(latitude_deg=30.0), peak_frac=0.95)
    model24 = UncertaintyModel(scheme="sobol", load_profile="rts79_summer_weekday", time_rho=0.6)
    first, best = _timed(lambda: model24.sample(net, fc24, key=key, n=n24).p_load_pu)
    print(f"\n2) 24 h, sobol, AR(1) rho 0.6, n = {n24} days ({24 * 34} uniforms per day)")
    print(f"   first call {first:.2f} s, best {best:.3f} s, {n24 / best:.3g} days/s")

    print(f"\n3) spread of sample-mean estimates over {args.reps} keys, n = {args.n_est}")
    print(f"{'scheme':<10}{'sd mean PV (kW)':>18}{'ratio to mc':>13}{'sd P(net>nom)':>16}{'ratio to mc':>13}")
    base = None
    kw = 1e3 * net.base_mva
    p_nom = float(p0.sum() - fc[0])
    for scheme in ("mc", "lhs", "sobol"):
        model = UncertaintyModel(scheme=scheme)
        est_pv, est_p = [], []
        for r in range(args.reps):
            s = model.sample(net, fc, key=jax.random.key(1000 + r), n=args.n_est)
            pv = np.asarray(s.p_pv_pu)[:, 0]
            est_pv.append(pv.mean() * kw)
            est_p.append(np.mean(np.asarray(s.p_load_pu).sum(axis=1) - pv > p_nom))
        sd = (np.std(est_pv, ddof=1), np.std(est_p, ddof=1))
        base = base or sd
        print(f"{scheme:<10}{sd[0]:>18.4f}{sd[0] / base[0]:>13.3f}{sd[1]:>16.5f}{sd[1] / base[1]:>13.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
