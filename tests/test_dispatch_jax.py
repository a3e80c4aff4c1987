"""JAX-native dispatch: agreement with the SOC optimum and the cvxpylayers gradients, duals, failure as data.

Everything runs through one jitted, vmapped value-and-gradient function (one
compilation): random operating points, an infeasible one, and finite-difference
perturbations of a sample share the batch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sopjax
from sopjax.kernels.dispatch import (
    DispatchInputError,
    DispatchInputs,
    check_inputs,
    compile_dispatch,
    dispatch_batched,
    dispatch_native,
    dispatch_state_batch,
    distflow,
    nominal_inputs,
    setpoint_tangents,
)
from sopjax.powerflow import solve
from sopjax.problems.dispatch import DispatchLayer, build_dispatch, solve_dispatch

N_RANDOM = 10
TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500}
ZERO_CAP, NON_BINDING = 7, 8  # samples with a zero / a non-binding capacity
H = 1e-5


@pytest.fixture(scope="module")
def case():
    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=[300, 200, 200], pf=0.95)
    net = sopjax.add_sops(net, pairs=[(12, 22), (18, 33), (25, 29)], s_rated_kva=200, loss=0.02)
    data = compile_dispatch(net)
    nom = nominal_inputs(net)
    rng = np.random.default_rng(42)
    f = rng.uniform(0.7, 1.3, (N_RANDOM, net.n_bus))
    cap_i = rng.uniform(0.005, 0.05, (N_RANDOM, 3))
    cap_j = cap_i * rng.uniform(0.7, 1.3, (N_RANDOM, 3))
    # the plain cases that must not fail: 80 % load, with capacity 0 on one SOP and with
    # capacities far above what the dispatch uses (non-binding)
    f[ZERO_CAP:] = 0.8 * rng.uniform(0.9, 1.1, (N_RANDOM - ZERO_CAP, net.n_bus))
    cap_i[ZERO_CAP, 0] = cap_j[ZERO_CAP, 0] = 0.0
    cap_i[NON_BINDING] = cap_j[NON_BINDING] = 0.5  # 5 MVA per VSC
    rand = DispatchInputs(nom.p_load_pu * f, nom.q_load_pu * f, nom.p_pv_pu * rng.uniform(0.0, 2.5, (N_RANDOM, 3)),
                          cap_i, cap_j)
    s0 = DispatchInputs(*(a[0] for a in rand))
    infeasible = nominal_inputs(net, load_scale=2.5)._replace(s_rated_i_pu=np.zeros(3), s_rated_j_pu=np.zeros(3))
    pert = []
    for name, k in (("s_rated_i_pu", 0), ("p_pv_pu", 2)):
        for sign in (1.0, -1.0):
            v = np.array(getattr(s0, name), float)
            v[k] += sign * H
            pert.append(s0._replace(**{name: v}))
    batch = DispatchInputs(*(np.stack([*(np.asarray(a)[:N_RANDOM]), b, *(np.asarray(p_) for p_ in c)])
                             for a, b, *c in zip(rand, infeasible, *pert)))

    def one(i):
        r = dispatch_native(data, i)
        return r.objective, r

    run = jax.jit(jax.vmap(jax.value_and_grad(one, has_aux=True)))
    (obj, res), grad = run(jax.tree_util.tree_map(jnp.asarray, batch))
    layer = DispatchLayer(build_dispatch(data))
    lin = DispatchInputs(*(jnp.asarray(a[:N_RANDOM]) for a in batch))
    ref = layer(lin)
    ref_grad = jax.grad(lambda i: jnp.sum(layer(i).objective))(lin)
    return dict(net=net, data=data, batch=batch, res=res, grad=grad, ref=ref, ref_grad=ref_grad)


def test_optimal_value_within_0p1_percent_of_the_soc_optimum(case):
    res, ref = case["res"], case["ref"]
    assert np.all(np.asarray(res.converged[:N_RANDOM]))
    rel = np.abs(np.asarray(res.objective[:N_RANDOM]) / np.asarray(ref.objective) - 1.0)
    assert rel.max() < 1e-3, rel
    # and the set-points themselves (the JAX path rounds |s| below 5e-5 p.u. for idle VSCs)
    for f in ("p_i", "q_i", "p_j", "q_j"):
        np.testing.assert_allclose(getattr(res, f)[:N_RANDOM], getattr(ref, f), atol=3e-4)


def test_zero_and_non_binding_capacities(case):
    res, grad, ref_grad = case["res"], case["grad"], case["ref_grad"]
    k = ZERO_CAP
    # capacity 0 on both VSCs: the SOP is idle (up to the floor of 1e-5 p.u.). The value is
    # not differentiable in S_i and S_j separately there (power flows only if both VSCs have
    # capacity); the derivative along the SOP's capacity (S_i = S_j, the sweeps' parameter),
    # the sum of the two partials, is the right derivative, the same on both paths
    # (checked against the slope of tight SOC solves just above the floor; the layer's
    # adjoint at the 1e-5 p.u. cones is within 2 % of it, see tests/test_dispatch.py)
    assert abs(float(res.p_i[k, 0])) <= 2e-5 and abs(float(res.q_j[k, 0])) <= 2e-5
    a = float(grad.s_rated_i_pu[k, 0] + grad.s_rated_j_pu[k, 0])
    b = float(ref_grad.s_rated_i_pu[k, 0] + ref_grad.s_rated_j_pu[k, 0])
    model = build_dispatch(case["data"])
    one = DispatchInputs(*(np.asarray(x[k], float) for x in case["batch"]))

    def at(c):
        caps = {f: np.r_[c, getattr(one, f)[1:]] for f in ("s_rated_i_pu", "s_rated_j_pu")}
        return float(solve_dispatch(model, one._replace(**caps), **TIGHT)[0].objective)

    right = (at(2e-5) - at(1e-5)) / 1e-5
    assert right < 0 and abs(a - right) <= 1e-2 * abs(right), (a, right)
    assert abs(b - right) <= 2e-2 * abs(right), (b, right)
    # non-binding capacities: zero duals and zero capacity gradients on both paths
    n = NON_BINDING
    for f in ("s_rated_i_pu", "s_rated_j_pu"):
        assert np.max(np.abs(np.asarray(getattr(grad, f)[n]))) < 1e-6
        assert np.max(np.abs(np.asarray(getattr(ref_grad, f)[n]))) < 1e-6


def test_gradients_within_1_percent_of_the_cvxpylayers_layer(case):
    grad, ref_grad = case["grad"], case["ref_grad"]
    fields = ("s_rated_i_pu", "s_rated_j_pu", "p_pv_pu", "p_load_pu", "q_load_pu")
    # error relative to each sample's gradient scale (non-binding capacities have ~0 gradients)
    scale = np.max([np.max(np.abs(np.asarray(getattr(ref_grad, f))), axis=1) for f in fields], axis=0)
    for f in fields:
        a = np.asarray(getattr(grad, f))[:N_RANDOM]
        b = np.asarray(getattr(ref_grad, f))
        sc = scale
        if f.startswith("s_rated"):  # SOP 0 at zero capacity: only the sum is defined (see above)
            a, b, sc = (np.delete(v, ZERO_CAP, axis=0) for v in (a, b, scale))
        err = np.max(np.abs(a - b) / sc[:, None])
        assert err < 1e-2, (f, err)
        big = np.abs(b) > 0.1 * sc[:, None]  # and component-wise where the sensitivity matters
        assert np.all(np.abs(a - b)[big] <= 1e-2 * np.abs(b)[big]), f


def test_capacity_gradient_is_minus_the_dual_and_matches_finite_differences(case):
    res, grad = case["res"], case["grad"]
    n = N_RANDOM
    # the envelope theorem needs unique multipliers: not at a zero (floored) capacity,
    # where the capacity, loss and DC-balance rows of an idle SOP are all active
    smooth = [k for k in range(n) if k != ZERO_CAP]
    for side in ("i", "j"):
        np.testing.assert_allclose(np.asarray(getattr(grad, f"s_rated_{side}_pu"))[smooth],
                                   -np.asarray(getattr(res, f"cap_dual_{side}"))[smooth], atol=1e-6)
    obj = np.asarray(res.objective)
    fd_cap = (obj[n + 1] - obj[n + 2]) / (2 * H)
    fd_pv = (obj[n + 3] - obj[n + 4]) / (2 * H)
    assert abs(fd_cap - float(grad.s_rated_i_pu[0, 0])) <= 1e-2 * abs(fd_cap) + 1e-6
    assert abs(fd_pv - float(grad.p_pv_pu[0, 2])) <= 1e-2 * abs(fd_pv)
    assert abs(fd_pv) > 1e-3


@pytest.fixture(scope="module")
def batched(case):
    """The batched solver on the case's batch: result, objective gradient and set-point tangents.

    One ``jit`` per call of the solver: XLA's CPU runtime (jaxlib 0.10) can deadlock
    when several independent while loops run concurrently in one program.
    """
    data = case["data"]
    inp = jax.tree_util.tree_map(jnp.asarray, case["batch"])

    def solve(i):
        return dispatch_batched(data, i, straggler_share=4)  # 15 samples: a second stage of 3

    def summed(i):
        r = solve(i)
        return jnp.sum(r.objective), r

    (_, res), grad = jax.jit(jax.value_and_grad(summed, has_aux=True))(inp)
    # tangents of the set-points along PV unit 2 and along VSC i of SOP 0 (every sample)
    names = (("p_pv_pu", 2), ("s_rated_i_pu", 0))
    dirs = [jax.tree_util.tree_map(jnp.zeros_like, inp)._replace(
        **{name: jnp.zeros_like(getattr(inp, name)).at[:, k].set(1.0)}) for name, k in names]
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *dirs)
    tan = jax.jit(jax.vmap(lambda e: jax.jvp(solve, (inp,), (e,))[1]))(stacked)
    tangents = {name: jax.tree_util.tree_map(lambda a, n=n: a[n], tan) for n, (name, _) in enumerate(names)}
    # reverse mode through the set-points (the custom JVP transposed)
    tangents["grad_p_i_0"] = jax.jit(jax.grad(lambda i: jnp.sum(solve(i).p_i[0])))(inp)
    return res, grad, tangents


def test_batched_solver_matches_the_per_sample_solver(case, batched):
    """dispatch_batched (sample-minor IPM, straggler stage) = vmap of dispatch_native, derivatives included."""
    data, res, grad = case["data"], case["res"], case["grad"]
    bres, bgrad, _ = batched
    np.testing.assert_array_equal(np.asarray(bres.converged), np.asarray(res.converged))
    ok = np.asarray(res.converged)
    for f in ("objective", "p_i", "q_i", "p_j", "q_j", "vm_pu", "cap_dual_i", "cap_dual_j"):
        np.testing.assert_allclose(np.asarray(getattr(bres, f))[ok], np.asarray(getattr(res, f))[ok],
                                   atol=1e-9, err_msg=f)
    for f in DispatchInputs._fields:
        np.testing.assert_allclose(np.asarray(getattr(bgrad, f)), np.asarray(getattr(grad, f)), atol=1e-8,
                                   err_msg=f)
    assert np.all(np.isfinite(np.asarray(bgrad.p_load_pu)))  # the infeasible sample too
    # leading batch axes are kept; a single sample is refused with a pointer
    inp = jax.tree_util.tree_map(jnp.asarray, case["batch"])
    with pytest.raises(DispatchInputError, match="leading batch axis"):
        dispatch_batched(data, jax.tree_util.tree_map(lambda a: a[0], inp))


def test_set_point_derivatives_match_finite_differences(batched):
    """The implicit derivative of the set-points (custom JVP at the KKT point) vs central differences.

    Samples N+1..N+4 of the batch perturb sample 0's VSC-i capacity of SOP 0 and PV unit 2 by +-H.
    """
    bres, _, tangents = batched
    n = N_RANDOM
    for name, (up, down) in (("s_rated_i_pu", (n + 1, n + 2)), ("p_pv_pu", (n + 3, n + 4))):
        for f in ("p_i", "q_i", "p_j", "q_j"):
            v = np.asarray(getattr(bres, f))
            fd = (v[up] - v[down]) / (2 * H)
            an = np.asarray(getattr(tangents[name], f))[0]
            np.testing.assert_allclose(an, fd, atol=1e-3 * np.max(np.abs(fd)) + 1e-4, err_msg=f"{f} / {name}")
    assert np.max(np.abs(np.asarray(tangents["p_pv_pu"].p_i[0]))) > 1e-2  # PV moves the set-points
    # reverse mode agrees with forward mode
    rev = tangents["grad_p_i_0"]
    assert float(rev.p_pv_pu[0, 2]) == pytest.approx(float(np.sum(tangents["p_pv_pu"].p_i[0])), rel=1e-8, abs=1e-12)
    assert float(rev.s_rated_i_pu[0, 0]) == pytest.approx(float(np.sum(tangents["s_rated_i_pu"].p_i[0])), rel=1e-8,
                                                          abs=1e-12)
    assert np.all(np.asarray(rev.p_load_pu[1:]) == 0)  # samples are independent


def test_setpoint_tangents_of_a_batch_equal_the_jvp_of_the_solution(case, batched):
    """setpoint_tangents (batch layout, condensed KKT system, several directions) = jvp of dispatch_solution."""
    data = case["data"]
    _, _, tangents = batched
    inp = jax.tree_util.tree_map(jnp.asarray, case["batch"])
    state = jax.jit(lambda i: dispatch_state_batch(data, i, straggler_share=4))(inp)
    names = (("p_pv_pu", 2), ("s_rated_i_pu", 0))
    dirs = [jax.tree_util.tree_map(jnp.zeros_like, inp)._replace(
        **{name: jnp.zeros_like(getattr(inp, name)).at[:, k].set(1.0)}) for name, k in names]
    d_inputs = jax.tree_util.tree_map(lambda *a: jnp.stack(a, 1), *dirs)  # (batch, direction, ...)
    got = jax.jit(lambda i, st, d: setpoint_tangents(data, i, st, d))(inp, state, d_inputs)
    ok = np.asarray(state[5])
    assert ok.sum() >= N_RANDOM  # the infeasible sample is the one left out
    for d, (name, _) in enumerate(names):
        for f, a in zip(("p_i", "q_i", "p_j", "q_j"), got):
            ref = np.asarray(getattr(tangents[name], f))
            np.testing.assert_allclose(np.asarray(a)[ok, d], ref[ok], rtol=0,
                                       atol=1e-5 * np.max(np.abs(ref[ok])) + 1e-12, err_msg=f"{f} / {name}")
            assert np.all(np.asarray(a)[~ok, d] == 0)  # no derivative where the solver failed


def test_infeasible_sample_is_flagged_not_raised(case):
    res = case["res"]
    k = N_RANDOM
    assert not bool(res.converged[k])
    assert float(res.infeasibility[k]) > 1e-3
    assert np.all(np.isfinite(np.asarray(res.vm_pu)))  # failure is data, no NaN


def test_exact_distflow_equals_the_sweep_power_flow(case):
    net, data, res, batch = case["net"], case["data"], case["res"], case["batch"]
    b = 3
    p, q = np.array(batch.p_load_pu[b]), np.array(batch.q_load_pu[b])
    for u, pv, t in zip(np.asarray(net.pv.bus), np.asarray(batch.p_pv_pu[b]), np.asarray(data.pv_tan)):
        p[u] -= pv
        q[u] -= pv * t
    for k in range(3):
        p[net.sop.bus_i[k]] -= res.p_i[b, k]
        q[net.sop.bus_i[k]] -= res.q_i[b, k]
        p[net.sop.bus_j[k]] -= res.p_j[b, k]
        q[net.sop.bus_j[k]] -= res.q_j[b, k]
    pf, _ = solve(net, p_load_pu=p, q_load_pu=q)
    np.testing.assert_allclose(pf.losses_pu, res.line_loss[b], rtol=1e-9)
    np.testing.assert_allclose(pf.vm_pu, res.vm_pu[b], atol=1e-10)
    # and the DistFlow kernel alone, from l = 0
    fl = distflow(data, jnp.asarray(p)[data.kid_bus], jnp.asarray(q)[data.kid_bus], sweeps=30)
    np.testing.assert_allclose(jnp.sum(data.r * fl.l), pf.losses_pu, rtol=1e-8)  # sweep tol 1e-8


def test_input_validation_names_the_element(case):
    data, net = case["data"], case["net"]
    good = nominal_inputs(net)
    with pytest.raises(DispatchInputError, match=r"s_rated_i_pu: capacity must be >= 0 at SOP 2 \(25-29\) VSC i"):
        check_inputs(data, good._replace(s_rated_i_pu=np.array([0.1, 0.1, -0.1])))
    with pytest.raises(DispatchInputError, match=r"p_pv_pu: PV output must be >= 0 at PV unit 1"):
        check_inputs(data, good._replace(p_pv_pu=np.array([0.01, -0.01, 0.01])))
    with pytest.raises(DispatchInputError, match="batch shape"):
        check_inputs(data, good._replace(p_load_pu=np.ones((2, net.n_bus))))
    assert check_inputs(data, good) == ()


@pytest.mark.slow
def test_single_sop_8_21_at_80_percent_load_random_points():
    """The case reported as failing: one 1000 kVA SOP 8-21 on IEEE 33 at 80 % load.

    Random loads (80 % x U(0.8, 1.2)), PV (0-4 x nominal) and capacities, among them
    0 (both VSCs or one) and 1000 kVA (non-binding): every sample converges and agrees
    with the cvxpylayers layer (value 0.1 %, gradients 1 %). Own compilation, so slow.
    """
    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=[300, 200, 200], pf=0.95)
    net = sopjax.add_sops(net, pairs=[(8, 21)], s_rated_kva=1000, loss=0.02)
    data = compile_dispatch(net)
    nom = nominal_inputs(net)
    n = 48
    rng = np.random.default_rng(8021)
    f = 0.8 * rng.uniform(0.8, 1.2, (n, net.n_bus))
    ci = rng.choice([0.0, 0.005, 0.02, 0.05, 0.1], (n, 1))
    cj = np.where(rng.uniform(size=(n, 1)) < 0.2, 0.0, ci)
    inp = DispatchInputs(nom.p_load_pu * f, nom.q_load_pu * f, nom.p_pv_pu * rng.uniform(0.0, 4.0, (n, 3)), ci, cj)
    inp = jax.tree_util.tree_map(jnp.asarray, inp)

    def one(i):
        r = dispatch_native(data, i)
        return r.objective, r

    (obj, res), grad = jax.jit(jax.vmap(jax.value_and_grad(one, has_aux=True)))(inp)
    layer = DispatchLayer(build_dispatch(data))
    ref = layer(inp)
    ref_grad = jax.grad(lambda i: jnp.sum(layer(i).objective))(inp)
    assert np.all(np.asarray(res.converged))
    assert np.max(np.abs(np.asarray(obj) / np.asarray(ref.objective) - 1.0)) < 1e-3
    fields = ("s_rated_i_pu", "s_rated_j_pu", "p_pv_pu", "p_load_pu", "q_load_pu")
    scale = np.max([np.max(np.abs(np.asarray(getattr(ref_grad, f))), axis=1) for f in fields], axis=0)
    for f in fields[2:]:
        err = np.max(np.abs(np.asarray(getattr(grad, f)) - np.asarray(getattr(ref_grad, f))) / scale[:, None])
        assert err < 1e-2, (f, err)
    # capacities: both partials where both VSCs have capacity; where both are 0 only
    # their sum (the right derivative along the SOP's capacity) is defined, checked
    # against tight SOC solves just above the floor (Richardson-extrapolated one-sided
    # differences: the layer's adjoint at 1e-5 p.u. cones is not reliable there); a
    # single VSC at 0 is not resolved to 1 % by either path (docs/dispatch.md)
    both = (ci[:, 0] > 0) & (cj[:, 0] > 0)
    zero = np.flatnonzero((ci[:, 0] == 0) & (cj[:, 0] == 0))
    assert both.sum() > 20 and zero.size > 3
    gi, gj = np.asarray(grad.s_rated_i_pu)[:, 0], np.asarray(grad.s_rated_j_pu)[:, 0]
    ri, rj = np.asarray(ref_grad.s_rated_i_pu)[:, 0], np.asarray(ref_grad.s_rated_j_pu)[:, 0]
    assert np.max((np.abs(gi - ri) + np.abs(gj - rj))[both] / scale[both]) < 1e-2
    model = build_dispatch(data)
    tight = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "max_iter": 500}
    for k in zero:
        one = DispatchInputs(*(np.asarray(a[k], float) for a in inp))

        def at(c):
            return float(solve_dispatch(model, one._replace(s_rated_i_pu=np.r_[c], s_rated_j_pu=np.r_[c]),
                                        **tight)[0].objective)

        v0, v1, v2 = at(1e-5), at(1.5e-5), at(2e-5)
        right = 2 * (v1 - v0) / 0.5e-5 - (v2 - v0) / 1e-5
        assert abs(gi[k] + gj[k] - right) <= 1e-2 * scale[k], (k, gi[k] + gj[k], right)
    big = ci[:, 0] == 0.1  # 1000 kVA: not binding at 80 % load
    assert np.max(np.abs(np.asarray(grad.s_rated_i_pu)[big])) < 1e-6


def test_batched_solver_with_ratings_and_reactive_limits():
    """The rating and reactive-limit rows of the batched solver agree with the per-sample solver."""
    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=[300, 200, 200], pf=0.95)
    net = sopjax.add_sops(net, pairs=[(12, 22), (18, 33)], s_rated_kva=300, loss=0.02, q_max_kvar=60)
    rate = np.full(net.n_branch, np.inf)
    rate[[0, 5]] = [0.46, 0.30]  # 4.6 MVA at the substation, 3 MVA on branch 6-7
    net = net.replace(rate_pu=rate)
    data = compile_dispatch(net)
    assert data.q_lim_rows and np.shape(data.rate_kid)[0] == 2
    nom = nominal_inputs(net)
    rng = np.random.default_rng(7)
    f = rng.uniform(0.8, 1.1, (6, net.n_bus))
    inp = jax.tree_util.tree_map(jnp.asarray, DispatchInputs(
        nom.p_load_pu * f, nom.q_load_pu * f, nom.p_pv_pu * rng.uniform(0, 2, (6, 3)),
        np.full((6, 2), 0.03), np.full((6, 2), 0.03)))
    ref = jax.jit(jax.vmap(lambda i: dispatch_native(data, i)))(inp)
    res = jax.jit(lambda i: dispatch_batched(data, i, straggler_share=3))(inp)
    assert np.all(np.asarray(ref.converged)) and np.all(np.asarray(res.converged))
    for f_ in ("objective", "p_i", "q_i", "q_j", "vm_pu"):
        np.testing.assert_allclose(np.asarray(getattr(res, f_)), np.asarray(getattr(ref, f_)), atol=1e-9)
    # the limits are met and some bind
    assert np.max(np.abs(np.asarray(res.q_i))) <= 0.006 + 1e-9
    assert np.any(np.abs(np.abs(np.asarray(res.q_i)) - 0.006) < 1e-6)


def test_stall_test_stops_the_infeasible_sample_early_and_changes_no_other(case):
    """``stall_after``: the infeasible sample stops unconverged well before ``max_iter``; every
    other sample (converged or not) ends as without the test."""
    inp = jax.tree_util.tree_map(jnp.asarray, case["batch"])
    run = jax.jit(lambda i, s: dispatch_batched(case["data"], i, stall_after=s), static_argnums=1)
    off, on = run(inp, 0), run(inp, 30)
    k = N_RANDOM
    assert not bool(on.converged[k]) and int(on.iterations[k]) < int(off.iterations[k])
    assert int(on.iterations[k]) <= 41  # tested at iterations 30 and 40
    np.testing.assert_array_equal(np.asarray(on.converged), np.asarray(off.converged))
    rest = np.arange(len(on.converged)) != k
    np.testing.assert_array_equal(np.asarray(on.iterations)[rest], np.asarray(off.iterations)[rest])
    ok = np.asarray(off.converged)
    for f in ("objective", "p_i", "q_i", "p_j", "q_j", "vm_pu"):
        np.testing.assert_allclose(np.asarray(getattr(on, f))[ok], np.asarray(getattr(off, f))[ok], atol=1e-9,
                                   err_msg=f)
