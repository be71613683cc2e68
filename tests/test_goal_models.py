"""Factored goal models (`og.goal_models`) against the dense per-goal reference: the models,
their products, the values of policies over options, planned returns and their gradients."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
from conftest import tolerance
from optiongrad._src.goal_models import option_table
from optiongrad._src.goal_values import default_chunk, goal_values
from optiongrad._src.option_gradient import batched_smdp_returns

GOALS = np.array([0, 17, 57, 103, 40])


def _options(env, k, seed=0):
    kp, kb = jax.random.split(jax.random.key(seed))
    logits = jax.random.normal(kp, (k, env.num_states, env.num_actions))
    policy = jax.nn.softmax(logits, axis=-1).astype(env.dtype)
    beta = jax.random.uniform(kb, (k, env.num_states), env.dtype, 0.05, 0.95)
    return og.Options(np.asarray(policy), np.asarray(beta))


def _env(slip=0.1, dtype=np.float64, sparse=False):
    return og.gridworld.navigation_mdp(og.gridworld.four_rooms(slip), 0.9, dtype=dtype,
                                       sparse=sparse)


def _dense_reference(env, options, goals):
    """Per goal, `option_models(goal_task(env, g))`: `(T, S, K)`, `(T, K, S, S)`, `(T, S)`."""
    rewards, transitions, initial = [], [], []
    for g in np.asarray(goals):
        task = og.goal_task(env, int(g))
        r, p = og.option_models(task, options)
        rewards.append(r), transitions.append(p), initial.append(task.initial)
    return jnp.stack(rewards), jnp.stack(transitions), jnp.stack(initial)


@pytest.mark.parametrize("dtype,slip,sparse,jit", [
    (np.float64, 0.0, False, False), (np.float64, 0.2, True, False),
    (np.float64, 0.2, False, True), (np.float32, 0.0, True, True),
    (np.float32, 0.2, False, False)])
def test_factored_models_equal_each_goal_tasks_option_models(dtype, slip, sparse, jit):
    env = _env(slip, dtype, sparse)
    options = og.with_primitives(_options(env, 3))
    fn = jax.jit(og.goal_models) if jit else og.goal_models
    models = fn(env, options, GOALS)
    assert models.base.shape == (7, 104, 104) and models.u.shape == (7, 104, 5)
    assert models.y.shape == (7, 5, 104) and models.rewards.shape == (5, 104, 7)
    assert models.rewards.dtype == dtype
    r, p, s0 = _dense_reference(env, options, GOALS)
    tol = tolerance(dtype, 1e-12, 2e-5)
    np.testing.assert_allclose(models.transitions(), p, atol=tol)
    np.testing.assert_allclose(models.rewards, r, atol=tol)
    np.testing.assert_array_equal(models.initial, s0)
    # the products the planners use, against the dense tensor
    rng = np.random.default_rng(1)
    v = jnp.asarray(rng.normal(size=(5, 104)), dtype)
    np.testing.assert_allclose(models.apply(v), jnp.einsum("gkst,gt->gsk", p, v),
                               atol=10 * tol)
    mu = jax.nn.softmax(jnp.asarray(rng.normal(size=(5, 104, 7)), dtype), axis=-1)
    np.testing.assert_allclose(models.policy_matrix(mu), jnp.einsum("gsk,gkst->gst", mu, p),
                               atol=10 * tol)
    # take: a sub-batch of goals is the models of those goals
    sub = models.take(slice(1, 3))
    np.testing.assert_array_equal(sub.transitions(), models.transitions()[1:3])


def test_goal_option_models_is_the_dense_form_of_the_factors():
    env = _env()
    options = _options(env, 2)
    r, p, s0 = og.goal_option_models(env, options, GOALS)
    models = og.goal_models(env, options, GOALS)
    np.testing.assert_array_equal(p, models.transitions())
    np.testing.assert_array_equal(r, models.rewards)
    np.testing.assert_array_equal(s0, models.initial)


@pytest.mark.parametrize("chunk", [None, 1, 2, 5, 7])
def test_values_in_chunks_equal_dense_evaluation(chunk):
    env = _env(0.1)
    options = og.with_primitives(_options(env, 2))
    models = og.goal_models(env, options, GOALS)
    r, p, _ = _dense_reference(env, options, GOALS)
    mu = jax.nn.softmax(jax.random.normal(jax.random.key(2), (5, 104, 6)), axis=-1)
    reference = jax.vmap(og.smdp_policy_evaluation)(r, p, mu)
    values = goal_values(models, mu, chunk=chunk)
    np.testing.assert_allclose(values, reference, rtol=1e-10, atol=1e-12)

    def loss(mu, chunk):
        return jnp.sum(goal_values(models, mu, chunk=chunk) ** 2)

    def dense_loss(mu):
        return jnp.sum(jax.vmap(og.smdp_policy_evaluation)(r, p, mu) ** 2)

    np.testing.assert_allclose(jax.grad(loss)(mu, chunk), jax.grad(dense_loss)(mu),
                               rtol=1e-9, atol=1e-11)


def test_default_chunk_fits_the_budget():
    assert default_chunk(104, 83) == 83                 # all of four rooms at once
    assert default_chunk(10_000, 32) == 1               # one (S, S) matrix at a time
    assert default_chunk(2000, 500) == 2**27 // (8 * 2000**2)


@pytest.mark.parametrize("dtype,budget,primitives", [
    (np.float64, 3, True), (np.float64, None, False),
    pytest.param(np.float32, 3, False, marks=pytest.mark.slow)])
def test_returns_and_gradients_equal_the_dense_path(dtype, budget, primitives):
    env = _env(0.1, dtype)
    planner = og.ExtrinsicPlanner(0.05, budget, primitives)
    options = _options(env, 3)
    tol = tolerance(dtype, 1e-10, 1e-4)

    def factored(policy, beta):
        return og.goal_returns(og.Options(policy, beta), env, GOALS, planner)

    def dense(policy, beta):
        planned = og.with_primitives(og.Options(policy, beta)) if primitives \
            else og.Options(policy, beta)
        r, p, s0 = og.goal_option_models(env, planned, GOALS)
        return batched_smdp_returns(r, p, s0, planner, planned.initiation)

    args = (options.policy, options.termination)
    np.testing.assert_allclose(factored(*args), dense(*args), rtol=tol)
    weights = jnp.linspace(1.0, 2.0, len(GOALS), dtype=dtype)
    grads = jax.grad(lambda *a: weights @ factored(*a), (0, 1))(*args)
    refs = jax.grad(lambda *a: weights @ dense(*a), (0, 1))(*args)
    for g, ref in zip(grads, refs):
        assert g.dtype == dtype
        scale = float(jnp.max(jnp.abs(ref)))
        np.testing.assert_allclose(g, ref, atol=tol * scale * 10, rtol=tol)


def test_initiation_sets_are_respected_like_the_dense_planner():
    env = _env(0.0)
    options = _options(env, 2)
    mask = np.ones((2, 104), bool)
    mask[0, :52] = False                      # option 0 only in the second half of the map
    options = og.Options(options.policy, options.termination, mask)
    planned = og.with_primitives(options)
    models = og.goal_models(env, planned, GOALS)
    returns, code = og.goal_model_returns(models, 0.05, num_sweeps=4,
                                          initiation=planned.initiation)
    r, p, s0 = _dense_reference(env, planned, GOALS)
    ref = batched_smdp_returns(r, p, s0, og.ExtrinsicPlanner(0.05, 4, False),
                               planned.initiation)
    np.testing.assert_allclose(returns, ref, rtol=1e-11)
    assert code == og.RESULTS.budget_reached    # a fixed budget, as asked


def test_a_failed_converged_planner_makes_every_return_nan():
    env = _env(0.0)
    models = og.goal_models(env, og.with_primitives(_options(env, 2)), GOALS)
    returns, code = og.goal_model_returns(models, 0.05, num_sweeps=None)
    assert code == og.RESULTS.successful and np.all(np.isfinite(returns))
    broken = eqx.tree_at(lambda m: m.rewards, models, models.rewards.at[1, 5, 0].set(np.nan))
    returns, code = og.goal_model_returns(broken, 0.05, num_sweeps=None)
    assert code == og.RESULTS.nonfinite
    assert np.all(np.isnan(returns))


def test_goal_planning_sweeps_equal_per_goal_model_planning_sweeps():
    env = _env(0.0)
    hallway = og.gridworld.hallway_options(og.gridworld.four_rooms())
    planned = og.with_primitives(og.Options(hallway.policy, hallway.termination,
                                            hallway.initiation_mask()))
    goals = np.arange(0, 104, 13)   # 8 goals, every room
    q_star, _, _ = og.reference_returns(env, goals)
    models = og.goal_models(env, planned, goals)
    fast = og.goal_planning_sweeps(env, models, goals, q_star, initiation=planned.initiation)
    r, p, _ = _dense_reference(env, planned, goals)
    for i, g in enumerate(goals):
        slow = og.model_planning_sweeps(og.goal_task(env, int(g)), r[i], p[i],
                                        initiation=planned.initiation, optimal_q=q_star[i])
        assert int(fast[i]) == int(slow), g
    assert 1 <= int(np.max(fast)) < 100


@pytest.mark.parametrize("dtype,slip,jit", [
    pytest.param(np.float64, 0.0, False, marks=pytest.mark.slow), (np.float32, 0.2, True)])
def test_the_compact_layout_equals_the_full_one(dtype, slip, jit):
    """Hallway options (each available in one room and its doorways) plus primitives: the
    compact models (`option_table`) keep `J = 6` of `K = 12` options per state and give the
    full layout's models on every available row and, slot for slot, its rewards, sweeps,
    values, returns, planning sweeps and gradients."""
    env = _env(slip, dtype)
    hallway = og.gridworld.hallway_options(og.gridworld.four_rooms())
    planned = og.with_primitives(og.Options(hallway.policy.astype(dtype),
                                            hallway.termination.astype(dtype),
                                            hallway.initiation_mask()))
    table = option_table(planned.initiation)
    assert table.ids.shape == (104, 6) and table.rows.shape == (12, 104)   # primitives: R = S
    fn = jax.jit(og.goal_models) if jit else og.goal_models
    full, compact = fn(env, planned, GOALS), fn(env, planned, GOALS, table)
    assert compact.base.shape == (104, 6, 104) and compact.u.shape == (104, 6, 5)
    assert compact.rewards.shape == (5, 104, 6)
    tol = tolerance(dtype, 1e-13, 1e-5)
    available = planned.initiation[None, :, :, None]                      # (1, K, S, 1)
    np.testing.assert_allclose(compact.transitions(),
                               jnp.where(available, full.transitions(), 0.0), atol=tol)
    np.testing.assert_allclose(compact.rewards, compact.to_slots(full.rewards), atol=tol)
    rng = np.random.default_rng(3)
    v = jnp.asarray(rng.normal(size=(5, 104)), dtype)
    np.testing.assert_allclose(compact.apply(v), compact.to_slots(full.apply(v)),
                               atol=10 * tol)
    mask = planned.initiation.T[None]                                     # (1, S, K)
    mu = jnp.where(mask, jax.nn.softmax(jnp.asarray(rng.normal(size=(5, 104, 12)), dtype)),
                   0.0)
    mu = mu / jnp.sum(mu, axis=-1, keepdims=True)
    np.testing.assert_allclose(compact.policy_matrix(compact.to_slots(mu)),
                               full.policy_matrix(mu), atol=10 * tol)
    np.testing.assert_allclose(goal_values(compact, compact.to_slots(mu), chunk=2),
                               goal_values(full, mu), rtol=100 * tol, atol=tol)
    # the planners: compact models carry their own mask (no initiation needed)
    for budget in (3, None):
        returns = [og.goal_model_returns(full, 0.05, num_sweeps=budget,
                                         initiation=planned.initiation)[0],
                   og.goal_model_returns(compact, 0.05, num_sweeps=budget)[0]]
        np.testing.assert_allclose(returns[1], returns[0], rtol=100 * tol)
    q_star, _, _ = og.reference_returns(env, GOALS)
    sweeps = [og.goal_planning_sweeps(env, full, GOALS, q_star, initiation=planned.initiation),
              og.goal_planning_sweeps(env, compact, GOALS, q_star)]
    np.testing.assert_array_equal(sweeps[1], sweeps[0])

    def mean_return(policy, layout):
        options = og.Options(policy, planned.termination, planned.initiation)
        models = og.goal_models(env, options, GOALS, layout)
        return jnp.mean(og.goal_model_returns(models, 0.05, num_sweeps=3,
                                              initiation=planned.initiation)[0])

    grads = [jax.grad(mean_return)(planned.policy, layout) for layout in (None, table)]
    np.testing.assert_allclose(grads[1], grads[0], atol=100 * tol)
    with pytest.raises(ValueError, match="table: made for 12 options"):
        og.goal_models(env, hallway, GOALS, table)


def test_goal_models_reject_bad_input():
    env = _env()
    options = _options(env, 2)
    with pytest.raises(ValueError, match="goals"):
        og.goal_models(env, options, [3, 104])
    with pytest.raises(ValueError, match="options"):
        og.goal_models(env, og.Options(np.full((1, 5, 4), 0.25), np.full((1, 5), 0.5)), [0])
    with pytest.raises(ValueError, match="mdp"):
        og.goal_models("four rooms", options, [0])
    q_star, _, _ = og.reference_returns(env, [0, 1])
    models = og.goal_models(env, og.with_primitives(options), [0, 1])
    with pytest.raises(ValueError, match="optimal_q"):
        og.goal_planning_sweeps(env, models, [0, 1], q_star[:1])


@pytest.mark.parametrize("compact", [False, True])
def test_terminating_options_are_modelled_without_a_solve(compact):
    """`exact`: the appended primitives' models written down equal the solved ones, and so do
    the gradients with respect to every option's policy and the other options' terminations."""
    env = _env(0.2)
    options = _options(env, 3)
    options = og.with_primitives(og.Options(options.policy, options.termination,
                                            np.arange(3 * 104).reshape(3, 104) % 3 != 0))
    table = option_table(options.initiation) if compact else None

    def loss(policy, termination, exact):
        models = og.goal_models(env, og.Options(policy, termination, options.initiation),
                                GOALS, table, exact=exact)
        rng = np.random.default_rng(0)
        return sum(jnp.sum(jnp.asarray(rng.normal(size=x.shape)) * x)
                   for x in (models.base, models.u, models.y, models.rewards))

    solved = jax.value_and_grad(loss, (0, 1))(options.policy, options.termination, 0)
    written = jax.value_and_grad(loss, (0, 1))(options.policy, options.termination, 4)
    np.testing.assert_allclose(written[0], solved[0], rtol=1e-12)
    np.testing.assert_allclose(written[1][0], solved[1][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(written[1][1][:3], solved[1][1][:3], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(written[1][1][3:], 0.0)     # β ≡ 1 is a constant there
    with pytest.raises(ValueError, match="exact: the last 5 options must have termination 1"):
        og.goal_models(env, options, GOALS, exact=5)
    with pytest.raises(ValueError, match="exact"):
        og.goal_models(env, options, GOALS, exact=8)
