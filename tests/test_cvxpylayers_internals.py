"""The cvxpylayers internals that the dispatch layer's exact adjoint relies on.

``sopjax.problems.dispatch.adjoint`` replaces cvxpylayers' solver context and reads
its internals (listed in that module's docstring). These tests fail, with a message
naming the internal, when an installed cvxpylayers changes one of them: they check
the names, signatures and data layout, then run a tiny cone program through the
stock diffcp path and through ours and compare solutions, duals and gradients.
"""

import inspect
import pathlib
import tomllib

import cvxpy as cp
import cvxpylayers
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cvxpylayers.interfaces.diffcp_if import DIFFCP_ctx, DIFFCP_data, dims_to_solver_dict
from cvxpylayers.jax import CvxpyLayer
from packaging.requirements import Requirement

import sopjax  # noqa: F401  (float64 on)
from sopjax.problems.dispatch.adjoint import (
    REQUIRED_CONTEXT_ATTRIBUTES,
    ExactSolverContext,
    check_layer_context,
)

CHANGED = "cvxpylayers changed an internal that sopjax/problems/dispatch/adjoint.py relies on: "
STOCK_ARGS = {"solve_method": "Clarabel"}


def tiny():
    """A DPP SOCP with zero, non-negative and second-order cones; ``a`` enters ``A``, ``p, s`` enter ``b``.

    ``min y - p'x  s.t.  y = a x_0 - x_1,  x >= -1,  |x| <= s``: ``x = s g / |g|`` with
    ``g = p - (a, -1)``, the capacity cone binds with dual ``|g|`` (smooth, non-degenerate).
    """
    p = cp.Parameter(2, name="p")
    a, s = cp.Parameter(nonneg=True, name="a"), cp.Parameter(nonneg=True, name="s")
    x, y = cp.Variable(2, name="x"), cp.Variable(name="y")
    cap = cp.SOC(s, x)
    prob = cp.Problem(cp.Minimize(y - p @ x), [y == a * x[0] - x[1], x >= -1, cap])
    assert prob.is_dpp()
    return prob, [p, a, s], [x, y, cap.dual_variables[0]], cap


def values(a_varies: bool):
    """A batch of three: ``a`` the same in all (one shared ``A``) or not (one ``A`` each)."""
    p = np.array([[1.0, 0.5], [0.8, 0.7], [1.2, 0.1]])
    a = np.array([1.0, 1.3, 0.7]) if a_varies else np.full(3, 1.0)
    s = np.array([0.8, 0.6, 0.9])
    return [jnp.asarray(v) for v in (p, a, s)]


def stock_and_exact():
    """The tiny problem's layer twice: cvxpylayers' stock context, and ours swapped in."""
    prob, params, variables, cap = tiny()
    stock = CvxpyLayer(prob, parameters=params, variables=variables)
    exact = CvxpyLayer(prob, parameters=params, variables=variables)
    exact.ctx.solver_ctx = ExactSolverContext(exact.ctx, {}, 1)
    return prob, params, variables[0], cap, stock, exact


def test_installed_cvxpylayers_satisfies_the_pyproject_bound():
    deps = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    req = next(Requirement(d) for d in deps["dependencies"] if d.startswith("cvxpylayers"))
    assert req.specifier.contains(cvxpylayers.__version__), (
        f"cvxpylayers {cvxpylayers.__version__} is installed but pyproject.toml vouches only for {req}: "
        "the exact dispatch adjoint reads its internals; run this file on it, then widen the bound"
    )


def test_default_layer_context_is_diffcp_with_the_attributes_read():
    prob, params, variables, _ = tiny()
    layer = CvxpyLayer(prob, parameters=params, variables=variables)
    solver = layer.ctx.solver
    assert solver == "DIFFCP", CHANGED + f"the default layer solver is {solver!r}, not 'DIFFCP'"
    base = layer.ctx.solver_ctx
    assert isinstance(base, DIFFCP_ctx), CHANGED + f"solver_ctx is a {type(base).__name__}, not DIFFCP_ctx"
    for name in REQUIRED_CONTEXT_ATTRIBUTES:
        assert hasattr(base, name), CHANGED + f"DIFFCP_ctx.{name} is gone"
    check_layer_context(layer.ctx)  # the run-time guard agrees

    indices, indptr = base.A_structure
    m, np1 = base.A_shape
    assert len(indptr) == np1 + 1, CHANGED + "A_structure is not the CSC structure of [-A | b] of A_shape"
    assert np.array_equal(base.b_idx, indices[indptr[-2] : indptr[-1]]), (
        CHANGED + "b_idx is not the rows of b's column (the last one)")
    cones = dims_to_solver_dict(base.dims)
    assert cones["z"] and cones["l"] and cones["q"], CHANGED + f"cone dict {cones} lacks a cone kind"
    assert cones["z"] + cones["l"] + sum(cones["q"]) == m, (
        CHANGED + f"cone dict {cones} does not cover the {m} rows of A")
    assert layer.P is None, CHANGED + "a DIFFCP layer has a quadratic objective P (the adjoint ignores it)"


def test_the_calls_the_exact_context_answers_are_still_made():
    src = inspect.getsource(CvxpyLayer._solve_with_custom_vjp)
    for call in ("self.ctx.solver_ctx.jax_to_data(", ".jax_solve_only(", ".jax_solve(", ".jax_derivative("):
        assert call in src, CHANGED + f"CvxpyLayer._solve_with_custom_vjp no longer calls {call}...)"
    assert "_solve_with_custom_vjp(" in inspect.getsource(CvxpyLayer.__call__), (
        CHANGED + "CvxpyLayer.__call__ no longer goes through _solve_with_custom_vjp")
    signatures = {
        DIFFCP_ctx.jax_to_data: ["self", "quad_obj_values", "lin_obj_values", "con_values"],
        DIFFCP_data.jax_solve: ["self", "solver_args"],
        DIFFCP_data.jax_solve_only: ["self", "solver_args"],
        DIFFCP_data.jax_derivative: ["self", "dprimal", "ddual", "adj_batch"],
    }
    for fn, names in signatures.items():
        got = list(inspect.signature(fn).parameters)
        assert got == names, CHANGED + f"{fn.__qualname__}{tuple(got)}, expected {tuple(names)}"


@pytest.mark.parametrize("a_varies", [False, True], ids=["shared-A", "A-per-problem"])
def test_canonical_data_reads_as_the_stock_context_builds_it(a_varies):
    """Our reading of ``con_values`` / ``lin_obj_values`` gives the stock context's ``A, b, c``."""
    *_, stock, exact = stock_and_exact()
    seen = {}
    build = stock.ctx.solver_ctx.jax_to_data

    def spy(*args):
        seen["args"], seen["data"] = args, build(*args)
        return seen["data"]

    stock.ctx.solver_ctx.jax_to_data = spy
    stock(*values(a_varies), solver_args=STOCK_ARGS)
    quad, lin, con = seen["args"]
    theirs = seen["data"]
    assert quad is None, CHANGED + "jax_to_data now receives quadratic objective values"
    ours = exact.ctx.solver_ctx.jax_to_data(quad, lin, con)
    assert ours.shared_A is (not a_varies)
    for i in range(3):
        A = ours.ctx.shared["A"] if ours.shared_A else ours.As[i]
        assert np.allclose(A.toarray(), theirs.As[i].toarray()), CHANGED + f"A of problem {i} reads wrong"
        assert np.allclose(ours.b[i], theirs.bs[i]), CHANGED + f"b of problem {i} reads wrong"
        assert np.allclose(ours.c[i], theirs.cs[i]), CHANGED + f"c of problem {i} reads wrong"


@pytest.mark.parametrize("a_varies", [False, True], ids=["shared-A", "A-per-problem"])
def test_tiny_problem_through_the_stock_path_and_ours_agrees(a_varies):
    prob, params, x, cap, stock, exact = stock_and_exact()
    vals = values(a_varies)
    x_s, y_s, d_s = stock(*vals, solver_args=STOCK_ARGS)
    x_e, y_e, d_e = exact(*vals)
    for i in range(3):  # cvxpy's own solve: the dual is read where cvxpylayers puts it
        for par, v in zip(params, vals):
            par.value = np.asarray(v[i])
        prob.solve(solver="CLARABEL")
        assert np.allclose(x_e[i], x.value, atol=1e-4)  # two canonicalizations, solver tolerance
        assert np.isclose(np.ravel(d_e[i])[0], np.ravel(cap.dual_value[0])[0], rtol=1e-6), (
            CHANGED + "the layer's cone dual is not cvxpy's (the dual recovery layout changed)")
    assert float(np.min(d_e)) > 0.5  # the capacity cone binds: its gradients are non-trivial
    for name, s_, e_ in (("x", x_s, x_e), ("y", y_s, y_e), ("dual", d_s, d_e)):
        assert np.allclose(s_, e_, rtol=1e-6, atol=1e-8), CHANGED + f"{name} differs from the stock path"

    def loss(layer, args):
        def f(*v):
            x, y, dual = layer(*v, solver_args=args)
            return jnp.sum(x * jnp.array([1.0, -2.0])) + jnp.sum(y) + jnp.sum(dual)

        return f

    g_s = jax.grad(loss(stock, STOCK_ARGS), argnums=(0, 1, 2))(*vals)
    g_e = jax.grad(loss(exact, {}), argnums=(0, 1, 2))(*vals)
    for name, gs, ge in zip(("p", "a", "s"), g_s, g_e):
        assert np.all(np.isfinite(ge)) and np.any(np.abs(ge) > 1e-2), f"degenerate gradient in {name}"
        assert np.allclose(gs, ge, rtol=1e-4, atol=1e-6), (
            CHANGED + f"the gradient in {name} differs from the stock diffcp path: {gs} vs {ge}")


def test_a_context_without_the_internals_fails_loudly():
    class Elsewhere:
        solver = "DIFFCP"
        solver_ctx = object()

    with pytest.raises(RuntimeError, match="lacks"):
        check_layer_context(Elsewhere())
    with pytest.raises(RuntimeError, match="lacks"):
        ExactSolverContext(Elsewhere(), {}, 1)
