r"""Values of call-and-return policies over options, computed three independent ways.

A policy over options $\mu$ `(S, K)` (zero outside initiation sets) executed call-and-return
(DESIGN.md, "Options") has value

$$
v_\mu = (I - P^O_\mu)^{-1} r^O_\mu, \qquad P^O_\mu[s, s'] = \sum_o \mu[s, o] P^o[s, s'], \qquad
r^O_\mu[s] = \sum_o \mu[s, o] r^o[s]
$$

(`smdp_policy_evaluation`, from option models). `intra_option_policy_evaluation` computes the
same value matrix-free, and `flat_policy_evaluation` on the flattened (state, active option)
Markov chain of the primitive MDP — an independent check (as are the Monte Carlo rollouts of
`rollouts`).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from optiongrad._src import checks, linalg
from optiongrad._src.deprecation import renamed
from optiongrad._src.implicit import fixed_point
from optiongrad._src.mdp import MDP
from optiongrad._src.option_models import check_mdp_and_options, intra_option_update
from optiongrad._src.options import Options
from optiongrad._src.transitions import policy_matrix

Array = jax.Array


def check_mu(mu, options: Options, dtype) -> Array:
    """A policy over options `(S, K)`: rows on the simplex, zero outside initiation sets."""
    support = None if options.initiation is None else options.initiation.T
    return checks.policy(mu, "mu", (options.num_states, options.num_options), "(S, K)", dtype,
                         support=support)


@renamed(reward="rewards", transition="transitions")
def smdp_policy_evaluation(rewards: Array, transitions: Array, mu: Array) -> Array:
    r"""Value $v_\mu = (I - P^O_\mu)^{-1} r^O_\mu$ of a call-and-return policy over options, `(S,)`.

    Args:
      rewards: `(S, K)` option reward models.
      transitions: `(K, S, S)` option transition models (non-negative, rows summing to < 1).
      mu: `(S, K)` policy over options, rows summing to 1.
    """
    rewards = checks.as_array(rewards, "rewards")
    if jnp.ndim(rewards) != 2:
        raise ValueError(f"rewards: expected shape (S, K), got {jnp.shape(rewards)}")
    dtype = checks.float_dtype(rewards)
    s, k = rewards.shape
    transitions = checks.as_array(transitions, "transitions", dtype=dtype)
    checks.shape(transitions, "transitions", (k, s, s), "(K, S, S)")
    mu = checks.policy(mu, "mu", (s, k), "(S, K)", dtype)
    checks.finite(rewards, "rewards")
    checks.substochastic(transitions, "transitions")
    r_mu = jnp.sum(mu * rewards, axis=1)
    p_mu = jnp.einsum("sk,kst->st", mu, transitions)
    return linalg.solve(jnp.eye(s, dtype=dtype) - p_mu, r_mu)


def intra_option_policy_evaluation(mdp: MDP, options: Options, mu: Array, *,
                                   tol: Optional[float] = None, max_iter: int = 100_000,
                                   throw: bool = False) -> Array:
    r"""Value $v_\mu$ `(S,)` of the call-and-return policy over options $\mu$ `(S, K)`, matrix-free.

    The fixed point of $Q \leftarrow \mathtt{intra\_option\_update}(Q, V = \sum_o \mu[:, o] Q[:, o])$ (iterated to
    `tol`, differentiable by the implicit function theorem); equal to
    `smdp_policy_evaluation(*option_models(mdp, options), mu)` without forming the
    `(K, S, S)` option models, so it works for large sparse MDPs. If the solve does not
    converge within `max_iter` sweeps the values are NaN (with `throw=True`, a `RuntimeError`).
    """
    check_mdp_and_options(mdp, options)
    mu = check_mu(mu, options, mdp.dtype)

    def operator(params, q):
        mdp, policy, termination, mu = params
        return intra_option_update(mdp, policy, termination, q, jnp.sum(mu * q, axis=1))

    params = (mdp, options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype), mu)
    q = fixed_point(operator, params, jnp.zeros(mu.shape, mdp.dtype), tol=tol,
                    max_iter=max_iter, throw=throw).value_or_nan()
    return jnp.sum(mu * q, axis=1)


def flat_policy_evaluation(mdp: MDP, options: Options, mu: Array) -> Array:
    r"""$v_\mu$ `(S,)` computed on the flattened (state, active option) chain of the primitive MDP.

    Chain state `(s, o)`: option `o` is in control at `s`. It acts $a \sim \pi^o[s]$, collects
    `r[s, a]`, moves to $s' \sim P[s, a]$, and there terminates with probability $\beta^o[s']$ (then
    $o' \sim \mu[s']$) or continues. With $P_o = P_{\pi^o}$:

    $$
    \begin{aligned}
    V[(s, o)] &= r_{\pi^o}[s] + \gamma \sum_{s'} P_o[s, s'] \Bigl(\beta^o[s'] \sum_{o'} \mu[s', o'] V[(s', o')]
      + (1 - \beta^o[s']) V[(s', o)]\Bigr) \\
    v_\mu[s] &= \sum_o \mu[s, o] V[(s, o)]
    \end{aligned}
    $$

    An independent check of `smdp_policy_evaluation(*option_models(mdp, options), mu)`; dense
    $(S\cdot K) \times (S\cdot K)$ solve, so for small problems.
    """
    check_mdp_and_options(mdp, options)
    mu = check_mu(mu, options, mdp.dtype)
    k, s = options.num_options, mdp.num_states
    pi, beta = options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype)
    p_o = jax.vmap(lambda p: policy_matrix(mdp.transitions, p))(pi)  # (K, S, S)
    r_o = jnp.einsum("ksa,sa->ks", pi, mdp.rewards)  # (K, S)
    # M[(o, s), (o', s')] = γ P_o[s, s'] (β^o[s'] μ[s', o'] + (1 − β^o[s']) δ_oo')
    switch = p_o * beta[:, None, :]  # (K, S, S')
    stay = p_o * (1.0 - beta)[:, None, :]
    m = jnp.einsum("kst,tj->ksjt", switch, mu) + jnp.einsum(
        "kst,kj->ksjt", stay, jnp.eye(k, dtype=mdp.dtype))
    m = mdp.discount * m.reshape(k * s, k * s)
    values = linalg.solve(jnp.eye(k * s, dtype=mdp.dtype) - m, r_o.reshape(-1))
    return jnp.sum(mu * values.reshape(k, s).T, axis=1)
