import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from conftest import tolerance
from optiongrad._src.transitions import expectation

BACKUPS = ["logsumexp", "mellowmax", "boltzmann", "max"]


def make(dtype=np.float64, seed=0, s=6, a=3, gamma=0.9, sparse=False):
    p, r, g, s0 = ref.random_mdp(np.random.default_rng(seed), s, a, gamma)
    transitions = p.astype(dtype)
    if sparse:
        idx = np.broadcast_to(np.arange(s), (s, a, s))
        transitions = og.SparseTransitions(idx, transitions)
    return og.MDP(transitions, r.astype(dtype), g, s0.astype(dtype)), (p, r, g, s0)


@pytest.mark.parametrize("backup", BACKUPS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_fixed_point_matches_numpy_reference(dtype, maybe_jit, backup, sparse):
    mdp, (p, r, g, _) = make(dtype, sparse=sparse)
    tau = 0.5
    plan = maybe_jit(lambda m: og.soft_value_iteration(m, tau, backup=backup))(mdp)
    assert bool(plan.converged)
    assert plan.q.dtype == dtype and plan.policy.dtype == dtype
    expected = ref.soft_value_iteration(p, r, g, tau, backup)
    tol = tolerance(dtype, 1e-8, 2e-4)
    np.testing.assert_allclose(plan.q, expected, rtol=tol, atol=tol)
    np.testing.assert_allclose(plan.policy, ref.policy(expected, tau, backup), atol=tol)
    np.testing.assert_allclose(np.asarray(plan.policy).sum(-1), 1.0, rtol=1e-5)
    # it is a fixed point of the operator to the stated tolerance
    residual = plan.q - (mdp.rewards + mdp.discount * expectation(
        mdp.transitions, og.backup(plan.q, tau, backup)))
    assert float(jnp.abs(residual).max()) <= 10 * float(plan.residual) + tol


def test_max_backup_equals_policy_iteration():
    for seed in range(3):
        mdp, (p, r, g, _) = make(seed=seed, s=12, a=4, gamma=0.95)
        plan = og.soft_value_iteration(mdp, 0.0, backup="max", tol=1e-12)
        v_star, q_star, pi_star = ref.policy_iteration(p, r, g)
        np.testing.assert_allclose(plan.q, q_star, atol=1e-10)
        np.testing.assert_allclose(plan.policy, pi_star, atol=0)
        np.testing.assert_allclose(og.policy_evaluation(mdp, plan.policy), v_star, atol=1e-10)


def test_logsumexp_is_within_entropy_bound_of_optimal():
    # 0 ≤ Q_lse − Q* ≤ γ τ log A / (1 − γ), so Q_lse → Q* as τ → 0.
    mdp, (p, r, g, _) = make(seed=1, s=10, a=4, gamma=0.9)
    _, q_star, _ = ref.policy_iteration(p, r, g)
    for tau in (1.0, 0.1, 0.01):
        gap = np.asarray(og.soft_value_iteration(mdp, tau).q) - q_star
        assert gap.min() >= -1e-9
        assert gap.max() <= g * tau * np.log(4) / (1 - g) + 1e-9


def test_mellowmax_is_logsumexp_shifted_by_a_constant(dtype):
    mdp, _ = make(dtype, seed=2)
    tau = 0.3
    shift = 0.9 * tau * np.log(3) / (1 - 0.9)
    lse = og.soft_value_iteration(mdp, tau).q
    mm = og.soft_value_iteration(mdp, tau, backup="mellowmax").q
    np.testing.assert_allclose(mm, lse - shift, atol=tolerance(dtype, 1e-8, 1e-3))
    np.testing.assert_allclose(og.soft_value_iteration(mdp, tau, backup="mellowmax").policy,
                               og.soft_value_iteration(mdp, tau).policy,
                               atol=tolerance(dtype, 1e-8, 1e-4))


@pytest.mark.parametrize("backup", BACKUPS)
def test_unrolled_is_exactly_num_sweeps(backup):
    mdp, (p, r, g, _) = make(seed=3)
    plan = og.soft_value_iteration(mdp, 0.7, backup=backup, differentiation="unrolled",
                                   num_sweeps=5)
    np.testing.assert_allclose(plan.q, ref.sweeps(p, r, g, 0.7, backup, 5), rtol=1e-12)
    assert int(plan.iterations) == 5
    assert not bool(plan.converged)


@pytest.mark.parametrize("backup", ["logsumexp", "mellowmax", "boltzmann"])
def test_stable_at_small_temperature_and_large_rewards(dtype, backup):
    mdp, _ = make(dtype, seed=4)
    big = mdp.replace(rewards=mdp.rewards * 1e3)

    def objective(rewards):
        plan = og.soft_value_iteration(big.replace(rewards=rewards), 1e-3, backup=backup,
                                       max_iter=3000)
        return og.expected_return(big, plan.policy) + jnp.sum(plan.q) * 1e-6

    plan = og.soft_value_iteration(big, 1e-3, backup=backup, max_iter=3000)
    assert np.isfinite(plan.q).all() and np.isfinite(plan.policy).all()
    grad = jax.grad(objective)(big.rewards)
    assert np.isfinite(grad).all()
    if dtype == np.float64:
        assert bool(plan.converged)


def test_non_convergence_is_reported():
    mdp, _ = make(seed=5, gamma=0.99)
    plan = og.soft_value_iteration(mdp, 0.1, max_iter=7, solver="iteration")
    assert int(plan.iterations) == 7 and not bool(plan.converged)
    assert float(plan.residual) > 1e-10


def boltzmann_oscillator():
    """A 2-state MDP on which Boltzmann value iteration falls into a period-2 cycle."""
    p = np.array([[[0.0375, 0.9625], [0.5468, 0.4532]], [[0.9874, 0.0126], [0.0056, 0.9944]]])
    r = np.array([[0.3654, -1.2734], [-1.6864, -2.0096]])
    return og.MDP(p, r, 0.98), 0.3


def test_boltzmann_non_convergence_is_detected_and_explained():
    mdp, tau = boltzmann_oscillator()
    plan = og.soft_value_iteration(mdp, tau, backup="boltzmann", max_iter=5000)
    assert not bool(plan.converged)
    assert float(plan.residual) > 0.5  # a 2-cycle, not slow convergence
    # A fixed point exists (Newton finds it) and I − ∂_Q T is invertible there, so the IFT
    # applies at it; but ∂_Q T is not bounded by γ as for logsumexp, and value iteration from
    # zero is caught in a cycle instead of reaching it.
    t = lambda q: mdp.rewards + mdp.discount * mdp.transitions @ og.backup(q, tau, "boltzmann")
    q = plan.q
    for _ in range(50):
        jac = jax.jacobian(lambda x: (t(x.reshape(2, 2)) - x.reshape(2, 2)).reshape(-1))(
            q.reshape(-1))
        q = q - jnp.linalg.solve(jac, (t(q) - q).reshape(-1)).reshape(2, 2)
    assert float(jnp.abs(t(q) - q).max()) < 1e-10
    assert float(og.jacobian_spectral_radius(mdp, q, tau, "boltzmann")) > 0.98
    assert abs(float(jnp.linalg.det(jac))) > 1e-6
    lse = og.soft_value_iteration(mdp, tau)
    assert bool(lse.converged)
    assert float(og.jacobian_spectral_radius(mdp, lse.q, tau)) <= 0.98 + 1e-12


@pytest.mark.parametrize("backup", ["logsumexp", "mellowmax", "max"])
def test_spectral_radius_at_most_discount(backup):
    mdp, _ = make(seed=6, gamma=0.9)
    plan = og.soft_value_iteration(mdp, 0.2, backup=backup)
    radius = float(og.jacobian_spectral_radius(mdp, plan.q, 0.2, backup))
    assert radius <= 0.9 + 1e-10


def test_vmap_over_reward_tables_equals_loop(dtype):
    mdp, _ = make(dtype, seed=7)
    rewards = jnp.stack([mdp.rewards, -mdp.rewards, 3 * mdp.rewards, 0 * mdp.rewards])
    batched = jax.vmap(lambda r: og.soft_value_iteration(mdp.replace(rewards=r), 0.2))(rewards)
    assert batched.q.shape == (4, 6, 3)
    for i in range(4):
        single = og.soft_value_iteration(mdp.replace(rewards=rewards[i]), 0.2)
        # batched and single sweeps round differently: agree within the error budget
        # tol / (1 − γ), and in the number of sweeps up to rounding at the stopping test
        np.testing.assert_allclose(batched.q[i], single.q, atol=tolerance(dtype, 1e-8, 2e-4))
        assert abs(int(batched.iterations[i]) - int(single.iterations)) <= 2
        assert bool(batched.converged[i])


def test_sparse_and_dense_agree_including_gradients():
    dense, _ = make(seed=8)
    sparse, _ = make(seed=8, sparse=True)

    def objective(rewards, mdp):
        plan = og.soft_value_iteration(mdp.replace(rewards=rewards), 0.3)
        return og.expected_return(mdp, plan.policy)

    np.testing.assert_allclose(og.soft_value_iteration(sparse, 0.3).q,
                               og.soft_value_iteration(dense, 0.3).q, rtol=1e-12)
    np.testing.assert_allclose(jax.grad(objective)(sparse.rewards, sparse),
                               jax.grad(objective)(dense.rewards, dense), rtol=1e-10)


def central_difference(f, x, direction, h=1e-5):
    return float((f(x + h * direction) - f(x - h * direction)) / (2 * h))


def test_gradients_wrt_temperature_discount_and_transitions_match_finite_differences():
    mdp, _ = make(seed=9)

    def objective(tau, gamma, p):
        m = mdp.replace(transitions=p, discount=gamma)
        plan = og.soft_value_iteration(m, tau, tol=1e-13)
        return og.expected_return(mdp, plan.policy) + jnp.mean(plan.q)

    tau, gamma, p = jnp.asarray(0.4), mdp.discount, mdp.transitions
    g_tau, g_gamma, g_p = jax.grad(objective, argnums=(0, 1, 2))(tau, gamma, p)
    assert float(g_tau) == pytest.approx(
        central_difference(lambda t: objective(t, gamma, p), tau, 1.0), rel=1e-6)
    assert float(g_gamma) == pytest.approx(
        central_difference(lambda g: objective(tau, g, p), gamma, 1.0), rel=1e-6)
    # a direction along the simplex: zero off the support of P, zero sum over each row
    direction = np.random.default_rng(0).normal(size=p.shape) * (np.asarray(p) > 0)
    support = np.maximum((np.asarray(p) > 0).sum(-1, keepdims=True), 1)
    direction = jnp.asarray((direction - direction.sum(-1, keepdims=True) / support)
                            * (np.asarray(p) > 0))
    assert float(jnp.sum(g_p * direction)) == pytest.approx(
        central_difference(lambda q: objective(tau, gamma, q), p, direction), rel=1e-6)


def test_adjoint_converges_at_gamma_099_on_a_100x100_grid():
    grid = og.gridworld.GridWorld.open(100, 100)
    mdp = og.gridworld.goal_task(grid, grid.state(50, 50), 0.99)
    assert mdp.is_sparse

    def objective(rewards):
        plan = og.soft_value_iteration(mdp.replace(rewards=rewards), 0.05, tol=1e-11)
        return jnp.sum(plan.q * mdp.initial[:, None]), plan

    (value, plan), grad = jax.value_and_grad(objective, has_aux=True)(mdp.rewards)
    assert bool(plan.converged)
    assert np.isfinite(grad).all()
    direction = jnp.asarray(np.random.default_rng(1).normal(size=grad.shape))
    fd = central_difference(lambda r: objective(r)[0], mdp.rewards, direction, h=1e-6)
    assert float(jnp.sum(grad * direction)) == pytest.approx(fd, rel=1e-6)


def test_warm_start_gives_the_same_answer_in_fewer_sweeps():
    mdp, _ = make(seed=10, gamma=0.95)
    cold = og.soft_value_iteration(mdp, 0.2, solver="iteration")
    warm = og.soft_value_iteration(mdp, 0.2, init=cold.q + 1e-3, solver="iteration")
    np.testing.assert_allclose(warm.q, cold.q, atol=1e-8)
    assert int(warm.iterations) < int(cold.iterations)


@pytest.mark.parametrize("kwargs,name", [
    (dict(backup="softmax"), "backup"),
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=np.nan), "temperature"),
    (dict(temperature=np.ones(2)), "temperature"),
    (dict(backup="max", temperature=-1.0), "temperature"),
    (dict(differentiation="autodiff"), "differentiation"),
    (dict(differentiation="unrolled"), "num_sweeps"),
    (dict(differentiation="implicit", num_sweeps=5), "num_sweeps"),
    (dict(init=np.zeros((2, 2))), "init"),
    (dict(max_iter=0), "max_iter"),
])
def test_bad_arguments(kwargs, name):
    mdp, _ = make()
    kwargs = dict(kwargs)
    temperature = kwargs.pop("temperature", 0.5)
    with pytest.raises(ValueError, match=name):
        og.soft_value_iteration(mdp, temperature, **kwargs)


# -- Anderson acceleration ------------------------------------------------------------------

@pytest.mark.parametrize("backup", ["logsumexp", "mellowmax", "max"])
def test_anderson_planner_same_fixed_point_and_gradient(backup):
    grid = og.gridworld.GridWorld.open(12, 12)
    mdp = og.gridworld.goal_task(grid, 143, 0.99, sparse=True)
    tau = 0.0 if backup == "max" else 0.1

    def plan(solver):
        return og.soft_value_iteration(mdp, tau, backup=backup, tol=1e-11, solver=solver)

    plain, fast = plan("iteration"), plan("anderson")
    assert bool(plain.converged) and bool(fast.converged)
    np.testing.assert_allclose(fast.q, plain.q, atol=1e-11 / (1 - 0.99) * 2)
    if backup != "max":
        def objective(r, solver):
            q = og.soft_value_iteration(mdp.replace(rewards=r), tau, backup=backup, tol=1e-11,
                                        solver=solver).q
            return jnp.sum(mdp.initial[:, None] * q)

        g_plain = jax.grad(objective)(mdp.rewards, "iteration")
        g_fast = jax.grad(objective)(mdp.rewards, "anderson")
        np.testing.assert_allclose(g_fast, g_plain, rtol=1e-7, atol=1e-12)


def test_anderson_takes_fewer_sweeps_with_a_smooth_backup_at_high_discount():
    mdp = og.gridworld.goal_task(og.gridworld.GridWorld.open(30, 30), 899, 0.99, sparse=True)
    plain = og.soft_value_iteration(mdp, 0.1, tol=1e-10, solver="iteration")
    fast = og.soft_value_iteration(mdp, 0.1, tol=1e-10, solver="anderson")
    assert int(fast.iterations) * 2 < int(plain.iterations)


def test_anderson_smdp_planner_matches_plain():
    grid = og.gridworld.four_rooms()
    task = og.gridworld.goal_task(grid, grid.state(7, 9), 0.95)
    options = og.with_primitives(og.gridworld.hallway_options(grid))
    reward, transition = og.option_models(task, options)
    kwargs = dict(initiation=options.initiation, tol=1e-12)
    plain = og.smdp_value_iteration(reward, transition, 0.05, **kwargs)
    fast = og.smdp_value_iteration(reward, transition, 0.05, solver="anderson", **kwargs)
    assert bool(fast.converged)
    np.testing.assert_allclose(fast.q, plain.q, atol=1e-10)
    np.testing.assert_allclose(fast.policy, plain.policy, atol=1e-8)


# -- intra-option (matrix-free) planning over options -----------------------------------------

def _four_rooms_options(sparse, seed=0):
    grid = og.gridworld.four_rooms(0.1)
    task = og.gridworld.goal_task(grid, grid.state(9, 3), 0.9, sparse=sparse)
    rng = np.random.default_rng(seed)
    pi = rng.random((3, grid.num_states, 4)) ** 3
    pi /= pi.sum(-1, keepdims=True)
    init = rng.random((3, grid.num_states)) < 0.5
    options = og.with_primitives(og.Options(pi, rng.random((3, grid.num_states)), init))
    return task, options


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
@pytest.mark.parametrize("backup,tau", [("logsumexp", 0.05), ("max", 0.0)])
def test_intra_option_planning_equals_smdp_planning_on_option_models(sparse, backup, tau):
    task, options = _four_rooms_options(sparse)
    dense_task, _ = _four_rooms_options(False)
    reward, transition = og.option_models(dense_task, options)
    smdp = og.smdp_value_iteration(reward, transition, tau, backup=backup, tol=1e-12,
                                   initiation=options.initiation)
    intra = og.intra_option_value_iteration(task, options, tau, backup=backup, tol=1e-12)
    assert bool(intra.converged) and bool(smdp.converged)
    np.testing.assert_allclose(intra.q, smdp.q, atol=1e-10)
    if backup != "max":  # the hard policy splits exact ties (the goal), which rounding decides
        np.testing.assert_allclose(intra.policy, smdp.policy, atol=1e-8)


def test_intra_option_gradient_equals_option_model_gradient():
    task, options = _four_rooms_options(True, seed=1)
    dense_task, _ = _four_rooms_options(False, seed=1)
    weights = jnp.asarray(np.random.default_rng(2).normal(size=(104, 7)))

    def intra(policy, beta):
        opts = og.Options(policy, beta, options.initiation)
        return jnp.sum(weights * og.intra_option_value_iteration(task, opts, 0.05,
                                                                 tol=1e-13).q)

    def via_models(policy, beta):
        opts = og.Options(policy, beta, options.initiation)
        reward, transition = og.option_models(dense_task, opts)
        return jnp.sum(weights * og.smdp_value_iteration(
            reward, transition, 0.05, initiation=opts.initiation, tol=1e-13).q)

    args = (options.policy, options.termination)
    for a, b in zip(jax.grad(intra, (0, 1))(*args), jax.grad(via_models, (0, 1))(*args)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-11)


def test_intra_option_planning_rejects_mismatched_options():
    task, options = _four_rooms_options(False)
    small = og.Options(np.full((2, 5, 4), 0.25), np.ones((2, 5)))
    with pytest.raises(ValueError, match="options"):
        og.intra_option_value_iteration(task, small, 0.1)


@pytest.mark.parametrize("sparse,solver", [
    (False, "newton"), (True, None),
    pytest.param(False, "iteration", marks=pytest.mark.slow),
    pytest.param(True, "gauss-seidel", marks=pytest.mark.slow),
    pytest.param(False, None, marks=pytest.mark.slow)])
def test_plan_adjoint_is_the_gradients_adjoint_with_its_cost(sparse, solver):
    """`plan_adjoint` runs the adjoint `jax.grad` runs: its `u` is the reward gradient of
    `⟨ḡ, Q*⟩` (∂_r T = I), and it reports the iterations the gradient costs: thousands
    for plain iteration at γ = 0.99, at most two from Newton's or Gauss–Seidel's start."""
    grid = og.gridworld.four_rooms(slip=0.1)
    mdp = og.gridworld.goal_task(grid, 40, 0.99, sparse=sparse, dtype=jnp.float64)
    g = jax.random.normal(jax.random.key(2), (104, 4), jnp.float64)
    plan = og.soft_value_iteration(mdp, 0.1, tol=1e-12, solver=solver)
    report = og.plan_adjoint(mdp, 0.1, plan.q, g, tol=1e-12, solver=solver)
    grad = jax.grad(lambda r: jnp.sum(g * og.soft_value_iteration(
        mdp.replace(rewards=r), 0.1, tol=1e-12, solver=solver).q))(mdp.rewards)
    np.testing.assert_allclose(report.value, grad, rtol=1e-12, atol=1e-12)
    assert bool(report.converged) and report.residual <= 1e-12
    if solver == "iteration":
        assert int(report.iterations) > 1000
    else:
        assert int(report.iterations) <= 2
    capped = og.plan_adjoint(mdp, 0.1, plan.q, g, solver="iteration",
                             adjoint=og.solvers.Implicit(max_iter=5))
    assert bool(capped.failed) and np.isnan(capped.value).all()
    with pytest.raises(ValueError, match="cotangent"):
        og.plan_adjoint(mdp, 0.1, plan.q, g[:, :2])
    with pytest.raises(ValueError, match="q"):
        og.plan_adjoint(mdp, 0.1, plan.q * jnp.nan, g)
