"""Matrix-free goal returns (`sweep_goal_returns`, `method="sweeps"`) against the dense per-goal
reference and the factored goal models: returns, result codes and gradients; and the
gather-only transpose of `policy_expectation` that their adjoints iterate."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
from conftest import tolerance
from optiongrad._src.goal_sweeps import sweep_goal_returns
from optiongrad._src.transitions import SparseTransitions, policy_expectation

GOALS = np.array([0, 17, 57, 103, 40])


def _env(slip=0.1, dtype=np.float64, sparse=False):
    return og.gridworld.navigation_mdp(og.gridworld.four_rooms(slip), 0.9, dtype=dtype,
                                       sparse=sparse)


def _options(env, k, seed=0, initiation=False):
    kp, kb, ki = jax.random.split(jax.random.key(seed), 3)
    logits = jax.random.normal(kp, (k, env.num_states, env.num_actions))
    policy = jax.nn.softmax(logits, axis=-1).astype(env.dtype)
    beta = jax.random.uniform(kb, (k, env.num_states), env.dtype, 0.05, 0.95)
    init = None
    if initiation:
        init = np.array(jax.random.bernoulli(ki, 0.6, (k, env.num_states)))
        init[0] = True
    return og.Options(np.asarray(policy), np.asarray(beta), init)


def _reference(env, options, goals, planner):
    """Per goal, `hierarchical_return` on `goal_task(env, g)`: dense option models."""
    return np.array([og.hierarchical_return(options, og.goal_task(env, int(g)), planner)[0]
                     for g in goals])


@pytest.mark.parametrize("dtype,slip,sparse,num_sweeps,jit", [
    (np.float64, 0.0, False, 3, False), (np.float64, 0.2, True, 3, True),
    pytest.param(np.float64, 0.2, True, None, False, marks=pytest.mark.slow),
    pytest.param(np.float64, 0.0, False, 1, True, marks=pytest.mark.slow),
    (np.float32, 0.2, True, 3, True), (np.float32, 0.0, False, None, True)])
def test_sweep_returns_equal_the_dense_per_goal_reference(dtype, slip, sparse, num_sweeps,
                                                           jit):
    env = _env(slip, dtype, sparse)
    options = _options(env, 3)
    planner = og.ExtrinsicPlanner(0.05, num_sweeps, include_primitives=False)
    fn = lambda o: og.goal_returns(o, env, GOALS, planner, method="sweeps")  # noqa: E731
    returns = (jax.jit(fn) if jit else fn)(options)
    assert returns.shape == (5,) and returns.dtype == dtype
    np.testing.assert_allclose(returns, _reference(env, options, GOALS, planner),
                               atol=tolerance(dtype, 1e-9, 5e-5))
    factored = og.goal_returns(options, env, GOALS, planner, method="factored")
    np.testing.assert_allclose(returns, factored, atol=tolerance(dtype, 1e-9, 5e-5))


def test_sweep_returns_honour_initiation_sets_and_report_results():
    env = _env(0.1, np.float64, True)
    options = og.with_primitives(_options(env, 3, initiation=True))
    returns, result = sweep_goal_returns(env, options, GOALS, 0.05, num_sweeps=2)
    planner = og.ExtrinsicPlanner(0.05, 2, include_primitives=False)
    np.testing.assert_allclose(returns, _reference(env, options, GOALS, planner), atol=1e-9)
    assert bool(jnp.all(result == og.RESULTS.successful))
    # a solve that cannot converge in 3 sweeps fails: NaN, and the code says why
    returns, result = sweep_goal_returns(env, options, GOALS, 0.05, max_iter=3)
    assert np.all(np.isnan(returns))
    assert bool(jnp.all(result == og.RESULTS.max_steps_reached))


@pytest.mark.parametrize("batch_size", [1, 2])
def test_goal_batches_give_the_same_returns(batch_size):
    env = _env(0.2, np.float64, True)
    options = og.with_primitives(_options(env, 2))
    whole, _ = sweep_goal_returns(env, options, GOALS, 0.05)
    batched, result = sweep_goal_returns(env, options, GOALS, 0.05, batch_size=batch_size)
    np.testing.assert_allclose(batched, whole, atol=1e-12)
    assert bool(jnp.all(result == og.RESULTS.successful))


@pytest.mark.parametrize("dtype,sparse,num_sweeps", [
    (np.float64, True, 3), (np.float32, False, None)])
def test_objective_and_gradient_equal_the_factored_method(dtype, sparse, num_sweeps):
    env = _env(0.1, dtype, sparse)
    model = og.rewards.state(env.num_states, init_scale=1.0, dtype=dtype)
    params = og.init_params(jax.random.key(3), model, 3, env.num_states)
    planner = og.ExtrinsicPlanner(0.05, num_sweeps)

    def objective(params, method):
        return og.option_gradient_objective(params, model, env, GOALS[:3],
                                            eval_goals=GOALS[3:], temperature_options=0.1,
                                            planner=planner, method=method)

    grad = jax.jit(jax.value_and_grad(objective, has_aux=True), static_argnums=1)
    (value_s, aux_s), grad_s = grad(params, "sweeps")
    (value_f, aux_f), grad_f = grad(params, "factored")
    tol = tolerance(dtype, 1e-9, 5e-5)
    np.testing.assert_allclose(value_s, value_f, atol=tol)
    np.testing.assert_allclose(aux_s["eval_returns"], aux_f["eval_returns"], atol=tol)
    for got, want in zip(jax.tree.leaves(grad_s), jax.tree.leaves(grad_f)):
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(got, want, atol=tolerance(dtype, 1e-8, 1e-3) * scale)


def test_auto_method_switches_to_sweeps_above_the_threshold(monkeypatch):
    from optiongrad._src import option_gradient
    env = _env(0.0, np.float64, True)
    assert option_gradient.goal_method("auto", env) == "factored"
    monkeypatch.setattr(option_gradient, "SWEEPS_ABOVE", 100)
    assert option_gradient.goal_method("auto", env) == "sweeps"
    with pytest.raises(ValueError, match="method"):
        option_gradient.goal_method("dense", env)


def test_sweep_returns_refuse_bad_input():
    env = _env(0.0, np.float64, True)
    options = _options(env, 2)
    with pytest.raises(ValueError, match="goals"):
        sweep_goal_returns(env, options, [104], 0.05)
    with pytest.raises(ValueError, match="batch_size"):
        sweep_goal_returns(env, options, GOALS, 0.05, batch_size=0)
    with pytest.raises(ValueError, match="num_sweeps"):
        sweep_goal_returns(env, options, GOALS, 0.05, num_sweeps=0)
    with pytest.raises(ValueError, match="temperature"):
        sweep_goal_returns(env, options, GOALS, -1.0)


def test_sources_table_is_the_transpose_of_the_successor_table():
    rng = np.random.default_rng(0)
    next_states = rng.integers(0, 7, (7, 3, 2))
    probs = rng.dirichlet(np.ones(2), (7, 3))
    p = SparseTransitions(next_states, probs)
    sources = np.asarray(p.sources)
    flat = next_states.reshape(-1)
    for t in range(7):
        listed = sorted(int(i) for i in sources[t] if i < flat.size)
        assert listed == sorted(np.flatnonzero(flat == t).tolist())
    # built from tracers: no table (and the scatter-add transpose is used)
    traced = jax.jit(lambda n, q: jnp.asarray(SparseTransitions(n, q).sources is None))
    assert bool(traced(next_states, probs))


@pytest.mark.parametrize("with_sources", [True, False])
def test_policy_expectation_and_its_transpose_equal_the_dense_tensor(with_sources):
    rng = np.random.default_rng(1)
    s, a, b, k = 9, 3, 2, 4
    p = SparseTransitions(rng.integers(0, s, (s, a, b)), rng.dirichlet(np.ones(b), (s, a)))
    if not with_sources:
        p = SparseTransitions.tree_unflatten(None, (p.next_states, p.probs, None))
    dense = np.asarray(p.todense())
    policy = jnp.asarray(rng.dirichlet(np.ones(a), (k, s)))
    u = jnp.asarray(rng.normal(size=(s, 5, k)))
    reference = lambda pol, u: jnp.einsum("ksa,sat,tbk->sbk", pol, dense, u)  # noqa: E731
    np.testing.assert_allclose(policy_expectation(p, policy, u), reference(policy, u),
                               atol=1e-13)
    np.testing.assert_allclose(policy_expectation(jnp.asarray(dense), policy, u),
                               reference(policy, u), atol=1e-13)
    cotangent = jnp.asarray(rng.normal(size=(s, 5, k)))
    _, vjp = jax.vjp(lambda pol, u: policy_expectation(p, pol, u), policy, u)
    _, vjp_ref = jax.vjp(reference, policy, u)
    for got, want in zip(vjp(cotangent), vjp_ref(cotangent)):
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("num_sweeps", [pytest.param(1, marks=pytest.mark.slow), 3])
def test_exact_options_are_not_iterated_and_give_the_same_returns(num_sweeps):
    env = _env(0.2, np.float64, True)
    options = og.with_primitives(_options(env, 2))
    iterated, _ = sweep_goal_returns(env, options, GOALS, 0.05, num_sweeps=num_sweeps)
    split, _ = sweep_goal_returns(env, options, GOALS, 0.05, num_sweeps=num_sweeps, exact=4)
    np.testing.assert_allclose(split, iterated, atol=1e-10)
    primitives = og.primitive_options(env.num_states, env.num_actions, env.dtype)
    alone, _ = sweep_goal_returns(env, primitives, GOALS, 0.05, num_sweeps=num_sweeps, exact=4)
    planner = og.ExtrinsicPlanner(0.05, num_sweeps, include_primitives=False)
    np.testing.assert_allclose(alone, _reference(env, primitives, GOALS, planner), atol=1e-10)
    with pytest.raises(ValueError, match="exact"):
        sweep_goal_returns(env, options, GOALS, 0.05, exact=5)


def test_planner_tolerance_only_stops_the_converged_planner():
    env = _env(0.1, np.float64, True)
    options = _options(env, 3)
    loose = og.ExtrinsicPlanner(0.1, 3, include_primitives=False, tol=1e-2)
    np.testing.assert_allclose(og.goal_returns(options, env, GOALS, loose, method="sweeps"),
                               og.goal_returns(options, env, GOALS, loose, method="factored"),
                               atol=1e-9)
