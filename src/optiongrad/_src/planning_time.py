r"""Planning time: how many value-iteration sweeps a set of options saves.

Jinnai, Abel, Hershkowitz, Littman & Konidaris (ICML 2019), "Finding options that minimize
planning time": the number of value-iteration sweeps, from zero values, until the values are
good enough. Sweeps run over the option models ($Q_{k+1} = R + P^O m_\tau(Q_k)$, primitives being the
options $(a, \beta \equiv 1)$), with the hard `max` backup by default. Two criteria:

* `"policy"`: the policy greedy in the primitive MDP w.r.t. the current state values
  $V_k = m_\tau(Q_k)$, $\operatorname{argmax}_a r[s, a] + \gamma \sum_{s'} P[s, a, s'] V_k[s']$, is optimal in every state —
  every action it ties for is an optimal action (so ties cannot make it optimal by luck);
* `"values"`: $\Vert V_k - V_\infty\Vert _\infty \le \varepsilon$, with $V_\infty$ the fixed point of the same sweeps (the optimal
  $V^*$ when primitives are included and the backup is `max`).

With primitives alone this is plain value iteration. Sutton, Precup & Singh (1999) show the
effect on four rooms: with hallway options, values reach every room in a couple of sweeps.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.backups import BACKUPS
from optiongrad._src.backups import backup as apply_backup
from optiongrad._src.deprecation import renamed
from optiongrad._src.goal_models import GoalModels, goal_mask
from optiongrad._src.mdp import MDP
from optiongrad._src.option_models import option_models
from optiongrad._src.options import Options, primitive_options, with_primitives
from optiongrad._src.planning import (
    initiation_mask,
    smdp_bellman,
    smdp_value_iteration,
    soft_value_iteration,
)
from optiongrad._src.solvers import RESULTS
from optiongrad._src.transitions import expectation

Array = jax.Array

CRITERIA = ("policy", "values")
_REFERENCE_MAX_ITER = 1_000_000  # sweeps allowed to compute the reference values


def _models(mdp: MDP, options: Optional[Options], include_primitives: bool):
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.boolean(include_primitives, "include_primitives")
    if options is None:
        options = primitive_options(mdp.num_states, mdp.num_actions, mdp.dtype)
    elif include_primitives:
        options = with_primitives(options)
    rewards, transitions = option_models(mdp, options)
    return rewards, transitions, options.initiation


def sweep_values(
    mdp: MDP,
    options: Optional[Options] = None,
    num_sweeps: int = 10,
    *,
    include_primitives: bool = True,
    backup: str = "max",
    temperature=0.0,
) -> Array:
    r"""State values $V_k = m_\tau(Q_k)$ after $k = 0, 1, \dots, \mathtt{num\_sweeps}$ sweeps from zero,
    shape `(num_sweeps + 1, S)` (Sutton et al. 1999, value propagation figure). Arguments as
    in `planning_sweeps`."""
    checks.iterations(num_sweeps, "num_sweeps")
    rewards, transitions, initiation = _models(mdp, options, include_primitives)
    checks.choice(backup, "backup", BACKUPS)
    checks.temperature(temperature, backup)
    tau = jnp.asarray(temperature, mdp.dtype)
    mask = initiation_mask(initiation, rewards.shape[1], mdp.num_states)
    bellman = functools.partial(smdp_bellman, (rewards, transitions, tau, mask), kind=backup)

    def sweep(q, _):
        q_next = bellman(q)
        return q_next, apply_backup(q_next, tau, backup, mask)

    _, values = jax.lax.scan(sweep, jnp.zeros_like(rewards), None, length=num_sweeps)
    return jnp.concatenate([jnp.zeros((1, mdp.num_states), mdp.dtype), values])


def planning_sweeps(
    mdp: MDP,
    options: Optional[Options] = None,
    *,
    include_primitives: bool = True,
    criterion: str = "policy",
    epsilon: float = 1e-6,
    backup: str = "max",
    temperature=0.0,
    max_sweeps: int = 100_000,
    throw: bool = False,
) -> Array:
    """Number of sweeps from zero values until `criterion` holds (int32; `max_sweeps + 1` if it
    never does, −1 if the reference values themselves did not converge or a sweep's values
    stopped being finite — with `throw=True` that raises a `RuntimeError` instead).

    Args:
      mdp: the primitive MDP (task).
      options: options to plan with; None means primitives only.
      include_primitives: append the primitive actions after `options`.
      criterion: "policy" (greedy primitive policy optimal) or "values" (within `epsilon`).
      epsilon: value tolerance for "values"; also the tie tolerance of "policy".
      backup, temperature: the sweep's backup (`max` by default, or a smooth one).
      max_sweeps: give up after this many sweeps.
      throw: raise if the reference solve (optimal values, or the values' limit) fails.

    Works under `jax.vmap` over tasks (e.g. goals).
    """
    rewards, transitions, initiation = _models(mdp, options, include_primitives)
    return model_planning_sweeps(
        mdp, rewards, transitions, initiation=initiation,
        criterion=criterion, epsilon=epsilon, backup=backup, temperature=temperature,
        max_sweeps=max_sweeps, throw=throw)


@renamed(reward="rewards", transition="transitions")
def model_planning_sweeps(
    mdp: MDP,
    rewards: Array,
    transitions: Array,
    *,
    initiation: Optional[Array] = None,
    optimal_q: Optional[Array] = None,
    criterion: str = "policy",
    epsilon: float = 1e-6,
    backup: str = "max",
    temperature=0.0,
    max_sweeps: int = 100_000,
    throw: bool = False,
) -> Array:
    """`planning_sweeps` from given option models `rewards (S, K)`, `transitions (K, S, S)`
    (primitives included if wanted) and initiation sets `(K, S)`.

    `optimal_q (S, A)`, the optimal $Q^*$ of `mdp`, may be passed for the "policy" criterion
    to avoid solving for it again (e.g. when scoring several option sets on the same task).
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.choice(criterion, "criterion", CRITERIA)
    checks.iterations(max_sweeps, "max_sweeps")
    checks.boolean(throw, "throw")
    checks.number(epsilon, "epsilon", low=0.0, low_open=True)
    checks.choice(backup, "backup", BACKUPS)
    checks.temperature(temperature, backup)
    rewards = checks.as_array(rewards, "rewards", dtype=mdp.dtype)
    if jnp.ndim(rewards) != 2 or rewards.shape[0] != mdp.num_states or rewards.shape[1] < 1:
        raise ValueError(f"rewards: expected shape (S, K) with S = {mdp.num_states}, K >= 1, "
                         f"got {jnp.shape(rewards)}")
    k = rewards.shape[1]
    transitions = checks.as_array(transitions, "transitions", dtype=mdp.dtype)
    checks.shape(transitions, "transitions", (k, mdp.num_states, mdp.num_states), "(K, S, S)")
    checks.finite(rewards, "rewards")
    checks.substochastic(transitions, "transitions")
    mask = initiation_mask(initiation, k, mdp.num_states)
    if optimal_q is not None:
        optimal_q = checks.as_array(optimal_q, "optimal_q", dtype=mdp.dtype)
        checks.shape(optimal_q, "optimal_q", (mdp.num_states, mdp.num_actions), "(S, A)")
        checks.finite(optimal_q, "optimal_q")
    tau = jnp.asarray(temperature, mdp.dtype)
    bellman = functools.partial(smdp_bellman, (rewards, transitions, tau, mask), kind=backup)
    if criterion == "values":
        target = smdp_value_iteration(
            rewards, transitions, tau, initiation=initiation,
            backup=backup, tol=epsilon * 1e-3, max_iter=_REFERENCE_MAX_ITER, throw=throw)
        v_target = apply_backup(jnp.where(target.failed, 0.0, target.q), tau, backup, mask)
        reference_ok = target.converged

        def done(v):
            return jnp.max(jnp.abs(v - v_target)) <= epsilon
    else:
        if optimal_q is None:
            optimal = soft_value_iteration(mdp, 0.0, backup="max", tol=epsilon * 1e-3,
                                           max_iter=_REFERENCE_MAX_ITER, throw=throw)
            optimal_q, reference_ok = optimal.q, optimal.converged
        else:
            reference_ok = jnp.asarray(True)
        optimal_action = optimal_q >= jnp.max(optimal_q, axis=1, keepdims=True) - epsilon

        def done(v):
            q = mdp.rewards + mdp.discount * expectation(mdp.transitions, v)
            greedy = q >= jnp.max(q, axis=1, keepdims=True) - epsilon * 1e-3
            return jnp.all(~greedy | optimal_action)

    def cond(carry):
        k, _, finished, broken = carry
        return (~finished) & (~broken) & (k <= max_sweeps)

    def body(carry):
        k, q, _, _ = carry
        q_next = bellman(q)
        v = apply_backup(q_next, tau, backup, mask)
        broken = ~jnp.all(jnp.isfinite(v))            # a non-finite sweep is a failure
        return k + 1, q_next, done(v) & ~broken, broken

    start = (jnp.int32(1), jnp.zeros_like(rewards), done(jnp.zeros(mdp.num_states, mdp.dtype)),
             jnp.asarray(False))
    k, _, finished, broken = jax.lax.while_loop(cond, body, start)
    if throw:
        k = RESULTS.nonfinite.error_if(k, broken)
    ok = reference_ok & ~broken
    return jnp.where(ok, jnp.where(finished, k - 1, max_sweeps + 1), -1)


def goal_planning_sweeps(mdp: MDP, models: GoalModels, goals: Array, optimal_q: Array, *,
                         initiation: Optional[Array] = None, epsilon: float = 1e-6,
                         max_sweeps: int = 100) -> Array:
    """`planning_sweeps` (criterion "policy", hard `max` backup) in every goal task of the
    environment `mdp` at once, on the factored goal models `models` of `goals (T,)`, shape
    `(T,)`: the sweeps from zero values until the greedy primitive policy of each task is
    optimal (`max_sweeps + 1` if it never is, −1 if a sweep's values stop being finite).

    Args:
      mdp: the environment (its goal tasks are `goal_task(mdp, g)`).
      models: `GoalModels` of the options in those tasks (primitives included if wanted).
      goals: `(T,)` the goal of each task. optimal_q: `(T, S, A)` each task's optimal $Q^*$.
      initiation: optional `(K, S)` bool (not needed by compact models, which carry their
        own). epsilon: the tie tolerance. max_sweeps: the cap.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    goals = jnp.asarray(checks.indices(goals, "goals", mdp.num_states), jnp.int32)
    checks.iterations(max_sweeps, "max_sweeps")
    checks.number(epsilon, "epsilon", low=0.0, low_open=True)
    t, s, k = models.rewards.shape
    optimal_q = checks.as_array(optimal_q, "optimal_q", dtype=mdp.dtype)
    checks.shape(optimal_q, "optimal_q", (t, s, mdp.num_actions), "(T, S, A)")
    mask = goal_mask(models, initiation)
    is_goal = jax.nn.one_hot(goals, s, dtype=mdp.dtype)                     # (T, S)
    enter = jnp.moveaxis(expectation(mdp.transitions, is_goal.T), -1, 0)   # (T, S, A)
    optimal = optimal_q >= jnp.max(optimal_q, axis=-1, keepdims=True) - epsilon

    def done(v):  # v (T, S): is the greedy primitive policy of every task optimal?
        q = enter + mdp.discount * jnp.moveaxis(expectation(mdp.transitions, v.T), -1, 0)
        q = jnp.where(is_goal[..., None] > 0, mdp.discount * v[..., None], q)  # g absorbing
        greedy = q >= jnp.max(q, axis=-1, keepdims=True) - epsilon * 1e-3
        return jnp.all(~greedy | optimal, axis=(1, 2))

    def cond(carry):
        sweep, _, finished_at, broken = carry
        return jnp.any(finished_at < 0) & ~broken & (sweep <= max_sweeps)

    def body(carry):
        sweep, q, finished_at, _ = carry
        q = models.rewards + models.apply(apply_backup(q, 0.0, "max", mask))
        v = apply_backup(q, 0.0, "max", mask)
        finished_at = jnp.where((finished_at < 0) & done(v), sweep, finished_at)
        return sweep + 1, q, finished_at, ~jnp.all(jnp.isfinite(v))

    zeros = jnp.zeros((t, s), mdp.dtype)
    start = (jnp.int32(1), jnp.zeros((t, s, k), mdp.dtype),
             jnp.where(done(zeros), 0, -1).astype(jnp.int32), jnp.asarray(False))
    _, _, finished_at, broken = jax.lax.while_loop(cond, body, start)
    return jnp.where(broken, -1, jnp.where(finished_at >= 0, finished_at, max_sweeps + 1))
