"""Smooth planners: soft value iteration on an MDP and smooth SMDP planning over options.

Smooth Bellman operator on `Q ∈ R^{S×A}` (DESIGN.md, "Smooth planner"):

    T_θ(Q) = r_θ + γ P m_τ(Q),

with a backup `m_τ` applied to each row `Q[s, :]`:

| backup        | `m_τ(Q)[s]`                          | contraction     |
|---------------|--------------------------------------|-----------------|
| `logsumexp`   | `τ log Σ_a exp(Q[s, a]/τ)`           | yes, modulus γ  |
| `mellowmax`   | `τ log((1/A) Σ_a exp(Q[s, a]/τ))`    | yes, modulus γ  |
| `boltzmann`   | `Σ_a softmax(Q[s]/τ)_a Q[s, a]`      | not in general  |
| `max`         | `max_a Q[s, a]`                      | yes (τ = 0)     |

The planner's policy is `π̂ = softmax(Q*/τ)` row-wise (greedy, ties split evenly, for `max`).
For logsumexp and mellowmax `∂_Q T = γ P Π̂` with `P Π̂` row-stochastic, so the spectral radius
of `∂_Q T` is at most γ < 1 and `I − ∂_Q T` is always invertible (the seed note's IFT
condition 3); for boltzmann check it with `jacobian_spectral_radius`.

Over options (SMDP, DESIGN.md "Options") with option models `R (S, K)`, `P^O (K, S, S)`:

    Q_O[s, o] = R[s, o] + Σ_s' P^o[s, s'] m_τ(Q_O)[s']      (γ is inside P^o)

Both planners solve their fixed point with `optiongrad.implicit.fixed_point` and so share the
one IFT implementation.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad import newton
from optiongrad._checks import check_choice, default_tol, is_concrete
from optiongrad.implicit import DIFFERENTIATION, fixed_point
from optiongrad.mdp import MDP
from optiongrad.options import intra_option_update
from optiongrad.transitions import SparseTransitions, expectation

Array = jax.Array

BACKUPS = ("logsumexp", "mellowmax", "boltzmann", "max")
"""The smooth backups `m_τ` (and the τ = 0 reference `max`); see `backup`."""


class PlanResult(NamedTuple):
    """Output of a smooth planner.

    Attributes:
      q: `(S, A)` (or `(S, K)` over options) action values `Q*` at the last iterate.
      policy: `(S, A)` planner policy `softmax(Q*/τ)` (greedy for the `max` backup).
      iterations: number of Bellman sweeps performed (int32).
      residual: `‖Q_{k+1} − Q_k‖_∞` of the last sweep.
      converged: `residual ≤ tol`. An unconverged result is always flagged here.
    """

    q: Array
    policy: Array
    iterations: Array
    residual: Array
    converged: Array


def backup(q: Array, temperature, kind: str = "logsumexp", mask: Optional[Array] = None) -> Array:
    """Row-wise backup `m_τ(Q)` over the last axis.

    Args:
      q: `(..., A)` action values.
      temperature: `τ > 0` (ignored by `max`).
      kind: one of `BACKUPS`.
      mask: optional `(..., A)` bool; actions where it is False are excluded (initiation sets).
    Returns:
      `(...)` backed-up values. Computed stably (`logsumexp` subtracts the row max), so
      `τ = 1e-3` with values of `1e3` does not overflow.
    """
    if kind == "max":
        return jnp.max(q if mask is None else jnp.where(mask, q, -jnp.inf), axis=-1)
    scaled = q / temperature
    if kind in ("logsumexp", "mellowmax"):
        value = temperature * jax.nn.logsumexp(scaled, axis=-1, where=mask)
        if kind == "mellowmax":
            count = q.shape[-1] if mask is None else jnp.sum(mask, axis=-1)
            value = value - temperature * jnp.log(jnp.asarray(count, q.dtype))
        return value
    if kind == "boltzmann":
        weights = jax.nn.softmax(scaled, axis=-1, where=mask)
        return jnp.sum(weights * (q if mask is None else jnp.where(mask, q, 0.0)), axis=-1)
    raise ValueError(f"backup: expected one of {BACKUPS}, got {kind!r}")


def backup_policy(
    q: Array, temperature, kind: str = "logsumexp", mask: Optional[Array] = None
) -> Array:
    """The planner's policy: `softmax(Q/τ)` row-wise, or greedy (ties split) for `max`.

    Args:
      q: `(..., A)`; temperature: `τ`; kind: backup name; mask: optional `(..., A)` bool.
    Returns:
      `(..., A)` rows summing to 1, zero where `mask` is False.
    """
    if kind == "max":
        masked = q if mask is None else jnp.where(mask, q, -jnp.inf)
        best = (masked == jnp.max(masked, axis=-1, keepdims=True)).astype(q.dtype)
        return best / jnp.sum(best, axis=-1, keepdims=True)
    policy = jax.nn.softmax(q / temperature, axis=-1, where=mask)
    return policy if mask is None else jnp.where(mask, policy, 0.0)


def _bellman(params, q, *, kind: str):
    """`T(Q) = r + γ P m_τ(Q)` for an MDP; `params = (mdp, τ)`."""
    mdp, temperature = params
    return mdp.rewards + mdp.discount * expectation(
        mdp.transitions, backup(q, temperature, kind)
    )


def smdp_bellman(params, q, *, kind: str):
    """`T(Q)[s, o] = R[s, o] + Σ_s' P^o[s, s'] m_τ(Q)[s']`; `params = (R, P^O, τ, mask)`."""
    reward, transition, temperature, mask = params
    value = backup(q, temperature, kind, mask)
    return reward + jnp.einsum("kst,t->sk", transition, value)


def _check_planner_args(temperature, kind, differentiation, init, shape) -> None:
    check_choice(kind, "backup", BACKUPS)
    check_choice(differentiation, "differentiation", DIFFERENTIATION)
    if is_concrete(temperature):
        t = np.asarray(temperature)
        if t.ndim != 0 or not np.isfinite(t):
            raise ValueError(f"temperature: expected a finite scalar, got {temperature!r}")
        if kind != "max" and t <= 0:
            raise ValueError(
                f"temperature: the {kind!r} backup needs temperature > 0, got {float(t)}"
            )
        if kind == "max" and t < 0:
            raise ValueError(f"temperature: expected >= 0, got {float(t)}")
    if init is not None and jnp.shape(init) != shape:
        raise ValueError(f"init: expected shape {shape}, got {jnp.shape(init)}")


_STATIC = ("kind", "tol", "max_iter", "differentiation", "num_sweeps", "adjoint_rtol",
           "adjoint_max_iter", "solver")


@functools.partial(jax.jit, static_argnames=("operator",) + _STATIC)
def _plan(operator, params, init, temperature, mask, *, kind, **solver) -> PlanResult:
    result = fixed_point(functools.partial(operator, kind=kind), params, init, **solver)
    policy = backup_policy(result.value, temperature, kind, mask)
    return PlanResult(result.value, policy, result.iterations, result.residual, result.converged)


def soft_value_iteration(
    mdp: MDP,
    temperature,
    *,
    backup: str = "logsumexp",
    tol: Optional[float] = None,
    max_iter: int = 10_000,
    differentiation: str = "implicit",
    num_sweeps: Optional[int] = None,
    init: Optional[Array] = None,
    adjoint_rtol: Optional[float] = None,
    adjoint_max_iter: Optional[int] = None,
    solver: str = "iteration",
) -> PlanResult:
    """Smooth (soft) value iteration `Q_{k+1} = r + γ P m_τ(Q_k)` from `Q_0 = init` (zeros).

    Args:
      mdp: the MDP to plan in (dense or sparse transitions).
      temperature: `τ > 0` (any `τ ≥ 0` for `backup="max"`); differentiable.
      backup: "logsumexp" (default), "mellowmax", "boltzmann" or "max".
      tol: stop when `‖Q_{k+1} − Q_k‖_∞ ≤ tol`; default 1e-10 (float64) / 1e-5 (float32).
      max_iter: maximum number of sweeps with `differentiation="implicit"`.
      differentiation: "implicit" — iterate to `tol`, gradients by the implicit function
        theorem at the fixed point (`optiongrad.implicit`); "unrolled" — exactly
        `num_sweeps` sweeps in a `lax.scan`, differentiated through the sweeps.
      num_sweeps: number of sweeps for "unrolled" (a fixed planning budget).
      init: `(S, A)` warm start (does not change the fixed point or its gradient).
      adjoint_rtol, adjoint_max_iter: adjoint-solve controls (see `fixed_point`).
      solver: "iteration" (plain sweeps), "anderson" (Anderson-accelerated sweeps and
        adjoint; same fixed point and gradient, fewer sweeps at high γ with smooth backups —
        see `optiongrad.implicit` and the README benchmarks) or, for dense MDPs with the
        logsumexp or max backup, "newton" (soft policy iteration warm start,
        `optiongrad.newton`, then plain sweeps to `tol`; `iterations` counts only those).

    Returns:
      `PlanResult(q (S, A), policy (S, A), iterations, residual, converged)`. Gradients flow
      to `mdp.rewards`, `mdp.transitions`, `mdp.discount` and `temperature`.

    Reference: the smooth Bellman operator of DESIGN.md; entropy-regularised value iteration
    (Ziebart 2010; Haarnoja et al. 2017); mellowmax (Asadi & Littman 2017).
    """
    shape = (mdp.num_states, mdp.num_actions)
    _check_planner_args(temperature, backup, differentiation, init, shape)
    temperature = jnp.asarray(temperature, mdp.dtype)
    init = jnp.zeros(shape, mdp.dtype) if init is None else jnp.asarray(init, mdp.dtype)
    if solver == "newton":
        if backup not in newton.BACKUPS or differentiation != "implicit":
            raise ValueError(f"solver: 'newton' needs backup in {newton.BACKUPS} and "
                             f"differentiation='implicit', got backup={backup!r}, "
                             f"differentiation={differentiation!r}")
        if isinstance(mdp.transitions, SparseTransitions):
            raise ValueError("solver: 'newton' needs dense transitions (it solves S × S "
                             "systems); use 'iteration' or 'anderson' for sparse MDPs")
        init, _ = newton.policy_iteration_q(
            mdp, temperature, backup, init, default_tol(mdp.dtype) if tol is None else tol)
        solver = "iteration"
    return _plan(
        _bellman, (mdp, temperature), init, temperature, None, kind=backup, tol=tol,
        max_iter=max_iter, differentiation=differentiation, num_sweeps=num_sweeps,
        adjoint_rtol=adjoint_rtol, adjoint_max_iter=adjoint_max_iter, solver=solver,
    )


def smdp_value_iteration(
    reward: Array,
    transition: Array,
    temperature,
    *,
    initiation: Optional[Array] = None,
    backup: str = "logsumexp",
    tol: Optional[float] = None,
    max_iter: int = 10_000,
    differentiation: str = "implicit",
    num_sweeps: Optional[int] = None,
    init: Optional[Array] = None,
    adjoint_rtol: Optional[float] = None,
    adjoint_max_iter: Optional[int] = None,
    solver: str = "iteration",
) -> PlanResult:
    """Smooth planning over options: `Q_O = R + P^O m_τ(Q_O)` (no extra γ: it is in `P^O`).

    Args:
      reward: `(S, K)` option reward models `r^o[s]` (`option_models(...)[0]`).
      transition: `(K, S, S)` option transition models `P^o[s, s']`, rows summing to at most γ.
      temperature: `τ` of the policy over options `μ = softmax(Q_O/τ)`.
      initiation: optional `(K, S)` bool (the layout of `Options.initiation`); option `o` can
        be chosen in `s` only where `initiation[o, s]`. The backup and `μ` ignore the other
        options, so `μ[s, o] = 0` outside initiation sets. Every state needs at least one
        available option.
      backup: and `tol`, `max_iter`, `differentiation`, `num_sweeps`, `init`, `adjoint_rtol`,
        `adjoint_max_iter`, `solver`: as in `soft_value_iteration`.

    Returns:
      `PlanResult` with `q (S, K)` and `policy` = `μ (S, K)`.
    """
    reward = jnp.asarray(reward)
    transition = jnp.asarray(transition, reward.dtype)
    if reward.ndim != 2:
        raise ValueError(f"reward: expected shape (S, K), got {reward.shape}")
    s, k = reward.shape
    if transition.shape != (k, s, s):
        raise ValueError(f"transition: expected shape (K, S, S) = ({k}, {s}, {s}), "
                         f"got {transition.shape}")
    mask = _initiation_mask(initiation, k, s)
    _check_planner_args(temperature, backup, differentiation, init, (s, k))
    temperature = jnp.asarray(temperature, reward.dtype)
    init = jnp.zeros((s, k), reward.dtype) if init is None else jnp.asarray(init, reward.dtype)
    return _plan(
        smdp_bellman, (reward, transition, temperature, mask), init, temperature,
        mask, kind=backup, tol=tol, max_iter=max_iter, differentiation=differentiation,
        num_sweeps=num_sweeps, adjoint_rtol=adjoint_rtol, adjoint_max_iter=adjoint_max_iter,
        solver=solver,
    )


def _initiation_mask(initiation, k: int, s: int):
    """Validated `(S, K)` mask from `(K, S)` initiation sets (None stays None)."""
    if initiation is None:
        return None
    initiation = jnp.asarray(initiation)
    if initiation.shape != (k, s):
        raise ValueError(f"initiation: expected shape (K, S) = ({k}, {s}), "
                         f"got {initiation.shape}")
    if is_concrete(initiation):
        if initiation.dtype != jnp.bool_:
            raise ValueError(f"initiation: expected a bool array, got {initiation.dtype}")
        empty = ~np.asarray(initiation).any(axis=0)
        if empty.any():
            raise ValueError(f"initiation: state {int(np.argmax(empty))} has no available option")
    return initiation.T


def _intra_option_bellman(params, q, *, kind: str):
    """`T(Q) = intra_option_update(Q, V = m_τ(Q))`; `params = (mdp, π, β, τ, mask)`."""
    mdp, policy, termination, temperature, mask = params
    return intra_option_update(mdp, policy, termination, q,
                               backup(q, temperature, kind, mask))


def intra_option_value_iteration(
    mdp: MDP,
    options,
    temperature,
    *,
    backup: str = "logsumexp",
    tol: Optional[float] = None,
    max_iter: int = 10_000,
    differentiation: str = "implicit",
    num_sweeps: Optional[int] = None,
    init: Optional[Array] = None,
    adjoint_rtol: Optional[float] = None,
    adjoint_max_iter: Optional[int] = None,
    solver: str = "iteration",
) -> PlanResult:
    """Matrix-free planning over options: the intra-option Bellman equation (Sutton, Precup &
    Singh 1999, section 3), `Q_O[s, o] = Σ_a π^o[s, a] (r[s, a] + γ Σ_s' P[s, a, s']
    (β^o[s'] V[s'] + (1 − β^o[s']) Q_O[s', o]))`, `V = m_τ(Q_O)` over available options.

    Its fixed point is the same `Q_O = R + P^O V` as `smdp_value_iteration` on
    `option_models(mdp, options)` (unrolling the continuation term gives the option models),
    but no option model is formed: a sweep costs `O(K · S · A · B)` with sparse transitions and
    memory is `O(K · S)`, so it scales to grids where `(K, S, S)` models cannot be stored.
    (With `differentiation="unrolled"`, `num_sweeps` intra-option sweeps are not the same
    budget as `num_sweeps` SMDP sweeps.)

    Args:
      mdp: the MDP (dense or sparse transitions).
      options: `Options` with policies `(K, S, A)`, terminations `(K, S)` and optional
        initiation sets (an option is chosen only where available; once running it continues
        anywhere).
      temperature, backup, tol, …: as in `soft_value_iteration`.

    Returns:
      `PlanResult` with `q (S, K)` and `policy` = `μ (S, K)`; differentiable in the MDP, the
      options' policies and terminations, and the temperature.
    """
    k, s, a = options.policy.shape
    if (s, a) != (mdp.num_states, mdp.num_actions):
        raise ValueError(f"options: policies have (S, A) = ({s}, {a}), the MDP has "
                         f"({mdp.num_states}, {mdp.num_actions})")
    mask = _initiation_mask(options.initiation, k, s)
    _check_planner_args(temperature, backup, differentiation, init, (s, k))
    temperature = jnp.asarray(temperature, mdp.dtype)
    init = jnp.zeros((s, k), mdp.dtype) if init is None else jnp.asarray(init, mdp.dtype)
    params = (mdp, options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype),
              temperature, mask)
    return _plan(
        _intra_option_bellman, params, init, temperature, mask, kind=backup, tol=tol,
        max_iter=max_iter, differentiation=differentiation, num_sweeps=num_sweeps,
        adjoint_rtol=adjoint_rtol, adjoint_max_iter=adjoint_max_iter, solver=solver,
    )


def jacobian_spectral_radius(mdp: MDP, q: Array, temperature, backup: str = "logsumexp"):
    """Spectral radius of `∂_Q T` at `q` (dense `(S·A) × (S·A)` Jacobian; small MDPs only).

    The IFT needs `I − ∂_Q T` invertible; it is when this radius is below 1. It is at most γ
    for logsumexp, mellowmax and max; for boltzmann it can exceed 1.
    """
    check_choice(backup, "backup", BACKUPS)
    temperature = jnp.asarray(temperature, mdp.dtype)
    flat = q.reshape(-1)

    def t(x):
        return _bellman((mdp, temperature), x.reshape(q.shape), kind=backup).reshape(-1)

    jac = jax.jacobian(t)(flat)
    return jnp.max(jnp.abs(jnp.linalg.eigvals(jac)))
