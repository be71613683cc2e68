"""Gauss–Seidel warm start: the level order, the same fixed point and gradient as value
iteration (against the dense numpy reference), and what it refuses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from optiongrad._src.gauss_seidel import AdjointStart, gauss_seidel_q, levels


def _chain(n):
    """`n` states in a line, action 0 moves right, action 1 stays; the last state absorbs."""
    nxt = np.stack([np.minimum(np.arange(n) + 1, n - 1), np.arange(n)], 1)[..., None]
    nxt[n - 1] = n - 1
    return nxt


def test_levels_order_states_by_distance_to_the_absorbing_states():
    plan = levels(_chain(7), window=2)
    np.testing.assert_array_equal(plan.order, [6, 5, 4, 3, 2, 1, 0])
    assert plan.absorbing == 1 and plan.width == 1  # every level holds one state
    np.testing.assert_array_equal(plan.starts, np.arange(1, 7))
    # a grid: level = Manhattan distance to the goal; windows cover every other state
    grid = og.gridworld.GridWorld.open(6, 5)
    goal = grid.num_states - 1
    task = og.gridworld.goal_task(grid, goal, 0.9, sparse=True)
    plan = levels(np.asarray(task.transitions.next_states), window=3)
    cells = np.asarray(grid.cells)[plan.order]
    distance = np.abs(cells - np.asarray(grid.cells)[goal]).sum(1)
    assert plan.order[0] == goal and plan.absorbing == 1
    assert np.all(np.diff(distance) >= 0)
    covered = np.zeros(grid.num_states, bool)
    for start in plan.starts:
        covered[plan.order[start:start + plan.width]] = True
    assert covered[plan.order[1:]].all()


def _garnet(seed, num_states, branching, discount=0.9, dtype=None):
    """`og.random_mdp` with its transitions as a successor table (no absorbing states)."""
    mdp = og.random_mdp(seed, num_states, 3, branching=branching, discount=discount,
                        dtype=dtype)
    p = np.asarray(mdp.transitions)
    nxt = np.argsort(-p, axis=-1, kind="stable")[..., :branching]
    probs = np.take_along_axis(p, nxt, -1)
    return mdp.replace(transitions=og.SparseTransitions(nxt, probs / probs.sum(-1, keepdims=True)))


def test_without_absorbing_states_there_is_one_level_in_index_order():
    mdp = _garnet(0, 40, 3)
    plan = levels(np.asarray(mdp.transitions.next_states), window=16)
    np.testing.assert_array_equal(plan.order, np.arange(40))
    assert plan.absorbing == 0 and plan.width == 16
    np.testing.assert_array_equal(plan.starts, [0, 16, 32])


def _tasks(dtype):
    grid = og.gridworld.four_rooms()
    yield "four rooms", og.gridworld.goal_task(grid, 60, 0.95, sparse=True, dtype=dtype)
    yield "four rooms, slip", og.gridworld.goal_task(og.gridworld.four_rooms(slip=0.2), 7, 0.95,
                                                     sparse=True, dtype=dtype)
    yield "garnet", _garnet(3, 50, 4, dtype=dtype)


def _cases():
    """Every backup × dtype under `jit`; without `jit` one case in the default run, the others
    marked slow (each eager case compiles its loops again: 2–5 s)."""
    for backup, tau in (("logsumexp", 0.05), ("mellowmax", 0.3), ("max", 0.0)):
        for dtype, name in ((jnp.float32, "f32"), (jnp.float64, "f64")):
            for jit in (True, False):
                marks = () if jit or (backup, name) == ("logsumexp", "f64") else pytest.mark.slow
                yield pytest.param(backup, tau, dtype, jit, marks=marks,
                                   id=f"{backup}-{name}-{'jit' if jit else 'eager'}")


@pytest.mark.parametrize("backup,tau,dtype,jit", list(_cases()))
def test_same_fixed_point_as_the_dense_reference(backup, tau, dtype, jit):
    tol = 1e-12 if dtype == jnp.float64 else 1e-5
    for name, mdp in _tasks(dtype):
        def plan(mdp):
            return og.soft_value_iteration(mdp, tau, backup=backup, tol=tol, max_iter=100_000,
                                           solver=og.solvers.GaussSeidel(window=8))
        result = jax.jit(lambda: plan(mdp))() if jit else plan(mdp)
        p = np.asarray(mdp.transitions.todense(), np.float64)
        r = np.asarray(mdp.rewards, np.float64)
        expected = ref.soft_value_iteration(p, r, float(mdp.discount), tau, backup)
        assert bool(result.converged), name
        assert int(result.iterations) <= 2, name  # the warm start leaves a residual in [0, γ tol]
        # plain iteration's own bound on the distance to Q*: γ tol / (1 − γ), plus rounding
        bound = float(mdp.discount) * tol / (1 - float(mdp.discount))
        atol = 1e-9 if dtype == jnp.float64 else bound + 2e-5
        np.testing.assert_allclose(result.q, expected, atol=atol, err_msg=name)


def test_one_ordered_sweep_solves_a_deterministic_grid():
    """With the max backup, values flow from the goal along the order: the first sweep is
    exact, where plain iteration needs the grid's diameter in sweeps."""
    grid = og.gridworld.GridWorld.open(20, 20)
    mdp = og.gridworld.goal_task(grid, grid.num_states - 1, 0.99, sparse=True,
                                 dtype=jnp.float64)
    order = levels(np.asarray(mdp.transitions.next_states), 16)
    q, sweeps = gauss_seidel_q(mdp, jnp.asarray(0.0), "max", 1e-12, 100, order, 1)
    plain = og.soft_value_iteration(mdp, 0.0, backup="max", tol=1e-12, solver="iteration")
    assert int(sweeps) == 1 and int(plain.iterations) >= 38
    np.testing.assert_allclose(q, plain.q, atol=1e-12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_gradient_equals_plain_iteration_gradient(dtype):
    mdp = og.gridworld.goal_task(og.gridworld.four_rooms(slip=0.1), 30, 0.95, sparse=True,
                                 dtype=dtype)
    tol = 1e-12 if dtype == jnp.float64 else 1e-6

    def grad(solver):
        def objective(rewards, tau):
            plan = og.soft_value_iteration(mdp.replace(rewards=rewards), tau, tol=tol,
                                           max_iter=100_000, solver=solver)
            return jnp.dot(mdp.initial, tau * jax.nn.logsumexp(plan.q / tau, axis=1))
        return jax.jit(jax.grad(objective, (0, 1)))(mdp.rewards, jnp.asarray(0.1, dtype))

    fast, plain = grad("gauss-seidel"), grad("iteration")
    rtol = 1e-8 if dtype == jnp.float64 else 2e-3
    for a, b in zip(fast, plain):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(jnp.max(jnp.abs(b))))


def test_gauss_seidel_refuses_what_it_cannot_do():
    grid = og.gridworld.four_rooms()
    sparse = og.gridworld.goal_task(grid, 5, 0.9, sparse=True)
    dense = og.gridworld.goal_task(grid, 5, 0.9)
    gs = og.solvers.GaussSeidel()
    with pytest.raises(ValueError, match="solver.*sparse"):
        og.soft_value_iteration(dense, 0.1, solver=gs)
    with pytest.raises(ValueError, match="solver.*backup"):
        og.soft_value_iteration(sparse, 0.1, backup="boltzmann", solver=gs)
    with pytest.raises(ValueError, match="solver.*adjoint"):
        og.soft_value_iteration(sparse, 0.1, solver=gs, adjoint=og.solvers.Unrolled(3))
    with pytest.raises(ValueError, match="solver.*concrete"):
        jax.jit(lambda m: og.soft_value_iteration(m, 0.1, solver=gs).q)(sparse)
    options = og.discovery.random_options(jax.random.key(0), sparse, 2)
    with pytest.raises(ValueError, match="solver.*sparse"):
        og.intra_option_value_iteration(dense, options, 0.1, solver=gs)
    with pytest.raises(ValueError, match="solver.*backup"):
        og.intra_option_value_iteration(sparse, options, 0.1, backup="boltzmann", solver=gs)
    with pytest.raises(ValueError, match="solver.*does not plan here"):
        rewards, transitions = og.option_models(dense, options)
        og.smdp_value_iteration(rewards, transitions, 0.1, solver=gs)
    for bad in ({"window": 0}, {"check_every": 1.5}, {"max_sweeps": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            og.solvers.GaussSeidel(**bad)


def test_vmap_over_rewards_equals_one_plan_at_a_time():
    """The order comes from the (shared, concrete) successor table, so a batch of reward
    tables plans under `vmap`."""
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.navigation_mdp(grid, 0.95, sparse=True, dtype=jnp.float64)
    rewards = jax.random.normal(jax.random.key(0), (3,) + mdp.rewards.shape, jnp.float64)

    def plan(r):
        return og.soft_value_iteration(mdp.replace(rewards=r), 0.1, tol=1e-12,
                                       solver="gauss-seidel").q

    batched = jax.jit(jax.vmap(plan))(rewards)
    for r, q in zip(rewards, batched):
        expected = ref.soft_value_iteration(np.asarray(mdp.transitions.todense()),
                                            np.asarray(r), 0.95, 0.1)
        np.testing.assert_allclose(q, expected, atol=1e-9)


@pytest.mark.parametrize("backup,tau", [("logsumexp", 0.01), ("max", 0.0)])
def test_adjoint_start_solves_the_adjoint_equation(backup, tau):
    """The ordered sweeps on the adjoint equation reach its solution (a dense solve of
    `(I − Jᵀ) u = ḡ` with the Jacobian of the Bellman operator at `Q*`), not just a start."""
    grid = og.gridworld.four_rooms(slip=0.2)
    mdp = og.gridworld.goal_task(grid, 40, 0.99, sparse=True, dtype=jnp.float64)
    q = og.soft_value_iteration(mdp, tau, backup=backup, tol=1e-12, max_iter=100_000,
                                solver="iteration").q
    g = jax.random.normal(jax.random.key(0), q.shape, jnp.float64)
    expected = ref.bellman_adjoint(np.asarray(mdp.transitions.todense()),
                                   np.asarray(og.backup_policy(q, tau, backup)), 0.99, g)
    order = levels(np.asarray(mdp.transitions.next_states), 512)
    start = AdjointStart(backup, order.width, order.absorbing, 1e-10, 10_000, 4)
    u = start((mdp, jnp.asarray(tau), jnp.asarray(order.order), jnp.asarray(order.starts)), q, g)
    np.testing.assert_allclose(u, expected, rtol=1e-7, atol=1e-7 * np.abs(expected).max())


SLOW = pytest.mark.slow


@pytest.mark.parametrize("backup,tau,dtype", [
    ("logsumexp", 0.1, jnp.float32), ("max", 0.0, jnp.float64),
    pytest.param("logsumexp", 0.1, jnp.float64, marks=SLOW),
    pytest.param("mellowmax", 0.1, jnp.float32, marks=SLOW),
    pytest.param("mellowmax", 0.1, jnp.float64, marks=SLOW),
    pytest.param("max", 0.0, jnp.float32, marks=SLOW)])
def test_intra_option_planner_with_gauss_seidel_reaches_plain_iterations_fixed_point(
        backup, tau, dtype):
    """Gauss–Seidel over the rows of `Q_O` (hallway options and primitives, slip 0.1, with
    initiation sets): the fixed point and the gradient of plain intra-option iteration, and
    the equal SMDP fixed point on the option models."""
    grid = og.gridworld.four_rooms(slip=0.1)
    mdp = og.gridworld.goal_task(grid, 40, 0.99, sparse=True, dtype=dtype)
    options = og.with_primitives(og.gridworld.hallway_options(grid))
    options = og.Options(options.policy.astype(dtype), options.termination.astype(dtype),
                         options.initiation)
    tol = 1e-12 if dtype == jnp.float64 else 1e-5

    def plan(termination, solver):
        return og.intra_option_value_iteration(
            mdp, og.Options(options.policy, termination, options.initiation), tau,
            backup=backup, tol=tol, max_iter=100_000, solver=solver)

    fast, plain = plan(options.termination, "gauss-seidel"), plan(options.termination, None)
    assert bool(fast.converged) and int(fast.iterations) <= 2 < int(plain.iterations)
    bound = 0.99 * tol / (1 - 0.99) * (1 if dtype == jnp.float64 else 20)
    np.testing.assert_allclose(fast.q, plain.q, atol=bound)
    if dtype == jnp.float64:
        rewards, transitions = og.option_models(mdp, options)
        smdp = og.smdp_value_iteration(rewards, transitions, tau, backup=backup, tol=tol,
                                       initiation=options.initiation)
        np.testing.assert_allclose(fast.q, smdp.q, atol=1e-8)
        weights = jax.random.uniform(jax.random.key(0), fast.q.shape, dtype)
        grads = [jax.grad(lambda b: jnp.sum(weights * plan(b, s).q))(options.termination)
                 for s in ("gauss-seidel", "iteration")]
        np.testing.assert_allclose(grads[0], grads[1], rtol=1e-7,
                                   atol=1e-7 * float(jnp.max(jnp.abs(grads[1]))))


@pytest.mark.parametrize("discount", [pytest.param(0.99, marks=SLOW), 0.999])
def test_the_adjoint_start_leaves_the_plain_adjoint_nothing_to_do(discount):
    """100×100 grid, float32, τ = 0.01: the extrapolated ordered sweeps give a start the
    plain adjoint iteration confirms at once (with extrapolation up to rates of 0.99 the
    γ = 0.999 start needed 45 000 iterations to confirm)."""
    grid = og.gridworld.GridWorld.open(100, 100)
    mdp = og.gridworld.goal_task(grid, grid.num_states - 1, discount, sparse=True,
                                 dtype=jnp.float32)
    plan = og.soft_value_iteration(mdp, 0.01)
    g = jax.nn.one_hot(jnp.argmax(plan.q, 1), 4, dtype=jnp.float32) * mdp.initial[:, None]
    report = og.plan_adjoint(mdp, 0.01, plan.q, g)
    assert bool(report.converged) and int(report.iterations) <= 2
