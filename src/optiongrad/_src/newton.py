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
Dense transitions only: `P_π` is formed as an `S × S` matrix. Planning over options
(`smdp_value_iteration`) is the same with `P^O (K, S, S)` as an MDP over options with γ inside
(`OptionModelMDP`): `P_μ[s, s'] = Σ_o μ[s, o] P^o[s, s']`, and available options only.

The implicit gradient's adjoint gets the same treatment (`DirectAdjointStart`): at `Q*` the
adjoint equation `u = ḡ + (∂_Q T)ᵀ u` reduces to the states, `u = ḡ + π ⊙ w` with
`(I − γ P_π)ᵀ w = γ Σ_{s, a} ḡ[s, a] P[s, a, ·]`, one dense solve; the plain adjoint iteration
then only confirms its tolerance.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from optiongrad._src import linalg
from optiongrad._src.backups import backup, backup_policy
from optiongrad._src.mdp import MDP
from optiongrad._src.transitions import expectation, policy_matrix, push_forward

Array = jax.Array

NEWTON_BACKUPS = ("logsumexp", "max")


class OptionModelMDP(NamedTuple):
    """An SMDP's option models seen as an MDP over options for the Newton step: `rewards`
    `R (S, K)`, `transitions` `P^O` laid out `(S, K, S)` (γ inside) and `discount` 1."""

    rewards: Array
    transitions: Array
    discount: float = 1.0

    @property
    def num_states(self) -> int:
        return self.rewards.shape[0]


def newton_step(mdp: MDP, q: Array, temperature, kind: str = "logsumexp",
                mask: Optional[Array] = None) -> Array:
    """One step of soft policy iteration (logsumexp) or policy iteration (max), `(S, A)`.

    `π` is the planner's own policy for `Q` (`backup_policy`, over the available actions of
    `mask (S, A)` if given) and the per-state bonus is `m_τ(Q) − Σ_a π Q`, which is `τ H(π)`
    for logsumexp and 0 for max. `mdp` may be an `OptionModelMDP` (planning over options).
    """
    policy = backup_policy(q, temperature, kind, mask)
    bonus = backup(q, temperature, kind, mask) - jnp.sum(policy * q, axis=-1)
    p_pi = policy_matrix(mdp.transitions, policy)
    r_pi = jnp.sum(policy * mdp.rewards, axis=-1) + bonus
    eye = jnp.eye(mdp.num_states, dtype=q.dtype)
    v = linalg.solve(eye - mdp.discount * p_pi, r_pi)
    return mdp.rewards + mdp.discount * expectation(mdp.transitions, v)


@functools.partial(jax.jit, static_argnames=("kind", "tol", "max_steps"))
def policy_iteration_q(mdp: MDP, temperature, kind: str, init: Array, tol: float,
                       max_steps: int = 100, mask: Optional[Array] = None
                       ) -> tuple[Array, Array]:
    """Newton steps from `init` until `‖Q_{k+1} − Q_k‖_∞ ≤ tol`, the step stops shrinking
    within `10⁴ tol` of it (rounding floor of the linear solves, e.g. in float32) or
    `max_steps`; returns
    `(Q, steps)`, `Q` shifted to a sub-solution (`sub_solution`). Not differentiated (used as
    a warm start); compiled once per shape and setting (eager planners call it every time)."""
    mdp, temperature, init = jax.lax.stop_gradient((mdp, temperature, init))

    def cond(carry):
        k, _, delta, previous = carry
        # Stagnation only counts near the solution: far from it Newton steps need not shrink.
        return (k < max_steps) & (delta > tol) & ((delta < previous) | (delta > 1e4 * tol))

    def body(carry):
        k, q, delta, _ = carry
        q_next = newton_step(mdp, q, temperature, kind, mask)
        return k + 1, q_next, jnp.max(jnp.abs(q_next - q)), delta

    big = jnp.asarray(jnp.finfo(init.dtype).max, init.dtype)
    inf = jnp.asarray(jnp.inf, init.dtype)
    steps, q, _, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), init, big, inf))
    return sub_solution(mdp, q, temperature, kind, tol, mask), steps


def sub_solution(mdp: MDP, q: Array, temperature, kind: str, tol: float,
                 mask: Optional[Array] = None) -> Array:
    """`Q` as it is if its residual `‖T(Q) − Q‖_∞` meets `tol` (plain iteration confirms it in
    one sweep); otherwise shifted down just enough to be a sub-solution, `T(Q) ≥ Q`, so that
    the plain sweeps that finish from it rise monotonically to the fixed point, as they do
    from below.

    With `d = T(Q) − Q ≥ m` and `T(Q + c) = T(Q) + c P1` (`P1` the row sums of `γ P`, at most
    `ρ < 1`), the shift `c = min(m, 0) / (1 − ρ)` gives `T(Q + c) − (Q + c) ≥ 0`. Where
    Newton stops at the rounding floor of its solves (float32), a start slightly above the
    fixed point can make the finishing sweeps cycle by an ulp forever when the tolerance is
    below the values' ulp; from below they reach the float32 fixed point itself."""
    value = backup(q, temperature, kind, mask)
    d = mdp.rewards + mdp.discount * expectation(mdp.transitions, value) - q
    rate = mdp.discount * jnp.max(jnp.sum(mdp.transitions, axis=-1))
    shift = jnp.minimum(jnp.min(d), 0) / jnp.where(rate < 1, 1 - rate, jnp.inf)
    return q + jnp.where(jnp.max(jnp.abs(d)) <= tol, 0.0, shift)


def model_of(params) -> tuple:
    """`(mdp, τ, mask)` from a planner's params: `(mdp, τ)` of `soft_value_iteration` or
    `(R, P^O, τ, mask)` of `smdp_value_iteration` (as an `OptionModelMDP`)."""
    if len(params) == 2:
        return params[0], params[1], None
    rewards, transitions, temperature, mask = params
    return OptionModelMDP(rewards, jnp.swapaxes(transitions, 0, 1)), temperature, mask


class DirectAdjointStart(NamedTuple):
    """Where the implicit adjoint of a dense `Q*` starts (`fixed_point`'s `adjoint_start`):
    the exact solution of the adjoint equation reduced to the states (module docstring), from
    one `S × S` solve. `params` are the planner's: `(mdp, τ)`, or `(R, P^O, τ, mask)` over
    options (then `P` is `P^O` and γ is inside it)."""

    kind: str

    def __call__(self, params, q: Array, g: Array) -> Array:
        mdp, temperature, mask = jax.lax.stop_gradient(model_of(params))
        policy = backup_policy(q, temperature, self.kind, mask)
        eye = jnp.eye(mdp.num_states, dtype=q.dtype)
        system = (eye - mdp.discount * policy_matrix(mdp.transitions, policy)).T
        w = linalg.solve(system, mdp.discount * push_forward(mdp.transitions, g))
        return g + policy * w[:, None]
