import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
from optiongrad import fixed_point


def linear_problem(seed=0, n=6, gamma=0.95):
    rng = np.random.default_rng(seed)
    a = rng.random((n, n))
    a = gamma * a / a.sum(1, keepdims=True)
    b = rng.normal(size=n)
    c = rng.normal(size=n)
    return jnp.asarray(a), jnp.asarray(b), jnp.asarray(c)


def affine(params, x):
    a, b = params
    return a @ x + b


@pytest.mark.parametrize("solver", ["iteration", "anderson"])
def test_linear_fixed_point_and_gradients_match_closed_form(maybe_jit, solver):
    a, b, c = linear_problem()
    n = b.shape[0]
    x_star = np.linalg.solve(np.eye(n) - a, b)

    def loss(a, b):
        return c @ fixed_point(affine, (a, b), jnp.zeros(n), tol=1e-13, solver=solver).value

    res = maybe_jit(lambda a, b: fixed_point(affine, (a, b), jnp.zeros(n), tol=1e-13,
                                             solver=solver))(a, b)
    np.testing.assert_allclose(res.value, x_star, rtol=1e-11)
    assert bool(res.converged) and float(res.residual) <= 1e-13
    ga, gb = maybe_jit(jax.grad(loss, argnums=(0, 1)))(a, b)
    u = np.linalg.solve((np.eye(n) - a).T, c)
    np.testing.assert_allclose(gb, u, rtol=1e-10)
    np.testing.assert_allclose(ga, np.outer(u, x_star), rtol=1e-10)


def test_nonlinear_scalar_derivative():
    # x = θ + γ tanh(x):  dx/dθ = 1 / (1 − γ sech²(x*))
    gamma = 0.8

    def solve(theta):
        return fixed_point(lambda t, x: t + gamma * jnp.tanh(x), theta, jnp.zeros(()),
                           tol=1e-14).value

    theta = jnp.asarray(0.3)
    x = solve(theta)
    assert float(x) == pytest.approx(0.3 + gamma * np.tanh(float(x)), abs=1e-13)
    expected = 1.0 / (1.0 - gamma / np.cosh(float(x)) ** 2)
    assert float(jax.grad(solve)(theta)) == pytest.approx(expected, rel=1e-11)


def test_closed_over_arrays_receive_gradients():
    a, b, c = linear_problem(1)
    n = b.shape[0]

    def loss(b):
        return c @ fixed_point(lambda p, x: a @ x + b, None, jnp.zeros(n), tol=1e-13).value

    u = np.linalg.solve((np.eye(n) - a).T, c)
    np.testing.assert_allclose(jax.grad(loss)(b), u, rtol=1e-10)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(b), u, rtol=1e-10)


def test_unrolled_is_exactly_n_sweeps_and_differentiable():
    a, b, c = linear_problem(2)
    n = b.shape[0]
    res = fixed_point(affine, (a, b), jnp.zeros(n), differentiation="unrolled", num_sweeps=7)
    x = np.zeros(n)
    for _ in range(7):
        x_prev, x = x, np.asarray(a) @ x + np.asarray(b)
    np.testing.assert_allclose(res.value, x, rtol=1e-13)
    assert int(res.iterations) == 7
    assert float(res.residual) == pytest.approx(np.abs(x - x_prev).max())
    # d(c·x_7)/db = Σ_{k<7} (Aᵀ)^k c
    expected = sum(np.linalg.matrix_power(np.asarray(a).T, k) @ np.asarray(c) for k in range(7))
    grad = jax.grad(lambda b: c @ fixed_point(affine, (a, b), jnp.zeros(n),
                                              differentiation="unrolled", num_sweeps=7).value)(b)
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


def test_non_convergence_is_flagged():
    a, b, _ = linear_problem(3, gamma=0.99)
    res = fixed_point(affine, (a, b), jnp.zeros(b.shape[0]), tol=1e-12, max_iter=5)
    assert int(res.iterations) == 5
    assert not bool(res.converged)
    assert float(res.residual) > 1e-12


def test_failed_adjoint_solve_gives_nan_gradient():
    a, b, c = linear_problem(4, gamma=0.99)
    n = b.shape[0]

    def loss(b, cap):
        return c @ fixed_point(affine, (a, b), jnp.zeros(n), tol=1e-12,
                               adjoint=og.solvers.Implicit(max_iter=cap)).value

    assert np.isnan(jax.grad(loss)(b, 2)).all()
    assert np.isfinite(jax.grad(loss)(b, 100_000)).all()


def test_warm_start_changes_neither_value_nor_gradient():
    a, b, c = linear_problem(5)
    n = b.shape[0]

    def loss(b, init):
        return c @ fixed_point(affine, (a, b), init, tol=1e-13).value

    cold = jax.value_and_grad(loss)(b, jnp.zeros(n))
    warm = jax.value_and_grad(loss)(b, jnp.full(n, 3.0))
    np.testing.assert_allclose(cold[0], warm[0], rtol=1e-11)
    np.testing.assert_allclose(cold[1], warm[1], rtol=1e-11)
    assert float(jnp.abs(jax.grad(loss, argnums=1)(b, jnp.ones(n))).max()) == 0.0


class _Start(tuple):
    """A hashable adjoint start: `u0 = scale · ḡ + shift` (any start gives the same gradient;
    a NaN start is not used)."""

    def __call__(self, params, x, g):
        scale, shift = self
        return scale * g + shift


@pytest.mark.parametrize("start", [(1.0, 0.0), (-3.0, 2.0), (float("nan"), 0.0)],
                         ids=["g", "far", "nan"])
def test_adjoint_start_changes_neither_value_nor_gradient(start):
    a, b, c = linear_problem(5)
    n = b.shape[0]

    def loss(a, b):
        return c @ fixed_point(affine, (a, b), jnp.zeros(n), tol=1e-13,
                               adjoint_start=_Start(start)).value

    ga, gb = jax.jit(jax.grad(loss, argnums=(0, 1)))(a, b)
    u = np.linalg.solve((np.eye(n) - a).T, c)
    x_star = np.linalg.solve(np.eye(n) - a, b)
    np.testing.assert_allclose(gb, u, rtol=1e-10)
    np.testing.assert_allclose(ga, np.outer(u, x_star), rtol=1e-10)


def test_vmap_over_parameters_keeps_per_element_iterations():
    a, b, _ = linear_problem(6)
    n = b.shape[0]
    bs = jnp.stack([b, 0 * b, 10 * b])
    res = jax.vmap(lambda bb: fixed_point(affine, (a, bb), jnp.zeros(n), tol=1e-12))(bs)
    for i in range(3):
        single = fixed_point(affine, (a, bs[i]), jnp.zeros(n), tol=1e-12)
        np.testing.assert_allclose(res.value[i], single.value, rtol=1e-12)
        assert int(res.iterations[i]) == int(single.iterations)
    assert int(res.iterations[1]) == 1  # zero reward: converged after one sweep


@pytest.mark.parametrize("kwargs,name", [
    (dict(differentiation="finite"), "differentiation"),
    (dict(differentiation="unrolled"), "num_sweeps"),
    (dict(differentiation="unrolled", num_sweeps=0), "num_sweeps"),
    (dict(differentiation="implicit", num_sweeps=10), "num_sweeps"),
    (dict(max_iter=0), "max_iter"),
    (dict(adjoint_max_iter=-3), "adjoint_max_iter"),
    (dict(tol=-1.0), "tol"),
    (dict(solver="newton"), "solver"),
    (dict(solver="anderson", memory=0), "memory"),
])
def test_bad_arguments(kwargs, name):
    a, b, _ = linear_problem()
    with pytest.raises(ValueError, match=name):
        fixed_point(affine, (a, b), jnp.zeros(b.shape[0]), **kwargs)


def test_result_type_is_exported():
    a, b, _ = linear_problem()
    assert isinstance(fixed_point(affine, (a, b), jnp.zeros(6)), og.FixedPointResult)


def test_anderson_needs_far_fewer_evaluations_on_a_slow_linear_problem():
    a, b, _ = linear_problem(seed=1, n=40, gamma=0.999)
    plain = fixed_point(affine, (a, b), jnp.zeros(40), tol=1e-10, max_iter=100_000)
    fast = fixed_point(affine, (a, b), jnp.zeros(40), tol=1e-10, solver="anderson")
    assert bool(plain.converged) and bool(fast.converged)
    assert int(fast.iterations) * 5 < int(plain.iterations)
    np.testing.assert_allclose(fast.value, plain.value, atol=1e-10 / (1 - 0.999) * 2)


def test_anderson_adjoint_falls_back_to_plain_iteration():
    # Small memories stall more often; the plain iteration must then finish the adjoint.
    a, b, c = linear_problem(seed=2, n=30, gamma=0.99)
    n = b.shape[0]

    def loss(b, memory):
        return c @ fixed_point(affine, (a, b), jnp.zeros(n), tol=1e-13,
                               solver=og.solvers.Anderson(memory=memory)).value

    expected = np.linalg.solve((np.eye(n) - a).T, c)
    for memory in (1, 2, 5):
        grad = jax.grad(loss)(b, memory)
        np.testing.assert_allclose(grad, expected, rtol=1e-9)


def test_fixed_point_adjoint_solves_the_adjoint_equation_and_reports_it():
    """For `x = A x + b` the adjoint of a cotangent `ḡ` is `u = (I − Aᵀ)⁻¹ ḡ` (closed form);
    the report counts the iterations and fails honestly when they are capped."""
    a, b, _ = linear_problem(seed=3)
    x = fixed_point(affine, (a, b), jnp.zeros(b.shape[0]), tol=1e-13).value
    g = jnp.arange(1.0, b.shape[0] + 1)
    report = og.fixed_point_adjoint(affine, (a, b), x, g)
    expected = np.linalg.solve(np.eye(b.shape[0]) - np.asarray(a).T, np.asarray(g))
    np.testing.assert_allclose(report.value, expected, rtol=1e-10)
    assert bool(report.converged) and 10 < int(report.iterations) and report.residual <= 1e-12
    # the gradient of ⟨ḡ, x*⟩ with respect to b is u (∂_b f = I)
    grad = jax.grad(lambda b: g @ fixed_point(affine, (a, b), jnp.zeros_like(b),
                                              tol=1e-13).value)(b)
    np.testing.assert_allclose(grad, report.value, rtol=1e-12)
    capped = og.fixed_point_adjoint(affine, (a, b), x, g,
                                    adjoint=og.solvers.Implicit(max_iter=3))
    assert capped.result == og.RESULTS.max_steps_reached and np.isnan(capped.value).all()
    started = og.fixed_point_adjoint(affine, (a, b), x, g,
                                     adjoint_start=lambda p, x, g: jnp.asarray(expected))
    assert int(started.iterations) <= 2
    with pytest.raises(ValueError, match="cotangent"):
        og.fixed_point_adjoint(affine, (a, b), x, g[:-1])
    with pytest.raises(ValueError, match="adjoint"):
        og.fixed_point_adjoint(affine, (a, b), x, g, adjoint=og.solvers.Unrolled(3))
