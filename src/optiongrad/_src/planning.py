r"""The planners: soft value iteration on an MDP, and smooth planning over options.

Smooth Bellman operator on $Q \in \mathbb{R}^{S\times A}$ (DESIGN.md, "Smooth planner"), with a backup $m_\tau$
of `optiongrad.backups` applied to each row:

$$
T_\theta(Q) = r_\theta + \gamma P m_\tau(Q).
$$

The planner's policy is $\hat{\pi} = \operatorname{softmax}(Q^*/\tau)$ row-wise (greedy, ties split evenly, for `max`).
For logsumexp and mellowmax $\partial_Q T = \gamma P \hat{\Pi}$ with $P \hat{\Pi}$ row-stochastic, so the spectral radius
of $\partial_Q T$ is at most γ < 1 and $I - \partial_Q T$ is always invertible (the IFT's invertibility
condition); for boltzmann check it with `jacobian_spectral_radius`.

Over options (SMDP, DESIGN.md "Options") with option models `R (S, K)`, $P^O$ `(K, S, S)`:

$$
Q_O[s, o] = R[s, o] + \sum_{s'} P^o[s, s']\, m_\tau(Q_O)[s'] \qquad \text{($\gamma$ is inside $P^o$)}
$$

or, matrix-free, the intra-option Bellman equation (`intra_option_value_iteration`). Every
planner solves its fixed point with `optiongrad.fixed_point` (the one IFT implementation),
takes the same solver arguments (`solver=`, `adjoint=`, or the older `differentiation=` /
`num_sweeps=`; see `optiongrad.solvers`), reports a result code, and with `throw=True` raises on
failure.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._src import checks
from optiongrad._src.backups import BACKUPS, backup, backup_policy
from optiongrad._src.deprecation import renamed
from optiongrad._src.gauss_seidel import (
    GAUSS_SEIDEL_BACKUPS,
    AdjointStart,
    check_sparse_concrete,
    gauss_seidel_options,
    gauss_seidel_q,
    levels,
)
from optiongrad._src.implicit import AdjointResult, fixed_point, fixed_point_adjoint
from optiongrad._src.mdp import MDP
from optiongrad._src.newton import (
    NEWTON_BACKUPS,
    DirectAdjointStart,
    model_of,
    policy_iteration_q,
)
from optiongrad._src.option_models import intra_option_update
from optiongrad._src.options import Options
from optiongrad._src.solvers import (
    RESULTS,
    Adjoint,
    Auto,
    FixedPointIteration,
    GaussSeidel,
    Implicit,
    Newton,
    Reported,
    SolverLike,
    resolve,
)
from optiongrad._src.transitions import expectation

Array = jax.Array


class PlanResult(eqx.Module, Reported):
    r"""Output of a planner.

    Attributes:
      q: `(S, A)` (or `(S, K)` over options) action values $Q^*$ at the last iterate.
      policy: `(S, A)` (or `(S, K)`) planner policy $\operatorname{softmax}(Q^*/\tau)$ (greedy for `max`).
      iterations: number of Bellman sweeps performed (int32).
      residual: $\Vert Q_{k+1} - Q_k\Vert _\infty$ of the last sweep.
      result: a `RESULTS` code: `successful`, `max_steps_reached`, `nonfinite`, or
        `budget_reached` (an unrolled budget of sweeps, not a failure).
    """

    q: Array
    policy: Array
    iterations: Array
    residual: Array
    result: RESULTS
    LEGACY_FIELDS = ("q", "policy", "iterations", "residual", "converged")

    def usable_policy(self) -> Array:
        """The policy where the solve did not fail, the uniform policy where it did: what the
        functions that evaluate a plan's policy use, so that the evaluation runs (and is then
        reported as NaN with `nan_where(plan.failed, …)`) instead of refusing a NaN policy."""
        failed = self.failed.reshape(self.failed.shape + (1,) * 2)
        uniform = jnp.full(self.policy.shape[-1:], 1.0 / self.policy.shape[-1],
                           self.policy.dtype)
        return jnp.where(failed, uniform, self.policy)


def bellman(params, q, *, kind: str):
    r"""$T(Q) = r + \gamma P m_\tau(Q)$ for an MDP; `params = (mdp, τ)`."""
    mdp, temperature = params
    return mdp.rewards + mdp.discount * expectation(
        mdp.transitions, backup(q, temperature, kind))


def smdp_bellman(params, q, *, kind: str):
    r"""$T(Q)[s, o] = R[s, o] + \sum_{s'} P^o[s, s'] m_\tau(Q)[s']$; `params = (R, P^O, τ, mask)`."""
    rewards, transitions, temperature, mask = params
    value = backup(q, temperature, kind, mask)
    return rewards + jnp.einsum("kst,t->sk", transitions, value)


def _intra_option_bellman(params, q, *, kind: str):
    r"""$T(Q) = \mathtt{intra\_option\_update}(Q, V = m_\tau(Q))$; `params = (mdp, π, β, τ, mask)`."""
    mdp, policy, termination, temperature, mask = params
    return intra_option_update(mdp, policy, termination, q,
                               backup(q, temperature, kind, mask))


def _ordered_bellman(params, q, *, kind: str):
    """`bellman` with the Gauss–Seidel order `(order, starts)` carried in `params` (for the
    adjoint's warm start)."""
    return bellman(params[:2], q, kind=kind)


@eqx.filter_jit
def _plan(operator, params, init, temperature, mask, kind, tol, max_iter, solver, adjoint,
          throw, adjoint_start=None) -> PlanResult:
    result = fixed_point(functools.partial(operator, kind=kind), params, init, tol=tol,
                         max_iter=max_iter, solver=solver, adjoint=adjoint, throw=throw,
                         adjoint_start=adjoint_start)
    policy = backup_policy(result.value, temperature, kind, mask)
    return PlanResult(result.value, policy, result.iterations, result.residual, result.result)


def _prepare(kind, temperature, tol, max_iter, init, shape, layout, dtype, throw, solver,
             adjoint, differentiation, num_sweeps, deprecated):
    """Check the arguments every planner shares; returns `(τ, Q_0, tol, max_iter, solver,
    adjoint)`, the settings as Python values (static in the compiled solve)."""
    checks.choice(kind, "backup", BACKUPS)
    checks.temperature(temperature, kind)
    checks.tolerance(tol, "tol")
    checks.iterations(max_iter, "max_iter")
    checks.boolean(throw, "throw")
    solver, adjoint = resolve(solver, adjoint, differentiation=differentiation,
                              num_sweeps=num_sweeps, **deprecated)
    temperature = jnp.asarray(temperature, dtype)
    if init is None:
        init = jnp.zeros(shape, dtype)
    else:
        init = checks.as_array(init, "init", dtype=dtype)
        checks.shape(init, "init", shape, layout)
        checks.finite(init, "init")
    tol = None if tol is None else float(tol)
    return temperature, init, tol, int(max_iter), solver, adjoint


def soft_value_iteration(
    mdp: MDP,
    temperature,
    *,
    backup: str = "logsumexp",
    tol: Optional[float] = None,
    max_iter: int = 10_000,
    solver: SolverLike = None,
    adjoint: Optional[Adjoint] = None,
    differentiation: Optional[str] = None,
    num_sweeps: Optional[int] = None,
    init: Optional[Array] = None,
    throw: bool = False,
    **deprecated: Any,
) -> PlanResult:
    r"""Smooth (soft) value iteration $Q_{k+1} = r + \gamma P m_\tau(Q_k)$ from $Q_0 = \mathtt{init}$ (zeros).

    Args:
      mdp: the MDP to plan in (dense or sparse transitions).
      temperature: $\tau > 0$ (any $\tau \ge 0$ for `backup="max"`); differentiable.
      backup: "logsumexp" (default), "mellowmax", "boltzmann" or "max" (`optiongrad.backups`).
      tol: stop when $\Vert Q_{k+1} - Q_k\Vert _\infty \le \mathtt{tol}$ (finite, ≥ 0); default 1e-10 (float64) /
        1e-5 (float32).
      max_iter: maximum number of sweeps (implicit adjoint).
      solver: `og.solvers.Auto()` (default: `GaussSeidel` for sparse MDPs with a concrete
        successor table, `Newton` for small dense ones at high γ with logsumexp, plain
        iteration otherwise — see `Auto`), `og.solvers.FixedPointIteration()` (plain sweeps),
        `og.solvers.Anderson(memory=5)`
        (fewer sweeps at high γ with smooth backups), or `og.solvers.Newton()` (soft policy
        iteration warm start; dense MDPs, logsumexp or max), or
        `og.solvers.GaussSeidel()` (Gauss–Seidel warm start over the states ordered by
        distance to the absorbing states; sparse MDPs with a concrete successor table,
        logsumexp, mellowmax or max); or their names "auto", "iteration", "anderson",
        "newton", "gauss-seidel".
      adjoint: `og.solvers.Implicit(...)` (default: gradients by the implicit function theorem
        at the fixed point) or `og.solvers.Unrolled(num_sweeps)` (a budget of `num_sweeps`
        sweeps, differentiated through the sweeps).
      differentiation: "implicit" or "unrolled", the older spelling of `adjoint`.
      num_sweeps: the planning budget of "unrolled"; `num_sweeps=N` alone means `Unrolled(N)`.
      init: `(S, A)` warm start (does not change the fixed point or its gradient).
      throw: raise a `RuntimeError` when the solve fails (even under `jit`) instead of
        reporting it in `result` (and giving NaN gradients).
      **deprecated: `adjoint_rtol`, `adjoint_max_iter` (use `adjoint=Implicit(...)`).

    Returns:
      `PlanResult(q (S, A), policy (S, A), iterations, residual, result)`. Gradients flow to
      `mdp.rewards`, `mdp.transitions`, `mdp.discount` and `temperature`; through a solve that
      did not converge they are NaN.

    Reference: the smooth Bellman operator of DESIGN.md; entropy-regularised value iteration
    (Ziebart 2010; Haarnoja et al. 2017); mellowmax (Asadi & Littman 2017).
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    shape = (mdp.num_states, mdp.num_actions)
    temperature, init, tol, max_iter, solver, adjoint = _prepare(
        backup, temperature, tol, max_iter, init, shape, "(S, A)", mdp.dtype, throw, solver,
        adjoint, differentiation, num_sweeps, deprecated)
    setup = _setup(mdp, temperature, backup, tol, solver, adjoint)
    solver, warm_tol = setup.solver, checks.default_tol(mdp.dtype) if tol is None else tol
    if isinstance(solver, Newton):
        def newton():
            return policy_iteration_q(mdp, temperature, backup, init, warm_tol,
                                      max_steps=solver.max_steps)[0]
        warm = newton() if setup.newton_if is None else jax.lax.cond(
            setup.newton_if, newton, lambda: jax.lax.stop_gradient(init))
    elif isinstance(solver, GaussSeidel):
        warm, _ = gauss_seidel_q(mdp, temperature, backup, warm_tol, solver.max_sweeps,
                                 setup.order, solver.check_every)
    if isinstance(solver, (Newton, GaussSeidel)):
        # plain sweeps finish from the warm start, so the fixed point, report and gradient are
        # plain iteration's; the user's init still gets its (zero, or NaN) cotangent
        init, solver = warm + 0.0 * init, FixedPointIteration()
    return _plan(setup.operator, setup.params, init, temperature, None, backup, tol, max_iter,
                 solver, adjoint, throw, setup.start)


class _Setup(NamedTuple):
    """How `soft_value_iteration` solves: the Bellman operator and its params, the solver
    (Auto resolved), the implicit adjoint's start, the Gauss–Seidel order (or None) and the
    run-time condition of the Newton steps (None: always)."""

    operator: Callable
    params: tuple
    solver: Any
    start: Any
    order: Any
    newton_if: Any


def _setup(mdp, temperature, backup, tol, solver, adjoint) -> _Setup:
    """Resolve `Auto`, check the warm starts' requirements, and pick the adjoint start: a
    direct solve after `Newton` (or plain sweeps on a small dense MDP, `Auto.direct_adjoint`),
    ordered sweeps after `GaussSeidel`. With a traced discount `Auto`'s dense rules are
    evaluated at run time: `newton_if` (a traced bool) gates the Newton steps, and the direct
    adjoint start carries its rule."""
    start, newton_if = None, None
    if isinstance(solver, Auto):
        auto, solver = solver, solver.choose(mdp, backup, adjoint, tol)
        rule = auto.direct_adjoint_rule(mdp, backup, adjoint)
        if not mdp.is_sparse and not checks.is_concrete(mdp.discount):
            if isinstance(solver, Newton):
                newton_if = auto.newton_pays(mdp.num_states, mdp.discount, tol, mdp.dtype)
            if rule is not None:
                start = DirectAdjointStart(backup, rule)
        elif rule is not None and rule(mdp.num_states, mdp.discount):
            start = DirectAdjointStart(backup)
    if not isinstance(solver, (Newton, GaussSeidel)):
        return _Setup(bellman, (mdp, temperature), solver, start, None, None)
    _check_warm_start(solver, backup, adjoint)
    if isinstance(solver, Newton):
        if mdp.is_sparse:
            raise ValueError("solver: Newton needs dense transitions (it solves S × S "
                             "systems); use GaussSeidel, FixedPointIteration or Anderson "
                             "for sparse MDPs")
        return _Setup(bellman, (mdp, temperature), solver, start or DirectAdjointStart(backup),
                      None, newton_if)
    check_sparse_concrete(mdp)
    order = levels(np.asarray(mdp.transitions.next_states), solver.window)
    rtol = checks.default_rtol(mdp.dtype) if adjoint.rtol is None else adjoint.rtol
    start = AdjointStart(backup, order.width, order.absorbing, rtol, solver.max_sweeps,
                         solver.check_every)
    params = (mdp, temperature, jnp.asarray(order.order, jnp.int32), jnp.asarray(order.starts))
    return _Setup(_ordered_bellman, params, solver, start, order, None)


def _check_warm_start(solver, backup, adjoint) -> None:
    allowed = NEWTON_BACKUPS if isinstance(solver, Newton) else GAUSS_SEIDEL_BACKUPS
    if backup not in allowed or not isinstance(adjoint, Implicit):
        raise ValueError(f"solver: {type(solver).__name__} needs backup in {allowed} and "
                         f"the implicit adjoint, got backup={backup!r}, adjoint={adjoint!r}")


_OPERATORS = {(operator, kind): functools.partial(operator, kind=kind)
              for operator in (bellman, _ordered_bellman) for kind in BACKUPS}
"""One operator object per Bellman operator and backup, so that `plan_adjoint`'s compiled
adjoint is reused from call to call."""


def plan_adjoint(mdp: MDP, temperature, q: Array, cotangent: Array, *,
                 backup: str = "logsumexp", tol: Optional[float] = None,
                 max_iter: int = 10_000, solver: SolverLike = None,
                 adjoint: Optional[Implicit] = None) -> AdjointResult:
    r"""The adjoint solve behind the implicit gradient of `soft_value_iteration`, with its
    report: for the cotangent $\bar{g}$ `(S, A)` on `Q* = q`, the solution `u` of
    $u = \bar{g} + (\partial_Q T)^\top u$ ($T(Q) = r + \gamma P m_\tau(Q)$), from the same start and by the same
    iteration as `jax.grad` through `soft_value_iteration(mdp, temperature, backup=backup,
    tol=tol, solver=solver, adjoint=adjoint)` uses; the reward's gradient is then `u` itself
    ($\partial_r T = I$). Use it to see what a gradient costs (`iterations`) and whether its adjoint
    converged (`result`), like the forward's `PlanResult`.

    Args:
      mdp, temperature, backup, tol, solver, adjoint: as in `soft_value_iteration` (`adjoint`
        an `og.solvers.Implicit`).
      q: `(S, A)` the fixed point (`soft_value_iteration(...).q`).
      cotangent: `(S, A)` the cotangent $\bar{g} = \partial L/\partial Q^*$.
      max_iter: the adjoint's iteration cap when `adjoint.max_iter` is not set.

    Returns:
      `AdjointResult(value=u (S, A), iterations, residual, result)`.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    shape = (mdp.num_states, mdp.num_actions)
    temperature, _, tol, max_iter, solver, adjoint = _prepare(
        backup, temperature, tol, max_iter, None, shape, "(S, A)", mdp.dtype, False, solver,
        adjoint, None, None, {})
    q = checks.as_array(q, "q", dtype=mdp.dtype)
    checks.shape(q, "q", shape, "(S, A)")
    checks.finite(q, "q")
    if not isinstance(adjoint, Implicit):
        raise ValueError(f"adjoint: plan_adjoint reports the implicit adjoint, got "
                         f"{adjoint!r:.60}")
    cotangent = checks.as_array(cotangent, "cotangent", dtype=mdp.dtype)
    checks.shape(cotangent, "cotangent", shape, "(S, A)")
    setup = _setup(mdp, temperature, backup, tol, solver, adjoint)
    # fixed_point_adjoint iterates by plain sweeps after a Newton or Gauss–Seidel warm start
    return fixed_point_adjoint(_OPERATORS[setup.operator, backup], setup.params, q, cotangent,
                               adjoint=adjoint, solver=setup.solver, adjoint_start=setup.start,
                               max_iter=max_iter)


def initiation_mask(initiation, num_options: int, num_states: int) -> Optional[Array]:
    """Validated `(S, K)` mask from `(K, S)` bool initiation sets (None stays None)."""
    if initiation is None:
        return None
    initiation = checks.as_array(initiation, "initiation", kind="bool")
    checks.shape(initiation, "initiation", (num_options, num_states), "(K, S)")
    if checks.is_concrete(initiation):
        empty = ~np.asarray(initiation).any(axis=0)
        if empty.any():
            raise ValueError(f"initiation: state {int(np.argmax(empty))} has no available "
                             "option")
    return initiation.T


@renamed(reward="rewards", transition="transitions")
def smdp_value_iteration(
    rewards: Array,
    transitions: Array,
    temperature,
    *,
    initiation: Optional[Array] = None,
    backup: str = "logsumexp",
    tol: Optional[float] = None,
    max_iter: int = 10_000,
    solver: SolverLike = None,
    adjoint: Optional[Adjoint] = None,
    differentiation: Optional[str] = None,
    num_sweeps: Optional[int] = None,
    init: Optional[Array] = None,
    throw: bool = False,
    **deprecated: Any,
) -> PlanResult:
    r"""Smooth planning over options: $Q_O = R + P^O m_\tau(Q_O)$ (no extra γ: it is in $P^O$).

    Args:
      rewards: `(S, K)` option reward models $r^o[s]$ (`option_models(...)[0]`).
      transitions: `(K, S, S)` option transition models $P^o[s, s']$, non-negative, rows
        summing to less than 1 (to at most γ).
      temperature: $\tau$ of the policy over options $\mu = \operatorname{softmax}(Q_O/\tau)$.
      initiation: optional `(K, S)` bool (the layout of `Options.initiation`); option `o` can
        be chosen in `s` only where `initiation[o, s]`. The backup and $\mu$ ignore the other
        options, so $\mu[s, o] = 0$ outside initiation sets. Every state needs at least one
        available option.
      backup, tol, max_iter, solver, adjoint, differentiation, num_sweeps, init, throw: as in
        `soft_value_iteration` (`init` of shape (S, K)); `solver` is plain iteration, Anderson
        or `Newton` (soft policy iteration over options: $P_\mu = \sum_o \mu[s, o] P^o[s, \cdot]$, one
        $S \times S$ solve per step, logsumexp or max; its adjoint starts from one direct solve).
        The default `Auto()` picks `Newton` for concrete models with the logsumexp backup
        when $S \le \mathtt{newton\_factor} \cdot \log(\mathrm{tol} (1 - \rho)) / \log \rho$, $\rho$ the largest row sum of $P^O$
        (`Auto.choose_options`), plain iteration otherwise.

    Returns:
      `PlanResult` with `q (S, K)` and `policy` = $\mu$ `(S, K)`.

    The keywords `reward=` and `transition=` are the deprecated spellings of the first two.
    """
    rewards = checks.as_array(rewards, "rewards")
    if jnp.ndim(rewards) != 2 or 0 in jnp.shape(rewards):
        raise ValueError(f"rewards: expected shape (S, K) with S, K >= 1, got "
                         f"{jnp.shape(rewards)}")
    dtype = checks.float_dtype(rewards)
    rewards = rewards.astype(dtype)
    s, k = rewards.shape
    transitions = checks.as_array(transitions, "transitions", dtype=dtype)
    checks.shape(transitions, "transitions", (k, s, s), "(K, S, S)")
    checks.finite(rewards, "rewards")
    checks.substochastic(transitions, "transitions")
    mask = initiation_mask(initiation, k, s)
    temperature, init, tol, max_iter, solver, adjoint = _prepare(
        backup, temperature, tol, max_iter, init, (s, k), "(S, K)", dtype, throw, solver,
        adjoint, differentiation, num_sweeps, deprecated)
    if isinstance(solver, Auto):
        solver = solver.choose_options(transitions, backup, adjoint, tol)
    params, start = (rewards, transitions, temperature, mask), None
    if isinstance(solver, Newton):  # soft policy iteration over options, then plain sweeps
        _check_warm_start(solver, backup, adjoint)
        warm_tol = checks.default_tol(dtype) if tol is None else tol
        warm, _ = policy_iteration_q(model_of(params)[0], temperature, backup, init, warm_tol,
                                     solver.max_steps, mask)
        init, solver, start = warm + 0.0 * init, FixedPointIteration(), DirectAdjointStart(
            backup)
    _refuse_warm_start(solver)
    return _plan(smdp_bellman, params, init, temperature, mask, backup, tol, max_iter, solver,
                 adjoint, throw, start)


def _refuse_warm_start(solver, *, intra_option: bool = False) -> None:
    """The option planners' warm starts: `Newton` needs option models (the SMDP planner),
    `GaussSeidel` a primitive MDP's or the intra-option planner's successor table."""
    if isinstance(solver, Newton if intra_option else GaussSeidel):
        where = ("the intra-option planner forms no option models; use GaussSeidel, "
                 "FixedPointIteration or Anderson, or smdp_value_iteration on option_models "
                 "with Newton" if intra_option else
                 "it orders a sparse MDP's states (soft_value_iteration); over options use "
                 "Newton, FixedPointIteration or Anderson")
        raise ValueError(f"solver: {type(solver).__name__} does not plan here: {where}")


def intra_option_value_iteration(
    mdp: MDP,
    options: Options,
    temperature,
    *,
    backup: str = "logsumexp",
    tol: Optional[float] = None,
    max_iter: int = 10_000,
    solver: SolverLike = None,
    adjoint: Optional[Adjoint] = None,
    differentiation: Optional[str] = None,
    num_sweeps: Optional[int] = None,
    init: Optional[Array] = None,
    throw: bool = False,
    **deprecated: Any,
) -> PlanResult:
    r"""Matrix-free planning over options: the intra-option Bellman equation (Sutton, Precup &
    Singh 1999, section 3),

    $$
    Q_O[s, o] = \sum_a \pi^o[s, a] \Bigl(r[s, a] + \gamma \sum_{s'} P[s, a, s']
    \bigl(\beta^o[s'] V[s'] + (1 - \beta^o[s']) Q_O[s', o]\bigr)\Bigr), \qquad V = m_\tau(Q_O)
    $$

    over available options.

    Its fixed point is the same $Q_O = R + P^O V$ as `smdp_value_iteration` on
    `option_models(mdp, options)` (unrolling the continuation term gives the option models),
    but no option model is formed: a sweep costs $O(K \cdot S \cdot A \cdot B)$ with sparse transitions and
    memory is $O(K \cdot S)$, so it scales to grids where `(K, S, S)` models cannot be stored.
    (With `Unrolled(N)`, `N` intra-option sweeps are not the same budget as `N` SMDP sweeps.)

    Args:
      mdp: the MDP (dense or sparse transitions).
      options: `Options` with policies `(K, S, A)`, terminations `(K, S)` and optional
        initiation sets (an option is chosen only where available; once running it continues
        anywhere).
      temperature, backup, tol, max_iter, solver, adjoint, …: as in `soft_value_iteration`;
        `solver` plain iteration, Anderson or `GaussSeidel` (sparse MDPs with a concrete
        successor table: rows of `Q_O` updated in the order of the states' distance to the
        absorbing states, `gauss_seidel.gauss_seidel_options`, then plain intra-option sweeps).
        The default `Auto()` is plain iteration here: with hallway options and primitives
        (γ = 0.99, float32) `GaussSeidel` took 0.64×, 1.16× and 0.77× plain iteration's time
        on four, nine and twenty-five rooms at τ = 0.01, but 1.7×, 3.4× and 2.5× at τ = 0.1.

    Returns:
      `PlanResult` with `q (S, K)` and `policy` = $\mu$ `(S, K)`; differentiable in the MDP, the
      options' policies and terminations, and the temperature.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.instance(options, "options", Options, "an optiongrad.Options")
    options.check_mdp(mdp)
    k, s = options.num_options, mdp.num_states
    mask = initiation_mask(options.initiation, k, s)
    temperature, init, tol, max_iter, solver, adjoint = _prepare(
        backup, temperature, tol, max_iter, init, (s, k), "(S, K)", mdp.dtype, throw, solver,
        adjoint, differentiation, num_sweeps, deprecated)
    if isinstance(solver, Auto):  # plain sweeps: GaussSeidel wins here only at small τ
        solver = solver.choose()
    _refuse_warm_start(solver, intra_option=True)
    params = (mdp, options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype),
              temperature, mask)
    if isinstance(solver, GaussSeidel):  # a Gauss–Seidel warm start, then plain sweeps
        _check_warm_start(solver, backup, adjoint)
        check_sparse_concrete(mdp)
        warm, _ = gauss_seidel_options(
            mdp, *params[1:4], backup, mask,
            checks.default_tol(mdp.dtype) if tol is None else tol, solver.max_sweeps,
            levels(np.asarray(mdp.transitions.next_states), solver.window), solver.check_every)
        init, solver = warm + 0.0 * init, FixedPointIteration()
    return _plan(_intra_option_bellman, params, init, temperature, mask, backup, tol,
                 max_iter, solver, adjoint, throw)


def jacobian_spectral_radius(mdp: MDP, q: Array, temperature, backup: str = "logsumexp"):
    r"""Spectral radius of $\partial_Q T$ at `q (S, A)` (dense $(S\cdot A) \times (S\cdot A)$ Jacobian; small MDPs).

    The IFT needs $I - \partial_Q T$ invertible; it is when this radius is below 1. It is at most γ
    for logsumexp, mellowmax and max; for boltzmann it can exceed 1.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.choice(backup, "backup", BACKUPS)
    checks.temperature(temperature, backup)
    q = checks.as_array(q, "q", dtype=mdp.dtype)
    checks.shape(q, "q", (mdp.num_states, mdp.num_actions), "(S, A)")
    checks.finite(q, "q")
    temperature = jnp.asarray(temperature, mdp.dtype)

    def t(x):
        return bellman((mdp, temperature), x.reshape(q.shape), kind=backup).reshape(-1)

    jac = jax.jacobian(t)(q.reshape(-1))
    return jnp.max(jnp.abs(jnp.linalg.eigvals(jac)))
