"""SOC dispatch (cvxpy, DPP) and its cvxpylayers layer: physics, gradients, non-smooth points, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sopjax
from sopjax.kernels.dispatch import (
    DispatchInfeasibleError,
    DispatchInputError,
    DispatchInputs,
    compile_dispatch,
    nominal_inputs,
)
from sopjax.powerflow import solve
from sopjax.problems.dispatch import DispatchLayer, build_dispatch, solve_dispatch

TIGHT = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}


def network(kva=200.0):
    net = sopjax.add_pv(sopjax.ieee33(), buses=[7, 13, 30], s_rated_kva=[300, 200, 200], pf=0.95)
    return sopjax.add_sops(net, pairs=[(12, 22), (18, 33), (25, 29)], s_rated_kva=kva, loss=0.02)


@pytest.fixture(scope="module")
def setup():
    net = network()
    data = compile_dispatch(net)
    model = build_dispatch(data)
    return net, data, model, DispatchLayer(model)


def one(inp, **changes):
    return DispatchInputs(*(jnp.asarray(changes.get(f, getattr(inp, f)), jnp.float64) for f in inp._fields))


def value(model, inp):
    return float(solve_dispatch(model, jax.tree_util.tree_map(np.asarray, inp), **TIGHT)[0].objective)


def exact_flow(net, data, inp, res):
    """Exact power flow (one batch: with the dispatch's SOP set-points, and with idle SOPs)."""
    p, q = np.array(inp.p_load_pu, float), np.array(inp.q_load_pu, float)
    for b, pv, t in zip(np.asarray(net.pv.bus), np.asarray(inp.p_pv_pu), np.asarray(data.pv_tan)):
        p[b] -= pv
        q[b] -= pv * t
    p2, q2 = np.stack([p, p]), np.stack([q, q])
    s = net.sop
    for k in range(s.count):
        p2[0, s.bus_i[k]] -= res.p_i[k]
        q2[0, s.bus_i[k]] -= res.q_i[k]
        p2[0, s.bus_j[k]] -= res.p_j[k]
        q2[0, s.bus_j[k]] -= res.q_j[k]
    return solve(net, p_load_pu=p2, q_load_pu=q2)[0]


def test_soc_relaxation_tight_and_equal_to_exact_power_flow(setup):
    net, data, model, _ = setup
    inp = nominal_inputs(net)
    res, info = solve_dispatch(model, inp, **TIGHT)
    assert info["relaxation_gap"] < 1e-8 and info["loss_gap"] < 1e-8  # both relaxations tight
    pf = exact_flow(net, data, inp, res)
    np.testing.assert_allclose(pf.losses_pu[0], res.line_loss, rtol=1e-6)
    np.testing.assert_allclose(pf.vm_pu[0], res.vm_pu, atol=1e-7)
    # substation supplies load - PV + line losses + converter losses
    np.testing.assert_allclose(pf.p_source_pu[0, net.slack_bus],
                               np.sum(inp.p_load_pu) - np.sum(inp.p_pv_pu) + res.line_loss
                               + np.sum(res.converter_loss), atol=1e-9)
    # the SOPs cut the feeder's losses well below the idle-SOP value
    assert res.objective < 0.8 * pf.losses_pu[1]


def test_sop_model_dc_balance_capacity_and_losses(setup):
    net, data, model, _ = setup
    res, _ = solve_dispatch(model, nominal_inputs(net), **TIGHT)
    s_i, s_j = np.hypot(res.p_i, res.q_i), np.hypot(res.p_j, res.q_j)
    np.testing.assert_allclose(res.converter_loss, -(res.p_i + res.p_j), atol=1e-9)
    np.testing.assert_allclose(res.converter_loss, 0.02 * (s_i + s_j), atol=1e-8)
    cap = np.asarray(net.sop.s_rated_i_pu)
    assert np.all(s_i <= cap + 1e-8) and np.all(s_j <= cap + 1e-8)
    assert np.any(np.isclose(np.maximum(s_i, s_j), cap, rtol=1e-6))  # 200 kVA binds somewhere


def test_layer_batch_matches_cvxpy(setup):
    net, data, model, layer = setup
    nom = nominal_inputs(net)
    rng = np.random.default_rng(0)
    f = rng.uniform(0.8, 1.2, (3, net.n_bus))
    inp = DispatchInputs(nom.p_load_pu * f, nom.q_load_pu * f, nom.p_pv_pu * rng.uniform(0.5, 1.5, (3, 3)),
                         np.full((3, 3), 0.02), np.full((3, 3), 0.03))
    out = layer(jax.tree_util.tree_map(jnp.asarray, inp))
    for b in range(3):
        ref, _ = solve_dispatch(model, DispatchInputs(*(a[b] for a in inp)), **TIGHT)
        np.testing.assert_allclose(out.objective[b], ref.objective, rtol=1e-6)
        np.testing.assert_allclose(out.q_j[b], ref.q_j, atol=1e-5)
        np.testing.assert_allclose(out.cap_dual_i[b], ref.cap_dual_i, atol=1e-5)


def test_gradients_match_central_differences(setup):
    net, data, model, layer = setup
    inp = one(nominal_inputs(net))
    g = jax.grad(lambda i: layer(i).objective)(inp)
    h = 1e-4
    cases = [("s_rated_i_pu", 0), ("s_rated_j_pu", 1), ("p_pv_pu", 2), ("p_load_pu", 17), ("q_load_pu", 31)]
    for name, k in cases:
        base = np.asarray(getattr(inp, name))
        e = np.zeros_like(base)
        e[k] = h
        fd = (value(model, one(inp, **{name: base + e})) - value(model, one(inp, **{name: base - e}))) / (2 * h)
        ad = float(getattr(g, name)[k])
        assert abs(ad - fd) <= 1e-2 * abs(fd) + 1e-7, (name, k, ad, fd)
        assert abs(fd) > 1e-4  # every case has a real sensitivity


def test_envelope_theorem_capacity_gradient_is_minus_the_dual(setup):
    net, data, model, layer = setup
    inp = one(nominal_inputs(net))
    out = layer(inp)
    g = jax.grad(lambda i: layer(i).objective)(inp)
    ref, _ = solve_dispatch(model, nominal_inputs(net), **TIGHT)
    for side in ("i", "j"):
        dual = np.asarray(getattr(out, f"cap_dual_{side}"))
        grad = np.asarray(getattr(g, f"s_rated_{side}_pu"))
        np.testing.assert_allclose(grad, -dual, rtol=1e-3, atol=1e-7)
        np.testing.assert_allclose(dual, getattr(ref, f"cap_dual_{side}"), rtol=1e-3, atol=1e-7)
    assert np.max(np.asarray(out.cap_dual_i)) > 1e-3  # some capacity binds


def test_binding_capacity_moves_the_set_point_one_for_one(setup):
    net, data, model, layer = setup
    inp = one(nominal_inputs(net))
    res = layer(inp)
    s_i = np.hypot(np.asarray(res.p_i), np.asarray(res.q_i))
    k = int(np.argmax(np.asarray(res.cap_dual_i)))  # a binding VSC i

    def mag(s):
        r = layer(inp._replace(s_rated_i_pu=inp.s_rated_i_pu.at[k].set(s)))
        return jnp.stack([r.p_i[k], r.q_i[k]])

    jac = jax.jacrev(mag)(inp.s_rated_i_pu[k])  # reverse-mode Jacobian through the layer
    d_mag = float(np.dot(np.array([res.p_i[k], res.q_i[k]]), np.asarray(jac)) / s_i[k])
    assert abs(d_mag - 1.0) < 1e-3


def test_non_binding_capacity_has_zero_gradient():
    net = network(kva=2000.0)  # far above what the dispatch uses
    model = build_dispatch(compile_dispatch(net))
    layer = DispatchLayer(model)
    inp = one(nominal_inputs(net))
    g = jax.grad(lambda i: layer(i).objective)(inp)
    assert np.max(np.abs(np.asarray(g.s_rated_i_pu))) < 1e-6
    assert np.max(np.abs(np.asarray(g.s_rated_j_pu))) < 1e-6
    h = 1e-3
    up = value(model, one(inp, s_rated_i_pu=inp.s_rated_i_pu + h))
    base = value(model, inp)
    assert abs(up - base) < 1e-6 * base  # flat (solver accuracy); a binding one would move it by ~2e-3
    jac = jax.jacrev(lambda s: layer(inp._replace(s_rated_i_pu=s)).q_j)(inp.s_rated_i_pu)
    assert np.max(np.abs(np.asarray(jac))) < 1e-4


def test_capacity_zero_gives_the_right_derivative(setup):
    net, data, model, layer = setup
    inp = one(nominal_inputs(net), s_rated_i_pu=np.array([0.0, 0.02, 0.02]), s_rated_j_pu=np.array([0.0, 0.02, 0.02]))
    g = jax.grad(lambda i: layer(i).objective)(inp)
    both = float(g.s_rated_i_pu[0] + g.s_rated_j_pu[0])
    assert np.isfinite(both) and both < 0
    # the slope of V just above 0 (capacities below 1e-5 p.u. are raised to it, with a
    # straight-through gradient, so the derivative at 0 is the right derivative)
    def at(c):
        return value(model, one(inp, s_rated_i_pu=inp.s_rated_i_pu.at[0].set(c),
                                s_rated_j_pu=inp.s_rated_j_pu.at[0].set(c)))

    right = (at(4e-5) - at(2e-5)) / 2e-5
    assert abs(both - right) <= 0.02 * abs(right)
    # at zero capacity the SOP is idle: the same losses as without it
    res = layer(inp)
    assert abs(float(res.p_i[0])) < 2e-5 and abs(float(res.converter_loss[0])) < 2e-6


def test_diffcp_lsqr_mode_agrees_with_the_exact_adjoint(setup):
    net, data, model, layer = setup
    inp = one(nominal_inputs(net))
    naive = DispatchLayer(model, mode="lsqr")
    g1 = jax.grad(lambda i: layer(i).objective)(inp)
    g2 = jax.grad(lambda i: naive(i).objective)(inp)
    for f in ("s_rated_i_pu", "p_pv_pu", "p_load_pu"):
        a, b = np.asarray(getattr(g1, f)), np.asarray(getattr(g2, f))
        np.testing.assert_allclose(a, b, atol=2e-3 * np.max(np.abs(b)))


# ------------------------------------------------------------------ bad input


def test_negative_capacity_is_named(setup):
    net, data, model, layer = setup
    bad = nominal_inputs(net)._replace(s_rated_j_pu=np.array([0.02, -0.01, 0.02]))
    with pytest.raises(DispatchInputError, match=r"s_rated_j_pu.*SOP 1 \(18-33\) VSC j"):
        layer(bad)
    with pytest.raises(DispatchInputError, match="capacity must be >= 0"):
        solve_dispatch(model, bad)


def test_non_finite_load_is_named(setup):
    net, data, model, layer = setup
    p = np.array(nominal_inputs(net).p_load_pu)
    p[4] = np.nan
    with pytest.raises(DispatchInputError, match="p_load_pu is not finite at bus 5"):
        layer(nominal_inputs(net)._replace(p_load_pu=p))
    with pytest.raises(DispatchInputError, match="needs 33 values"):
        layer(nominal_inputs(net)._replace(q_load_pu=np.ones(5)))


def test_infeasible_operating_point_names_the_bus(setup):
    net, data, model, layer = setup
    heavy = nominal_inputs(net, load_scale=2.5)._replace(s_rated_i_pu=np.zeros(3), s_rated_j_pu=np.zeros(3))
    with pytest.raises(DispatchInfeasibleError, match=r"bus \d+ cannot be held above v_min = 0.9000"):
        solve_dispatch(model, heavy)
    ok = nominal_inputs(net)
    batch = DispatchInputs(*(np.stack([np.asarray(a, float), np.asarray(b, float)]) for a, b in zip(ok, heavy)))
    with pytest.raises(DispatchInfeasibleError, match=r"in sample 1 .*: bus \d+ cannot be held above"):
        layer(batch)


def test_network_and_topology_errors():
    with pytest.raises(DispatchInputError, match="has no SOPs"):
        compile_dispatch(sopjax.ieee33())
    net = network()
    with pytest.raises(DispatchInputError, match="bus 3 is not fed"):
        compile_dispatch(net, open=[2])
    with pytest.raises(sopjax.TopologyError, match="closed loop"):
        compile_dispatch(net, close=[33])
    with pytest.raises(DispatchInputError, match="voltage_weight"):
        compile_dispatch(net, voltage_weight=-1.0)


def test_fresh_clarabel_solvers_agree_with_the_reused_one(setup):
    """``equilibrate_enable`` in solver_args: one fresh Clarabel solver per problem (Clarabel's
    own equilibration) instead of one set-up solver with a precomputed Ruiz scaling."""
    net, data, model, layer = setup
    fresh = DispatchLayer(model, solver_args={"equilibrate_enable": True})
    nom = nominal_inputs(net)
    inp = DispatchInputs(*(jnp.stack([jnp.asarray(a, jnp.float64) * s for s in (0.9, 1.1)]) for a in nom))
    a, b = layer(inp), fresh(inp)
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-5)
    ga = jax.grad(lambda i: jnp.sum(layer(i).objective))(inp)
    gb = jax.grad(lambda i: jnp.sum(fresh(i).objective))(inp)
    for f in ("s_rated_i_pu", "p_pv_pu", "p_load_pu"):
        x, y = np.asarray(getattr(ga, f)), np.asarray(getattr(gb, f))
        np.testing.assert_allclose(x, y, atol=2e-3 * np.max(np.abs(y)))
