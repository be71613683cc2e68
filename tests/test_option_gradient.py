"""The option gradient: returns against the reference path, gradients against central finite
differences and the fully unrolled gradient, finiteness over temperatures and budgets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
from optiongrad import (
    ExtrinsicPlanner,
    goal_returns,
    hierarchical_return,
    init_params,
    make_options,
    option_gradient_objective,
)
from optiongrad._src.option_gradient import diversity

GRID = og.gridworld.four_rooms()
GOALS = jnp.array([3, 40, 77, 100])


def _setting(k=2, learn_termination=True, reward="state", slip=0.0, seed=0):
    grid = og.gridworld.four_rooms(slip)
    env = og.gridworld.navigation_mdp(grid, 0.9)
    if reward == "state":
        model = og.rewards.state(grid.num_states, init_scale=1.0)
    elif reward == "tabular":
        model = og.rewards.tabular(grid.num_states, 4, init_scale=1.0)
    else:  # linear in the cells' coordinates and a constant
        features = np.concatenate([grid.cells / 12.0, np.ones((grid.num_states, 1))], axis=1)
        model = og.rewards.linear(features, init_scale=1.0)
    params = init_params(jax.random.key(seed), model, k, grid.num_states,
                         learn_termination=learn_termination, termination_init=0.2)
    return grid, env, model, params


@pytest.mark.parametrize("budget", [2, None])
@pytest.mark.parametrize("primitives", [True, False])
def test_goal_returns_equal_reference_hierarchical_return(budget, primitives):
    grid, env, model, params = _setting(k=3, slip=0.1)
    options, _ = make_options(params, model, env, 0.1)
    planner = ExtrinsicPlanner(0.05, budget, primitives)
    fast = goal_returns(options, env, GOALS, planner)
    for i, g in enumerate(np.asarray(GOALS)):
        task = og.gridworld.goal_task(grid, int(g), 0.9)
        slow, _ = hierarchical_return(options, task, planner)
        np.testing.assert_allclose(float(fast[i]), float(slow), rtol=1e-11)
        # The return is the exact value of the planned μ: the flattened chain agrees.
        opts = og.with_primitives(options) if primitives else options
        reward, transition = og.option_models(task, opts)
        kwargs = {} if budget is None else dict(differentiation="unrolled", num_sweeps=budget)
        mu = og.smdp_value_iteration(reward, transition, 0.05, **kwargs).policy
        flat = og.flat_policy_evaluation(task, opts, mu)
        np.testing.assert_allclose(float(fast[i]), float(task.initial @ flat), rtol=1e-10)


def _objective(env, model, planner, tau_o=0.1, diversity_weight=0.0, **plan_kwargs):
    def f(params):
        value, _ = option_gradient_objective(
            params, model, env, GOALS, temperature_options=tau_o, planner=planner,
            diversity_weight=diversity_weight, **plan_kwargs)
        return value
    return f


def _directional_fd(f, params, direction, eps=1e-5):
    shift = lambda c: jax.tree.map(lambda p, d: p + c * d, params, direction)
    return (f(shift(eps)) - f(shift(-eps))) / (2 * eps)


@pytest.mark.parametrize("budget,reward,learn_termination", [
    (3, "state", True), (None, "state", True),
    pytest.param(3, "tabular", False, marks=pytest.mark.slow), (None, "linear", True)])
def test_gradient_matches_central_finite_differences(budget, reward, learn_termination):
    grid, env, model, params = _setting(k=2, learn_termination=learn_termination, reward=reward)
    planner = ExtrinsicPlanner(0.05, budget, True, tol=1e-13)
    f = jax.jit(_objective(env, model, planner, diversity_weight=0.01, tol=1e-13))
    grad = jax.grad(f)(params)
    for seed in range(2):
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.key(10 + seed), len(leaves))
        direction = jax.tree.unflatten(
            treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])
        analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad),
                                                      jax.tree.leaves(direction)))
        numeric = _directional_fd(f, params, direction)
        np.testing.assert_allclose(float(analytic), float(numeric), rtol=1e-6, atol=1e-10)


def test_implicit_gradient_equals_fully_unrolled_gradient():
    grid, env, model, params = _setting(k=2)
    implicit = _objective(env, model, ExtrinsicPlanner(0.05, None, True, tol=1e-13), tol=1e-13)
    # 600 sweeps at γ = 0.9 from zero: 0.9^600 ≈ 1e-28, converged to rounding.
    unrolled = _objective(env, model, ExtrinsicPlanner(0.05, 600, True),
                          differentiation="unrolled", num_sweeps=600)
    g_imp = jax.jit(jax.grad(implicit))(params)
    g_unr = jax.jit(jax.grad(unrolled))(params)
    assert np.isclose(float(implicit(params)), float(unrolled(params)), rtol=1e-12)
    for a, b in zip(jax.tree.leaves(g_imp), jax.tree.leaves(g_unr)):
        scale = float(jnp.max(jnp.abs(b)))
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-8 * scale)


@pytest.mark.parametrize("budget", [1, 3, None], ids=["N1", "N3", "converged"])
@pytest.mark.parametrize("tau_mu", [1e-4, 0.01, 10.0])
def test_gradient_finite_over_temperatures_and_budgets(budget, tau_mu):
    grid, env, model, params = _setting(k=2)
    planner = ExtrinsicPlanner(tau_mu, budget, True)

    @jax.jit
    def grad(params, tau_o):
        return jax.value_and_grad(_objective(env, model, planner, tau_o=tau_o))(params)

    for tau_o in (1e-4, 0.05, 10.0):
        value, g = grad(params, tau_o)
        assert np.isfinite(float(value))
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(g))


def test_diversity_equals_numpy_reference():
    grid, env, model, params = _setting(k=3)
    options, _ = make_options(params, model, env, 0.5)
    pi = np.asarray(options.policy)
    p = np.asarray(env.transitions)
    expected = 0.0
    for k in range(3):
        p_pi = np.einsum("sa,sat->st", pi[k], p)
        d = np.linalg.solve(np.eye(104) - 0.9 * p_pi.T, np.full(104, 1 / 104))
        w = d / d.sum()
        for l in range(3):
            if l != k:
                kl = np.sum(pi[k] * (np.log(pi[k]) - np.log(pi[l])), axis=1)
                expected += w @ kl
    np.testing.assert_allclose(float(diversity(options, env)), expected / 6, rtol=1e-10)
    same = og.Options(np.repeat(pi[:1], 3, 0), np.asarray(options.termination))
    assert abs(float(diversity(same, env))) < 1e-12


def test_learning_improves_the_objective():
    grid, env, model, params = _setting(k=2)
    planner = ExtrinsicPlanner(0.01, 3, True)
    f = jax.jit(jax.value_and_grad(_objective(env, model, planner)))
    first, _ = f(params)
    for _ in range(5):
        value, g = f(params)
        params = jax.tree.map(lambda p, d: p + 2.0 * d / (jnp.linalg.norm(d) + 1e-12), params, g)
    assert float(f(params)[0]) > float(first) + 1e-3


def test_init_params_and_planner_validation():
    model = og.rewards.state(104, init_scale=1.0)
    with pytest.raises(ValueError, match="num_options"):
        init_params(jax.random.key(0), model, 0, 104)
    with pytest.raises(ValueError, match="termination_init"):
        init_params(jax.random.key(0), model, 2, 104, termination_init=1.0)
    with pytest.raises(ValueError, match="num_sweeps"):
        ExtrinsicPlanner(0.01, 0)
    with pytest.warns(DeprecationWarning, match="planning_budget"):
        assert ExtrinsicPlanner(0.01, planning_budget=5).num_sweeps == 5
    with pytest.raises(ValueError, match="temperature"):
        ExtrinsicPlanner(-1.0)
    params = init_params(jax.random.key(0), model, 3, 104)
    # Independent draws: identical options would get identical gradients forever.
    assert not np.allclose(params.reward[0], params.reward[1])
    np.testing.assert_allclose(jax.nn.sigmoid(params.termination), 0.1)
    fixed = init_params(jax.random.key(0), model, 3, 104, learn_termination=False)
    assert fixed.termination is None
