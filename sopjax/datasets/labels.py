"""Labels of a dataset chunk from the exact kernels: power flow per sample, optimal dispatch per configuration.

Both functions take numpy inputs with the sample axis first and return numpy labels;
each row's labels depend on that row only (the kernels are per sample under ``vmap``,
and the batched interior point keeps a stop flag per sample).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np

from sopjax.datasets.layout import SAMPLE_VARS
from sopjax.kernels.dispatch import DispatchInputs, compile_dispatch, dispatch_batched
from sopjax.kernels.radial import Grid, sweep_power_flow
from sopjax.network import Network
from sopjax.powerflow import make_grid
from sopjax.topology import Topology, compile_topology, stack_topologies

__all__ = ["dispatch_labels", "exact_kernel", "power_flow_labels", "sample_topologies"]


@functools.lru_cache(maxsize=4)
def exact_kernel(tol: float, max_iter: int):
    """The jitted exact sweep ``f(topo, grid, f_bus, p, q)`` vmapped over samples with their own topologies."""

    def one(topo, grid, f_bus, p, q):
        return sweep_power_flow(topo, grid, f_bus, p, q, tol=tol, max_iter=max_iter)

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, 0, 0)))


def sample_topologies(net: Network, status: np.ndarray) -> tuple[Topology, Grid]:
    """Topology and grid of each row of ``status`` (sample, branch), stacked along the sample axis.

    Each distinct switch configuration is compiled once.
    """
    cache: dict[bytes, Any] = {}
    topos, grids = [], []
    for st in np.asarray(status, bool):
        key = st.tobytes()
        if key not in cache:
            topo = compile_topology(net, st)
            cache[key] = (topo, make_grid(net, topo))
        topos.append(cache[key][0])
        grids.append(cache[key][1])
    return stack_topologies(topos), jax.tree_util.tree_map(lambda *xs: np.stack(xs), *grids)


def power_flow_labels(
    net: Network, status: np.ndarray, p: np.ndarray, q: np.ndarray
) -> dict[str, np.ndarray]:
    """Exact power flow of each row (its own switch states), labels as numpy (sample axis first)."""
    topo, grid = sample_topologies(net, status)
    res = exact_kernel(1e-10, 100)(topo, grid, np.asarray(net.f_bus), p, q)
    res = {k: np.asarray(v) for k, v in res._asdict().items()}
    energized = np.asarray(topo.energized)
    p_load = np.maximum(p, 0.0)
    return {
        "vm_pu": res["vm_pu"],
        "va_rad": res["va_rad"],
        "p_from_pu": res["p_from_pu"],
        "q_from_pu": res["q_from_pu"],
        "p_loss_pu": res["p_loss_pu"],
        "losses_pu": res["losses_pu"],
        "converged": res["converged"],
        "iterations": res["iterations"].astype(np.int16),
        "energized": energized,
        "recovery": np.sum(np.where(energized, p_load, 0), axis=1)
        / np.maximum(np.sum(p_load, axis=1), 1e-12),
    }


@functools.lru_cache(maxsize=4)
def _dispatch_kernel(tol: float):
    return jax.jit(lambda data, inp: dispatch_batched(data, inp, tol=tol))


def dispatch_labels(net: Network, spec, pool: np.ndarray, inputs: dict) -> dict[str, np.ndarray]:
    """Optimal dispatch labels of the unfaulted rows (NaN elsewhere), solved per configuration."""
    n, nb, ns = inputs["p_load_pu"].shape[0], net.n_bus, net.sop.count
    out = {k: np.full((n, *([ns] if d == ("sop",) else [nb] if d == ("bus",) else [])), np.nan)
           for k, d in SAMPLE_VARS.items() if k.startswith(("opt_", "cap_dual"))}  # fmt: skip
    out["dispatch_valid"] = np.zeros(n, bool)
    out["dispatch_converged"] = np.zeros(n, bool)
    if not spec.dispatch or ns == 0:
        return out
    ok = inputs["fault_branch"] < 0
    run = _dispatch_kernel(spec.dispatch_tol)
    for cfg in np.unique(inputs["config_id"][ok]):
        rows = np.flatnonzero(ok & (inputs["config_id"] == cfg))
        data = compile_dispatch(net, pool[cfg])
        # one compiled program for all configurations: drop the per-configuration labels
        data = data.__class__(**{**data.__dict__, "branch_numbers": ()})
        # every group padded to the chunk size: one compiled program per dataset
        idx = np.concatenate([rows, np.repeat(rows[:1], spec.chunk_size - rows.size)])
        inp = DispatchInputs(
            *(inputs[k][idx] for k in ("p_load_pu", "q_load_pu", "p_pv_pu", "s_rated_i_pu", "s_rated_j_pu"))
        )
        r = jax.tree_util.tree_map(lambda a: np.asarray(a)[: rows.size], run(data, inp))
        for k, v in (
            ("opt_p_i_pu", r.p_i),
            ("opt_q_i_pu", r.q_i),
            ("opt_p_j_pu", r.p_j),
            ("opt_q_j_pu", r.q_j),
            ("opt_objective_pu", r.objective),
            ("opt_line_loss_pu", r.line_loss),
            ("opt_vm_pu", r.vm_pu),
            ("cap_dual_i", r.cap_dual_i),
            ("cap_dual_j", r.cap_dual_j),
            ("dispatch_converged", r.converged),
            ("opt_infeasibility_pu", r.infeasibility),
        ):
            out[k][rows] = v
        out["dispatch_valid"][rows] = True
    return out
