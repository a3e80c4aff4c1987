"""Allocation speed: one batched JAX population evaluation vs the naive element-wise pandapower way.

    .venv/bin/python benchmarks/allocation_bench.py                   # population evaluation ratio
    .venv/bin/python benchmarks/allocation_bench.py --ga 100 100      # also a full NSGA-II run, timed

Both sides score the same random plans of ``configs/seed001_allocation.toml`` (IEEE 33, 24 periods):

* ``sopjax``: :func:`sopjax.problems.allocation.evaluate_plans` on the whole population in one
  jitted call: SOP dispatch (interior point) + exact sweep + indices + first-order robustness
  derivatives + costs. Compilation is excluded (one warm-up call); the median of ``--repeat`` calls.
* ``naive``: what a pymoo element-wise problem does: per plan, per period, one pandapower
  ``runpp`` (Newton-Raphson, numba) with the net loads of that plan (loads, PV, capacitors and the
  SOP injections, which the naive side gets for free from sopjax's dispatch: it does strictly
  less work), then the voltage-offset index in numpy. Timed on ``--naive-plans`` plans and
  compared per plan.

Timings depend on the machine's load: compare the ratio printed in one run.
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
    ap.add_argument("--config", default=str(ROOT / "configs" / "seed001_allocation.toml"))
    ap.add_argument("--pop", type=int, default=100)
    ap.add_argument("--naive-plans", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ga", type=int, nargs=2, metavar=("POP", "GENS"), help="also time a full NSGA-II run")
    ap.add_argument("--compare-fd", action="store_true",
                    help='also time the "fd" robustness gradients (same plans, interleaved with the config\'s)')
    args = ap.parse_args(argv)

    import sopjax

    sopjax.configure_xla()
    from sopjax.bench.baselines import pandapower_loop
    from sopjax.kernels.indices import voltage_offset_index
    from sopjax.problems.allocation import evaluate_plans, study_from_config

    with open(args.config, "rb") as fh:
        cfg = tomllib.load(fh)
    study = study_from_config(cfg)
    m = study.model
    rng = np.random.default_rng(0)
    X = rng.integers(m.space.lower, m.space.upper + 1, (args.pop, m.space.n_var))

    studies = {m.settings.gradient: study}
    if args.compare_fd and m.settings.gradient != "fd":
        studies["fd"] = study_from_config({**cfg, "operation": {**cfg.get("operation", {}), "gradient": "fd"}})
    compile_s, times = {}, {g: [] for g in studies}
    for g, st in studies.items():
        t0 = time.perf_counter()
        evaluate_plans(st.model, st.costs, st.robustness, X)
        compile_s[g] = time.perf_counter() - t0
    for _ in range(args.repeat):  # interleaved
        for g, st in studies.items():
            t0 = time.perf_counter()
            evaluate_plans(st.model, st.costs, st.robustness, X)
            times[g].append(time.perf_counter() - t0)
    per_plan = {g: statistics.median(t) / args.pop for g, t in times.items()}
    ours = per_plan[m.settings.gradient]

    # naive: per plan and period one runpp at that plan's net loads
    n = args.naive_plans
    kva, cb = m.space.decode(X[:n])
    m.set_batch_size(args.pop)  # padded to the population: reuses the compiled evaluation
    op, _ = m.operate_with_jacobian(kva, cb)
    net = m.net
    bi, bj = np.asarray(net.sop.bus_i), np.asarray(net.sop.bus_j)
    T, nb = m.day.p_load_pu.shape
    p = np.repeat(m.day.p_load_pu[None], n, 0).copy()
    q = np.repeat(m.day.q_load_pu[None], n, 0) - m.cb_q_pu(cb)
    pv_bus = np.asarray(net.pv.bus)
    for k, b in enumerate(pv_bus):
        p[:, :, b] -= m.day.p_pv_pu[None, :, k]
    for s in range(len(bi)):
        p[:, :, bi[s]] -= op.p_i[:, :, s]
        p[:, :, bj[s]] -= op.p_j[:, :, s]
        q[:, :, bi[s]] -= op.q_i[:, :, s]
        q[:, :, bj[s]] -= op.q_j[:, :, s]
    t0 = time.perf_counter()
    offs = []
    for k in range(n):  # element-wise: one plan at a time
        base = pandapower_loop(net, p[k], q[k])
        offs.append(float(voltage_offset_index(base.vm_pu[None], bus_mask=np.arange(nb) != net.slack_bus)[0]))
    naive = (time.perf_counter() - t0) / n
    err = np.max(np.abs(np.asarray(offs) - op.offset))
    print(f"IEEE 33, {T} periods, {m.space.n_var} decision variables; population {args.pop}")
    print(f"  sopjax batched evaluation (dispatch + sweep + indices + robustness gradients "
          f"[{m.settings.gradient}] + costs): "
          f"{ours * 1e3:9.2f} ms/plan  (median of {args.repeat}, compile {compile_s[m.settings.gradient]:.1f} s)")
    if "fd" in per_plan and m.settings.gradient != "fd":
        print(f"  the same with forward-difference gradients [fd]: {per_plan['fd'] * 1e3:9.2f} ms/plan  "
              f"(compile {compile_s['fd']:.1f} s); {m.settings.gradient} is {per_plan['fd'] / ours:.2f}x faster")
    print(f"  naive element-wise pandapower runpp per plan x period (power flow + offset only): "
          f"{naive * 1e3:9.2f} ms/plan  ({n} plans)")
    print(f"  ratio naive / sopjax: {naive / ours:.1f}x   (offset index agreement: max |diff| {err:.2e})")

    if args.ga:
        from sopjax.problems.allocation import AllocationProblem, GASettings, run_nsga2

        pop, gens = args.ga
        ga = GASettings(pop_size=pop, generations=gens, seed=1)
        t0 = time.perf_counter()
        res = run_nsga2(AllocationProblem(m, study.costs, study.robustness, study.objectives), ga, progress=False)
        wall = time.perf_counter() - t0
        print(f"  NSGA-II {pop} plans x {gens} generations, {T} periods: {wall:.1f} s wall "
              f"({wall / 60:.1f} min, compile included), front {len(res.X)} plans, {res.n_evals} evaluations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
