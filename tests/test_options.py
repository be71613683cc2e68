import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from optiongrad import (
    Options,
    concatenate,
    flat_policy_evaluation,
    option_models,
    primitive_options,
    rollout,
    sample_returns,
    smdp_policy_evaluation,
    with_primitives,
)


def random_options(rng, k, s, a, with_initiation=True):
    pi = rng.random((k, s, a))
    pi /= pi.sum(-1, keepdims=True)
    beta = rng.random((k, s))
    init = rng.random((k, s)) < 0.6 if with_initiation else None
    if init is not None:
        init[0] = True  # every state has an option
    return Options(pi, beta, init)


def random_mu(rng, options):
    mask = np.asarray(options.initiation_mask()).T
    mu = rng.random(mask.shape) * mask
    return mu / mu.sum(1, keepdims=True)


def setup(seed=0, s=6, a=3, k=4, gamma=0.9):
    rng = np.random.default_rng(seed)
    p, r, g, s0 = ref.random_mdp(rng, s, a, gamma)
    options = random_options(rng, k, s, a)
    return og.MDP(p, r, g, s0), (p, r, g, s0), options, random_mu(rng, options)


# -- validation ----------------------------------------------------------------------------

def _opt_arrays():
    rng = np.random.default_rng(0)
    pi = rng.random((2, 3, 2))
    pi /= pi.sum(-1, keepdims=True)
    return pi, rng.random((2, 3)), np.ones((2, 3), bool)


@pytest.mark.parametrize("change,field,message", [
    (lambda pi, b, i: (pi[0], b, i), "policy", "shape"),
    (lambda pi, b, i: (pi * 0.5, b, i), "policy", "sum to 1"),
    (lambda pi, b, i: (np.where(pi > 0.5, np.nan, pi), b, i), "policy", "non-finite"),
    (lambda pi, b, i: (pi, b[:, :2], i), "termination", "shape"),
    (lambda pi, b, i: (pi, b + 1.0, i), "termination", "outside [0, 1]"),
    (lambda pi, b, i: (pi, -b, i), "termination", "outside [0, 1]"),
    (lambda pi, b, i: (pi, np.full_like(b, np.inf), i), "termination", "non-finite"),
    (lambda pi, b, i: (pi, b, i.astype(float)), "initiation", "bool"),
    (lambda pi, b, i: (pi, b, i[:, :2]), "initiation", "shape"),
])
def test_malformed_options_are_refused(change, field, message):
    with pytest.raises(ValueError) as err:
        Options(*change(*_opt_arrays()))
    assert str(err.value).startswith(field) and message in str(err.value), err.value


def test_options_built_from_tracers_are_not_value_checked():
    pi, b, i = _opt_arrays()
    out = jax.jit(lambda scale: Options(pi * scale, b * scale, i).termination.sum())(3.0)
    assert np.isfinite(out)


# -- models ----------------------------------------------------------------------------------

def test_option_models_match_per_option_numpy_lambda_models():
    mdp, (p, r, g, _), options, _ = setup(1)
    reward, transition = option_models(mdp, options)
    assert reward.shape == (6, 4) and transition.shape == (4, 6, 6)
    for o in range(4):
        pi, beta = np.asarray(options.policy[o]), np.asarray(options.termination[o])
        ppi = ref.p_pi(p, pi)
        d = np.linalg.inv(np.eye(6) - g * ppi * (1 - beta)[None, :])
        np.testing.assert_allclose(reward[:, o], d @ (pi * r).sum(-1), rtol=1e-10)
        np.testing.assert_allclose(transition[o], g * d @ ppi * beta[None, :], rtol=1e-10,
                                   atol=1e-15)


def test_primitive_options_models_are_one_step():
    mdp, (p, r, g, _), _, _ = setup(2)
    reward, transition = option_models(mdp, primitive_options(6, 3))
    np.testing.assert_allclose(reward, r, rtol=1e-12)
    np.testing.assert_allclose(transition, g * np.transpose(p, (1, 0, 2)), rtol=1e-12)


@pytest.mark.parametrize("backup", ["logsumexp", "mellowmax", "boltzmann", "max"])
def test_primitives_as_options_reproduce_soft_value_iteration(backup):
    mdp, _, _, _ = setup(3)
    reward, transition = option_models(mdp, primitive_options(6, 3))
    smdp = og.smdp_value_iteration(reward, transition, 0.5, backup=backup, tol=1e-12,
                                   solver="iteration")
    flat = og.soft_value_iteration(mdp, 0.5, backup=backup, tol=1e-12, solver="iteration")
    np.testing.assert_allclose(smdp.q, flat.q, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(smdp.policy, flat.policy, rtol=1e-9, atol=1e-12)
    assert int(smdp.iterations) == int(flat.iterations)


def test_concatenate_and_with_primitives():
    _, _, options, _ = setup(4)
    both = with_primitives(options)
    assert both.num_options == 7
    np.testing.assert_array_equal(both.initiation[:4], options.initiation)
    assert bool(both.initiation[4:].all())
    np.testing.assert_allclose(both.termination[4:], 1.0)
    no_init = concatenate(primitive_options(6, 3), primitive_options(6, 3))
    assert no_init.initiation is None and no_init.num_options == 6
    with pytest.raises(ValueError, match="option_sets"):
        concatenate(options, primitive_options(5, 3))
    with pytest.raises(ValueError, match="option_sets"):
        concatenate()


# -- hierarchical evaluation, three ways ----------------------------------------------------

def mc_check(mdp, options, mu, exact, seed=0, episodes=20_000, horizon=None):
    horizon = horizon or int(np.ceil(np.log(1e-12) / np.log(float(mdp.discount))))
    returns = np.asarray(sample_returns(jax.random.key(seed), mdp, options, jnp.asarray(mu),
                                        episodes, horizon))
    mean, stderr = returns.mean(), returns.std(ddof=1) / np.sqrt(episodes)
    assert abs(mean - exact) <= 4 * stderr, (mean, exact, stderr)
    return mean, stderr


def test_three_way_evaluation_on_a_random_mdp():
    mdp, _, options, mu = setup(5)
    reward, transition = option_models(mdp, options)
    v_model = smdp_policy_evaluation(reward, transition, mu)
    v_flat = flat_policy_evaluation(mdp, options, mu)
    np.testing.assert_allclose(v_model, v_flat, rtol=1e-10)
    mc_check(mdp, options, mu, float(mdp.initial @ v_model))


def test_three_way_evaluation_of_planned_hallway_options_on_four_rooms():
    grid = og.gridworld.four_rooms(slip=1 / 3)
    mdp = og.gridworld.goal_task(grid, grid.state(7, 9), 0.9, sparse=True, dtype=jnp.float64)
    options = with_primitives(og.gridworld.hallway_options(grid))
    reward, transition = option_models(mdp, options)
    plan = og.smdp_value_iteration(reward, transition, 0.05, initiation=options.initiation)
    v_model = smdp_policy_evaluation(reward, transition, plan.policy)
    np.testing.assert_allclose(flat_policy_evaluation(mdp, options, plan.policy), v_model,
                               rtol=1e-9, atol=1e-14)  # the goal's value is 0 up to rounding
    mc_check(mdp, options, plan.policy, float(mdp.initial @ v_model), seed=1, episodes=10_000)


def test_rollout_follows_call_and_return():
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.goal_task(grid, grid.state(11, 11), 0.95, dtype=jnp.float64)
    options = og.gridworld.hallway_options(grid)
    mu = np.asarray(options.initiation_mask()).T.astype(float)
    mu /= mu.sum(1, keepdims=True)
    traj = rollout(jax.random.key(3), mdp, options, jnp.asarray(mu), 200, start=grid.state(1, 1))
    started = np.asarray(traj.started)
    assert started[0] and int(traj.state[0]) == grid.state(1, 1)
    # a new option starts exactly after a termination; options only start where allowed
    np.testing.assert_array_equal(started[1:], np.asarray(traj.terminated)[:-1])
    opts, states = np.asarray(traj.option), np.asarray(traj.state)
    assert np.all(np.asarray(options.initiation)[opts[started], states[started]])
    changes = np.flatnonzero(opts[1:] != opts[:-1]) + 1
    assert np.all(started[changes])
    # hallway options stop on their hallway: every termination entered a β = 1 state
    beta = np.asarray(options.termination)
    term = np.flatnonzero(np.asarray(traj.terminated)[:-1])
    np.testing.assert_allclose(beta[opts[term], states[term + 1]], 1.0)
    g = np.asarray(mdp.discount) ** np.arange(200)
    assert float(traj.discounted_return) == pytest.approx(float(g @ np.asarray(traj.reward)))


# -- planning over options ------------------------------------------------------------------

def test_initiation_sets_are_honoured_and_only_options_works():
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.goal_task(grid, grid.state(3, 6), 0.9, dtype=jnp.float64)
    options = og.gridworld.hallway_options(grid)  # only options: A = ∅
    reward, transition = option_models(mdp, options)
    plan = og.smdp_value_iteration(reward, transition, 0.1, initiation=options.initiation)
    assert bool(plan.converged)
    mu = np.asarray(plan.policy)
    assert np.all(mu[~np.asarray(options.initiation).T] == 0.0)
    np.testing.assert_allclose(mu.sum(1), 1.0)
    # the hallway-goal task is solvable with hallway options alone: the hierarchical value is
    # close to optimal from every room
    v = smdp_policy_evaluation(reward, transition, plan.policy)
    optimal = og.soft_value_iteration(mdp, 0.0, backup="max").q.max(1)
    assert float(mdp.initial @ v) > 0.9 * float(mdp.initial @ optimal)


def test_smdp_planner_refuses_states_without_options_and_bad_shapes():
    _, _, options, _ = setup(6)
    reward = np.zeros((6, 4))
    transition = np.zeros((4, 6, 6))
    init = np.asarray(options.initiation).copy()
    init[:, 2] = False
    with pytest.raises(ValueError, match="initiation: state 2"):
        og.smdp_value_iteration(reward, transition, 0.1, initiation=init)
    with pytest.raises(ValueError, match="initiation"):
        og.smdp_value_iteration(reward, transition, 0.1, initiation=init.T)
    with pytest.raises(ValueError, match="transition"):
        og.smdp_value_iteration(reward, transition[:, :5], 0.1)
    with pytest.raises(ValueError, match="reward"):
        og.smdp_value_iteration(reward[0], transition, 0.1)
    with pytest.raises(ValueError, match="mu"):
        smdp_policy_evaluation(reward, transition, np.ones((6, 3)))


# -- gradients -------------------------------------------------------------------------------

def hierarchical_return(mdp, logits, omega, initiation, tau_mu=None):
    options = Options(jax.nn.softmax(logits, -1), jax.nn.sigmoid(omega), initiation)
    reward, transition = option_models(mdp, options)
    if tau_mu is None:
        mask = np.asarray(options.initiation_mask()).T
        mu = jnp.asarray(mask / mask.sum(1, keepdims=True))
    else:
        mu = og.smdp_value_iteration(reward, transition, tau_mu, initiation=initiation,
                                     tol=1e-13).policy
    return mdp.initial @ smdp_policy_evaluation(reward, transition, mu)


@pytest.mark.parametrize("tau_mu", [None, 0.3], ids=["fixed-mu", "planned-mu"])
def test_gradient_wrt_option_policies_and_terminations_matches_finite_differences(tau_mu):
    mdp, _, options, _ = setup(7)
    rng = np.random.default_rng(8)
    logits, omega = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6))
    init = options.initiation

    def f(lg, om):
        return hierarchical_return(mdp, lg, om, init, tau_mu)

    g_logits, g_omega = jax.grad(f, argnums=(0, 1))(jnp.asarray(logits), jnp.asarray(omega))
    h = 1e-6
    for _ in range(4):
        v_l, v_o = rng.normal(size=logits.shape), rng.normal(size=omega.shape)
        fd = (f(logits + h * v_l, omega + h * v_o) - f(logits - h * v_l, omega - h * v_o)) / (2 * h)
        analytic = float(jnp.sum(g_logits * v_l) + jnp.sum(g_omega * v_o))
        assert analytic == pytest.approx(float(fd), rel=1e-6)


def test_smdp_implicit_and_unrolled_gradients_agree():
    mdp, _, options, _ = setup(9)
    reward, transition = option_models(mdp, options)

    def value(reward, **kw):
        plan = og.smdp_value_iteration(reward, transition, 0.3,
                                       initiation=options.initiation, **kw)
        return mdp.initial @ smdp_policy_evaluation(reward, transition, plan.policy)

    implicit = jax.grad(value)(reward, tol=1e-13)
    unrolled = jax.grad(value)(reward, differentiation="unrolled", num_sweeps=600)
    np.testing.assert_allclose(unrolled, implicit, rtol=1e-8, atol=1e-12)


# -- matrix-free (intra-option) evaluation ------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_intra_option_policy_evaluation_equals_option_model_evaluation(seed):
    mdp, _, options, mu = setup(seed)
    reward, transition = option_models(mdp, options)
    expected = smdp_policy_evaluation(reward, transition, mu)
    got = og.intra_option_policy_evaluation(mdp, options, mu, tol=1e-13)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_intra_option_policy_evaluation_sparse_and_gradients():
    grid = og.gridworld.four_rooms(0.1)
    sparse = og.gridworld.goal_task(grid, 40, 0.9, sparse=True)
    dense = og.gridworld.goal_task(grid, 40, 0.9)
    rng = np.random.default_rng(5)
    options = random_options(rng, 3, 104, 4)
    mu = jnp.asarray(random_mu(rng, options))

    def intra(mu, beta):
        opts = Options(options.policy, beta, options.initiation)
        return sparse.initial @ og.intra_option_policy_evaluation(sparse, opts, mu, tol=1e-13)

    def models(mu, beta):
        opts = Options(options.policy, beta, options.initiation)
        reward, transition = option_models(dense, opts)
        return dense.initial @ smdp_policy_evaluation(reward, transition, mu)

    args = (mu, options.termination)
    np.testing.assert_allclose(intra(*args), models(*args), rtol=1e-10)
    for a, b in zip(jax.grad(intra, (0, 1))(*args), jax.grad(models, (0, 1))(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="mu"):
        og.intra_option_policy_evaluation(sparse, options, mu[:, :2])


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_apply_option_models_equals_dense_models_times_vector(sparse):
    grid = og.gridworld.four_rooms(0.2)
    task = og.gridworld.goal_task(grid, 60, 0.95, sparse=sparse)
    dense = og.gridworld.goal_task(grid, 60, 0.95)
    rng = np.random.default_rng(7)
    options = random_options(rng, 3, 104, 4)
    v = jnp.asarray(rng.normal(size=104))
    reward, pv = og.apply_option_models(task, options, v, tol=1e-13)
    r_ref, p_ref = option_models(dense, options)
    np.testing.assert_allclose(reward, r_ref, atol=1e-11)
    np.testing.assert_allclose(pv, jnp.einsum("kst,t->sk", p_ref, v), atol=1e-11)

    def fast(beta):
        r, p = og.apply_option_models(task, Options(options.policy, beta, None), v,
                                      tol=1e-13)
        return jnp.sum(r * p)

    def slow(beta):
        r, p = option_models(dense, Options(options.policy, beta, None))
        return jnp.sum(r * jnp.einsum("kst,t->sk", p, v))

    np.testing.assert_allclose(jax.grad(fast)(options.termination),
                               jax.grad(slow)(options.termination), rtol=1e-8, atol=1e-11)
    with pytest.raises(ValueError, match="v"):
        og.apply_option_models(task, options, v[:5])
