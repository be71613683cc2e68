"""Returns of policies over options in many goal tasks (`goal_policy_returns`) and their
derivative by adjoint visits, against the dense per-goal evaluation and its autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
from conftest import tolerance
from optiongrad._src.goal_models import option_table
from optiongrad._src.goal_values import goal_policy_returns, goal_values

GOALS = np.array([0, 57, 103])


def _problem(dtype, slip=0.1):
    env = og.gridworld.navigation_mdp(og.gridworld.four_rooms(slip), 0.9, dtype=dtype)
    kp, kb, ki = jax.random.split(jax.random.key(0), 3)
    policy = jax.nn.softmax(jax.random.normal(kp, (3, env.num_states, env.num_actions)), -1)
    beta = jax.random.uniform(kb, (3, env.num_states), minval=0.05, maxval=0.95)
    initiation = np.asarray(jax.random.uniform(ki, (3, env.num_states)) < 0.4)
    options = og.with_primitives(og.Options(np.asarray(policy, dtype), np.asarray(beta, dtype),
                                            initiation))
    mu = jax.nn.softmax(jax.random.normal(jax.random.key(1), (3, env.num_states, 7)), -1)
    mu = jnp.where(options.initiation.T[None], mu, 0.0)
    return env, options, (mu / jnp.sum(mu, -1, keepdims=True)).astype(dtype)


def _dense_returns(env, options, mu):
    """`s0_g · v_g` per goal from `option_models(goal_task(env, g))` and a dense solve."""
    returns = []
    for g, mu_g in zip(GOALS, mu):
        task = og.goal_task(env, int(g))
        r, p = og.option_models(task, options)
        returns.append(task.initial @ og.smdp_policy_evaluation(r, p, mu_g))
    return jnp.stack(returns)


def _returns(env, options, mu, compact, chunk):
    table = option_table(options.initiation) if compact else None
    models = og.goal_models(env, options, GOALS, table, exact=env.num_actions)
    return goal_policy_returns(models, models.to_slots(mu) if compact else mu, chunk=chunk)


@pytest.mark.parametrize("dtype,compact,chunk,jit", [
    pytest.param(np.float64, False, None, False, marks=pytest.mark.slow),
    pytest.param(np.float64, True, 2, False, marks=pytest.mark.slow),
    (np.float64, False, 2, True), (np.float32, True, None, True)])
def test_returns_and_gradients_equal_the_dense_evaluation(dtype, compact, chunk, jit):
    env, options, mu = _problem(dtype)
    weights = jnp.arange(1.0, 4.0, dtype=dtype)

    def loss(policy, termination, mu):
        opts = og.Options(policy, termination, options.initiation)
        return jnp.sum(weights * _returns(env, opts, mu, compact, chunk))

    def dense_loss(policy, termination, mu):
        opts = og.Options(policy, termination, options.initiation)
        return jnp.sum(weights * _dense_returns(env, opts, mu))

    fn = jax.jit(jax.value_and_grad(loss, (0, 1, 2))) if jit else jax.value_and_grad(
        loss, (0, 1, 2))
    value, grads = fn(options.policy, options.termination, mu)
    ref_value, ref_grads = jax.value_and_grad(dense_loss, (0, 1, 2))(
        options.policy, options.termination, mu)
    tol = tolerance(dtype, 1e-10, 2e-4)
    np.testing.assert_allclose(value, ref_value, rtol=tol)
    k = options.num_options - env.num_actions        # the primitives' β is the constant 1
    available = options.initiation.T[None]          # compact models have no other slots
    for got, want in zip(grads, ref_grads):
        if got.shape == options.termination.shape:
            got, want = got[:k], want[:k]
        if got.shape == mu.shape:
            got, want = got * available, want * available
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * float(jnp.max(abs(want))))


def test_forward_mode_equals_the_solves_own_derivative():
    env, options, mu = _problem(np.float64)
    models = og.goal_models(env, options, GOALS)
    direction = jax.random.normal(jax.random.key(3), mu.shape) * (mu > 0)

    def by_values(mu):
        return jnp.sum(models.initial * goal_values(models, mu), axis=-1)

    _, got = jax.jvp(lambda m: goal_policy_returns(models, m), (mu,), (direction,))
    _, want = jax.jvp(by_values, (mu,), (direction,))
    np.testing.assert_allclose(got, want, rtol=1e-11)
    # and a central finite difference along the same direction
    h = 1e-6
    fd = (goal_policy_returns(models, mu + h * direction)
          - goal_policy_returns(models, mu - h * direction)) / (2 * h)
    np.testing.assert_allclose(got, fd, rtol=1e-6)


def test_chunks_do_not_change_returns_or_gradients():
    env, options, mu = _problem(np.float64, slip=0.2)
    models = og.goal_models(env, options, GOALS)

    def loss(models, mu, chunk):
        return jnp.sum(jnp.arange(3.0) * goal_policy_returns(models, mu, chunk=chunk))

    whole = jax.grad(loss, (0, 1))(models, mu, None)
    for chunk in (1, 2):
        parts = jax.grad(loss, (0, 1))(models, mu, chunk)
        for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(parts)):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
