"""Learned SOP dispatch vs the interior point and the cvxpylayers layer, one run, side by side.

    python benchmarks/learned_dispatch_bench.py [batch] [rounds]      # default 256 5

Needs ``results/ieee33_dataset.zarr`` and ``results/ieee33_dispatch`` (docs/surrogates.md:
``sopjax dataset configs/ieee33_dataset.toml ...``, ``sopjax train configs/ieee33_train_dispatch.toml``).

Problems: ``batch`` fresh operating points of the dataset's distribution (its draw with
seed + 10 000, configuration 0, no fault), solved by:

* learned: DispatchNet -> repair -> exact DistFlow at the repaired set-points -> objective
  and every constraint row (one jitted call on the batch);
* JAX interior point: ``dispatch_batched`` (jit), the reference optimum;
* cvxpylayers layer: ``DispatchLayer`` (Clarabel), forward only, the baseline of the target.

Reported: share feasible after repair (all rows of the dispatch problem, voltage limits
included, within 1e-6 p.u.), samples that fall back to the interior point (infeasible after
repair), the optimality gap against the interior point's objective on the samples the
interior point solves, an independent exact check (line losses at the repaired set-points
from the backward/forward sweep kernel), the capacity gradient through the learned
dispatch vs the interior point's envelope gradient (-capacity dual), and medians of
``rounds`` interleaved timings per problem with ratios.
"""

import json
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from sopjax.jax_config import configure_xla

configure_xla()

from sopjax.datasets import DatasetSpec, draw_inputs, network_from_attrs, open_store, power_flow_labels
from sopjax.kernels.dispatch import DispatchInputs, dispatch_batched
from sopjax.problems.dispatch import DispatchLayer, build_dispatch
from sopjax.surrogates.dispatch import dispatch_checked, load_dispatch

STORE, CKPT = "results/ieee33_dataset.zarr", "results/ieee33_dispatch"


def problems(n: int):
    ds = open_store(STORE)
    net = network_from_attrs(ds)
    d = {k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(ds.attrs["spec"]).items()}
    spec = DatasetSpec(
        samples=n,
        **{
            **d,
            "seed": d["seed"] + 10_000,
            "fault_fraction": 0.0,
            "held_out": 0,
            "configurations": 1,
            "split_fractions": (1.0, 0.0, 0.0, 0.0, 0.0),
        },
    )
    pool = np.asarray(ds["config_closed"].values[:1], bool)
    inp = draw_inputs(net, spec, pool, 0, n)
    return (
        net,
        pool[0],
        DispatchInputs(
            *(
                jnp.asarray(inp[k])
                for k in ("p_load_pu", "q_load_pu", "p_pv_pu", "s_rated_i_pu", "s_rated_j_pu")
            )
        ),
    )


def timed(fn, arg):
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(arg))
    return out, time.perf_counter() - t0


def sizing(ld, data, inp, kw, price=2e-3, steps=150):
    """One capacity S for every VSC, minimizing mean objective + price * total capacity (p.u.), by optax
    through each path; a grid of the interior point's cost checks both."""
    import optax

    n_sop = inp.s_rated_i_pu.shape[1]

    def at(s):
        full = jnp.full_like(inp.s_rated_i_pu, s)
        return inp._replace(s_rated_i_pu=full, s_rated_j_pu=full)

    paths = {"learned": lambda i: ld(i)["objective"], "interior point": lambda i: dispatch_batched(data, i).objective}
    lo, hi = 0.005, 0.05  # the training range of the capacities (p.u.)
    out = {}
    for name, f in paths.items():
        cost = jax.jit(jax.value_and_grad(lambda s, f=f: jnp.mean(f(at(s))) + price * 2 * n_sop * s))
        s, opt = jnp.asarray(0.02), optax.adam(1e-3)
        st = opt.init(s)
        t0 = time.perf_counter()
        for _ in range(steps):
            v, g = cost(s)
            upd, st = opt.update(g, st)
            s = jnp.clip(s + upd, lo, hi)
        out[name] = (float(s), float(v), time.perf_counter() - t0)
    grid = np.linspace(lo, hi, 19)
    ipm_cost = jax.jit(lambda s: jnp.mean(paths["interior point"](at(s))) + price * 2 * n_sop * s)
    costs = [float(ipm_cost(jnp.asarray(g))) for g in grid]
    print(f"optax capacity sizing ({inp.s_rated_i_pu.shape[0]} operating points, price {price} per p.u. of "
          f"capacity, {steps} Adam steps): " + "; ".join(
              f"{k}: S = {v[0] * kw:.1f} kVA, cost {v[1] * kw:.2f} kW-equiv. ({v[2]:.1f} s)" for k, v in out.items())
          + f"; interior-point grid (step {(grid[1] - grid[0]) * kw:.0f} kVA): S = {grid[int(np.argmin(costs))] * kw:.1f} kVA")


def main(batch: int = 256, rounds: int = 5) -> None:
    net, closed, inp = problems(batch)
    ld = load_dispatch(CKPT, net, closed)
    data = ld.data
    ld.check(inp)
    learned = eqx.filter_jit(lambda i: ld(i))
    ipm = jax.jit(lambda i: dispatch_batched(data, i))
    layer = DispatchLayer(build_dispatch(data))
    jax.block_until_ready(learned(inp))
    jax.block_until_ready(ipm(inp))
    layer(inp)  # warm-up (cvxpylayers compiles its JAX parameter maps once per batch shape)
    times = {
        "learned + repair + exact DistFlow": [],
        "JAX interior point (batched)": [],
        "cvxpylayers + Clarabel (forward)": [],
    }
    for _ in range(rounds):
        lr, t = timed(learned, inp)
        times["learned + repair + exact DistFlow"].append(t / batch)
        ref, t = timed(ipm, inp)
        times["JAX interior point (batched)"].append(t / batch)
        cv, t = timed(layer, inp)
        times["cvxpylayers + Clarabel (forward)"].append(t / batch)
    med = {k: float(np.median(v)) for k, v in times.items()}

    feas = np.asarray(lr["feasible"])
    ok = np.asarray(ref.converged)
    obj_l, obj_r = np.asarray(lr["objective"]), np.asarray(ref.objective)
    both = ok & feas
    gap = (obj_l[both] - obj_r[both]) / obj_r[both]
    kw = 1e3 * float(net.base_mva)
    print(
        f"IEEE 33, {net.sop.count} SOPs, configuration 0, batch {batch}; jax {jax.__version__}, "
        f"{jax.devices()[0].platform}"
    )
    print(
        f"interior point converged on {ok.sum()}/{batch} (the others have no feasible set-point: "
        "voltage below its limit with any SOP dispatch)"
    )
    print(
        f"feasible after repair: {feas.sum()}/{batch} ({100 * feas.mean():.1f} %); on the {ok.sum()} "
        f"problems the interior point solves: {(feas & ok).sum()}/{ok.sum()} "
        f"({100 * (feas & ok).sum() / max(ok.sum(), 1):.1f} %); max violation "
        f"{float(np.max(np.asarray(lr['violation']))):.2e} p.u."
    )
    chk = dispatch_checked(ld, inp)
    print(
        f"fallback to the interior point (dispatch_checked): {int(chk['fallback'].sum())} problems; "
        f"feasible after repair + fallback: {int(chk['feasible'].sum())}/{batch}"
    )
    print(
        f"optimality gap vs interior point ({both.sum()} problems): mean {100 * gap.mean():.3f} %, "
        f"median {100 * np.median(gap):.3f} %, max {100 * gap.max():.3f} %, min {100 * gap.min():.4f} %; "
        f"mean objective {obj_r[both].mean() * kw:.2f} kW (interior point) vs {obj_l[both].mean() * kw:.2f} kW"
    )
    print(
        f"cvxpylayers optimum vs interior point: max rel. difference "
        f"{float(np.max(np.abs(np.asarray(cv.objective)[ok] / obj_r[ok] - 1))):.1e}"
    )

    # independent exact check: the backward/forward sweep at the repaired set-points
    x = np.asarray(lr["x"])
    ns = net.sop.count
    m = min(batch, 64)
    p, q = np.array(inp.p_load_pu[:m]), np.array(inp.q_load_pu[:m])
    pv, pf = np.asarray(inp.p_pv_pu[:m]), np.asarray(net.pv.pf)
    np.subtract.at(p, (slice(None), np.asarray(net.pv.bus)), pv)
    np.subtract.at(q, (slice(None), np.asarray(net.pv.bus)), pv * np.sqrt(1 - pf**2) / pf)
    for off, bus, arr in (
        (0, net.sop.bus_i, p),
        (ns, net.sop.bus_i, q),
        (2 * ns, net.sop.bus_j, p),
        (3 * ns, net.sop.bus_j, q),
    ):
        np.subtract.at(arr, (slice(None), np.asarray(bus)), x[:m, off : off + ns])
    lab = power_flow_labels(net, np.repeat(closed[None], m, 0), p, q)
    worst = float(np.max(np.abs(lab["losses_pu"] - np.asarray(lr["line_loss"][:m])))) * kw
    print(
        f"exact check (backward/forward sweep, first {m} problems): |line loss difference| max {worst:.2e} kW"
    )

    # capacity gradients: learned dispatch (autodiff through model, repair, DistFlow) vs envelope theorem
    g = jax.grad(lambda s: jnp.sum(ld(inp._replace(s_rated_i_pu=s))["objective"]))(inp.s_rated_i_pu)
    g_ref = -np.asarray(ref.cap_dual_i)
    g = np.asarray(g)
    for what, sel in (
        ("all", both[:, None] & np.ones_like(g, bool)),
        ("binding (|IPM gradient| > 1e-4)", both[:, None] & (np.abs(g_ref) > 1e-4)),
    ):
        if sel.sum() < 2:
            print(f"d objective / d S_i, {what}: fewer than 2 VSCs")
            continue
        corr = np.corrcoef(g[sel], g_ref[sel])[0, 1]
        print(
            f"d objective / d S_i, {what} ({sel.sum()} VSCs): learned vs interior point (envelope theorem): "
            f"correlation {corr:.3f}, median |difference| {np.median(np.abs(g - g_ref)[sel]):.2e}, "
            f"median |interior point| {np.median(np.abs(g_ref[sel])):.2e}, nan {int(np.isnan(g[sel]).sum())}"
        )

    sizing(ld, data, jax.tree_util.tree_map(lambda a: a[:64], inp), kw)

    print(f"\nmedian of {rounds} interleaved rounds, per problem (wall)")
    for k, v in med.items():
        print(f"  {k:<36} {v * 1e3:10.4f} ms")
    lt = med["learned + repair + exact DistFlow"]
    print(
        f"ratios: cvxpylayers / learned = {med['cvxpylayers + Clarabel (forward)'] / lt:8.1f}x   "
        f"interior point / learned = {med['JAX interior point (batched)'] / lt:8.1f}x"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
