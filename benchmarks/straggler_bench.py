"""Straggler stages of the batched dispatch: one stage against the recursive stages, same batch, one run.

    .venv/bin/python benchmarks/straggler_bench.py [--pop 100] [--repeat 5]

The batch is the IEEE 33 allocation study's (``configs/seed001_allocation.toml``): ``pop`` random
plans x 24 periods, five SOPs. Both variants of :func:`sopjax.kernels.dispatch.dispatch_state_batch`
are compiled in this process and timed alternately (medians); they must give identical iterates.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pop", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    import sopjax

    sopjax.configure_xla()
    import jax
    import jax.numpy as jnp

    import sopjax.kernels.dispatch.solve as solve
    from sopjax.kernels.dispatch import DispatchInputs, compile_dispatch
    from sopjax.problems.allocation import study_from_config

    with open(ROOT / "configs" / "seed001_allocation.toml", "rb") as fh:
        study = study_from_config(tomllib.load(fh))
    m, s = study.model, study.model.settings
    X = np.random.default_rng(0).integers(m.space.lower, m.space.upper + 1, (args.pop, m.space.n_var))
    caps, cbq = m._device_inputs(*m.space.decode(X))
    n, nt, nb = args.pop, m.day.periods, m.net.n_bus
    flat = lambda a: jnp.reshape(a, (n * nt, a.shape[-1]))  # noqa: E731
    inp = DispatchInputs(flat(jnp.broadcast_to(jnp.asarray(m.day.p_load_pu), (n, nt, nb))),
                         flat(jnp.asarray(m.day.q_load_pu)[None] - cbq),
                         flat(jnp.broadcast_to(jnp.asarray(m.day.p_pv_pu), (n, nt, m.net.pv.count))),
                         flat(jnp.broadcast_to(caps[:, None], (n, nt, caps.shape[1]))),
                         flat(jnp.broadcast_to(caps[:, None], (n, nt, caps.shape[1]))))
    data = compile_dispatch(m.net, v_min_pu=s.v_min_pu, v_max_pu=s.v_max_pu)
    variants, default = {}, solve.MIN_STRAGGLER_BATCH
    for name, min_batch in (("one stage", 10**9), (f"stages down to {default}", default)):
        solve.MIN_STRAGGLER_BATCH = min_batch  # read when the program is traced
        f = jax.jit(lambda i: solve.dispatch_state_batch(data, i, tol=s.dispatch_tol, max_iter=s.dispatch_max_iter))
        t0 = time.perf_counter()
        out = jax.block_until_ready(f(inp))
        variants[name] = (f, out, time.perf_counter() - t0)
    solve.MIN_STRAGGLER_BATCH = default
    (a, b) = (v[1] for v in variants.values())
    same = all(bool(jnp.all(x == y)) for x, y in zip(a, b))
    times = {k: [] for k in variants}
    for _ in range(args.repeat):
        for k, (f, _, _) in variants.items():
            t0 = time.perf_counter()
            jax.block_until_ready(f(inp))
            times[k].append(time.perf_counter() - t0)
    it = np.asarray(a[4])
    print(f"IEEE 33 allocation batch: {n * nt} dispatch problems (iterations mean {it.mean():.1f}, max {it.max()})")
    for k, (_, _, c) in variants.items():
        print(f"  {k:24s} {statistics.median(times[k]) * 1e3:8.0f} ms (median of {args.repeat}), compile {c:.0f} s")
    (t1, t2) = (statistics.median(v) for v in times.values())
    print(f"  ratio one stage / stages: {t1 / t2:.2f}x   identical iterates: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
