"""Goal tasks and their rank-one option models, against the dense per-task reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from conftest import tolerance
from optiongrad import goal_option_models, goal_task, reference_returns


def _random_options(key, environment, k):
    kp, kb = jax.random.split(key)
    logits = jax.random.normal(kp, (k, environment.num_states, environment.num_actions))
    policy = jax.nn.softmax(logits.astype(environment.dtype), axis=-1)
    beta = jax.random.uniform(kb, (k, environment.num_states), environment.dtype)
    return og.Options(np.asarray(policy), np.asarray(beta))


@pytest.mark.parametrize("slip", [0.0, 0.2])
@pytest.mark.parametrize("sparse", [False, True])
def test_goal_task_matches_dense_construction(slip, sparse):
    grid = og.gridworld.four_rooms(slip)
    env = og.gridworld.navigation_mdp(grid, 0.9, sparse=sparse)
    dense = np.asarray(og.gridworld.navigation_mdp(grid, 0.9, sparse=False).transitions)
    s = grid.num_states
    for g in (0, 17, s - 1):
        task = goal_task(env, g)
        p = task.transitions.todense() if sparse else task.transitions
        expect_p = dense.copy()
        expect_p[g] = 0.0
        expect_p[g, :, g] = 1.0
        expect_r = dense[:, :, g].copy()
        expect_r[g] = 0.0
        expect_s0 = np.full(s, 1.0 / (s - 1))
        expect_s0[g] = 0.0
        np.testing.assert_allclose(np.asarray(p), expect_p, atol=1e-15)
        np.testing.assert_allclose(np.asarray(task.rewards), expect_r, atol=1e-15)
        np.testing.assert_allclose(np.asarray(task.initial), expect_s0, atol=1e-15)
        # The grid constructor is the same task.
        grid_task = og.gridworld.goal_task(grid, g, 0.9, sparse=sparse)
        np.testing.assert_array_equal(np.asarray(grid_task.rewards), np.asarray(task.rewards))


@pytest.mark.parametrize("slip,sparse,jit", [(0.0, False, False), (0.2, False, True),
                                             (0.2, True, True)])
def test_reference_returns_equal_policy_iteration_and_uniform_evaluation(slip, sparse, jit):
    grid = og.gridworld.four_rooms(slip)
    env = og.gridworld.navigation_mdp(grid, 0.9, sparse=sparse)
    goals = np.array([0, 17, grid.num_states - 1])
    fn = jax.jit(reference_returns) if jit else reference_returns
    q, j_star, j_rand = (np.asarray(x) for x in fn(env, goals))
    assert q.shape == (3, grid.num_states, 4)
    dense = og.gridworld.navigation_mdp(grid, 0.9)
    for i, g in enumerate(goals):
        task = goal_task(dense, int(g))
        p, r, s0 = (np.asarray(x) for x in (task.transitions, task.rewards, task.initial))
        v_star, q_star, _ = ref.policy_iteration(p, r, 0.9)
        np.testing.assert_allclose(q[i], q_star, atol=1e-9)
        assert j_star[i] == pytest.approx(s0 @ v_star, rel=1e-9)
        uniform = ref.evaluate(p, r, 0.9, np.full(r.shape, 0.25))
        assert j_rand[i] == pytest.approx(s0 @ uniform, rel=1e-9)


def test_goal_task_rejects_bad_goal():
    env = og.gridworld.navigation_mdp(og.gridworld.four_rooms(), 0.9)
    for bad in (-1, 104, 2.5, np.array([1, 2])):
        with pytest.raises(ValueError, match="goal"):
            goal_task(env, bad)


@pytest.mark.parametrize("slip", [0.0, 0.1])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_goal_option_models_equal_option_models_of_each_task(dtype, slip, jit):
    grid = og.gridworld.four_rooms(slip)
    env = og.gridworld.navigation_mdp(grid, 0.9, dtype=dtype)
    options = og.with_primitives(_random_options(jax.random.key(3), env, 3))
    goals = jnp.array([0, 25, 57, 103])
    fn = jax.jit(goal_option_models) if jit else goal_option_models
    reward, transition, initial = fn(env, options, goals)
    assert reward.shape == (4, grid.num_states, 7) and transition.shape == (4, 7, 104, 104)
    tol = tolerance(dtype, 1e-12, 1e-4)
    for i, g in enumerate(np.asarray(goals)):
        task = og.gridworld.goal_task(grid, int(g), 0.9, dtype=dtype)
        r_ref, p_ref = og.option_models(task, options)
        np.testing.assert_allclose(np.asarray(reward[i]), np.asarray(r_ref), atol=tol)
        np.testing.assert_allclose(np.asarray(transition[i]), np.asarray(p_ref), atol=tol)
        np.testing.assert_array_equal(np.asarray(initial[i]), np.asarray(task.initial))


def test_goal_option_models_gradient_equals_reference_gradient():
    grid = og.gridworld.four_rooms(0.1)
    env = og.gridworld.navigation_mdp(grid, 0.9)
    options = _random_options(jax.random.key(4), env, 2)
    goals = jnp.array([5, 60])
    weights = jax.random.normal(jax.random.key(5), (2, 104, 104))

    def fast(policy, beta):
        r, p, _ = goal_option_models(env, og.Options(policy, beta), goals)
        return jnp.sum(r**2) + jnp.sum(p[:, 1] * weights)

    def slow(policy, beta):
        total = 0.0
        for i, g in enumerate(np.asarray(goals)):
            r, p = og.option_models(og.gridworld.goal_task(grid, int(g), 0.9),
                                    og.Options(policy, beta))
            total = total + jnp.sum(r**2) + jnp.sum(p[1] * weights[i])
        return total

    args = (options.policy, options.termination)
    for a, b in zip(jax.grad(fast, (0, 1))(*args), jax.grad(slow, (0, 1))(*args)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
