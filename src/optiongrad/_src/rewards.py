r"""Intrinsic-reward parametrisations $\theta \mapsto r_\theta$ `(S, A)`.

A `RewardModel` is a pair of pure functions in the style of optax's `GradientTransformation`:
`init(key) -> θ` and `apply(θ, mdp) -> r_θ (S, A)`. Three parametrisations (DESIGN.md,
"Option gradient"), all linear in $\theta$:

* `tabular(S, A)`:   $r_\theta[s, a] = \theta[s, a]$,                       $\theta$ `(S, A)`;
* `state(S)`:        $r_\theta[s, a] = \sum_{s'} P[s, a, s'] \theta[s']$,         $\theta$ `(S,)` — a reward for
  *entering* `s'`, the convention of `gridworld.goal_task`;
* $\mathtt{linear}(\Phi)$:       $\Phi$ `(S, F)`: $r_\theta[s, a] = \sum_{s'} P[s, a, s'] (\Phi w)[s']$;
                     $\Phi$ `(S, A, F)`: $r_\theta[s, a] = \Phi[s, a] \cdot w$,      `w (F,)`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.mdp import MDP
from optiongrad._src.transitions import expectation

Array = jax.Array
Params = Any


class RewardModel(NamedTuple):
    """`init(key) -> θ`; `apply(θ, mdp) -> r_θ (S, A)`; `name` for reports."""

    init: Callable[[Array], Params]
    apply: Callable[[Params, MDP], Array]
    name: str


def _normal(shape, scale: float, dtype):
    checks.number(scale, "init_scale", low=0.0)

    def init(key):
        key = checks.random_key(key)
        if scale == 0.0:
            return jnp.zeros(shape, dtype)
        return scale * jax.random.normal(key, shape, dtype)

    return init


def tabular(num_states: int, num_actions: int, *, init_scale: float = 0.0, dtype=None) -> RewardModel:
    r"""$r_\theta = \theta$, $\theta$ `(S, A)`; `init` draws $N(0, \mathtt{init\_scale}^2)$ (zeros by default)."""
    checks.integer(num_states, "num_states")
    checks.integer(num_actions, "num_actions")
    dtype = checks.dtype(dtype)

    def apply(theta, mdp):
        theta = checks.as_array(theta, "theta", dtype=mdp.dtype)
        checks.shape(theta, "theta", (mdp.num_states, mdp.num_actions), "(S, A)")
        checks.finite(theta, "theta")
        return theta

    return RewardModel(_normal((num_states, num_actions), init_scale, dtype), apply, "tabular")


def state(num_states: int, *, init_scale: float = 0.0, dtype=None) -> RewardModel:
    r"""Reward for entering a state: $r_\theta[s, a] = \sum_{s'} P[s, a, s'] \theta[s']$, $\theta$ `(S,)`."""
    checks.integer(num_states, "num_states")
    dtype = checks.dtype(dtype)

    def apply(theta, mdp):
        theta = checks.as_array(theta, "theta", dtype=mdp.dtype)
        checks.shape(theta, "theta", (mdp.num_states,), "(S,)")
        checks.finite(theta, "theta")
        return expectation(mdp.transitions, theta)

    return RewardModel(_normal((num_states,), init_scale, dtype), apply, "state")


def linear(features, *, init_scale: float = 0.0) -> RewardModel:
    r"""Linear reward $\Phi w$: $\Phi$ `(S, F)` rewards entering `s'` with $(\Phi w)[s']$; $\Phi$ `(S, A, F)`
    gives $r[s, a] = \Phi[s, a] \cdot w$ directly. `w (F,)`."""
    features = checks.as_array(features, "features")
    if features.ndim not in (2, 3) or 0 in features.shape:
        raise ValueError(f"features: expected shape (S, F) or (S, A, F), got {features.shape}")
    checks.finite(features, "features")
    features = features.astype(checks.float_dtype(features))

    def apply(w, mdp):
        phi = features.astype(mdp.dtype)
        if phi.shape[:phi.ndim - 1] != (mdp.num_states, mdp.num_actions)[:phi.ndim - 1]:
            raise ValueError(f"features: shape {phi.shape} does not fit the MDP's (S, A) = "
                             f"({mdp.num_states}, {mdp.num_actions})")
        w = checks.as_array(w, "w", dtype=mdp.dtype)
        checks.shape(w, "w", (phi.shape[-1],), "(F,)")
        checks.finite(w, "w")
        if phi.ndim == 3:
            return phi @ w
        return expectation(mdp.transitions, phi @ w)

    return RewardModel(_normal((features.shape[-1],), init_scale, features.dtype), apply,
                       "linear")


def fit(model: RewardModel, mdp: MDP, target: Array, key=None) -> Params:
    r"""Least-squares parameters $\operatorname{argmin}_\theta \Vert r_\theta - \mathrm{target}\Vert ^2$ (every model here is linear in θ).

    Useful to start learning from the extrinsic reward (`target = mdp.rewards`). Builds the
    dense Jacobian of $\theta \mapsto r_\theta$, so it is meant for small problems (a few thousand parameters).
    """
    checks.instance(model, "model", RewardModel, "an optiongrad.rewards.RewardModel")
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    key = jax.random.key(0) if key is None else checks.random_key(key)
    target = checks.as_array(target, "target", dtype=mdp.dtype)
    checks.shape(target, "target", (mdp.num_states, mdp.num_actions), "(S, A)")
    checks.finite(target, "target")
    theta0 = jax.tree.map(jnp.zeros_like, model.init(key))
    flat0, unravel = jax.flatten_util.ravel_pytree(theta0)

    def residual(flat):
        return model.apply(unravel(flat), mdp).reshape(-1)

    jac = jax.jacfwd(residual)(flat0)
    solution, *_ = jnp.linalg.lstsq(jac, target.astype(jac.dtype).reshape(-1))
    return unravel(solution.astype(flat0.dtype))
