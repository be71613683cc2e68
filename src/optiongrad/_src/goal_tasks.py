"""Goal-reaching tasks of one environment, and their option models from one factorisation.

A *goal task* `g` of an environment MDP `(P, γ)` (`goal_task`; DESIGN.md, "The four-rooms
experiment") has

    P^g = P except row g:  P^g[g, a, :] = e_g               (g absorbing)
    r^g[s, a] = P[s, a, g] for s ≠ g,  r^g[g, a] = 0        (reward 1 on entering g)
    s0^g = uniform over the S − 1 states other than g.

The option models of every goal task differ from the environment's by a rank-one term, so all
`T` goals cost one `(S, S)` inversion per option instead of `T` (Sherman & Morrison 1950). With
`P_π`, `Λ = diag(1 − β)`, `B = diag(β)` of an option in the environment,

    A = I − γ P_π Λ,   M = A^{-1},   D = I − P_π            (row g of D: d_g = e_g − P_π[g])
    A_g = A − e_g w_gᵀ,   w_g = γ Λ d_g                     (only row g of P_π changes)
    z_gᵀ = w_gᵀ M,   c_g = 1 − z_g[g],   u_g = M[:, g]
    M_g = A_g^{-1} = M + u_g z_gᵀ / c_g                      (Sherman–Morrison)
    P^o_g = γ M_g P^g_π B = P^o + u_g y_gᵀ,   y_g = γ β ⊙ (d_g + P_πᵀ z_g) / c_g
    r^o_g = M_g q_g = M q_g + u_g (z_g · q_g) / c_g,   q_g = P_π[:, g] with entry g set to 0

where `P^o = γ M P_π B` is the option's transition model in the environment. The result equals
`optiongrad.option_models(goal_task(g), options)` to rounding (tests check it) at
`O(K S³ + T K S²)` instead of `O(T K S³)`, and it is differentiable in the options.
"""

from __future__ import annotations

from typing import Optional, Union

import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.deprecation import renamed
from optiongrad._src.evaluation import expected_return
from optiongrad._src.gridworld import GridWorld, navigation_mdp
from optiongrad._src.implicit import nan_where
from optiongrad._src.mdp import MDP
from optiongrad._src.options import Options
from optiongrad._src.planning import soft_value_iteration
from optiongrad._src.transitions import SparseTransitions, policy_matrix

Array = jax.Array


@renamed(environment="mdp", grid="mdp")
def goal_task(mdp: Union[MDP, GridWorld], goal, discount=None, *,
              sparse: Optional[bool] = None, dtype=None) -> MDP:
    """The goal-reaching task `goal` of an environment: reward 1 on entering `goal`, `goal`
    absorbing with zero reward, `s0` uniform over the other states.

    With `P` the environment's dynamics (its own reward and `s0` are ignored):
    `P^g = P` except `P^g[g, a] = e_g`; `r^g[s, a] = P[s, a, g]` for `s ≠ g`, `r^g[g, a] = 0`;
    `s0^g[s] = 1/(S − 1)` for `s ≠ g`.

    Args:
      mdp: the environment: an `MDP` (dense or sparse transitions) or a `GridWorld` (its
        dynamics, as `navigation_mdp` builds them). At least two states.
      goal: the goal state index; may be a tracer (`jax.vmap` over goals).
      discount: `γ`; for a grid, default 0.99; for an MDP, default its own discount.
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
    if isinstance(p, SparseTransitions):
        enter = jnp.sum(jnp.where(p.next_states == goal, p.probs, 0.0), axis=-1)
        probs = jnp.where(is_goal[:, None, None], jnp.zeros_like(p.probs).at[:, :, 0].set(1.0),
                          p.probs)
        next_states = jnp.where(is_goal[:, None, None], goal, p.next_states)
        transitions = SparseTransitions(next_states, probs)
    else:
        enter = jnp.take(p, goal, axis=2)
        absorbing = jnp.broadcast_to(is_goal.astype(dtype), p.shape[1:])
        transitions = jnp.where(is_goal[:, None, None], absorbing[None], p)
    rewards = jnp.where(is_goal[:, None], 0.0, enter).astype(dtype)
    initial = jnp.where(is_goal, 0.0, 1.0 / (s - 1)).astype(dtype)
    return mdp.replace(transitions=transitions, rewards=rewards, initial=initial)


@renamed(environment="mdp")
def reference_returns(mdp: MDP, goals: Array) -> tuple[Array, Array, Array]:
    """The references that normalise returns on goal tasks, one `vmap` over `goals (T,)`:
    optimal `Q*` of each task by hard value iteration `(T, S, A)`, and the returns
    `s0 · V_π` of the optimal policy `(T,)` and of the uniform-random policy `(T,)`, so that
    a return `J` normalises to `(J − J_random) / (J* − J_random)`. The optimal `Q*` and `J*`
    of a task whose hard value iteration failed are NaN."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    goals = checks.indices(goals, "goals", mdp.num_states)

    def one(goal):
        task = goal_task(mdp, goal)
        optimal = soft_value_iteration(task, 0.0, backup="max")
        uniform = jnp.full(task.rewards.shape, 1.0 / task.num_actions, task.dtype)
        return (nan_where(optimal.failed, optimal.q),
                nan_where(optimal.failed, expected_return(task, optimal.policy)),
                expected_return(task, uniform))

    return jax.vmap(one)(jnp.asarray(goals))

def _option_factors(mdp: MDP, policy: Array, termination: Array):
    """Per option: `P^o (S, S)`, `M (S, S)`, rows `y_g` as `Y (S, S)` and columns `r^o_g` as
    `R (S, S)` (column g is the reward model in goal task g)."""
    gamma = mdp.discount
    s = mdp.num_states
    eye = jnp.eye(s, dtype=mdp.dtype)
    p_pi = policy_matrix(mdp.transitions, policy)
    stay = 1.0 - termination
    m = jnp.linalg.inv(eye - gamma * p_pi * stay[None, :])
    base = gamma * (m @ p_pi) * termination[None, :]
    # `P^g_π[g] = (Σ_a π[g, a]) e_g`: the row sum (1 on the simplex) keeps derivatives off the
    # simplex identical to those of `option_models(goal_task(g))`.
    d = jnp.diag(jnp.sum(policy, axis=-1)) - p_pi
    z = gamma * (d * stay[None, :]) @ m                      # row g: z_g
    c = 1.0 - jnp.diagonal(z)
    y = gamma * (d + z @ p_pi) * termination[None, :] / c[:, None]
    q = p_pi * (1.0 - eye)                                   # column g: q_g
    zq = jnp.sum(z * q.T, axis=1)                            # z_g · q_g
    r = m @ q + m * (zq / c)[None, :]
    return base, m, y, r


@renamed(environment="mdp")
def goal_option_models(mdp: MDP, options: Options, goals: Array
                       ) -> tuple[Array, Array, Array]:
    """Option models of `options` in the goal tasks `goals` of the environment `mdp`.

    Args:
      mdp: the environment without a goal (dense or sparse transitions; `P_π` is formed
        densely); its reward is ignored.
      options: `K` options for it (their initiation sets are not used here).
      goals: `(T,)` int goal states.

    Returns:
      `(rewards (T, S, K), transitions (T, K, S, S), initial (T, S))`: for each goal the option
      models `optiongrad.option_models(goal_task(mdp, g), options)` and the task's `s0`.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.instance(options, "options", Options, "an optiongrad.Options")
    options.check_mdp(mdp)
    goals = checks.indices(goals, "goals", mdp.num_states)
    goals = jnp.asarray(goals, jnp.int32)
    base, m, y, r = jax.vmap(lambda pi, beta: _option_factors(mdp, pi, beta))(
        options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype))
    u = jnp.take(m, goals, axis=2)                           # (K, S, T)
    transitions = base[None] + jnp.einsum("kst,ktu->tksu", u, jnp.take(y, goals, axis=1))
    rewards = jnp.transpose(jnp.take(r, goals, axis=2), (2, 1, 0))
    s = mdp.num_states
    others = jnp.arange(s)[None, :] != goals[:, None]
    initial = jnp.where(others, 1.0 / (s - 1), 0.0).astype(mdp.dtype)
    return rewards, transitions, initial
