import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optiongrad as og
import reference as ref
from optiongrad import planner_return


def rel_err(a, b):
    """‖a − b‖ / ‖b‖ (0 when both vanish to rounding, as with a single action)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff, scale = np.linalg.norm(a - b), np.linalg.norm(b)
    return 0.0 if diff <= 1e-12 and scale <= 1e-12 else diff / scale


def fd_gradient(f, x, h=1e-6):
    x = np.asarray(x, dtype=float)
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = h
        grad[idx] = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * h)
    return grad


def tabular_objective(mdp, tau, **kwargs):
    model = og.rewards.tabular(mdp.num_states, mdp.num_actions)
    return lambda theta: planner_return(theta, model, mdp, tau, tol=1e-13, **kwargs)[0]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    num_states=st.integers(2, 7),
    num_actions=st.integers(1, 4),
    gamma=st.floats(0.5, 0.95),
    tau=st.floats(0.2, 2.0),
    myopic=st.booleans(),
)
def test_implicit_gradient_equals_closed_form_and_finite_differences(
    seed, num_states, num_actions, gamma, tau, myopic
):
    rng = np.random.default_rng(seed)
    p, r, g, s0 = ref.random_mdp(rng, num_states, num_actions, gamma)
    theta = rng.normal(size=r.shape)
    gamma_plan = 0.5 * gamma if myopic else None
    mdp = og.MDP(p, r, g, s0)
    f = tabular_objective(mdp, tau, plan_discount=gamma_plan)
    grad = jax.grad(f)(jnp.asarray(theta))
    closed = ref.irg_gradient(p, r, g, s0, theta, tau, gamma_plan)
    assert rel_err(grad, closed) <= 1e-6
    assert rel_err(grad, fd_gradient(f, theta)) <= 1e-6


@pytest.mark.parametrize("gamma_plan", [None, 0.5])
def test_four_rooms_gradient_equals_closed_form_and_finite_differences(gamma_plan):
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.goal_task(grid, grid.state(3, 9), 0.99, dtype=jnp.float64)
    p = np.asarray(mdp.transitions)
    tau = 0.1
    theta = np.asarray(mdp.rewards) + 0.1 * np.random.default_rng(0).normal(size=(104, 4))
    f = tabular_objective(mdp, tau, plan_discount=gamma_plan)
    grad = np.asarray(jax.grad(f)(jnp.asarray(theta)))
    closed = ref.irg_gradient(p, np.asarray(mdp.rewards), 0.99, np.asarray(mdp.initial),
                              theta, tau, gamma_plan)
    assert rel_err(grad, closed) <= 1e-6
    rng = np.random.default_rng(1)
    for _ in range(3):
        v = rng.normal(size=theta.shape)
        h = 1e-6
        fd = (float(f(jnp.asarray(theta + h * v))) - float(f(jnp.asarray(theta - h * v)))) / (2 * h)
        assert float(np.sum(grad * v)) == pytest.approx(fd, rel=1e-6)


def test_unrolled_gradient_converges_to_implicit_as_sweeps_grow():
    mdp = og.random_mdp(0, 8, 3, branching=3, discount=0.9, dtype=jnp.float64)
    model = og.rewards.tabular(8, 3)
    theta = mdp.rewards
    implicit = jax.grad(lambda t: planner_return(t, model, mdp, 0.3, tol=1e-13)[0])(theta)
    errors = []
    for n in (5, 20, 80, 320):
        unrolled = jax.grad(lambda t: planner_return(
            t, model, mdp, 0.3, differentiation="unrolled", num_sweeps=n)[0])(theta)
        errors.append(rel_err(unrolled, implicit))
    # Decreasing until the rounding floor (~1e-12) is reached.
    assert all(b < a or b < 1e-11 for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-10
    assert errors[0] > 1e-3  # a short budget really is a different function


def test_envelope_theorem_and_how_it_differs_from_the_extrinsic_gradient():
    p, r, g, s0 = ref.random_mdp(np.random.default_rng(3), 6, 3, 0.9)
    mdp = og.MDP(p, r, g, s0)
    tau = 0.4

    def soft_value(rewards):
        return og.soft_optimal_return(mdp.replace(rewards=rewards), tau, tol=1e-13)

    # 1. the planner's own objective: gradient = d_π̂ π̂, no policy-change term
    envelope = og.envelope_gradient(mdp, tau, tol=1e-13)
    q_star = ref.soft_value_iteration(p, r, g, tau)
    pi = ref.softmax(q_star / tau)
    closed = ref.occupancy(p, s0, g, pi)[:, None] * pi
    np.testing.assert_allclose(envelope, closed, rtol=1e-10)
    np.testing.assert_allclose(jax.grad(soft_value)(mdp.rewards), closed, rtol=1e-9)
    assert rel_err(fd_gradient(soft_value, r), closed) <= 1e-6

    # 2. the extrinsic return of π̂ for the same reward r = r_θ: envelope + policy change
    def extrinsic(rewards):
        m = mdp.replace(rewards=rewards)
        return og.expected_return(m, og.soft_value_iteration(m, tau, tol=1e-13).policy)

    policy_change = ref.irg_gradient(p, r, g, s0, r, tau)
    total = jax.grad(extrinsic)(mdp.rewards)
    np.testing.assert_allclose(total - envelope, policy_change, rtol=1e-8, atol=1e-12)
    assert np.abs(policy_change).max() > 1e-2 * np.abs(closed).max()


def test_envelope_refuses_boltzmann():
    mdp = og.random_mdp(0, 3, 2, 2)
    with pytest.raises(ValueError, match="backup"):
        og.envelope_gradient(mdp, 0.5, backup="boltzmann")


def test_state_and_linear_rewards_follow_the_chain_rule():
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.goal_task(grid, 20, 0.95, dtype=jnp.float64)
    tau = 0.2
    p = np.asarray(mdp.transitions)
    tab = og.rewards.tabular(104, 4)
    theta_s = np.random.default_rng(0).normal(size=104)
    r_s = p @ theta_s
    g_tab = jax.grad(lambda t: planner_return(t, tab, mdp, tau, tol=1e-13)[0])(jnp.asarray(r_s))
    state = og.rewards.state(104)
    g_state = jax.grad(lambda t: planner_return(t, state, mdp, tau, tol=1e-13)[0])(
        jnp.asarray(theta_s))
    np.testing.assert_allclose(g_state, np.einsum("sa,sat->t", g_tab, p), rtol=1e-9, atol=1e-14)

    phi = np.random.default_rng(1).normal(size=(104, 5))
    w = np.linalg.lstsq(phi, theta_s, rcond=None)[0]
    lin = og.rewards.linear(phi)
    g_tab_w = jax.grad(lambda t: planner_return(t, tab, mdp, tau, tol=1e-13)[0])(
        jnp.asarray(p @ (phi @ w)))
    g_lin = jax.grad(lambda t: planner_return(t, lin, mdp, tau, tol=1e-13)[0])(jnp.asarray(w))
    np.testing.assert_allclose(g_lin, phi.T @ np.einsum("sa,sat->t", g_tab_w, p), rtol=1e-9)


def test_planner_return_reports_the_plan_and_vmaps_over_goals():
    grid = og.gridworld.four_rooms()
    goals = jnp.array([5, 40, 90])
    model = og.rewards.tabular(104, 4)

    def value_and_grad(goal):
        mdp = og.gridworld.goal_task(grid, goal, 0.99, dtype=jnp.float64)
        return jax.value_and_grad(planner_return, has_aux=True)(
            mdp.rewards, model, mdp, 0.05, plan_discount=0.5)

    (values, plans), grads = jax.jit(jax.vmap(value_and_grad))(goals)
    assert bool(plans.converged.all())
    for i, goal in enumerate(goals):
        (v, plan), g = value_and_grad(int(goal))
        assert float(values[i]) == pytest.approx(float(v), rel=1e-9)
        np.testing.assert_allclose(grads[i], g, rtol=1e-7, atol=1e-12)
