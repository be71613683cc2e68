"""Planning time: how many value-iteration sweeps a set of options saves.

Jinnai, Abel, Hershkowitz, Littman & Konidaris (ICML 2019), "Finding options that minimize
planning time": the number of value-iteration sweeps, from zero values, until the values are
good enough. Sweeps run over the option models (`Q_{k+1} = R + P^O m_τ(Q_k)`, primitives being the
options `(a, β ≡ 1)`), with the hard `max` backup by default. Two criteria:

* `"policy"`: the policy greedy in the primitive MDP w.r.t. the current state values
  `V_k = m_τ(Q_k)`, `argmax_a r[s, a] + γ Σ_s' P[s, a, s'] V_k[s']`, is optimal in every state —
  every action it ties for is an optimal action (so ties cannot make it optimal by luck);
* `"values"`: `‖V_k − V_∞‖_∞ ≤ ε`, with `V_∞` the fixed point of the same sweeps (the optimal
  `V*` when primitives are included and the backup is `max`).

With primitives alone this is plain value iteration. Sutton, Precup & Singh (1999) show the
effect on four rooms: with hallway options, values reach every room in a couple of sweeps.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from optiongrad._checks import check_choice, check_positive_int
from optiongrad.mdp import MDP
from optiongrad.options import Options, option_models, primitive_options, with_primitives
from optiongrad.planning import backup as apply_backup
from optiongrad.planning import smdp_bellman, smdp_value_iteration, soft_value_iteration
from optiongrad.transitions import expectation

Array = jax.Array

CRITERIA = ("policy", "values")
_REFERENCE_MAX_ITER = 1_000_000  # sweeps allowed to compute the reference values


def _models(mdp: MDP, options: Optional[Options], include_primitives: bool):
    if options is None:
        options = primitive_options(mdp.num_states, mdp.num_actions, mdp.dtype)
    elif include_primitives:
        options = with_primitives(options)
    reward, transition = option_models(mdp, options)
    return reward, transition, options.initiation


def sweep_values(
    mdp: MDP,
    options: Optional[Options] = None,
    num_sweeps: int = 10,
    *,
    include_primitives: bool = True,
    backup: str = "max",
    temperature=0.0,
) -> Array:
    """State values `V_k = m_τ(Q_k)` after `k = 0, 1, …, num_sweeps` sweeps from zero,
    shape `(num_sweeps + 1, S)` (Sutton et al. 1999, value propagation figure)."""
    check_positive_int(num_sweeps, "num_sweeps")
    reward, transition, initiation = _models(mdp, options, include_primitives)
    tau = jnp.asarray(temperature, mdp.dtype)
    mask = None if initiation is None else initiation.T
    bellman = functools.partial(smdp_bellman, (reward, transition, tau, mask), kind=backup)

    def sweep(q, _):
        q_next = bellman(q)
        return q_next, apply_backup(q_next, tau, backup, mask)

    _, values = jax.lax.scan(sweep, jnp.zeros_like(reward), None, length=num_sweeps)
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
) -> Array:
    """Number of sweeps from zero values until `criterion` holds (int32; `max_sweeps + 1` if it
    never does, −1 if the reference values themselves did not converge).

    Args:
      mdp: the primitive MDP (task).
      options: options to plan with; None means primitives only.
      include_primitives: append the primitive actions after `options`.
      criterion: "policy" (greedy primitive policy optimal) or "values" (within `epsilon`).
      epsilon: value tolerance for "values"; also the tie tolerance of "policy".
      backup, temperature: the sweep's backup (`max` by default, or a smooth one).
      max_sweeps: give up after this many sweeps.

    Works under `jax.vmap` over tasks (e.g. goals).
    """
    reward, transition, initiation = _models(mdp, options, include_primitives)
    return model_planning_sweeps(
        mdp, reward, transition, initiation=initiation,
        criterion=criterion, epsilon=epsilon, backup=backup, temperature=temperature,
        max_sweeps=max_sweeps)


def model_planning_sweeps(
    mdp: MDP,
    reward: Array,
    transition: Array,
    *,
    initiation: Optional[Array] = None,
    optimal_q: Optional[Array] = None,
    criterion: str = "policy",
    epsilon: float = 1e-6,
    backup: str = "max",
    temperature=0.0,
    max_sweeps: int = 100_000,
) -> Array:
    """`planning_sweeps` from given option models `reward (S, K)`, `transition (K, S, S)`
    (primitives included if wanted) and initiation sets `(K, S)`.

    `optimal_q (S, A)`, the optimal `Q*` of `mdp`, may be passed for the "policy" criterion
    to avoid solving for it again (e.g. when scoring several option sets on the same task).
    """
    check_choice(criterion, "criterion", CRITERIA)
    check_positive_int(max_sweeps, "max_sweeps")
    mask = None if initiation is None else jnp.asarray(initiation).T
    tau = jnp.asarray(temperature, mdp.dtype)
    bellman = functools.partial(smdp_bellman, (reward, transition, tau, mask), kind=backup)
    if criterion == "values":
        target = smdp_value_iteration(
            reward, transition, tau, initiation=initiation,
            backup=backup, tol=epsilon * 1e-3, max_iter=_REFERENCE_MAX_ITER,
        )
        v_target = apply_backup(target.q, tau, backup, mask)
        reference_ok = target.converged

        def done(v):
            return jnp.max(jnp.abs(v - v_target)) <= epsilon
    else:
        if optimal_q is None:
            optimal = soft_value_iteration(mdp, 0.0, backup="max", tol=epsilon * 1e-3,
                                           max_iter=_REFERENCE_MAX_ITER)
            optimal_q, reference_ok = optimal.q, optimal.converged
        else:
            reference_ok = jnp.asarray(True)
        optimal_action = optimal_q >= jnp.max(optimal_q, axis=1, keepdims=True) - epsilon

        def done(v):
            q = mdp.rewards + mdp.discount * expectation(mdp.transitions, v)
            greedy = q >= jnp.max(q, axis=1, keepdims=True) - epsilon * 1e-3
            return jnp.all(~greedy | optimal_action)

    def cond(carry):
        k, _, finished = carry
        return (~finished) & (k <= max_sweeps)

    def body(carry):
        k, q, _ = carry
        q_next = bellman(q)
        return k + 1, q_next, done(apply_backup(q_next, tau, backup, mask))

    start = (jnp.int32(1), jnp.zeros_like(reward), done(jnp.zeros(mdp.num_states, mdp.dtype)))
    k, _, finished = jax.lax.while_loop(cond, body, start)
    return jnp.where(reference_ok, jnp.where(finished, k - 1, max_sweeps + 1), -1)
