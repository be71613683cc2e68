r"""Exact, differentiable policy evaluation.

For a policy $\pi$ `(S, A)` on an MDP $\langle P, r, \gamma, s_0\rangle$ (DESIGN.md, "Notation"):

$$
\begin{aligned}
P_\pi[s, s'] &= \sum_a \pi[s, a] P[s, a, s'], \qquad r_\pi[s] = \sum_a \pi[s, a] r[s, a] \\
V_\pi &= (I - \gamma P_\pi)^{-1} r_\pi && (S,) \\
Q_\pi &= r + \gamma P V_\pi && (S, A) \\
d_\pi &= s_0^\top (I - \gamma P_\pi)^{-1} && (S,) \text{ discounted occupancy, sums to } 1/(1 - \gamma) \\
J(\pi) &= s_0 \cdot V_\pi = d_\pi \cdot r_\pi && \text{scalar}
\end{aligned}
$$

`method="direct"` solves the linear systems with a dense LU factorisation (exact to rounding;
used for dense transitions and for sparse MDPs with at most 2000 states). `method="iterative"`
runs the Richardson iteration $V \leftarrow r_\pi + \gamma P_\pi V$ (a γ-contraction) through
`optiongrad.fixed_point`, so memory stays $O(S\cdot A\cdot B)$ for sparse MDPs and gradients come
from the implicit function theorem; it stops at relative tolerance `rtol` and returns NaN
(never a silently wrong number; with `throw=True`, a `RuntimeError`) if it does not converge
within `max_iter` sweeps.
"""

from __future__ import annotations

from typing import Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from optiongrad._src import checks, linalg
from optiongrad._src.implicit import fixed_point
from optiongrad._src.mdp import MDP
from optiongrad._src.solvers import Implicit
from optiongrad._src.transitions import expectation, policy_matrix, push_forward

Array = jax.Array

METHODS = ("auto", "direct", "iterative")
DIRECT_MAX_STATES = 2000


def _check(mdp: MDP, policy, method: str, rtol, max_iter, throw):
    """Validated `(policy, method)`; `method` resolved from "auto"."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    policy = checks.policy(policy, "policy", (mdp.num_states, mdp.num_actions), "(S, A)",
                           mdp.dtype)
    checks.choice(method, "method", METHODS)
    checks.tolerance(rtol, "rtol")
    checks.iterations(max_iter, "max_iter")
    checks.boolean(throw, "throw")
    if method == "auto":
        method = "iterative" if mdp.is_sparse and mdp.num_states > DIRECT_MAX_STATES \
            else "direct"
    return policy, method


@eqx.filter_jit
def _richardson(operator, params, init, rtol, max_iter, throw) -> Array:
    return fixed_point(operator, params, init, tol=0.0, rtol=rtol, max_iter=max_iter,
                       adjoint=Implicit(rtol=rtol, max_iter=max_iter),
                       throw=throw).value_or_nan()


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
    throw: bool = False,
) -> Array:
    r"""State values $V_\pi = (I - \gamma P_\pi)^{-1} r_\pi$, shape `(S,)`.

    Args:
      mdp: the MDP.
      policy: `(S, A)`, rows summing to 1.
      method: "auto" (direct unless sparse with more than 2000 states), "direct", "iterative".
      rtol: relative tolerance of the iterative method; default 1e-12 (float64), 1e-6 (float32).
      max_iter: sweeps allowed to the iterative method.
      throw: raise a `RuntimeError` if the iterative method does not converge (otherwise its
        values are NaN).
    """
    policy, method = _check(mdp, policy, method, rtol, max_iter, throw)
    if method == "direct":
        p_pi = policy_matrix(mdp.transitions, policy)
        r_pi = jnp.sum(policy * mdp.rewards, axis=-1)
        eye = jnp.eye(mdp.num_states, dtype=mdp.dtype)
        return linalg.solve(eye - mdp.discount * p_pi, r_pi)
    rtol = checks.default_rtol(mdp.dtype) if rtol is None else float(rtol)
    return _richardson(_value_sweep, (mdp, policy), jnp.zeros(mdp.num_states, mdp.dtype), rtol,
                       int(max_iter), throw)


def q_values(mdp: MDP, policy: Array, **kwargs) -> Array:
    r"""Action values $Q_\pi = r + \gamma P V_\pi$, shape `(S, A)`. Keyword arguments as in
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
    throw: bool = False,
) -> Array:
    r"""Discounted state occupancy $d_\pi = s_0^\top (I - \gamma P_\pi)^{-1}$, shape `(S,)`, summing to
    $1/(1 - \gamma)$. Arguments as in `policy_evaluation`."""
    policy, method = _check(mdp, policy, method, rtol, max_iter, throw)
    if method == "direct":
        p_pi = policy_matrix(mdp.transitions, policy)
        eye = jnp.eye(mdp.num_states, dtype=mdp.dtype)
        return linalg.solve((eye - mdp.discount * p_pi).T, mdp.initial)
    rtol = checks.default_rtol(mdp.dtype) if rtol is None else float(rtol)
    return _richardson(_occupancy_sweep, (mdp, policy), mdp.initial, rtol, int(max_iter),
                       throw)


def expected_return(mdp: MDP, policy: Array, **kwargs) -> Array:
    r"""Expected discounted return $J(\pi) = s_0 \cdot V_\pi$ (scalar). Keyword arguments as in
    `policy_evaluation`."""
    return jnp.dot(mdp.initial, policy_evaluation(mdp, policy, **kwargs))
