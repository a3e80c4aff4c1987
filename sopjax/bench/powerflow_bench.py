"""The power-flow benchmark: sopjax against pandapower, power-grid-model and a fused numba sweep.

Every method solves the *same* random load samples (each load scaled by
``1 + sigma * N(0, 1)``, one factor per bus and sample for both P and Q, fixed
seed) with the same tolerance on the largest voltage update, and the benchmark
checks that they agree on the voltages (largest |dV| against sopjax), so that
equal work is compared. Throughput is samples per second of wall time:

* ``sopjax``: :func:`sopjax.batched_solver` (jit; compile excluded, median of
  ``repeats`` runs; the loads are already on the device);
* ``fused_reference``: the numba sweep of :mod:`sopjax.bench.baselines`
  (compile excluded, median of ``repeats``);
* ``power_grid_model``: the faster of PGM's ``newton_raphson`` and
  ``iterative_current`` batch calculations (both in ``details``; median of
  ``pgm_repeats``);

  all timed runs of these three are interleaved in rounds, so that each sees the
  same machine load;
* ``pandapower``: ``runpp`` in a loop over the first ``pp_samples`` samples,
  extrapolated as samples/s.
"""

from __future__ import annotations

import os
import platform
import time

import numpy as np

from sopjax.bench.baselines import pandapower_loop, prepare_fused, prepare_pgm
from sopjax.bench.cases import bench_case
from sopjax.errors import SopjaxError

__all__ = ["BASELINES", "make_samples", "run_benchmark", "format_report"]

BASELINES = ("pandapower", "power_grid_model", "fused_reference")


def make_samples(net, n: int, *, seed: int = 0, sigma: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Random loads around the nominal ones, (sample, bus) each, p.u., float64.

    Each bus load is scaled by ``1 + sigma * N(0, 1)`` (the same factor for P and
    Q, so the power factor is kept); the generator is numpy's PCG64 with ``seed``.
    """
    if n < 1:
        raise SopjaxError(f"samples must be >= 1, got {n}")
    if not (np.isfinite(sigma) and sigma >= 0):
        raise SopjaxError(f"sigma must be a finite number >= 0, got {sigma}")
    rng = np.random.default_rng(seed)
    factor = 1.0 + sigma * rng.standard_normal((n, net.n_bus))
    return np.asarray(net.p_load_pu) * factor, np.asarray(net.q_load_pu) * factor


def _max_dv(a: np.ndarray, b: np.ndarray) -> float:
    d = np.abs(np.asarray(a, float) - np.asarray(b, float))
    return float(np.nanmax(d)) if d.size else 0.0


def _prepare_sopjax(net, topo, grid, p, q, *, dtype, tol, max_iter, chunk_size, layout, iteration):
    """Compile ``batched_solver`` twice: returning the voltages only, and the full result.

    "Voltages only" (magnitude, angle, ``converged``, ``iterations``) is what the
    baselines return; XLA then drops the branch-flow and loss outputs. The full
    :class:`~sopjax.kernels.radial.PowerFlowResult` (flows, currents, losses,
    source powers) is timed as well and reported in the details.
    """
    import jax
    import jax.numpy as jnp

    from sopjax.powerflow import batched_solver, shard_samples

    run = batched_solver(
        "sweep", tol=tol, max_iter=max_iter, chunk_size=chunk_size, layout=layout, iteration=iteration
    )
    voltages = jax.jit(lambda *a: (lambda r: (r.vm_pu, r.va_rad, r.converged, r.iterations))(run(*a)))
    cast = lambda a: (
        jnp.asarray(np.asarray(a, dtype))
        if np.issubdtype(np.asarray(a).dtype, np.floating)
        else jnp.asarray(a)
    )  # noqa: E731
    args = (
        jax.tree_util.tree_map(jnp.asarray, topo),
        jax.tree_util.tree_map(cast, grid),
        jnp.asarray(net.f_bus),
        # loads already on the devices, split by sample as the solver uses them
        shard_samples(cast(p)),
        shard_samples(cast(q)),
    )
    out = {}
    compile_s = {}
    for name, fn in (("voltages", voltages), ("full", run)):
        t0 = time.perf_counter()
        out[name] = jax.block_until_ready(fn(*args))
        compile_s[name] = time.perf_counter() - t0  # first call: compile + one run

    def runner(name, fn):
        return lambda: out.__setitem__(name, jax.block_until_ready(fn(*args)))

    return runner("voltages", voltages), runner("full", run), out, compile_s


def run_benchmark(
    case: str = "ieee33",
    *,
    samples: int = 100_000,
    dtype: str = "float64",
    tol: float | None = None,
    max_iter: int = 100,
    seed: int = 0,
    sigma: float = 0.1,
    repeats: int = 5,
    pgm_repeats: int = 3,
    pp_samples: int = 200,
    chunk_size: int | None = None,
    layout: str = "auto",
    iteration: str = "power",
    skip: tuple[str, ...] = (),
    progress=None,
) -> dict:
    """Run sopjax and the baselines on the same samples; return the JSON-able report.

    Args:
        case: built-in name, ``.m`` path, or ``pp:<pandapower builder>``.
        samples: number of load samples.
        dtype: sopjax's float type (the baselines always use float64).
        tol, max_iter: stopping rule of every method (largest voltage update, p.u.;
            pandapower's ``tolerance_mva`` is set to ``tol`` too). ``tol=None``: 1e-8
            in float64, 1e-6 in float32.
        seed, sigma: load sampling (see :func:`make_samples`).
        repeats: timed runs of sopjax and of the fused reference (median).
        pgm_repeats: timed runs of each power-grid-model method. All timed runs
            are interleaved in rounds (sopjax, sopjax full result, numba, PGM NR,
            PGM IC), so that every method sees the same machine load.
        pp_samples: samples solved by the pandapower loop (extrapolated).
        chunk_size, layout, iteration: passed to :func:`sopjax.batched_solver`;
            ``iteration`` also picks the fused reference's algorithm, so that both
            do the same work (``"current"``: current-injection sweep, ``"power"``:
            DistFlow recursion).
        skip: baselines not to run (names from :data:`BASELINES`).
        progress: optional callable receiving one-line status messages.

    Returns:
        ``{"case", "samples", "dtype", "results", "ratios", "details"}``; results
        and ratios in samples/s (ratio = sopjax / baseline).
    """
    import jax

    from sopjax.powerflow import _dtype, make_grid, resolve_tol
    from sopjax.topology import compile_topology

    dt = _dtype(dtype)
    tol = resolve_tol(tol, dt)
    unknown = set(skip) - set(BASELINES)
    if unknown:
        raise SopjaxError(f"unknown baseline(s) to skip: {sorted(unknown)}; choose from {list(BASELINES)}")
    if repeats < 1 or pgm_repeats < 1:
        raise SopjaxError("repeats must be >= 1")
    if pp_samples < 0:
        raise SopjaxError(f"pp_samples must be >= 0, got {pp_samples}")
    say = progress or (lambda msg: None)

    load = os.getloadavg()
    t0 = time.perf_counter()
    bc = bench_case(case)
    net = bc.net
    load_s = time.perf_counter() - t0
    topo = compile_topology(net, bc.status)
    grid = make_grid(net, topo)
    p, q = make_samples(net, samples, seed=seed, sigma=sigma)
    say(
        f"{net.name}: {net.n_bus} buses, {int(np.sum(topo.energized))} energized, depth {int(np.max(topo.depth))}, "
        f"{samples} samples"
    )

    results, details = {}, {}
    # set up (and compile) every method, then time them in interleaved rounds so
    # that all of them see the same machine load
    say("sopjax: compiling ...")
    run_v, run_full, sj_out, sj_first = _prepare_sopjax(
        net, topo, grid, p, q, dtype=dt, tol=tol, max_iter=max_iter, chunk_size=chunk_size, layout=layout,
        iteration=iteration,
    )
    timers = {"sopjax": run_v, "sopjax_full": run_full}
    prepared = {}
    if "fused_reference" not in skip:
        say("fused numba reference: compiling ...")
        prepared["fused_reference"] = prepare_fused(
            net, topo, grid, p, q, tol=tol, max_iter=max_iter, iteration=iteration
        )
        timers["fused_reference"] = prepared["fused_reference"].run
    pgm_methods = () if "power_grid_model" in skip else ("newton_raphson", "iterative_current")
    for method in pgm_methods:
        prepared[method] = prepare_pgm(net, p, q, status=bc.status, method=method, tol=tol, max_iter=max_iter)
        timers[method] = prepared[method].run
    times = {k: [] for k in timers}
    for r in range(max(repeats, pgm_repeats)):
        say(f"timing round {r + 1} ...")
        for k, fn in timers.items():
            if k in pgm_methods and r >= pgm_repeats or k not in pgm_methods and r >= repeats:
                continue
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)

    vm, _, conv, iters = (np.asarray(a) for a in sj_out["voltages"])
    vm = vm.astype(float)
    med = {k: float(np.median(v)) for k, v in times.items()}
    results["sopjax"] = samples / med["sopjax"]
    details["sopjax"] = {
        "seconds": med["sopjax"],
        "times_s": times["sopjax"],
        "compile_s": max(sj_first["voltages"] - med["sopjax"], 0.0),
        "full_result_samples_per_s": samples / med["sopjax_full"],
        "full_result_times_s": times["sopjax_full"],
        "full_result_compile_s": max(sj_first["full"] - med["sopjax_full"], 0.0),
        "devices": len(jax.local_devices()),
        "layout": layout,
        "iteration": iteration,
        "chunk_size": chunk_size,
        "converged": int(conv.sum()),
        "iterations_mean": float(iters.mean()),
        "iterations_max": int(iters.max()),
    }
    if "fused_reference" in prepared:
        r = prepared["fused_reference"].finish(times["fused_reference"])
        results["fused_reference"] = r.samples_per_s
        details["fused_reference"] = {
            "seconds": r.seconds,
            "times_s": r.info["times_s"],
            "threads": r.info["threads"],
            "compile_s": r.info["compile_s"],
            "converged": int(r.converged.sum()),
            "iterations_mean": float(r.iterations.mean()),
            "iterations_equal_sopjax": bool(np.array_equal(r.iterations, iters)),
            "max_dv_vs_sopjax": _max_dv(r.vm_pu, vm),
        }
    if pgm_methods:
        pgm = {}
        for method in pgm_methods:
            r = prepared[method].finish(times[method])
            pgm[method] = {
                "samples_per_s": r.samples_per_s,
                "seconds": r.seconds,
                "times_s": r.info["times_s"],
                "threads": r.info["threads"],
                "setup_s": r.info["setup_s"],
                "max_dv_vs_sopjax": _max_dv(r.vm_pu, vm),
            }
        best = max(pgm, key=lambda m: pgm[m]["samples_per_s"])
        results["power_grid_model"] = pgm[best]["samples_per_s"]
        details["power_grid_model"] = {"fastest_method": best, "methods": pgm}
    if "pandapower" not in skip and pp_samples > 0:
        n_pp = min(pp_samples, samples)
        say(f"pandapower runpp loop on {n_pp} samples ...")
        r = pandapower_loop(
            net, p[:n_pp], q[:n_pp], status=bc.status, tolerance_mva=tol, max_iteration=max_iter
        )
        results["pandapower"] = r.samples_per_s
        details["pandapower"] = {
            "samples_run": n_pp,
            "seconds": r.seconds,
            "extrapolated": n_pp < samples,
            "converged": int(r.converged.sum()),
            "max_dv_vs_sopjax": _max_dv(r.vm_pu, vm[:n_pp]),
            "warmup_s": r.info["warmup_s"],
        }
    ratios = {f"sopjax_vs_{k}": results["sopjax"] / v for k, v in results.items() if k != "sopjax" and v > 0}
    # the fastest of the interleaved runs of each method: less sensitive to other load on the machine
    best = {"sopjax": samples / min(times["sopjax"])}
    if "fused_reference" in times:
        best["fused_reference"] = samples / min(times["fused_reference"])
    if pgm_methods:
        best["power_grid_model"] = max(samples / min(times[m]) for m in pgm_methods)
    details["best_of_runs"] = {
        "samples_per_s": best,
        "ratios": {f"sopjax_vs_{k}": best["sopjax"] / v for k, v in best.items() if k != "sopjax"},
    }

    details["case"] = {
        "name": net.name,
        "spec": bc.spec,
        "buses": net.n_bus,
        "branches": net.n_branch,
        "energized_buses": int(np.sum(topo.energized)),
        "depth": int(np.max(topo.depth)),
        "opened_to_make_radial": list(bc.opened),
        "load_s": load_s,
    }
    details["settings"] = {
        "tol": tol,
        "max_iter": max_iter,
        "seed": seed,
        "sigma": sigma,
        "repeats": repeats,
        "pgm_repeats": pgm_repeats,
    }
    details["machine"] = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_devices": len(jax.local_devices()),
        "loadavg_start": list(load),
        "loadavg_end": list(os.getloadavg()),
    }
    return {
        "case": net.name,
        "samples": samples,
        "dtype": dt.name,
        "results": results,
        "ratios": ratios,
        "details": details,
    }


def format_report(rep: dict) -> str:
    """A side-by-side table of throughputs and ratios (human output of ``sopjax bench``)."""
    d = rep["details"]
    c = d["case"]
    lines = [
        f"case {rep['case']} ({c['buses']} buses, depth {c['depth']}), {rep['samples']} samples, "
        f"sopjax {rep['dtype']}, tol {d['settings']['tol']:g}",
    ]
    if c["opened_to_make_radial"]:
        lines.append(
            f"  opened to make it radial: branches {', '.join(map(str, c['opened_to_make_radial']))}"
        )
    m = d["machine"]
    lines.append(
        f"  machine: {m['cpus']} CPUs, load average {m['loadavg_start'][0]:.2f} -> "
        f"{m['loadavg_end'][0]:.2f}; JAX {m['jax']} on {m['jax_devices']} device(s)"
    )
    lines.append("")
    lines.append(f"  {'method':<34}{'samples/s':>14}{'sopjax is':>12}{'max|dV| pu':>13}")
    rows = [
        (
            "sopjax (jit, bus-major sweep)" if d["sopjax"]["layout"] != "vmap" else "sopjax (jit + vmap)",
            rep["results"]["sopjax"],
            None,
            None,
        )
    ]
    if "fused_reference" in rep["results"]:
        f = d["fused_reference"]
        rows.append(
            (
                f"fused numba sweep ({f['threads']} threads)",
                rep["results"]["fused_reference"],
                rep["ratios"]["sopjax_vs_fused_reference"],
                f["max_dv_vs_sopjax"],
            )
        )
    if "power_grid_model" in rep["results"]:
        for meth, v in d["power_grid_model"]["methods"].items():
            rows.append(
                (
                    f"power-grid-model {meth}",
                    v["samples_per_s"],
                    rep["results"]["sopjax"] / v["samples_per_s"],
                    v["max_dv_vs_sopjax"],
                )
            )
    if "pandapower" in rep["results"]:
        pp = d["pandapower"]
        note = f" ({pp['samples_run']} run)" if pp["extrapolated"] else ""
        rows.append(
            (
                f"pandapower runpp loop{note}",
                rep["results"]["pandapower"],
                rep["ratios"]["sopjax_vs_pandapower"],
                pp["max_dv_vs_sopjax"],
            )
        )
    for name, sps, ratio, dv in rows:
        r = "" if ratio is None else f"{ratio:.2f}x"
        v = "" if dv is None else f"{dv:.1e}"
        lines.append(f"  {name:<34}{sps:>14,.0f}{r:>12}{v:>13}")
    s = d["sopjax"]
    lines.append("")
    lines.append(
        f"  sopjax: median of {len(s['times_s'])} runs {s['seconds']:.3f} s, compile {s['compile_s']:.2f} s, "
        f"{s['converged']}/{rep['samples']} converged, {s['iterations_mean']:.2f} iterations on average"
    )
    lines.append(
        f"  sopjax returning the full result (branch flows, currents, losses, source powers): "
        f"{s['full_result_samples_per_s']:,.0f} samples/s"
    )
    lines.append(
        "  (samples/s of wall time, median of interleaved runs; voltages only for every method, which is "
        "what the baselines return)"
    )
    b = d.get("best_of_runs", {}).get("ratios", {})
    if b:
        lines.append(
            "  fastest run of each: "
            + ", ".join(f"{k.replace('_vs_', ' / ')} {v:.2f}x" for k, v in b.items())
        )
    return "\n".join(lines)
