"""Multi-step (λ-) models: a policy that returns control at random times.

A continuation `λ[s'] ∈ [0, 1]` is evaluated **on entering** `s'`: after each step the policy
keeps control with probability `λ[s']` and returns it (a *decision point*) with probability
`β[s'] = 1 − λ[s']`. With `Λ = diag(λ)`, `B = diag(β)` (DESIGN.md, "Multi-step (λ-) models"):

    execution distribution   D_λ = (I − γ P_π Λ)^{-1}        (S, S)  (includes t = 0)
    reward model             r^λ = D_λ r_π                    (S,)
    decision model           P^λ = γ D_λ P_π B                (S, S)  rows sum to ≤ γ
    generalised evaluation   v = r^λ + P^λ v

`r^λ[s]` is the expected discounted reward until the next decision point, and `P^λ[s, s']` the
discounted probability that the next decision point is at `s'` (γ is inside). For every λ,
`(I − P^λ)^{-1} r^λ = V_π`; `λ ≡ 0` gives the one-step model `(r_π, γ P_π)` and `λ ≡ 1` gives
`(V_π, 0)`.

Corrections to the seed note (its λ-model section): its `d^λ = (I − γ P^λ_π)^{-1} − I` excludes
the current step, which would drop the first reward; its `d^β` loses a γ. Its footnote,
`P^λ = d γ P_π β`, is the form used here, and no backup multiplies `P^λ` by γ again.

A set of λ-models — one per (policy, continuation) pair — is a set of options, and
`optiongrad.planning.smdp_value_iteration` plans over them (multi-step smooth planning).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optiongrad.mdp import MDP
from optiongrad.transitions import policy_matrix

Array = jax.Array


def lambda_model(mdp: MDP, policy: Array, continuation: Array) -> tuple[Array, Array]:
    """The λ-model `(r^λ (S,), P^λ (S, S))` of `policy` with `continuation`.

    Args:
      mdp: the MDP (dense or sparse transitions; `P_π` is formed densely, `O(S²)` memory).
      policy: `(S, A)` action probabilities `π`.
      continuation: `(S,)` `λ[s'] ∈ [0, 1]`, the probability of keeping control on entering
        `s'`.

    Returns:
      `(reward (S,), transition (S, S))`: `r^λ = D_λ r_π`, `P^λ = γ D_λ P_π (I − Λ)` with
      `D_λ = (I − γ P_π Λ)^{-1}`. Both come from one LU factorisation; differentiable in
      everything.
    """
    policy = jnp.asarray(policy, mdp.dtype)
    continuation = jnp.asarray(continuation, mdp.dtype)
    if policy.shape != (mdp.num_states, mdp.num_actions):
        raise ValueError(f"policy: expected shape (S, A) = ({mdp.num_states}, "
                         f"{mdp.num_actions}), got {policy.shape}")
    if continuation.shape != (mdp.num_states,):
        raise ValueError(f"continuation: expected shape (S,) = ({mdp.num_states},), "
                         f"got {continuation.shape}")
    p_pi = policy_matrix(mdp.transitions, policy)
    r_pi = jnp.sum(policy * mdp.rewards, axis=-1)
    gamma = mdp.discount
    eye = jnp.eye(mdp.num_states, dtype=mdp.dtype)
    lhs = eye - gamma * p_pi * continuation[None, :]
    rhs = jnp.concatenate([r_pi[:, None], gamma * p_pi * (1.0 - continuation)[None, :]], axis=1)
    solution = jnp.linalg.solve(lhs, rhs)
    return solution[:, 0], solution[:, 1:]


def execution_distribution(mdp: MDP, policy: Array, continuation: Array) -> Array:
    """`D_λ = (I − γ P_π Λ)^{-1}`, shape `(S, S)`: discounted expected visits to `s'` before
    control returns, starting (and counting the current step) in `s`."""
    p_pi = policy_matrix(mdp.transitions, jnp.asarray(policy, mdp.dtype))
    eye = jnp.eye(mdp.num_states, dtype=mdp.dtype)
    lam = jnp.asarray(continuation, mdp.dtype)
    return jnp.linalg.inv(eye - mdp.discount * p_pi * lam[None, :])


def model_evaluation(reward: Array, transition: Array) -> Array:
    """Generalised policy evaluation `v = (I − P^λ)^{-1} r^λ` of a λ-model, shape `(S,)`."""
    eye = jnp.eye(reward.shape[0], dtype=reward.dtype)
    return jnp.linalg.solve(eye - transition, reward)
