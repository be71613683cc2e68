"""Goal-reaching tasks of one environment, and their option models from one factorisation.

A *goal task* `g` of an environment MDP `(P, γ)` (DESIGN.md, "The four-rooms experiment";
`optiongrad.gridworld.goal_task` builds it for a grid) has

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

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._checks import is_concrete
from optiongrad.evaluation import expected_return
from optiongrad.mdp import MDP
from optiongrad.options import Options
from optiongrad.planning import soft_value_iteration
from optiongrad.transitions import SparseTransitions, policy_matrix

Array = jax.Array


def goal_task(environment: MDP, goal) -> MDP:
    """The goal task `g` of `environment` (dense or sparse transitions; the environment's
    reward and `s0` are ignored): `g` absorbing, reward `P[s, a, g]` for `s ≠ g`, `s0` uniform
    over the other states. `goal` may be a tracer (`jax.vmap` over goals)."""
    s = environment.num_states
    if is_concrete(goal):
        g = np.asarray(goal)
        if g.ndim != 0 or g.dtype.kind not in "iu" or not 0 <= int(g) < s:
            raise ValueError(f"goal: expected a state index in [0, {s}), got {goal!r}")
    goal = jnp.asarray(goal, jnp.int32)
    dtype = environment.dtype
    is_goal = jnp.arange(s) == goal
    p = environment.transitions
    if isinstance(p, SparseTransitions):
        enter = jnp.sum(jnp.where(p.next_states == goal, p.probs, 0.0), axis=-1)
        probs = jnp.where(is_goal[:, None, None], jnp.zeros_like(p.probs).at[:, :, 0].set(1.0),
                          p.probs)
        next_states = jnp.where(is_goal[:, None, None], goal, p.next_states)
        transitions = SparseTransitions._unchecked(next_states, probs)
    else:
        enter = jnp.take(p, goal, axis=2)
        absorbing = jnp.broadcast_to(is_goal.astype(dtype), p.shape[1:])
        transitions = jnp.where(is_goal[:, None, None], absorbing[None], p)
    rewards = jnp.where(is_goal[:, None], 0.0, enter).astype(dtype)
    initial = jnp.where(is_goal, 0.0, 1.0 / (s - 1)).astype(dtype)
    return environment._with(transitions=transitions, rewards=rewards, initial=initial)



def reference_returns(environment: MDP, goals: Array) -> tuple[Array, Array, Array]:
    """The references that normalise returns on goal tasks, one `vmap` over `goals (T,)`:
    optimal `Q*` of each task by hard value iteration `(T, S, A)`, and the returns
    `s0 · V_π` of the optimal policy `(T,)` and of the uniform-random policy `(T,)`, so that
    a return `J` normalises to `(J − J_random) / (J* − J_random)`."""
    def one(goal):
        task = goal_task(environment, goal)
        optimal = soft_value_iteration(task, 0.0, backup="max")
        uniform = jnp.full(task.rewards.shape, 1.0 / task.num_actions, task.dtype)
        return optimal.q, expected_return(task, optimal.policy), expected_return(task, uniform)

    return jax.vmap(one)(jnp.asarray(goals))

def _option_factors(environment: MDP, policy: Array, termination: Array):
    """Per option: `P^o (S, S)`, `M (S, S)`, rows `y_g` as `Y (S, S)` and columns `r^o_g` as
    `R (S, S)` (column g is the reward model in goal task g)."""
    gamma = environment.discount
    s = environment.num_states
    eye = jnp.eye(s, dtype=environment.dtype)
    p_pi = policy_matrix(environment.transitions, policy)
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


def goal_option_models(environment: MDP, options: Options, goals: Array
                       ) -> tuple[Array, Array, Array]:
    """Option models of `options` in the goal tasks `goals` of `environment`.

    Args:
      environment: the MDP without a goal (dense or sparse transitions; `P_π` is formed
        densely); its reward is ignored.
      options: `K` options (their initiation sets are not used here).
      goals: `(T,)` int goal states.

    Returns:
      `(reward (T, S, K), transition (T, K, S, S), initial (T, S))`: for each goal the option
      models `optiongrad.option_models(goal_task(g), options)` and the task's `s0`.
    """
    goals = jnp.asarray(goals, jnp.int32)
    base, m, y, r = jax.vmap(lambda pi, beta: _option_factors(environment, pi, beta))(
        options.policy.astype(environment.dtype), options.termination.astype(environment.dtype))
    u = jnp.take(m, goals, axis=2)                           # (K, S, T)
    transition = base[None] + jnp.einsum("kst,ktu->tksu", u, jnp.take(y, goals, axis=1))
    reward = jnp.transpose(jnp.take(r, goals, axis=2), (2, 1, 0))
    s = environment.num_states
    others = jnp.arange(s)[None, :] != goals[:, None]
    initial = jnp.where(others, 1.0 / (s - 1), 0.0).astype(environment.dtype)
    return reward, transition, initial
