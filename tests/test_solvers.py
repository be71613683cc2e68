"""Result codes, `throw`, and NaN gradients: a failed solve is never a plausible number.

Each outcome of an iterative solve gets its code; a gradient through an unconverged forward
solve (or a failed adjoint) is NaN; `throw=True` raises a `RuntimeError` naming the code under
`jit`, `vmap` and `grad`; every function that returns plain arrays gives NaN where its inner
solve failed; the solver spellings resolve to the same objects."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
from optiongrad._src.solvers import resolve

RESULTS = og.RESULTS


def affine(params, x):
    a, b = params
    return a @ x + b


def linear(n=5, gamma=0.99, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((n, n))
    return jnp.asarray(gamma * a / a.sum(1, keepdims=True)), jnp.asarray(rng.normal(size=n))


def oscillator():
    """A 2-state MDP on which Boltzmann value iteration falls into a period-2 cycle."""
    p = np.array([[[0.0375, 0.9625], [0.5468, 0.4532]], [[0.9874, 0.0126], [0.0056, 0.9944]]])
    r = np.array([[0.3654, -1.2734], [-1.6864, -2.0096]])
    return og.MDP(p, r, 0.98), 0.3


def four_rooms_task():
    grid = og.gridworld.four_rooms()
    return og.gridworld.goal_task(grid, grid.state(11, 11), 0.99)


def test_every_outcome_has_its_code():
    a, b = linear()
    x0 = jnp.zeros(5)
    done = og.fixed_point(affine, (a, b), x0, tol=1e-10)
    assert done.result == RESULTS.successful and bool(done.converged) and not bool(done.failed)
    limit = og.fixed_point(affine, (a, b), x0, max_iter=5)
    assert limit.result == RESULTS.max_steps_reached and bool(limit.failed)
    nonfinite = og.fixed_point(lambda p, x: x + jnp.nan, None, x0)
    assert nonfinite.result == RESULTS.nonfinite and bool(nonfinite.failed)
    assert int(nonfinite.iterations) == 1                   # stops at once, not at max_iter
    budget = og.fixed_point(affine, (a, b), x0, num_sweeps=3)
    assert budget.result == RESULTS.budget_reached
    assert not bool(budget.converged) and not bool(budget.failed)
    blown = og.fixed_point(lambda p, x: 2.0 * x + 1.0e308, None, x0, num_sweeps=3)
    assert blown.result == RESULTS.nonfinite
    assert "iteration limit" in RESULTS[RESULTS.max_steps_reached]
    assert repr(RESULTS.successful).startswith("optiongrad.RESULTS<")


def test_codes_under_vmap_are_per_element():
    a, b = linear()
    caps = og.fixed_point(affine, (a, b), jnp.zeros(5), tol=1e-10)  # reference
    res = jax.vmap(lambda scale: og.fixed_point(affine, (a * scale, b), jnp.zeros(5),
                                                max_iter=100))(jnp.array([0.1, 1.0]))
    np.testing.assert_array_equal(res.converged, [True, False])
    assert int(caps.iterations) > 100


@pytest.mark.parametrize("transform", ["eager", "jit"])
def test_gradient_through_an_unconverged_forward_solve_is_nan(transform):
    wrap = jax.jit if transform == "jit" else (lambda f: f)
    mdp, tau = oscillator()

    def boltzmann(rewards):        # a 2-cycle: never converges
        plan = og.soft_value_iteration(mdp.replace(rewards=rewards), tau, backup="boltzmann",
                                       max_iter=500)
        return og.expected_return(mdp, plan.policy)

    assert np.isnan(wrap(jax.grad(boltzmann))(mdp.rewards)).all()
    task = four_rooms_task()

    def return_of(rewards, max_iter):
        plan = og.soft_value_iteration(task.replace(rewards=rewards), 0.1, max_iter=max_iter,
                                       solver="iteration")
        return og.expected_return(task, plan.policy)

    assert np.isnan(wrap(jax.grad(return_of), static_argnums=1)(task.rewards, 20)).all() \
        if transform == "jit" else np.isnan(jax.grad(return_of)(task.rewards, 20)).all()
    assert np.isfinite(jax.grad(return_of)(task.rewards, 10_000)).all()


def test_unrolled_budget_gradients_stay_finite():
    task = four_rooms_task()

    def budget(rewards):
        plan = og.soft_value_iteration(task.replace(rewards=rewards), 0.1, num_sweeps=3)
        return og.expected_return(task, plan.policy)

    assert np.isfinite(jax.grad(budget)(task.rewards)).all()


def test_failed_adjoint_gives_nan_and_throw_raises_in_the_backward_pass():
    a, b = linear(gamma=0.99, seed=4)
    c = jnp.ones(5)

    def loss(b, throw):
        return c @ og.fixed_point(affine, (a, b), jnp.zeros(5), tol=1e-12, throw=throw,
                                  adjoint=og.solvers.Implicit(max_iter=2)).value

    assert np.isnan(jax.grad(loss)(b, False)).all()
    assert np.isfinite(loss(b, True))                        # the forward solve is fine
    with pytest.raises(RuntimeError, match="adjoint"):
        jax.grad(loss)(b, True)
    with pytest.raises(RuntimeError, match="adjoint"):
        jax.jit(jax.grad(loss), static_argnums=1)(b, True)


@pytest.mark.parametrize("transform", ["eager", "jit", "vmap", "grad"])
def test_throw_raises_a_runtime_error_naming_the_code(transform):
    task = four_rooms_task()

    def q(rewards):
        return og.soft_value_iteration(task.replace(rewards=rewards), 0.1, max_iter=20,
                                       throw=True, solver="iteration").q.sum()

    call = {"eager": q, "jit": jax.jit(q), "grad": jax.grad(q),
            "vmap": lambda r: jax.vmap(q)(jnp.stack([r, r]))}[transform]
    with pytest.raises(RuntimeError, match="iteration limit"):
        call(task.rewards)
    # and nothing is raised when the solve succeeds
    assert np.isfinite(og.soft_value_iteration(task, 0.1, throw=True).q).all()


def test_functions_returning_arrays_give_nan_where_their_solve_failed():
    grid = og.gridworld.four_rooms(0.1)
    task = og.gridworld.goal_task(grid, 40, 0.9, sparse=True)
    options = og.with_primitives(og.gridworld.hallway_options(grid))
    k = options.num_options
    mu = np.asarray(options.initiation_mask().T, float)
    mu /= mu.sum(1, keepdims=True)
    assert np.isnan(og.intra_option_policy_evaluation(task, options, mu, max_iter=3)).all()
    assert np.isfinite(og.intra_option_policy_evaluation(task, options, mu)).all()
    rewards, pv = og.apply_option_models(task, options, jnp.ones(104), max_iter=3)
    assert np.isnan(rewards).all() and np.isnan(pv).all() and rewards.shape == (104, k)
    pi = jnp.full((104, 4), 0.25)
    assert np.isnan(og.policy_evaluation(task, pi, method="iterative", max_iter=3)).all()
    assert np.isnan(og.occupancy(task, pi, method="iterative", max_iter=3)).all()
    mdp, tau = oscillator()
    kw = dict(backup="boltzmann", max_iter=300)
    assert np.isnan(og.soft_optimal_return(mdp, tau, **kw))
    assert np.isnan(og.envelope_gradient(mdp, tau, max_iter=1, solver="iteration")).all()
    value, plan = og.planner_return(mdp.rewards, og.rewards.tabular(2, 2), mdp, tau, **kw)
    assert np.isnan(value) and bool(plan.failed)
    # the extrinsic planner over options (here: the primitives) when it must converge
    prims = og.primitive_options(2, 2)
    models = og.option_models(mdp, prims)
    planner = og.ExtrinsicPlanner(tau, None, include_primitives=False, backup="boltzmann")
    ret, plan = og.hierarchical_return(prims, mdp, planner)
    assert np.isnan(ret) and bool(plan.failed)
    batched = og._src.option_gradient.batched_smdp_returns(
        *(jnp.stack([m, m]) for m in models), jnp.stack([mdp.initial] * 2), planner)
    assert np.isnan(batched).all()
    budget = planner.replace(num_sweeps=3)
    assert np.isfinite(og.hierarchical_return(prims, mdp, budget)[0])
    with pytest.raises(RuntimeError, match="iteration limit"):
        og.intra_option_policy_evaluation(task, options, mu, max_iter=3, throw=True)


def test_every_gradient_through_a_failed_solve_is_nan():
    """Inputs that reach the output without passing through the failed planner get NaN
    gradients too (a masked value must not pass a zero cotangent)."""
    mdp = og.random_mdp(0, 5, 3, 2)
    model = og.rewards.tabular(5, 3)
    grad = jax.grad(lambda m: og.planner_return(mdp.rewards, model, m, 0.1, max_iter=3,
                                                         solver="iteration")[0])(mdp)
    assert all(np.isnan(leaf).all() for leaf in jax.tree.leaves(grad)
               if jnp.issubdtype(leaf.dtype, jnp.floating))
    oscillating, tau = oscillator()
    planner = og.ExtrinsicPlanner(tau, None, include_primitives=False, backup="boltzmann")
    prims = og.primitive_options(2, 2)
    grad = jax.grad(lambda m: og.hierarchical_return(prims, m, planner)[0])(oscillating)
    assert np.isnan(grad.initial).all() and np.isnan(grad.rewards).all()
    # reaching the goal (state 1) from state 0 takes ~10⁴ steps: hard VI needs > 10⁴ sweeps
    # (the default solver plans the max backup by plain sweeps)
    sticky = np.array([[[0.9999, 0.0001]] * 2, [[0.5, 0.5]] * 2])
    slow = og.MDP(sticky, np.zeros((2, 2)), 0.99999)
    q, j_star, j_random = og.reference_returns(slow, jnp.array([1]))
    assert np.isnan(q).all() and np.isnan(j_star).all() and np.isfinite(j_random).all()


def test_a_warm_start_gets_a_nan_gradient_from_a_failed_solve_too():
    mdp = og.random_mdp(0, 5, 3, 2)
    for plan in (lambda i: og.soft_value_iteration(mdp, 0.1, max_iter=3, init=i,
                                                   solver="iteration").q.sum(),
                 lambda i: og.fixed_point(lambda p, x: 0.9 * x + 1.0, None, i,
                                          max_iter=3).value.sum()):
        assert np.isnan(jax.grad(plan)(jnp.zeros((5, 3)))).all()
        assert np.isnan(jax.jit(jax.grad(plan))(jnp.zeros((5, 3)))).all()
    converged = jax.grad(lambda i: og.soft_value_iteration(mdp, 0.1, init=i).q.sum())
    assert float(jnp.abs(converged(jnp.zeros((5, 3)))).max()) == 0.0
    # one Newton step (its chord steps reach the float64 fixed point exactly otherwise) and one
    # sweep cannot meet tol 1e-300
    newton = jax.grad(lambda i: og.soft_value_iteration(
        mdp, 0.1, solver=og.solvers.Newton(max_steps=1), max_iter=1, tol=1e-300, init=i).q.sum())
    assert np.isnan(newton(jnp.zeros((5, 3)))).all()
    anderson = jax.grad(lambda i: og.fixed_point(lambda t, x: 0.5 * x + t, 1.0, i,
                                                 solver="anderson", max_iter=1).value)
    assert np.isnan(anderson(0.0))                         # a Python float init works too


def test_a_solve_that_overflows_is_nan_not_an_error_about_an_internal_argument():
    """τ = 1e-310 is a legal temperature whose planner overflows: every composite function
    reports NaN (as under jit), none refuses its own intermediate result."""
    mdp = og.random_mdp(0, 5, 3, 2)
    tiny = 1e-310
    assert og.soft_value_iteration(mdp, tiny).result == RESULTS.nonfinite
    assert np.isnan(og.soft_optimal_return(mdp, tiny))
    assert np.isnan(og.planner_return(mdp.rewards, og.rewards.tabular(5, 3), mdp, tiny)[0])
    assert np.isnan(og.envelope_gradient(mdp, tiny)).all()
    prims = og.primitive_options(5, 3)
    assert np.isnan(og.hierarchical_return(prims, mdp, og.ExtrinsicPlanner(tiny, None,
                                                                           False))[0])
    task = og.goal_task(og.gridworld.four_rooms(), 5, 0.9)
    assert int(og.planning_sweeps(task, None, backup="logsumexp", temperature=1e-308)) == -1
    huge = mdp.replace(rewards=mdp.rewards * 1e308)
    assert int(og.planning_sweeps(huge, None, criterion="values")) == -1
    env = og.gridworld.navigation_mdp(og.gridworld.four_rooms(), 0.9)
    model = og.rewards.state(104)
    params = og.init_params(0, model, 2, 104)
    value, aux = og.option_gradient_objective(params, model, env, [0, 1],
                                              temperature_options=tiny,
                                              planner=og.ExtrinsicPlanner())
    assert np.isnan(value) and not np.any(aux["intrinsic_converged"])
    with pytest.raises(RuntimeError, match="finite"):
        og.planning_sweeps(task, None, backup="logsumexp", temperature=1e-308, throw=True)


def test_results_still_unpack_as_in_0_1_with_a_warning():
    mdp = og.random_mdp(0, 5, 3, 2)
    plan = og.soft_value_iteration(mdp, 0.1)
    with pytest.warns(DeprecationWarning, match="no longer a tuple"):
        q, policy, iterations, residual, converged = plan
    assert q is plan.q and bool(converged)
    with pytest.warns(DeprecationWarning):
        assert bool(plan[4]) and plan[0] is plan.q
    with pytest.warns(DeprecationWarning):
        value, *_, ok = og.fixed_point(lambda p, x: x / 2 + 1, None, jnp.zeros(2))
    assert bool(ok) and np.allclose(value, 2.0)
    with pytest.warns(DeprecationWarning):
        from optiongrad.implicit import adjoint_solve
    u = adjoint_solve(lambda v: 0.5 * v, jnp.ones(2), rtol=1e-12, max_iter=100,
                      solver="anderson", memory=3)
    np.testing.assert_allclose(u, 2.0)                     # u = g + u / 2


def test_failed_option_planners_are_reported():
    env = og.gridworld.navigation_mdp(og.gridworld.four_rooms(), 0.99)
    model = og.rewards.state(104, init_scale=1.0)
    params = og.init_params(0, model, 2, 104)
    with pytest.raises(RuntimeError, match=r"options \[0, 1\]"):
        og.make_options(params, model, env, 0.05, max_iter=3, solver="iteration")
    # under a transformation: NaN policies, and a NaN objective with NaN gradients
    planner = og.ExtrinsicPlanner()

    def objective(params):
        return og.option_gradient_objective(params, model, env, jnp.arange(5),
                                            temperature_options=0.05, planner=planner,
                                            max_iter=3, solver="iteration")

    (value, aux), grad = jax.value_and_grad(objective, has_aux=True)(params)
    assert np.isnan(value) and not np.any(aux["intrinsic_converged"])
    assert all(np.isnan(g).all() for g in jax.tree.leaves(grad))
    with pytest.raises(RuntimeError):
        og.discovery.subgoal_options(env, [3, 7], max_iter=2, solver="iteration")


def test_planning_sweeps_reports_a_failed_reference():
    mdp, tau = oscillator()
    assert int(og.planning_sweeps(mdp, backup="boltzmann", temperature=tau,
                                  criterion="values", max_sweeps=50)) == -1
    with pytest.raises(RuntimeError, match="iteration limit"):
        og.planning_sweeps(mdp, backup="boltzmann", temperature=tau, criterion="values",
                           throw=True)


def test_auto_picks_the_solver_from_the_problem_and_plans_with_it():
    auto = og.solvers.Auto()
    grid = og.gridworld.four_rooms()
    sparse = og.gridworld.goal_task(grid, 30, 0.99, sparse=True)
    dense = og.gridworld.goal_task(grid, 30, 0.99)
    plain = og.solvers.FixedPointIteration()
    assert auto.choose(sparse) == og.solvers.GaussSeidel()
    assert auto.choose(sparse, "mellowmax") == og.solvers.GaussSeidel()
    # dense: Newton when S ≤ 0.5 · log(tol (1 − γ)) / log γ, the plain sweeps' tail
    assert auto.choose(dense) == og.solvers.Newton()          # 104 ≤ 0.5 · 2749 (float64)
    assert auto.choose(dense, tol=1e-5) == og.solvers.Newton()  # 104 ≤ 0.5 · 1603
    assert auto.choose(dense.replace(discount=0.9), tol=1e-5) == plain   # 104 > 0.5 · 131
    assert auto.choose(dense, "max") == plain
    assert og.solvers.Auto(newton_factor=0).choose(dense) == plain
    for backup in ("boltzmann",):
        assert auto.choose(sparse, backup) == auto.choose(dense, backup) == plain
    assert auto.choose(dense, "mellowmax") == plain
    assert auto.choose(sparse, adjoint=og.solvers.Unrolled(3)) == plain
    assert auto.choose() == plain                       # fixed_point and the option planners
    # a successor table traced by jit cannot be ordered: plain iteration, still correct
    traced = jax.jit(lambda m: og.soft_value_iteration(m, 0.1, tol=1e-12).q)(sparse)
    for mdp in (sparse, dense):
        default = og.soft_value_iteration(mdp, 0.1, tol=1e-12)
        picked = og.soft_value_iteration(mdp, 0.1, tol=1e-12, solver=auto.choose(mdp))
        np.testing.assert_array_equal(default.q, picked.q)
        assert int(default.iterations) <= 2
        np.testing.assert_allclose(default.q, traced, atol=1e-9)
    assert og.soft_value_iteration(sparse, 0.1, solver="auto").q.shape == (104, 4)
    # dense, max backup: plain sweeps, with the adjoint started from one direct solve; the
    # gradient is plain iteration's
    assert auto.direct_adjoint(dense, "max") and not auto.direct_adjoint(sparse, "max")
    assert not og.solvers.Auto(newton_factor=0).direct_adjoint(dense, "max")

    def gradient(solver):
        def objective(rewards):
            plan = og.soft_value_iteration(dense.replace(rewards=rewards), 0.0, backup="max",
                                           tol=1e-12, solver=solver)
            return jnp.dot(dense.initial, jnp.max(plan.q, axis=1))
        return jax.grad(objective)(dense.rewards)

    np.testing.assert_allclose(gradient(None), gradient(plain), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="newton_factor"):
        og.solvers.Auto(newton_factor=-1)


def test_auto_decides_at_run_time_when_the_discount_is_traced():
    """An MDP built inside jit has a traced discount: Auto's dense rules are evaluated on its
    value at run time (Newton steps and the direct adjoint start only where they pay), and the
    plan and its gradient are the same as with a concrete discount."""
    grid = og.gridworld.four_rooms()

    def plan(gamma, rewards):
        mdp = og.gridworld.goal_task(grid, 30, gamma).replace(rewards=rewards)
        result = og.soft_value_iteration(mdp, 0.1, tol=1e-10)
        return jnp.dot(mdp.initial, jnp.max(result.q, axis=1)), result.iterations

    rewards = og.gridworld.goal_task(grid, 30, 0.99).rewards
    assert og.solvers.Auto().choose(jax.jit(lambda g: og.gridworld.goal_task(grid, 30, g))(
        0.99)) == og.solvers.Newton()
    for gamma, newton in ((0.99, True), (0.5, False)):   # 104 ≤ 0.5 · 2749; 104 > 0.5 · 34
        traced = jax.jit(jax.value_and_grad(plan, argnums=1, has_aux=True))
        (value, sweeps), grad = traced(gamma, rewards)
        (ref_value, _), ref_grad = jax.value_and_grad(
            lambda r: plan(gamma, r), has_aux=True)(rewards)
        plain = jax.grad(lambda r: jnp.dot(
            og.gridworld.goal_task(grid, 30, gamma).initial,
            jnp.max(og.soft_value_iteration(og.gridworld.goal_task(grid, 30, gamma).replace(
                rewards=r), 0.1, tol=1e-10, solver="iteration").q, axis=1)))(rewards)
        assert (int(sweeps) <= 2) == newton
        np.testing.assert_allclose(value, ref_value, rtol=1e-9)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(grad, plain, rtol=1e-7, atol=1e-12)
    # the run-time rule is the concrete one
    auto = og.solvers.Auto()
    for gamma in (0.5, 0.9, 0.99):
        assert bool(jax.jit(lambda g: auto.newton_pays(104, g, 1e-5, jnp.float64))(gamma)) == \
            auto.newton_pays(104, gamma, 1e-5, jnp.float64)
        rule = auto.direct_adjoint_rule(og.gridworld.goal_task(grid, 30, gamma))
        assert bool(jax.jit(lambda g: rule(104, g))(gamma)) == rule(104, gamma)


def test_spellings_resolve_to_the_same_objects():
    plain, implicit = og.solvers.FixedPointIteration(), og.solvers.Implicit()
    assert resolve() == (og.solvers.Auto(), implicit)
    assert resolve("iteration") == (plain, implicit)
    assert resolve("anderson")[0] == og.solvers.Anderson()
    assert resolve(differentiation="unrolled", num_sweeps=4) == (og.solvers.Auto(),
                                                                 og.solvers.Unrolled(4))
    assert resolve(num_sweeps=4)[1] == og.solvers.Unrolled(4)
    with pytest.warns(DeprecationWarning, match="adjoint_rtol"):
        assert resolve(adjoint_rtol=1e-8, adjoint_max_iter=7)[1] == og.solvers.Implicit(1e-8, 7)
    with pytest.warns(DeprecationWarning):
        assert resolve("anderson", memory=3)[0] == og.solvers.Anderson(memory=3)
    with pytest.raises(ValueError, match="differentiation"):
        resolve(adjoint=implicit, differentiation="implicit")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resolve(og.solvers.Anderson(2), og.solvers.Implicit(solver=og.solvers.Anderson(3)))
    task = four_rooms_task()
    a = og.soft_value_iteration(task, 0.1, solver="anderson", tol=1e-11)
    b = og.soft_value_iteration(task, 0.1, solver=og.solvers.Anderson(), tol=1e-11)
    np.testing.assert_array_equal(a.q, b.q)
    c = og.soft_value_iteration(task, 0.1, differentiation="unrolled", num_sweeps=5)
    d = og.soft_value_iteration(task, 0.1, adjoint=og.solvers.Unrolled(5))
    np.testing.assert_array_equal(c.q, d.q)
    assert d.result == RESULTS.budget_reached


@pytest.mark.parametrize("sparse", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["gauss-seidel", "newton"])
def test_warm_starts_from_below_converge_where_the_tolerance_is_below_an_ulp(sparse):
    """float32, γ = 0.999, τ = 0.1: the values are ≈ 140, whose ulp (1.5e-5) exceeds tol 1e-5,
    so only an exact float32 fixed point meets the tolerance. Plain sweeps from zero rise to
    one; the warm starts hand over a sub-solution so their sweeps do too (from a start above
    the fixed point they cycled by an ulp until the 30 000-sweep cap)."""
    grid = og.gridworld.GridWorld.open(32, 32)
    mdp = og.gridworld.goal_task(grid, grid.num_states - 1, 0.999, sparse=sparse,
                                 dtype=jnp.float32)
    default = og.soft_value_iteration(mdp, 0.1, tol=1e-5, max_iter=30_000)
    plain = og.soft_value_iteration(mdp, 0.1, tol=1e-5, max_iter=30_000, solver="iteration")
    assert type(og.solvers.Auto().choose(mdp, tol=1e-5)) is (og.solvers.GaussSeidel if sparse
                                                             else og.solvers.Newton)
    assert bool(default.converged) and bool(plain.converged)
    assert int(default.iterations) < int(plain.iterations) / 4
    # rounding makes the float32 fixed point unique only to about ulp / (1 − γ) ≈ 0.015
    np.testing.assert_allclose(default.q, plain.q, atol=2e-2)
