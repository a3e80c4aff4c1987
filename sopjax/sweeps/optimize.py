"""Gradient-based SOP capacity optimization with optax, checked against a grid search.

Yearly cost of capacity ``S`` (MVA per VSC; one value for all SOPs, or one per SOP)::

    J(S) = (CRF + om) * cost_per_kva * 1000 * sum_sops 2 S          annualised investment + O&M
         + days_per_year * period_hours * energy_price * E[losses_kW(S)]   loss energy

(:class:`sopjax.problems.planning.costs.CostModel`; the fixed per-site cost does not
depend on the size and is reported, not optimized). ``E[losses]`` is the mean
over the spec's Monte Carlo sample pool of the optimal-dispatch losses (line +
converter), each a convex function of the capacity (a right-hand side of the
convex dispatch), so ``J`` is convex.

* **Grid search**: ``J`` on the grid, every sample (sample-average approximation).
* **optax**: Adam on minibatches of the same pool (stochastic gradients through
  the implicitly differentiated dispatch), projected onto ``[0, max_mva]``, with
  Polyak averaging over the last half of the steps.

Both minimize the same sample-average objective, so the optax optimum should
fall within one grid step of the grid optimum.
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from sopjax.errors import ConfigError
from sopjax.kernels.dispatch import dispatch_batched
from sopjax.sweeps.config import SweepSpec
from sopjax.sweeps.runner import _attrs, _check_converged
from sopjax.sweeps.scenario import Scenario, build_scenario

__all__ = ["optimize_capacity", "cost_function"]


def cost_function(scn: Scenario, spec: SweepSpec, solve=None):
    """``cost(S_mva (sop,), idx) -> (J, (losses_kw, investment/yr, energy/yr, converged))``.

    The expectation is over the samples ``idx`` of the pool; ``solve`` (batched inputs ->
    :class:`DispatchResult`) defaults to the interior point.
    """
    costs = spec.optimization.costs
    data = scn.data
    kw = scn.kw
    per_mva = costs.capacity_cost_per_kva_year * 1e3 * 2.0  # both VSCs of an SOP
    energy = costs.energy_cost_per_kw_period
    # without a voltage penalty the dispatch objective is the losses, and its gradient
    # (envelope theorem) needs no implicit derivative of the set-points
    losses_only = float(data.voltage_weight) == 0.0

    def cost(s_mva, idx):
        inp = scn.inputs({"capacity_mva": s_mva}, idx)
        res = solve(inp) if solve is not None else dispatch_batched(data, inp, tol=spec.tol, max_iter=spec.max_iter)
        per_sample = res.objective if losses_only else res.line_loss + jnp.sum(res.converter_loss, axis=-1)
        losses = jnp.mean(per_sample) * kw
        inv = per_mva * jnp.sum(s_mva)
        op = energy * losses
        return inv + op, (losses, inv, op, res.converged)

    return cost


def optimize_capacity(spec: SweepSpec, *, progress: bool = False, scenario: Scenario | None = None,
                      solver=None):
    """Run the grid search and the optax optimization of ``spec`` (``kind = "optimization"``).

    ``solver(scenario, spec) -> solve`` replaces the interior point (as in
    :func:`sopjax.sweeps.run_sweep`; the learned dispatch plugs in here).

    Returns:
        :class:`xarray.Dataset` with the grid (``cost``, ``losses_kw``, ``dcost_dcapacity``
        per grid value), the optax trajectory (per step) and the two optima as attributes.

    Raises:
        ConfigError: not an optimization spec, or a grid too large for ``per_sop``.
        DispatchInfeasibleError: an infeasible operating point (named).
    """
    import optax
    import xarray as xr

    if spec.kind != "optimization" or spec.optimization is None:
        raise ConfigError("optimize_capacity needs kind = 'optimization' and an [optimization] table")
    o = spec.optimization
    scn = scenario or build_scenario(spec)
    ns = scn.data.n_sop
    dim = 1 if o.capacity == "common" else ns
    n = int(scn.p_load.shape[0])
    cost = cost_function(scn, spec, None if solver is None else solver(scn, spec))
    expand = (lambda u: jnp.broadcast_to(u, (ns,))) if dim == 1 else (lambda u: u)
    full = jnp.arange(n)

    # ---- grid search (sample-average objective on the whole pool)
    grid = np.asarray(o.grid_mva, float)
    if dim == 1:
        points = grid[:, None]
    else:
        if grid.size**dim > 4096:
            raise ConfigError(f"per-SOP grid search needs {grid.size}^{dim} points; use <= 4096")
        points = np.stack(np.meshgrid(*([grid] * dim), indexing="ij"), -1).reshape(-1, dim)
    val_grad = jax.jit(jax.value_and_grad(lambda u, idx: cost(expand(u), idx), has_aux=True))
    t0 = time.perf_counter()
    J = np.empty(len(points))
    G = np.empty((len(points), dim))
    L = np.empty(len(points))
    for k, u in enumerate(points):
        (j, (loss, _, _, conv)), g = val_grad(jnp.asarray(u), full)
        label = {f"capacity_mva[{i}]": float(v) for i, v in enumerate(u)}
        _check_converged(scn, spec, label, conv, np.zeros(n), params={"capacity_mva": expand(jnp.asarray(u))})
        J[k], G[k], L[k] = float(j), np.asarray(g), float(loss)
        if progress:
            cap = np.round(u, 4).tolist()
            print(f"  grid {cap} MVA: cost {J[k]:.1f}/yr, losses {L[k]:.2f} kW", flush=True)
    t_grid = time.perf_counter() - t0
    best = int(np.argmin(J))
    u_grid = points[best]

    # ---- optax: projected Adam on minibatches, Polyak average of the second half
    key = jax.random.key(o.seed)
    scale = max(abs(J[best]), 1.0)  # objective scale -> step sizes in MVA independent of currency
    opt = optax.adam(optax.cosine_decay_schedule(o.learning_rate, o.steps, alpha=0.05))
    u = jnp.full((dim,), float(o.init_mva))
    state = opt.init(u)
    batch = min(o.batch, n)

    @jax.jit
    def step(u, state, key):
        idx = jax.random.choice(key, n, (batch,), replace=False)
        (j, aux), g = jax.value_and_grad(lambda v: cost(expand(v), idx), has_aux=True)(u)
        upd, state = opt.update(g / scale, state, u)
        u_new = jnp.clip(optax.apply_updates(u, upd), 0.0, o.max_mva)
        return u_new, state, j, aux[3], idx

    traj = np.empty((o.steps, dim))
    jtraj = np.empty(o.steps)
    t0 = time.perf_counter()
    for k in range(o.steps):
        key, sub = jax.random.split(key)
        u_prev = u
        u, state, j, conv, idx = step(u, state, sub)
        if not bool(np.all(np.asarray(conv))):
            label = {f"capacity_mva[{i}]": float(v) for i, v in enumerate(np.asarray(u_prev))}
            _check_converged(scn, spec, label, conv, np.zeros(batch), params={"capacity_mva": expand(u_prev)},
                             idx=idx)
        traj[k], jtraj[k] = np.asarray(u), float(j)
        if progress and (k % max(1, o.steps // 10) == 0 or k == o.steps - 1):
            print(f"  optax step {k}: {np.round(traj[k], 4).tolist()} MVA, minibatch cost {jtraj[k]:.1f}/yr",
                  flush=True)
    t_opt = time.perf_counter() - t0
    u_opt = traj[o.steps // 2 :].mean(axis=0)
    (j_opt, (loss_opt, inv_opt, op_opt, _)), g_opt = val_grad(jnp.asarray(u_opt), full)
    step_mva = float(np.min(np.diff(grid))) if grid.size > 1 else np.inf
    gap = np.abs(u_opt - u_grid)

    coords = {"grid_point": np.arange(len(points)), "step": np.arange(o.steps), "dim": np.arange(dim)}
    ds = xr.Dataset(
        {
            "grid_capacity_mva": (("grid_point", "dim"), points,
                                  {"units": "MVA", "long_name": "capacity per VSC"}),
            "grid_cost": ("grid_point", J, {"units": f"{o.costs.currency}/yr", "long_name": "yearly cost J"}),
            "grid_losses_kw": ("grid_point", L, {"units": "kW", "long_name": "expected losses"}),
            "grid_dcost_dcapacity": (("grid_point", "dim"), G,
                                     {"units": f"{o.costs.currency}/yr/MVA", "long_name": "dJ/dS"}),
            "optax_capacity_mva": (("step", "dim"), traj, {"units": "MVA", "long_name": "optax iterate"}),
            "optax_minibatch_cost": ("step", jtraj, {"units": f"{o.costs.currency}/yr",
                                                     "long_name": "minibatch cost at the iterate"}),
        },
        coords=coords,
        attrs={
            **_attrs(spec, scn),
            "capacity": o.capacity,
            "grid_optimum_mva": json.dumps(np.asarray(u_grid).tolist()),
            "grid_optimum_cost": float(J[best]),
            "optax_optimum_mva": json.dumps(np.asarray(u_opt).tolist()),
            "optax_optimum_cost": float(j_opt),
            "optax_optimum_losses_kw": float(loss_opt),
            "optax_optimum_gradient": json.dumps(np.asarray(g_opt).tolist()),
            "grid_step_mva": step_mva,
            "optimum_gap_mva": float(np.max(gap)),
            "within_one_grid_step": int(bool(np.all(gap <= step_mva + 1e-12))),
            "annualized_capacity_cost_per_mva_sop": o.costs.capacity_cost_per_kva_year * 2e3,
            "energy_cost_per_kw_year": o.costs.energy_cost_per_kw_period,
            "site_cost_per_year": o.costs.site_cost_per_year * ns,
            "grid_seconds": t_grid,
            "optax_seconds": t_opt,
            "steps": o.steps,
            "batch": batch,
            "learning_rate": o.learning_rate,
        },
    )
    return ds
