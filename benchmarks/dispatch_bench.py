"""Differentiable SOP dispatch: forward + backward per problem, three paths, ratios in one run.

    .venv/bin/python benchmarks/dispatch_bench.py               # batch 256, naive baseline on 32
    .venv/bin/python benchmarks/dispatch_bench.py 256 256       # naive baseline on the full batch
    .venv/bin/python benchmarks/dispatch_bench.py 256 32 9      # 9 interleaved rounds

IEEE 33 with three SOPs (tie positions 12-22, 18-33, 25-29; 200 kVA per VSC, loss
0.02) and seed 002's PV fleet (buses 7, 13, 30). A batch of random operating
points (loads x U(0.7, 1.3) per bus, PV x U(0, 2.5) of nominal, VSC capacities
U(50, 500) kVA so that some bind and some do not). "Forward + backward" is
``jax.grad`` of the summed optimal objective w.r.t. all inputs (loads, PV,
capacities).

Paths:
  naive      cvxpylayers + Clarabel with cvxpylayers' stock diffcp context
             (LSQR adjoint), DispatchLayer(mode="lsqr"); timed on the first
             ``naive_batch`` problems (it is a per-problem loop, so per-problem
             time does not depend on the batch).
  layer      cvxpylayers + Clarabel with sopjax's exact sparse adjoint,
             DispatchLayer(mode="exact") (default), on the whole batch.
  layer x2   the same with n_jobs=2 (Clarabel and SuperLU release the GIL: the
             wall time can drop, the CPU time cannot).
  jax        the JAX-native interior-point dispatch, whole batch at once
             (dispatch_batched: sample-minor layout, straggler stage),
             jit(value_and_grad), compiled first; the objective's gradient is
             the envelope-theorem one (one reverse pass at the solution).
  jax vmap   the per-sample solver under vmap (dispatch_native), for reference.

The three paths run in ``rounds`` interleaved rounds (default 5); the table
reports the median per problem.

Accuracy (same run): JAX objective vs the layer's SOC optimum (relative), and JAX
gradients vs the layer's (error relative to each problem's largest gradient).
Wall time and process CPU time are both reported (the machine may be shared).
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import sopjax
from sopjax.kernels.dispatch import DispatchInputs, compile_dispatch, dispatch_batched, dispatch_native, nominal_inputs
from sopjax.problems.dispatch import DispatchLayer, build_dispatch

from sopjax.jax_config import configure_xla

configure_xla()  # the XLA flags the CLI sets (sopjax.jax_config)


def problems(n: int, seed: int = 0):
    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=[300, 200, 200], pf=0.95)
    net = sopjax.add_sops(net, pairs=[(12, 22), (18, 33), (25, 29)], s_rated_kva=200, loss=0.02)
    nom = nominal_inputs(net)
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.7, 1.3, (n, net.n_bus))
    cap = rng.uniform(0.005, 0.05, (n, 3))
    inp = DispatchInputs(nom.p_load_pu * f, nom.q_load_pu * f, nom.p_pv_pu * rng.uniform(0.0, 2.5, (n, 3)),
                         cap, cap * rng.uniform(0.8, 1.2, (n, 3)))
    return net, jax.tree_util.tree_map(jnp.asarray, inp)


def timed(fn, *args, repeat=1):
    best = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        out = jax.block_until_ready(fn(*args))
        w, c = time.perf_counter() - w0, time.process_time() - c0
        best = (w, c) if best is None or w < best[0] else best
    return out, best


def main(batch: int = 256, naive_batch: int = 32, rounds: int = 5) -> None:
    net, inp = problems(batch)
    data = compile_dispatch(net)
    model = build_dispatch(data)
    print(f"IEEE 33, 3 SOPs, batch {batch}: forward + backward "
          "(grad of the summed objective w.r.t. all inputs)")
    print(f"jax {jax.__version__}, devices {jax.devices()}", flush=True)

    naive = DispatchLayer(model, mode="lsqr")
    sub = jax.tree_util.tree_map(lambda a: a[:naive_batch], inp)
    g_naive = jax.grad(lambda i: jnp.sum(naive(i).objective))
    g_naive(sub)  # warm-up: cvxpylayers' eager JAX ops compile once per batch shape
    layer = DispatchLayer(model)
    g_layer = jax.grad(lambda i: jnp.sum(layer(i).objective))
    g_layer(inp)  # warm-up (as above)
    layer2 = DispatchLayer(model, n_jobs=2)
    g_layer2 = jax.grad(lambda i: jnp.sum(layer2(i).objective))
    g_layer2(inp)

    def one(i):
        r = dispatch_native(data, i)
        return r.objective, r

    run_vmap = jax.jit(jax.vmap(jax.value_and_grad(one, has_aux=True)))
    jax.block_until_ready(run_vmap(inp))

    def summed(i):
        r = dispatch_batched(data, i)
        return jnp.sum(r.objective), r

    grad_batch = jax.jit(jax.value_and_grad(summed, has_aux=True))

    def run(i):
        (_, r), g = grad_batch(i)
        return (r.objective, r), g

    t0 = time.perf_counter()
    jax.block_until_ready(run(inp))
    compile_s = time.perf_counter() - t0

    # interleaved rounds (the machine may be shared): median per path
    names = ["cvxpylayers + Clarabel, diffcp LSQR (naive)", "cvxpylayers + Clarabel, exact sparse adjoint",
             "JAX-native IPM, batched (jit)", "exact sparse adjoint, 2 worker threads",
             "JAX-native IPM, per sample (jit+vmap)"]
    calls = [(g_naive, sub, naive_batch), (g_layer, inp, batch), (run, inp, batch), (g_layer2, inp, batch),
             (run_vmap, inp, batch)]
    times = {k: [] for k in names}
    for _ in range(rounds):
        for name, (fn, arg, n) in zip(names, calls):
            out, (w, c) = timed(fn, arg)
            times[name].append((w / n, c / n))
            if fn is g_layer:
                ref_grad = out
            elif fn is run:
                (obj, res), grad = out
    rows = {k: (float(np.median([t[0] for t in v])), float(np.median([t[1] for t in v])), n)
            for (k, v), (_, _, n) in zip(times.items(), calls)}
    ref = layer(inp)

    # accuracy of the JAX path against the layer (same problems)
    conv = np.asarray(res.converged)
    rel_val = np.abs(np.asarray(obj) / np.asarray(ref.objective) - 1.0)
    fields = ("s_rated_i_pu", "s_rated_j_pu", "p_pv_pu", "p_load_pu", "q_load_pu")
    scale = np.max([np.max(np.abs(np.asarray(getattr(ref_grad, f))), axis=1) for f in fields], axis=0)
    rel_grad = np.max([np.max(np.abs(np.asarray(getattr(grad, f)) - np.asarray(getattr(ref_grad, f))), axis=1)
                       for f in fields], axis=0) / scale

    print(f"\nmedian of {rounds} interleaved rounds")
    print(f"{'path':<46} {'ms/problem (wall)':>18} {'ms/problem (CPU)':>17} {'problems':>9}")
    for name, (w, c, n) in rows.items():
        print(f"{name:<46} {w * 1e3:>18.4f} {c * 1e3:>17.4f} {n:>9}")
    names = list(rows)
    wn, wl, wj, w2, wv = (rows[k][0] for k in names)
    cn, cl, cj, c2, cv = (rows[k][1] for k in names)
    print("\nratios (wall / CPU):")
    print(f"  naive layer / exact layer : {wn / wl:8.1f} x / {cn / cl:8.1f} x")
    print(f"  exact layer / JAX-native  : {wl / wj:8.1f} x / {cl / cj:8.1f} x")
    print(f"  naive layer / JAX-native  : {wn / wj:8.1f} x / {cn / cj:8.1f} x")
    print(f"  exact layer 1 / 2 workers : {wl / w2:8.1f} x / {cl / c2:8.1f} x  (wall is what 2 workers can buy)")
    print(f"  JAX per sample / batched  : {wv / wj:8.1f} x / {cv / cj:8.1f} x")
    print(f"\nJAX accuracy vs the SOC optimum on {batch} problems ({conv.mean():.0%} converged, "
          f"IPM iterations mean {np.mean(res.iterations):.1f}, max {np.max(res.iterations)}):")
    print(f"  optimal value : max relative error {rel_val.max():.2e} (target 1e-3)")
    print(f"  gradients     : max error / problem's largest gradient {rel_grad.max():.2e} (target 1e-2)")
    print(f"  JAX compile time {compile_s:.1f} s (not included above)")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*args)
