"""Soft policy iteration: Newton steps on the Bellman equation of a dense MDP.

For the logsumexp backup (entropy-regularised control, temperature `τ`) one step is

    π = softmax(Q_k / τ),
    v = (I − γ P_π)^{-1} (r_π + τ H(π)),      H(π)[s] = −Σ_a π[s, a] log π[s, a],
    Q_{k+1} = r + γ P v,

and for the hard `max` backup it is Howard's policy iteration (`π` greedy, `H` dropped). Both
are Newton's method on `Q = T(Q)` (Puterman & Brumelle 1979; for the soft case, soft policy
iteration, Haarnoja et al. 2018), so they converge in a handful of steps — each a dense
`S × S` solve — where value iteration needs `log(tol) / log γ` sweeps.

`soft_value_iteration(..., solver=og.solvers.Newton())` uses this as a warm start and then runs the
ordinary fixed-point iteration from it (normally one or two sweeps), so the result, its
convergence report and its implicit gradient are exactly those of plain iteration.
Dense transitions only: `P_π` is formed as an `S × S` matrix.

The implicit gradient's adjoint gets the same treatment (`DirectAdjointStart`): at `Q*` the
adjoint equation `u = ḡ + (∂_Q T)ᵀ u` reduces to the states, `u = ḡ + π ⊙ w` with
`(I − γ P_π)ᵀ w = γ Σ_{s, a} ḡ[s, a] P[s, a, ·]`, one dense solve; the plain adjoint iteration
then only confirms its tolerance.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from optiongrad._src.backups import backup, backup_policy
from optiongrad._src.mdp import MDP
from optiongrad._src.transitions import expectation, policy_matrix, push_forward

Array = jax.Array

NEWTON_BACKUPS = ("logsumexp", "max")


def newton_step(mdp: MDP, q: Array, temperature, kind: str = "logsumexp") -> Array:
    """One step of soft policy iteration (logsumexp) or policy iteration (max), `(S, A)`.

    `π` is the planner's own policy for `Q` (`backup_policy`) and the per-state bonus
    is `m_τ(Q) − Σ_a π Q`, which is `τ H(π)` for logsumexp and 0 for max.
    """
    policy = backup_policy(q, temperature, kind)
    bonus = backup(q, temperature, kind) - jnp.sum(policy * q, axis=-1)
    p_pi = policy_matrix(mdp.transitions, policy)
    r_pi = jnp.sum(policy * mdp.rewards, axis=-1) + bonus
    eye = jnp.eye(mdp.num_states, dtype=q.dtype)
    v = jnp.linalg.solve(eye - mdp.discount * p_pi, r_pi)
    return mdp.rewards + mdp.discount * expectation(mdp.transitions, v)


def policy_iteration_q(mdp: MDP, temperature, kind: str, init: Array, tol: float,
                       max_steps: int = 100) -> tuple[Array, Array]:
    """Newton steps from `init` until `‖Q_{k+1} − Q_k‖_∞ ≤ tol`, the step stops shrinking
    within `10⁴ tol` of it (rounding floor of the linear solves, e.g. in float32) or
    `max_steps`; returns
    `(Q, steps)`. Not differentiated (used as a warm start)."""
    mdp, temperature, init = jax.lax.stop_gradient((mdp, temperature, init))

    def cond(carry):
        k, _, delta, previous = carry
        # Stagnation only counts near the solution: far from it Newton steps need not shrink.
        return (k < max_steps) & (delta > tol) & ((delta < previous) | (delta > 1e4 * tol))

    def body(carry):
        k, q, delta, _ = carry
        q_next = newton_step(mdp, q, temperature, kind)
        return k + 1, q_next, jnp.max(jnp.abs(q_next - q)), delta

    big = jnp.asarray(jnp.finfo(init.dtype).max, init.dtype)
    inf = jnp.asarray(jnp.inf, init.dtype)
    steps, q, _, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), init, big, inf))
    return q, steps


class DirectAdjointStart(NamedTuple):
    """Where the implicit adjoint of a dense `Q*` starts (`fixed_point`'s `adjoint_start`):
    the exact solution of the adjoint equation reduced to the states (module docstring), from
    one `S × S` solve. `params` are the planner's `(mdp, τ)`."""

    kind: str

    def __call__(self, params, q: Array, g: Array) -> Array:
        mdp, temperature = jax.lax.stop_gradient(params)
        policy = backup_policy(q, temperature, self.kind)
        eye = jnp.eye(mdp.num_states, dtype=q.dtype)
        system = (eye - mdp.discount * policy_matrix(mdp.transitions, policy)).T
        w = jnp.linalg.solve(system, mdp.discount * push_forward(mdp.transitions, g))
        return g + policy * w[:, None]
