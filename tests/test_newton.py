"""Soft policy iteration (Newton steps): same fixed point and gradient as value iteration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from optiongrad._src.newton import (DirectAdjointStart, bellman_residual, chord_step, factor,
                                    newton_step, policy_iteration_q)
from optiongrad._src.planning import smdp_bellman


@pytest.mark.parametrize("backup,tau", [("logsumexp", 0.1), ("logsumexp", 1.0), ("max", 0.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_newton_planner_equals_value_iteration(backup, tau, seed):
    mdp = og.random_mdp(seed, 12, 3, branching=4, discount=0.95, dtype=jnp.float64)
    plain = og.soft_value_iteration(mdp, tau, backup=backup, tol=1e-12, solver="iteration")
    fast = og.soft_value_iteration(mdp, tau, backup=backup, tol=1e-12, solver="newton")
    assert bool(fast.converged)
    assert int(fast.iterations) <= 3  # the warm start is already at the fixed point
    np.testing.assert_allclose(fast.q, plain.q, atol=1e-10)


def test_newton_step_fixes_the_soft_optimum_and_converges_fast():
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.goal_task(grid, grid.state(11, 11), 0.99)
    q_star = og.soft_value_iteration(mdp, 0.1, tol=1e-12, max_iter=100_000,
                                    solver="iteration").q
    np.testing.assert_allclose(newton_step(mdp, q_star, 0.1), q_star, atol=1e-9)
    q, steps = policy_iteration_q(mdp, jnp.asarray(0.1), "logsumexp", jnp.zeros((104, 4)),
                                  1e-11)
    assert int(steps) < 20
    np.testing.assert_allclose(q, q_star, atol=1e-9)


@pytest.mark.parametrize("backup,tau", [("logsumexp", 0.1), ("max", 0.0)])
def test_newton_step_is_the_value_of_the_policy_and_chord_steps_reach_the_same_point(backup,
                                                                                      tau):
    """The Newton step in residual form is `r + γ P V^π` with `V^π` from the dense numpy
    solve of `(I − γ P_π) V = r_π + τ H(π)`; chord steps with a stale policy's factors keep
    `Q*` fixed and converge to it."""
    mdp = og.random_mdp(3, 12, 3, branching=4, discount=0.95, dtype=jnp.float64)
    q = jax.random.normal(jax.random.key(0), (12, 3), jnp.float64)
    policy = np.asarray(og.backup_policy(q, tau, backup))
    p, r = np.asarray(mdp.transitions), np.asarray(mdp.rewards)
    p_pi = np.einsum("sa,sat->st", policy, p)
    bonus = np.asarray(og.backup(q, tau, backup)) - np.sum(policy * np.asarray(q), axis=1)
    v = np.linalg.solve(np.eye(12) - 0.95 * p_pi, np.sum(policy * r, axis=1) + bonus)
    np.testing.assert_allclose(newton_step(mdp, q, tau, backup), r + 0.95 * p @ v, atol=1e-12)
    q_star = og.soft_value_iteration(mdp, tau, backup=backup, tol=1e-13, solver="iteration").q
    stale = og.backup_policy(q, tau, backup)
    factors = factor(mdp, stale)
    d_star = bellman_residual(mdp, q_star, jnp.asarray(tau), backup)
    np.testing.assert_allclose(chord_step(mdp, q_star, d_star, stale, factors), q_star,
                               atol=1e-12)
    x = q_star + 0.01                                  # near Q*, chord steps contract
    for _ in range(40):
        x = chord_step(mdp, x, bellman_residual(mdp, x, jnp.asarray(tau), backup), stale,
                       factors)
    np.testing.assert_allclose(x, q_star, atol=1e-10)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.float64, 1e-10)])
def test_policy_iteration_needs_four_factorisations_on_the_goal_tasks(dtype, tol):
    """Four rooms, every goal (τ = 0.01 and 0.1, γ = 0.99): four factorisations and chord
    steps reach the tolerance for every goal (the old Newton loop took six to ten), and the
    result is the plain fixed point."""
    grid = og.gridworld.four_rooms()
    goals = jnp.arange(0, 104, 7)

    def one(g, tau):
        mdp = og.gridworld.goal_task(grid, g, 0.99, dtype=dtype)
        q, k = policy_iteration_q(mdp, jnp.asarray(tau, dtype), "logsumexp",
                                  jnp.zeros((104, 4), dtype), tol)
        d = bellman_residual(mdp, q, jnp.asarray(tau, dtype), "logsumexp")
        return k, jnp.max(jnp.abs(d))

    for tau in (0.01, 0.1):
        k, residual = jax.jit(jax.vmap(lambda g: one(g, tau)))(goals)
        assert int(k.max()) == 4
        assert float(residual.max()) <= tol


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_newton_gradient_equals_value_iteration_gradient_under_vmap(jit):
    grid = og.gridworld.four_rooms()
    model = og.rewards.tabular(104, 4)

    def grads(solver):
        def one(g):
            mdp = og.gridworld.goal_task(grid, g, 0.99)
            return jax.grad(lambda r: og.planner_return(r, model, mdp, 0.1, solver=solver,
                                                     tol=1e-12)[0])(mdp.rewards)
        fn = jax.vmap(one)
        return (jax.jit(fn) if jit else fn)(jnp.array([3, 50, 100]))

    np.testing.assert_allclose(grads("newton"), grads("iteration"), rtol=1e-7, atol=1e-10)


def test_newton_refuses_what_it_cannot_do():
    grid = og.gridworld.four_rooms()
    dense = og.gridworld.goal_task(grid, 5, 0.9)
    sparse = og.gridworld.goal_task(grid, 5, 0.9, sparse=True)
    with pytest.raises(ValueError, match="solver.*backup"):
        og.soft_value_iteration(dense, 0.1, backup="mellowmax", solver="newton")
    with pytest.raises(ValueError, match="solver.*adjoint"):
        og.soft_value_iteration(dense, 0.1, solver="newton", differentiation="unrolled",
                                num_sweeps=3)
    with pytest.raises(ValueError, match="solver.*dense"):
        og.soft_value_iteration(sparse, 0.1, solver="newton")


@pytest.mark.parametrize("backup,tau", [("logsumexp", 0.1), ("max", 0.0)])
def test_direct_adjoint_start_is_the_adjoint_solution(backup, tau):
    """Newton's implicit adjoint starts at the exact solution of the adjoint equation (one
    dense solve), against the dense numpy solve of `(I − Jᵀ) u = ḡ`."""
    mdp = og.random_mdp(2, 15, 3, branching=4, discount=0.95, dtype=jnp.float64)
    q = og.soft_value_iteration(mdp, tau, backup=backup, tol=1e-12, solver="newton").q
    g = jax.random.normal(jax.random.key(1), q.shape, jnp.float64)
    u = DirectAdjointStart(backup)((mdp, jnp.asarray(tau)), q, g)
    expected = ref.bellman_adjoint(np.asarray(mdp.transitions),
                                   np.asarray(og.backup_policy(q, tau, backup)), 0.95, g)
    np.testing.assert_allclose(u, expected, rtol=1e-10, atol=1e-12)


def _hallway_models():
    grid = og.gridworld.four_rooms(slip=0.1)
    mdp = og.gridworld.goal_task(grid, 40, 0.99, dtype=jnp.float64)
    options = og.with_primitives(og.gridworld.hallway_options(grid))
    return og.option_models(mdp, options), options.initiation


@pytest.mark.parametrize("backup,tau", [("logsumexp", 0.1), ("max", 0.0)])
@pytest.mark.parametrize("masked", [False, True], ids=["all", "initiation"])
def test_newton_over_options_equals_value_iteration(backup, tau, masked):
    """Soft policy iteration over options (`P_μ = Σ_o μ P^o`) reaches plain iteration's
    fixed point and gives its gradient with respect to the option models."""
    (rewards, transitions), initiation = _hallway_models()
    initiation = initiation if masked else None

    def plan(r, p, solver):
        return og.smdp_value_iteration(r, p, tau, backup=backup, tol=1e-12, solver=solver,
                                       initiation=initiation)

    plain, fast = plan(rewards, transitions, "iteration"), plan(rewards, transitions, "newton")
    assert bool(fast.converged) and int(fast.iterations) <= 2 < int(plain.iterations)
    np.testing.assert_allclose(fast.q, plain.q, atol=1e-9)
    weights = jax.random.uniform(jax.random.key(0), rewards.shape, jnp.float64)

    def grad(solver):
        return jax.jit(jax.grad(lambda r, p: jnp.sum(weights * plan(r, p, solver).q),
                                (0, 1)))(rewards, transitions)

    for a, b in zip(grad("newton"), grad("iteration")):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-8 * float(jnp.max(jnp.abs(b))))


@pytest.mark.parametrize("backup,tau", [("logsumexp", 0.3), ("max", 0.0)])
def test_direct_adjoint_start_over_options_is_the_adjoint_solution(backup, tau):
    """Over options the adjoint start solves `(I − Jᵀ) u = ḡ` exactly, `J` the dense Jacobian
    of the SMDP Bellman operator at `Q*` (by autodiff), with and without initiation sets."""
    rng = np.random.default_rng(3)
    s, k = 12, 3
    p = rng.random((k, s, s))
    p *= (0.9 * rng.random((k, s, 1)) + 0.05) / p.sum(-1, keepdims=True)
    r = rng.normal(size=(s, k))
    mask = rng.random((s, k)) < 0.7
    mask[:, 0] = True
    for m in (None, jnp.asarray(mask)):
        params = (jnp.asarray(r), jnp.asarray(p), jnp.asarray(tau), m)
        q = og.smdp_value_iteration(r, p, tau, backup=backup, tol=1e-13, solver="iteration",
                                    initiation=None if m is None else m.T).q
        g = jax.random.normal(jax.random.key(1), q.shape, jnp.float64)
        u = DirectAdjointStart(backup)(params, q, g)
        jac = jax.jacobian(lambda x: smdp_bellman(params, x.reshape(s, k), kind=backup)
                           .reshape(-1))(q.reshape(-1))
        expected = np.linalg.solve(np.eye(s * k) - np.asarray(jac).T, np.asarray(g).reshape(-1))
        np.testing.assert_allclose(np.asarray(u).reshape(-1), expected, rtol=1e-9, atol=1e-11)


def test_auto_plans_option_models_with_newton_when_they_are_concrete():
    (rewards, transitions), _ = _hallway_models()
    auto = og.solvers.Auto()
    assert auto.choose_options(transitions) == og.solvers.Newton()
    assert auto.choose_options(transitions, "max") == og.solvers.FixedPointIteration()
    assert og.solvers.Auto(newton_factor=0).choose_options(transitions) == \
        og.solvers.FixedPointIteration()
    default = og.smdp_value_iteration(rewards, transitions, 0.1, tol=1e-12)
    assert int(default.iterations) <= 2
    traced = jax.jit(lambda p: og.smdp_value_iteration(rewards, p, 0.1, tol=1e-12))(transitions)
    assert int(traced.iterations) > 100                       # plain sweeps: P^O is traced
    np.testing.assert_allclose(default.q, traced.q, atol=1e-9)
    grid = og.gridworld.four_rooms()
    options = og.gridworld.hallway_options(grid)
    mdp = og.gridworld.goal_task(grid, 40, 0.9, dtype=jnp.float64)
    with pytest.raises(ValueError, match="solver.*intra-option"):
        og.intra_option_value_iteration(mdp, og.with_primitives(options), 0.1, solver="newton")
    with pytest.raises(ValueError, match="solver: GaussSeidel does not plan here"):
        og.smdp_value_iteration(rewards, transitions, 0.1, solver="gauss-seidel")
