r"""Goal-reaching tasks of one environment, and their option models from one factorisation.

A *goal task* `g` of an environment MDP $(P, \gamma)$ (`goal_task`; DESIGN.md, "The four-rooms
experiment") has

$$
\begin{aligned}
P^g &= P \text{ except row } g: \quad P^g[g, a, :] = e_g && \text{($g$ absorbing)} \\
r^g[s, a] &= P[s, a, g] \text{ for } s \ne g, \quad r^g[g, a] = 0 && \text{(reward 1 on entering $g$)} \\
s_0^g &= \text{uniform over the $S - 1$ states other than $g$.}
\end{aligned}
$$

Their option models differ from the environment's by a rank-one term each: `goal_models`
(`optiongrad._src.goal_models`) keeps them factored; `goal_option_models` materialises the dense
`(T, K, S, S)` tensor from those factors, for small problems and tests.
"""

from __future__ import annotations

from typing import Optional, Union

import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.deprecation import renamed
from optiongrad._src.evaluation import expected_return
from optiongrad._src.goal_models import goal_models
from optiongrad._src.gridworld import GridWorld, navigation_mdp
from optiongrad._src.implicit import nan_where
from optiongrad._src.mdp import MDP
from optiongrad._src.options import Options
from optiongrad._src.planning import soft_value_iteration
from optiongrad._src.transitions import SparseTransitions, policy_matrix, probabilities_to

Array = jax.Array


@renamed(environment="mdp", grid="mdp")
def goal_task(mdp: Union[MDP, GridWorld], goal, discount=None, *,
              sparse: Optional[bool] = None, dtype=None) -> MDP:
    r"""The goal-reaching task `goal` of an environment: reward 1 on entering `goal`, `goal`
    absorbing with zero reward, `s0` uniform over the other states.

    With `P` the environment's dynamics (its own reward and `s0` are ignored):
    $P^g = P$ except $P^g[g, a] = e_g$; $r^g[s, a] = P[s, a, g]$ for `s ≠ g`, $r^g[g, a] = 0$;
    $s_0^g[s] = 1/(S - 1)$ for `s ≠ g`.

    Args:
      mdp: the environment: an `MDP` (dense or sparse transitions) or a `GridWorld` (its
        dynamics, as `navigation_mdp` builds them). At least two states.
      goal: the goal state index; may be a tracer (`jax.vmap` over goals).
      discount: $\gamma$; for a grid, default 0.99; for an MDP, default its own discount.
      sparse: for a grid, `SparseTransitions` (True), a dense tensor (False) or by size
        (None: sparse when `S > 1000`); not used with an MDP.
      dtype: for a grid, the floating dtype (default: JAX's default float); not used with an
        MDP.
    """
    if isinstance(mdp, GridWorld):
        mdp = navigation_mdp(mdp, 0.99 if discount is None else discount, sparse=sparse,
                             dtype=dtype)
    else:
        checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP or a GridWorld")
        for name, value in (("sparse", sparse), ("dtype", dtype)):
            if value is not None:
                raise ValueError(f"{name}: only used when the environment is a GridWorld")
        if discount is not None:
            mdp = mdp.replace(discount=discount)
    s = mdp.num_states
    if s < 2:
        raise ValueError(f"mdp: a goal task needs at least 2 states, got {s}")
    goal = checks.indices(goal, "goal", s, scalar=True)
    goal = jnp.asarray(goal, jnp.int32)
    dtype = mdp.dtype
    is_goal = jnp.arange(s) == goal
    p = mdp.transitions
    enter = probabilities_to(p, goal)
    if isinstance(p, SparseTransitions):
        probs = jnp.where(is_goal[:, None, None], jnp.zeros_like(p.probs).at[:, :, 0].set(1.0),
                          p.probs)
        next_states = jnp.where(is_goal[:, None, None], goal, p.next_states)
        transitions = SparseTransitions(next_states, probs)
    else:
        absorbing = jnp.broadcast_to(is_goal.astype(dtype), p.shape[1:])
        transitions = jnp.where(is_goal[:, None, None], absorbing[None], p)
    rewards = jnp.where(is_goal[:, None], 0.0, enter).astype(dtype)
    initial = jnp.where(is_goal, 0.0, 1.0 / (s - 1)).astype(dtype)
    return mdp.replace(transitions=transitions, rewards=rewards, initial=initial)


@renamed(environment="mdp")
def reference_returns(mdp: MDP, goals: Array) -> tuple[Array, Array, Array]:
    r"""The references that normalise returns on goal tasks of `goals (T,)`:
    optimal $Q^*$ of each task by hard value iteration `(T, S, A)`, and the returns
    $s_0 \cdot V_\pi$ of the optimal policy `(T,)` and of the uniform-random policy `(T,)`, so that
    a return `J` normalises to $(J - J_{\mathrm{random}}) / (J^* - J_{\mathrm{random}})$. The optimal $Q^*$ and $J^*$
    of a task whose hard value iteration failed are NaN. Goals are taken a batch at a time
    (`lax.map` of a `vmap`) so that the batch's dense task models stay within about 128 MB.

    The uniform-random policy is the same in every task, so its values in all of them come
    from one factorisation (`goal_models` of the option "follow π uniformly, never terminate",
    whose reward model in task `g` is $V^g_{\mathrm{uniform}}$): $O(S^3 + T S^2)$, not one solve per goal.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    goals = jnp.asarray(checks.indices(goals, "goals", mdp.num_states))
    s, a = mdp.num_states, mdp.num_actions
    batch = int(max(1, min(goals.shape[0], 2**27 // (8 * s * s * (a + 1)))))

    def one(goal):
        task = goal_task(mdp, goal)
        optimal = soft_value_iteration(task, 0.0, backup="max")
        return (nan_where(optimal.failed, optimal.q),
                nan_where(optimal.failed, expected_return(task, optimal.policy)))

    if batch >= goals.shape[0]:
        q, j_star = jax.vmap(one)(goals)
    else:
        q, j_star = jax.lax.map(one, goals, batch_size=batch)
    wander = Options(jnp.full((1, s, a), 1.0 / a, mdp.dtype), jnp.zeros((1, s), mdp.dtype))
    models = goal_models(mdp, wander, goals)
    j_random = jnp.sum(models.initial * models.rewards[..., 0], axis=-1)
    return q, j_star, j_random


@renamed(environment="mdp")
def goal_option_models(mdp: MDP, options: Options, goals: Array
                       ) -> tuple[Array, Array, Array]:
    r"""Option models of `options` in the goal tasks `goals` of the environment `mdp`.

    Args:
      mdp: the environment without a goal (dense or sparse transitions; $P_\pi$ is formed
        densely); its reward is ignored.
      options: `K` options for it (their initiation sets are not used here).
      goals: `(T,)` int goal states.

    Returns:
      `(rewards (T, S, K), transitions (T, K, S, S), initial (T, S))`: for each goal the option
      models `optiongrad.option_models(goal_task(mdp, g), options)` and the task's `s0`.
      Memory $O(T K S^2)$: for many goals or states use the factored `goal_models`.
    """
    models = goal_models(mdp, options, goals)
    return models.rewards, models.transitions(), models.initial
