"""Exact, differentiable policy evaluation.

For a policy `π (S, A)` on an MDP `⟨P, r, γ, s0⟩` (DESIGN.md, "Notation"):

    P_π[s, s'] = Σ_a π[s, a] P[s, a, s'],     r_π[s] = Σ_a π[s, a] r[s, a]
    V_π = (I − γ P_π)^{-1} r_π                 (S,)
    Q_π = r + γ P V_π                          (S, A)
    d_π = s0ᵀ (I − γ P_π)^{-1}                 (S,)  discounted occupancy, sums to 1/(1 − γ)
    J(π) = s0 · V_π = d_π · r_π                scalar

`method="direct"` solves the linear systems with a dense LU factorisation (exact to rounding;
used for dense transitions and for sparse MDPs with at most 2000 states). `method="iterative"`
runs the Richardson iteration `V ← r_π + γ P_π V` (a γ-contraction) through
`optiongrad.implicit.fixed_point`, so memory stays `O(S·A·B)` for sparse MDPs and gradients come
from the implicit function theorem; it stops at relative tolerance `rtol` and returns NaN
(never a silently wrong number) if it does not converge within `max_iter` sweeps.
"""

from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from optiongrad._checks import check_choice, default_rtol
from optiongrad.implicit import fixed_point
from optiongrad.mdp import MDP
from optiongrad.transitions import expectation, policy_matrix, push_forward

Array = jax.Array

METHODS = ("auto", "direct", "iterative")
DIRECT_MAX_STATES = 2000


def _method(mdp: MDP, method: str) -> str:
    check_choice(method, "method", METHODS)
    if method != "auto":
        return method
    return "iterative" if mdp.is_sparse and mdp.num_states > DIRECT_MAX_STATES else "direct"


def _check_policy(mdp: MDP, policy) -> Array:
    policy = jnp.asarray(policy)
    if policy.shape != (mdp.num_states, mdp.num_actions):
        raise ValueError(
            f"policy: expected shape (S, A) = ({mdp.num_states}, {mdp.num_actions}), "
            f"got {policy.shape}"
        )
    return policy.astype(mdp.dtype)


@functools.partial(jax.jit, static_argnames=("operator", "rtol", "max_iter"))
def _richardson(operator, params, init, rtol, max_iter) -> Array:
    result = fixed_point(
        operator, params, init, tol=0.0, rtol=rtol, max_iter=max_iter,
        adjoint_rtol=rtol, adjoint_max_iter=max_iter,
    )
    return jnp.where(result.converged, result.value, jnp.nan)


def _value_sweep(params, v):
    mdp, policy = params
    r_pi = jnp.sum(policy * mdp.rewards, axis=-1)
    return r_pi + mdp.discount * jnp.sum(policy * expectation(mdp.transitions, v), axis=-1)


def _occupancy_sweep(params, d):
    mdp, policy = params
    return mdp.initial + mdp.discount * push_forward(mdp.transitions, d[:, None] * policy)


def policy_evaluation(
    mdp: MDP,
    policy: Array,
    *,
    method: str = "auto",
    rtol: Optional[float] = None,
    max_iter: int = 100_000,
) -> Array:
    """State values `V_π = (I − γ P_π)^{-1} r_π`, shape `(S,)`.

    Args:
      mdp: the MDP.
      policy: `(S, A)`, rows summing to 1.
      method: "auto" (direct unless sparse with more than 2000 states), "direct", "iterative".
      rtol: relative tolerance of the iterative method; default 1e-12 (float64), 1e-6 (float32).
      max_iter: sweeps allowed to the iterative method.
    """
    policy = _check_policy(mdp, policy)
    if _method(mdp, method) == "direct":
        p_pi = policy_matrix(mdp.transitions, policy)
        r_pi = jnp.sum(policy * mdp.rewards, axis=-1)
        eye = jnp.eye(mdp.num_states, dtype=mdp.dtype)
        return jnp.linalg.solve(eye - mdp.discount * p_pi, r_pi)
    rtol = default_rtol(mdp.dtype) if rtol is None else rtol
    return _richardson(
        _value_sweep, (mdp, policy), jnp.zeros(mdp.num_states, mdp.dtype), float(rtol), max_iter
    )


def q_values(mdp: MDP, policy: Array, **kwargs) -> Array:
    """Action values `Q_π = r + γ P V_π`, shape `(S, A)`. Keyword arguments as in
    `policy_evaluation`."""
    v = policy_evaluation(mdp, policy, **kwargs)
    return mdp.rewards + mdp.discount * expectation(mdp.transitions, v)


def occupancy(
    mdp: MDP,
    policy: Array,
    *,
    method: str = "auto",
    rtol: Optional[float] = None,
    max_iter: int = 100_000,
) -> Array:
    """Discounted state occupancy `d_π = s0ᵀ (I − γ P_π)^{-1}`, shape `(S,)`, summing to
    `1/(1 − γ)`. Arguments as in `policy_evaluation`."""
    policy = _check_policy(mdp, policy)
    if _method(mdp, method) == "direct":
        p_pi = policy_matrix(mdp.transitions, policy)
        eye = jnp.eye(mdp.num_states, dtype=mdp.dtype)
        return jnp.linalg.solve((eye - mdp.discount * p_pi).T, mdp.initial)
    rtol = default_rtol(mdp.dtype) if rtol is None else rtol
    return _richardson(_occupancy_sweep, (mdp, policy), mdp.initial, float(rtol), max_iter)


def expected_return(mdp: MDP, policy: Array, **kwargs) -> Array:
    """Expected discounted return `J(π) = s0 · V_π` (scalar). Keyword arguments as in
    `policy_evaluation`."""
    return jnp.dot(mdp.initial, policy_evaluation(mdp, policy, **kwargs))
