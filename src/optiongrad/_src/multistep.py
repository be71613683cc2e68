r"""Multi-step (λ-) models: a policy that returns control at random times.

A continuation $\lambda[s'] \in [0, 1]$ is evaluated **on entering** `s'`: after each step the policy
keeps control with probability $\lambda[s']$ and returns it (a *decision point*) with probability
$\beta[s'] = 1 - \lambda[s']$. With $\Lambda = \operatorname{diag}(\lambda)$, $B = \operatorname{diag}(\beta)$ (DESIGN.md, "Multi-step (λ-) models"):

$$
\begin{aligned}
\text{execution distribution} && D_\lambda &= (I - \gamma P_\pi \Lambda)^{-1} && (S, S) \text{ (includes $t = 0$)} \\
\text{reward model} && r^\lambda &= D_\lambda r_\pi && (S,) \\
\text{decision model} && P^\lambda &= \gamma D_\lambda P_\pi B && (S, S) \text{ rows sum to $\le \gamma$} \\
\text{generalised evaluation} && v &= r^\lambda + P^\lambda v
\end{aligned}
$$

$r^\lambda[s]$ is the expected discounted reward until the next decision point, and $P^\lambda[s, s']$ the
discounted probability that the next decision point is at `s'` (γ is inside). For every λ,
$(I - P^\lambda)^{-1} r^\lambda = V_\pi$; $\lambda \equiv 0$ gives the one-step model $(r_\pi, \gamma P_\pi)$ and $\lambda \equiv 1$ gives
$(V_\pi, 0)$.

Corrections to the research note the project grew out of (its λ-model section): its $d^\lambda = (I - \gamma P^\lambda_\pi)^{-1} - I$ excludes
the current step, which would drop the first reward; its $d^\beta$ loses a γ. Its footnote,
$P^\lambda = d \gamma P_\pi \beta$, is the form used here, and no backup multiplies $P^\lambda$ by γ again.

A set of λ-models — one per (policy, continuation) pair — is a set of options, and
`smdp_value_iteration` plans over them (multi-step smooth planning).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optiongrad._src import checks, linalg
from optiongrad._src.deprecation import renamed
from optiongrad._src.mdp import MDP
from optiongrad._src.transitions import policy_matrix

Array = jax.Array


def lambda_model(mdp: MDP, policy: Array, continuation: Array) -> tuple[Array, Array]:
    r"""The λ-model $(r^\lambda (S,), P^\lambda (S, S))$ of `policy` with `continuation`.

    Args:
      mdp: the MDP (dense or sparse transitions; $P_\pi$ is formed densely, $O(S^2)$ memory).
      policy: `(S, A)` action probabilities $\pi$.
      continuation: `(S,)` $\lambda[s'] \in [0, 1]$, the probability of keeping control on entering
        `s'`.

    Returns:
      `(rewards (S,), transitions (S, S))`: $r^\lambda = D_\lambda r_\pi$, $P^\lambda = \gamma D_\lambda P_\pi (I - \Lambda)$ with
      $D_\lambda = (I - \gamma P_\pi \Lambda)^{-1}$. Both come from one LU factorisation; differentiable in
      everything.
    """
    policy, continuation = _check(mdp, policy, continuation)
    p_pi = policy_matrix(mdp.transitions, policy)
    r_pi = jnp.sum(policy * mdp.rewards, axis=-1)
    gamma = mdp.discount
    eye = jnp.eye(mdp.num_states, dtype=mdp.dtype)
    lhs = eye - gamma * p_pi * continuation[None, :]
    rhs = jnp.concatenate([r_pi[:, None], gamma * p_pi * (1.0 - continuation)[None, :]], axis=1)
    solution = linalg.solve(lhs, rhs)
    return solution[:, 0], solution[:, 1:]


def execution_distribution(mdp: MDP, policy: Array, continuation: Array) -> Array:
    r"""$D_\lambda = (I - \gamma P_\pi \Lambda)^{-1}$, shape `(S, S)`: discounted expected visits to `s'` before
    control returns, starting (and counting the current step) in `s`."""
    policy, lam = _check(mdp, policy, continuation)
    p_pi = policy_matrix(mdp.transitions, policy)
    eye = jnp.eye(mdp.num_states, dtype=mdp.dtype)
    return linalg.inv(eye - mdp.discount * p_pi * lam[None, :])


@renamed(reward="rewards", transition="transitions")
def model_evaluation(rewards: Array, transitions: Array) -> Array:
    r"""Generalised policy evaluation $v = (I - P^\lambda)^{-1} r^\lambda$ of a λ-model, shape `(S,)`.

    Args:
      rewards: `(S,)` reward model $r^\lambda$.
      transitions: `(S, S)` decision model $P^\lambda$, non-negative, rows summing to less than 1.
    """
    rewards = checks.as_array(rewards, "rewards")
    if jnp.ndim(rewards) != 1:
        raise ValueError(f"rewards: expected shape (S,), got {jnp.shape(rewards)}")
    dtype = checks.float_dtype(rewards)
    transitions = checks.as_array(transitions, "transitions", dtype=dtype)
    checks.shape(transitions, "transitions", (rewards.shape[0],) * 2, "(S, S)")
    checks.finite(rewards, "rewards")
    checks.substochastic(transitions, "transitions")
    eye = jnp.eye(rewards.shape[0], dtype=dtype)
    return linalg.solve(eye - transitions, rewards.astype(dtype))


def _check(mdp, policy, continuation):
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    shape = (mdp.num_states, mdp.num_actions)
    policy = checks.policy(policy, "policy", shape, "(S, A)", mdp.dtype)
    continuation = checks.as_array(continuation, "continuation", dtype=mdp.dtype)
    checks.shape(continuation, "continuation", (mdp.num_states,), "(S,)")
    checks.in_unit_interval(continuation, "continuation")
    return policy, continuation
