import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import optiongrad as og
import reference as ref
from optiongrad.gym import OPTIONS_ID, TABULAR_ID, OptionsEnv, TabularEnv, absorbing_states
from optiongrad import option_models, smdp_policy_evaluation, with_primitives


def make(name, **kwargs):
    """A registered toy-text environment; Taxi is v4 in recent gymnasium (1.4 here), v3 in older."""
    if name == "Taxi":
        name = "Taxi-v4" if "Taxi-v4" in gymnasium.registry else "Taxi-v3"
    return gymnasium.make(name, **kwargs)


def gymnasium_returns(env, policy, discount, episodes, seed):
    """Discounted returns of `policy (S_env + 1, A)` run in `env` itself until termination."""
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(np.asarray(policy, np.float64), axis=1)
    returns = np.empty(episodes)
    state, _ = env.reset(seed=seed)
    for i in range(episodes):
        if i:
            state, _ = env.reset()
        total, scale, done = 0.0, 1.0, False
        while not done:
            action = int(np.searchsorted(cumulative[state], rng.random() * cumulative[state, -1],
                                         side="right"))
            state, reward, terminated, truncated, _ = env.step(action)
            assert not truncated, "the time limit must not bind"
            total += scale * reward
            scale *= discount
            done = terminated
        returns[i] = total
    return returns


def assert_within_ci(samples, exact, z=4.0):
    mean, stderr = samples.mean(), samples.std(ddof=1) / np.sqrt(samples.size)
    assert abs(mean - exact) <= z * stderr + 1e-12, (mean, exact, stderr)


# -- from gymnasium ---------------------------------------------------------------------------

@pytest.mark.parametrize("name, kwargs, temperature, discount, episodes", [
    ("FrozenLake-v1", {}, 0.0, 0.95, 3000),            # slippery, greedy optimal policy
    ("FrozenLake-v1", {}, 0.05, 0.95, 3000),           # slippery, smooth policy
    ("CliffWalking-v1", {}, 0.5, 0.9, 3000),           # the cliff returns to start (-100)
    ("Taxi", {}, 1.0, 0.9, 1500),                      # random start, smooth policy
])
def test_predicted_value_is_the_mean_return_in_the_gymnasium_environment(
        name, kwargs, temperature, discount, episodes):
    env = make(name, max_episode_steps=100_000, **kwargs)
    mdp = og.from_gymnasium(env, discount, dtype=jnp.float64)
    backup = "max" if temperature == 0.0 else "logsumexp"
    plan = og.soft_value_iteration(mdp, temperature, backup=backup)
    assert bool(plan.converged)
    predicted = float(og.expected_return(mdp, plan.policy))
    assert_within_ci(gymnasium_returns(env, plan.policy, discount, episodes, seed=7), predicted)


def test_closed_forms_on_deterministic_environments():
    gamma = 0.9
    lake = og.from_gymnasium(make("FrozenLake-v1", is_slippery=False), gamma)
    v = og.soft_value_iteration(lake, 0.0, backup="max").q.max(1)
    # six moves from the start corner to the goal corner, reward 1 on the sixth
    assert float(v[0]) == pytest.approx(gamma ** 5, rel=1e-9)
    cliff = og.from_gymnasium(make("CliffWalking-v1"), gamma)
    v = og.soft_value_iteration(cliff, 0.0, backup="max").q.max(1)
    # start (3, 0) → up, 11 × right, down: 13 steps of −1
    assert float(v[36]) == pytest.approx(-(1 - gamma ** 13) / (1 - gamma), rel=1e-9)
    assert float(cliff.initial @ v) == pytest.approx(float(v[36]))


@pytest.mark.parametrize("name", ["FrozenLake-v1", "CliffWalking-v1", "Taxi"])
def test_termination_goes_to_a_zero_reward_absorbing_state(name):
    env = make(name)
    mdp = og.from_gymnasium(env, 0.9, dtype=jnp.float64)
    table, n = env.unwrapped.P, env.observation_space.n
    p, r = np.asarray(mdp.transitions), np.asarray(mdp.rewards)
    assert p.shape == (n + 1, env.action_space.n, n + 1)
    np.testing.assert_array_equal(p[n, :, n], 1.0)
    np.testing.assert_array_equal(r[n], 0.0)
    assert float(mdp.initial[n]) == 0.0
    np.testing.assert_allclose(mdp.initial[:n], env.unwrapped.initial_state_distrib)
    assert np.flatnonzero(absorbing_states(mdp)).tolist() == [n]
    for s in range(n):
        for a, outcomes in table[s].items():
            done = sum(prob for prob, _, _, d in outcomes if d)
            assert p[s, a, n] == pytest.approx(done)
            assert r[s, a] == pytest.approx(sum(prob * rew for prob, _, rew, _ in outcomes))
    v = og.policy_evaluation(mdp, np.full(r.shape, 1 / r.shape[1]))
    assert float(v[n]) == 0.0


def test_sparse_and_dense_from_gymnasium_agree(dtype):
    env = make("Taxi")
    sparse = og.from_gymnasium(env, 0.9, sparse=True, dtype=dtype)
    dense = og.from_gymnasium(env, 0.9, dtype=dtype)
    assert sparse.is_sparse and not dense.is_sparse and sparse.dtype == dtype
    np.testing.assert_allclose(sparse.transitions.todense(), dense.transitions)
    a = og.soft_value_iteration(sparse, 0.5, solver="iteration").q  # the same sweeps on both
    b = og.soft_value_iteration(dense, 0.5, solver="iteration").q
    np.testing.assert_allclose(a, b, rtol=1e-4 if dtype == np.float32 else 1e-10)


def test_from_gymnasium_rejects_bad_input():
    with pytest.raises(ValueError, match="env: .*no toy-text transition table"):
        og.from_gymnasium(make("CartPole-v1"))
    mdp = og.random_mdp(jax.random.key(0), 4, 2, 2)
    env = TabularEnv(mdp)
    env.P[1][0] = [(0.5, 2, 0.0, False)]
    with pytest.raises(ValueError, match=r"env: probabilities of P\[1\]\[0\] sum to 0.5"):
        og.from_gymnasium(env)
    env.P[1][0] = [(1.0, 9, 0.0, False)]
    with pytest.raises(ValueError, match=r"env: P\[1\]\[0\] next state 9 is outside"):
        og.from_gymnasium(env)
    del env.P[1][0]
    with pytest.raises(ValueError, match=r"env: P\[1\]\[0\] is missing"):
        og.from_gymnasium(env)
    with pytest.raises(ValueError, match=r"initial: expected shape \(S_env,\) = \(16,\)"):
        og.from_gymnasium(make("FrozenLake-v1"), initial=np.ones(3) / 3)
    with pytest.raises(ValueError, match="discount"):
        og.from_gymnasium(make("FrozenLake-v1"), 1.0)

    class NoSpaces:
        P = {0: {0: [(1.0, 0, 0.0, False)]}}

    with pytest.raises(ValueError, match="env: observation_space must be .*Discrete"):
        og.from_gymnasium(NoSpaces())
    start = np.zeros(16)
    start[5] = 1.0   # a hole: the episode is over before it starts, and is worth nothing
    lake = og.from_gymnasium(make("FrozenLake-v1"), initial=start)
    assert float(lake.initial[5]) == 1.0
    assert float(og.expected_return(lake, np.full((17, 4), 0.25))) == 0.0


def test_round_trip_through_tabular_env_keeps_the_values():
    grid = og.gridworld.four_rooms(slip=0.2)
    goal = grid.state(3, 8)
    mdp = og.gridworld.goal_task(grid, goal, 0.9, dtype=jnp.float64)
    back = og.from_gymnasium(TabularEnv(mdp), 0.9, dtype=jnp.float64)
    assert back.num_states == mdp.num_states + 1
    v = og.soft_value_iteration(mdp, 0.1).q
    w = og.soft_value_iteration(back, 0.1).q
    # entering the goal now terminates into ⊥ instead of staying in the goal: same values
    np.testing.assert_allclose(w[:-1], v, atol=1e-10)
    np.testing.assert_allclose(back.initial[:-1], mdp.initial)


# -- to gymnasium -----------------------------------------------------------------------------

def strict_check(env):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env, skip_render_check=False)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_tabular_env_passes_the_gymnasium_checker(sparse):
    grid = og.gridworld.four_rooms(slip=1 / 3)
    mdp = og.gridworld.goal_task(grid, 20, 0.9, sparse=sparse)
    strict_check(gymnasium.make(TABULAR_ID, mdp=mdp, render_mode="ansi").unwrapped)
    strict_check(gymnasium.make(TABULAR_ID, mdp=og.random_mdp(jax.random.key(1), 7, 3, 3)).unwrapped)


def test_tabular_env_mean_return_is_the_value(dtype):
    rng = np.random.default_rng(3)
    p, r, g, s0 = ref.random_mdp(rng, 6, 3, 0.8)
    mdp = og.MDP(p.astype(dtype), r.astype(dtype), g, s0.astype(dtype))
    policy = rng.dirichlet(np.ones(3), size=6)
    env = gymnasium.make(TABULAR_ID, mdp=mdp, max_episode_steps=120)  # 0.8^120 ≈ 2e-12
    returns = []
    state, _ = env.reset(seed=0)
    for _ in range(2000):
        total, scale, done = 0.0, 1.0, False
        while not done:
            state, reward, terminated, truncated, info = env.step(
                int(rng.choice(3, p=policy[state])))
            total += scale * reward
            scale *= 0.8
            done = terminated or truncated
            assert not terminated and info["prob"] > 0
        returns.append(total)
        state, _ = env.reset()
    exact = float(s0 @ ref.evaluate(p, r, g, policy))
    assert_within_ci(np.array(returns), exact)


def test_tabular_env_terminates_on_entering_the_goal_and_refuses_bad_input():
    grid = og.gridworld.four_rooms()
    goal = grid.state(1, 2)
    env = TabularEnv(og.gridworld.goal_task(grid, goal, 0.9))
    assert np.flatnonzero(env.terminal).tolist() == [goal]
    env.reset(seed=0)
    env.state = grid.state(1, 1)
    state, reward, terminated, truncated, _ = env.step(1)  # right, into the goal
    assert (state, reward, terminated, truncated) == (goal, 1.0, True, False)
    assert env.P[grid.state(1, 1)][1] == [(1.0, goal, 1.0, True)]
    with pytest.raises(ValueError, match="action: 7 is not in Discrete"):
        env.step(7)
    with pytest.raises(ValueError, match="terminal: expected a bool array of shape"):
        TabularEnv(env.mdp, terminal=np.zeros(3, bool))
    with pytest.raises(ValueError, match="render_mode"):
        TabularEnv(env.mdp, render_mode="human")
    with pytest.raises(ValueError, match="mdp: expected an optiongrad.MDP"):
        TabularEnv(np.zeros((2, 2, 2)))


def four_rooms_with_hallway_options(goal_cell=(7, 9)):
    grid = og.gridworld.four_rooms(slip=1 / 3)
    mdp = og.gridworld.goal_task(grid, grid.state(*goal_cell), 0.9, dtype=jnp.float64)
    return grid, mdp, with_primitives(og.gridworld.hallway_options(grid, jnp.float64))


def test_options_env_passes_the_gymnasium_checker():
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.goal_task(grid, 30, 0.9)
    options = with_primitives(og.discovery.eigenoptions(og.gridworld.navigation_mdp(grid, 0.9),
                                                        4))
    strict_check(gymnasium.make(OPTIONS_ID, mdp=mdp, options=options).unwrapped)


def test_options_env_call_and_return_mean_is_the_smdp_value():
    _, mdp, options = four_rooms_with_hallway_options()
    reward, transition = option_models(mdp, options)
    mu = og.smdp_value_iteration(reward, transition, 0.05, initiation=options.initiation).policy
    exact = float(mdp.initial @ smdp_policy_evaluation(reward, transition, mu))
    env = OptionsEnv(mdp, options)
    mu = np.asarray(mu)
    rng = np.random.default_rng(0)
    returns = []
    state, info = env.reset(seed=0)
    for _ in range(3000):
        total, scale, done = 0.0, 1.0, False
        while not done:
            option = int(rng.choice(mu.shape[1], p=mu[state]))
            assert info["action_mask"][option] == 1
            state, reward, terminated, truncated, info = env.step(option)
            total += scale * reward
            scale *= info["discount"]
            assert info["discount"] == pytest.approx(0.9 ** info["duration"])
            done = terminated or truncated
            assert not truncated
        returns.append(total)
        state, info = env.reset()
    assert_within_ci(np.array(returns), exact)


def test_options_env_refuses_unavailable_options_and_cuts_endless_ones():
    grid, mdp, options = four_rooms_with_hallway_options()
    env = OptionsEnv(mdp, options)
    _, info = env.reset(seed=0)
    unavailable = int(np.flatnonzero(info["action_mask"] == 0)[0])
    with pytest.raises(ValueError, match=f"option {unavailable} cannot be started"):
        env.step(unavailable)
    stay = np.zeros((1, mdp.num_states, 4))
    stay[..., 0] = 1.0  # always up, never terminates: stuck against the top wall
    never = og.Options(stay, np.zeros((1, mdp.num_states)))
    env = OptionsEnv(mdp, never, max_option_steps=50)
    env.reset(seed=0)
    env.state = grid.state(1, 1)
    _, _, terminated, truncated, info = env.step(0)
    assert (terminated, truncated, info["duration"]) == (False, True, 50)
    with pytest.raises(ValueError, match="options: built for"):
        OptionsEnv(og.random_mdp(jax.random.key(0), 5, 4, 2), never)
    with pytest.raises(AttributeError, match="no one-step transition table"):
        env.P
    with pytest.raises(ValueError, match="max_option_steps"):
        OptionsEnv(mdp, never, max_option_steps=0)
