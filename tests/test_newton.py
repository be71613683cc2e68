"""Soft policy iteration (Newton steps): same fixed point and gradient as value iteration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from optiongrad._src.newton import DirectAdjointStart, newton_step, policy_iteration_q


@pytest.mark.parametrize("backup,tau", [("logsumexp", 0.1), ("logsumexp", 1.0), ("max", 0.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_newton_planner_equals_value_iteration(backup, tau, seed):
    mdp = og.random_mdp(seed, 12, 3, branching=4, discount=0.95, dtype=jnp.float64)
    plain = og.soft_value_iteration(mdp, tau, backup=backup, tol=1e-12)
    fast = og.soft_value_iteration(mdp, tau, backup=backup, tol=1e-12, solver="newton")
    assert bool(fast.converged)
    assert int(fast.iterations) <= 3  # the warm start is already at the fixed point
    np.testing.assert_allclose(fast.q, plain.q, atol=1e-10)


def test_newton_step_fixes_the_soft_optimum_and_converges_fast():
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.goal_task(grid, grid.state(11, 11), 0.99)
    q_star = og.soft_value_iteration(mdp, 0.1, tol=1e-12, max_iter=100_000).q
    np.testing.assert_allclose(newton_step(mdp, q_star, 0.1), q_star, atol=1e-9)
    q, steps = policy_iteration_q(mdp, jnp.asarray(0.1), "logsumexp", jnp.zeros((104, 4)),
                                  1e-11)
    assert int(steps) < 20
    np.testing.assert_allclose(q, q_star, atol=1e-9)


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
