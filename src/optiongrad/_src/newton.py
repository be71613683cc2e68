r"""Soft policy iteration: Newton steps on the Bellman equation of a dense MDP.

For the logsumexp backup (entropy-regularised control, temperature $\tau$) one step is

$$
\begin{aligned}
\pi &= \operatorname{softmax}(Q_k / \tau), \\
v &= (I - \gamma P_\pi)^{-1} \bigl(r_\pi + \tau H(\pi)\bigr), \qquad H(\pi)[s] = -\sum_a \pi[s, a] \log \pi[s, a], \\
Q_{k+1} &= r + \gamma P v,
\end{aligned}
$$

and for the hard `max` backup it is Howard's policy iteration ($\pi$ greedy, `H` dropped). Both
are Newton's method on `Q = T(Q)` (Puterman & Brumelle 1979; for the soft case, soft policy
iteration, Haarnoja et al. 2018), so they converge in a handful of steps — each a dense
$S \times S$ solve — where value iteration needs $\log(\mathrm{tol}) / \log \gamma$ sweeps. Once the
policy has nearly settled, chord steps reuse the last LU factors (`chord_step`; Shamanskii's
method), so about four factorisations do the work of six to ten Newton steps
(`policy_iteration_q`).

`soft_value_iteration(..., solver=og.solvers.Newton())` uses this as a warm start and then runs the
ordinary fixed-point iteration from it (normally one or two sweeps), so the result, its
convergence report and its implicit gradient are exactly those of plain iteration.
Dense transitions only: $P_\pi$ is formed as an $S \times S$ matrix. Planning over options
(`smdp_value_iteration`) is the same with $P^O$ `(K, S, S)` as an MDP over options with γ inside
(`OptionModelMDP`): $P_\mu[s, s'] = \sum_o \mu[s, o] P^o[s, s']$, and available options only.

The implicit gradient's adjoint gets the same treatment (`DirectAdjointStart`): at $Q^*$ the
adjoint equation $u = \bar{g} + (\partial_Q T)^\top u$ reduces to the states, $u = \bar{g} + \pi \odot w$ with
$(I - \gamma P_\pi)^\top w = \gamma \sum_{s, a} \bar{g}[s, a] P[s, a, \cdot]$, one dense solve; the plain adjoint iteration
then only confirms its tolerance.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional

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
    `R (S, K)`, `transitions` $P^O$ laid out `(S, K, S)` (γ inside) and `discount` 1."""

    rewards: Array
    transitions: Array
    discount: float = 1.0

    @property
    def num_states(self) -> int:
        return self.rewards.shape[0]


def newton_step(mdp: MDP, q: Array, temperature, kind: str = "logsumexp",
                mask: Optional[Array] = None) -> Array:
    r"""One step of soft policy iteration (logsumexp) or policy iteration (max), `(S, A)`:
    `chord_step` with the factors of $I - \gamma P_\pi$ at $\pi$, the planner's own policy for
    `Q` (`backup_policy`, over the available actions of `mask (S, A)` if given). Its result is
    $r + \gamma P v$ with $v = (I - \gamma P_\pi)^{-1} (r_\pi + m_\tau(Q) - \sum_a \pi Q)$: the
    soft value of $\pi$, whose per-state bonus is $\tau H(\pi)$ for logsumexp and 0 for max.
    `mdp` may be an `OptionModelMDP`."""
    d = bellman_residual(mdp, q, temperature, kind, mask)
    return _newton(mdp, q, d, temperature, kind, mask)[0]


def _newton(mdp: MDP, q: Array, d: Array, temperature, kind: str,
            mask: Optional[Array]) -> tuple[Array, Array, tuple[Array, Array]]:
    """`newton_step` from `Q` and its residual `d`, with the policy and the factors it used
    (for the chord steps that follow)."""
    policy = backup_policy(q, temperature, kind, mask)
    factors = factor(mdp, policy)
    return chord_step(mdp, q, d, policy, factors), policy, factors


def bellman_residual(mdp: MDP, q: Array, temperature, kind: str,
                     mask: Optional[Array] = None) -> Array:
    r"""$d = T(Q) - Q$ with $T(Q) = r + \gamma P\, m_\tau(Q)$, `(S, A)`."""
    value = backup(q, temperature, kind, mask)
    return mdp.rewards + mdp.discount * expectation(mdp.transitions, value) - q


def factor(mdp: MDP, policy: Array) -> tuple[Array, Array]:
    r"""LU factors (with pivots) of $I - \gamma P_\pi$: `(S, S)` and `(S,)`."""
    eye = jnp.eye(mdp.num_states, dtype=policy.dtype)
    return linalg.lu_factor(eye - mdp.discount * policy_matrix(mdp.transitions, policy))


def chord_step(mdp: MDP, q: Array, d: Array, policy: Array,
               factors: tuple[Array, Array]) -> Array:
    r"""$Q + d + \gamma P (I - \gamma P_\pi)^{-1} \sum_a \pi d$, `(S, A)`, for the residual
    $d = T(Q) - Q$ and the LU `factors` of $I - \gamma P_\pi$ for a policy $\pi$ `(S, A)`.

    With $\pi$ the policy of `Q` itself this is Newton's step $Q + (I - \partial T)^{-1} d$
    ($\partial T = \gamma P \Pi$, $(\Pi x)[s] = \sum_a \pi[s, a] x[s, a]$, and
    $(I - \gamma P \Pi)^{-1} = I + \gamma P (I - \gamma P_\pi)^{-1} \Pi$ since $\Pi P = P_\pi$).
    With the factors of an earlier policy it is the chord (simplified Newton) step: a sweep and
    two triangular solves instead of an $O(S^3)$ factorisation, converging linearly, and fast
    once the policy has settled (Kelley, *Iterative Methods for Linear and Nonlinear
    Equations*, 1995, §5.4)."""
    w = linalg.lu_solve(factors, jnp.sum(policy * d, axis=-1))
    return q + d + mdp.discount * expectation(mdp.transitions, w)


@functools.partial(jax.jit, static_argnames=("kind", "tol", "max_steps", "newton_steps",
                                             "chord_rate"))
def policy_iteration_q(mdp: MDP, temperature, kind: str, init: Array, tol: float,
                       max_steps: int = 100, mask: Optional[Array] = None,
                       newton_steps: int = 4, chord_rate: float = 0.5
                       ) -> tuple[Array, Array]:
    r"""Newton's method, finished by chord steps, from `init` until the residual
    $\Vert T(Q) - Q\Vert_\infty \le \mathrm{tol}$; returns `(Q, factorisations)`, `Q` shifted to a sub-solution
    (`sub_solution`). Not differentiated (a warm start); compiled once per shape and setting
    (eager planners call it every time).

    Each outer step factorises $I - \gamma P_\pi$ at the current policy and takes the Newton step
    (`chord_step` with fresh factors): soft policy iteration, whose step is the soft value of
    the current policy whatever `Q` was. From the `newton_steps`-th factorisation on, chord
    steps with the same factors follow while each cuts the residual by `chord_rate` or more
    (Shamanskii's method, with an adaptive number of chord steps; a step that makes the
    residual grow is undone), then the next outer step factorises again. On the project's
    goal tasks four Newton steps bring the policy close enough that one to three chord steps,
    each a sweep and two triangular solves, replace the last two to four factorisations. The
    outer loop stops at the tolerance, after `max_steps` factorisations, or when a Newton step
    no longer shrinks a residual already within $100\,\mathrm{tol}$ (the rounding floor of the solves,
    e.g. in float32). The schedule depends only on the step count, not on the data, so under
    `vmap` the batch's problems factorise together (a `vmap` of while loops runs each loop
    until its slowest member is done)."""
    mdp, temperature, init = jax.lax.stop_gradient((mdp, temperature, init))

    def residual(q):
        d = bellman_residual(mdp, q, temperature, kind, mask)
        return d, jnp.max(jnp.abs(d))

    def chord(inner, policy, factors):
        q, d, norm, _ = inner
        q_next = chord_step(mdp, q, d, policy, factors)
        d_next, n_next = residual(q_next)
        keep = n_next <= norm
        return (jnp.where(keep, q_next, q), jnp.where(keep, d_next, d),
                jnp.minimum(n_next, norm), n_next / norm)

    def cond(carry):
        k, (_, _, norm, _), newton_rate = carry
        # Stagnation only counts near the solution: far from it Newton steps need not shrink.
        return (k < max_steps) & (norm > tol) & ((newton_rate < 1) | (norm > 100 * tol))

    def body(carry):
        k, (q, d, norm, _), _ = carry
        q_next, policy, factors = _newton(mdp, q, d, temperature, kind, mask)
        d_next, n_next = residual(q_next)
        rate = n_next / norm
        chords = jax.lax.while_loop(
            lambda c: (k + 1 >= newton_steps) & (c[2] > tol) & (c[3] <= chord_rate),
            functools.partial(chord, policy=policy, factors=factors),
            (q_next, d_next, n_next, jnp.zeros_like(rate)))
        return k + 1, chords, rate

    zero = jnp.asarray(0, init.dtype)
    start = (init, *residual(init), zero)
    steps, (q, d, _, _), _ = jax.lax.while_loop(cond, body, (jnp.int32(0), start, zero))
    return sub_solution(mdp, q, d, tol), steps


def sub_solution(mdp: MDP, q: Array, d: Array, tol: float) -> Array:
    r"""`Q` as it is if its residual `d` ($= T(Q) - Q$, `(S, A)`) meets
    $\Vert d\Vert_\infty \le \mathrm{tol}$ (plain iteration confirms it in one sweep);
    otherwise shifted down just enough to be a sub-solution, $T(Q) \ge Q$, so that the plain
    sweeps that finish from it rise monotonically to the fixed point, as they do from below.

    With $d = T(Q) - Q \ge m$ and `T(Q + c) = T(Q) + c P1` (`P1` the row sums of $\gamma P$, at most
    $\rho < 1$), the shift $c = \min(m, 0) / (1 - \rho)$ gives $T(Q + c) - (Q + c) \ge 0$. Where
    Newton stops at the rounding floor of its solves (float32), a start slightly above the
    fixed point can make the finishing sweeps cycle by an ulp forever when the tolerance is
    below the values' ulp; from below they reach the float32 fixed point itself."""
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
    r"""Where the implicit adjoint of a dense $Q^*$ starts (`fixed_point`'s `adjoint_start`):
    the exact solution of the adjoint equation reduced to the states (module docstring), from
    one $S \times S$ solve. `params` are the planner's: `(mdp, τ)`, or `(R, P^O, τ, mask)` over
    options (then `P` is $P^O$ and γ is inside it).

    With `pays` set (a function of $(S, \gamma)$, for a discount known only at run time) the
    solve runs only where `pays(S, γ)` holds (`lax.cond`); elsewhere the adjoint starts from
    $\bar{g}$."""

    kind: str
    pays: Optional[Callable] = None

    def __call__(self, params, q: Array, g: Array) -> Array:
        mdp, temperature, mask = jax.lax.stop_gradient(model_of(params))

        def direct():
            policy = backup_policy(q, temperature, self.kind, mask)
            eye = jnp.eye(mdp.num_states, dtype=q.dtype)
            system = (eye - mdp.discount * policy_matrix(mdp.transitions, policy)).T
            w = linalg.solve(system, mdp.discount * push_forward(mdp.transitions, g))
            return g + policy * w[:, None]

        if self.pays is None:
            return direct()
        return jax.lax.cond(self.pays(mdp.num_states, mdp.discount), direct, lambda: g)
