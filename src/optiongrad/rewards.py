"""Intrinsic-reward parametrisations `θ ↦ r_θ (S, A)`.

A `RewardModel` is a pair of pure functions in the style of optax's `GradientTransformation`:
`init(key) -> θ` and `apply(θ, mdp) -> r_θ (S, A)`. Three parametrisations (DESIGN.md,
"Option gradient"), all linear in `θ`:

* `tabular(S, A)`:   `r_θ[s, a] = θ[s, a]`,                       `θ (S, A)`;
* `state(S)`:        `r_θ[s, a] = Σ_s' P[s, a, s'] θ[s']`,         `θ (S,)` — a reward for
  *entering* `s'`, the convention of `gridworld.goal_task`;
* `linear(Φ)`:       `Φ (S, F)`: `r_θ[s, a] = Σ_s' P[s, a, s'] (Φ w)[s']`;
                     `Φ (S, A, F)`: `r_θ[s, a] = Φ[s, a] · w`,      `w (F,)`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np

from optiongrad.mdp import MDP
from optiongrad.transitions import expectation

Array = jax.Array
Params = Any


class RewardModel(NamedTuple):
    """`init(key) -> θ`; `apply(θ, mdp) -> r_θ (S, A)`; `name` for reports."""

    init: Callable[[Array], Params]
    apply: Callable[[Params, MDP], Array]
    name: str


def _normal(shape, scale: float, dtype):
    def init(key):
        if scale == 0.0:
            return jnp.zeros(shape, dtype)
        return scale * jax.random.normal(key, shape, dtype)

    return init


def _check_size(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def tabular(num_states: int, num_actions: int, *, init_scale: float = 0.0, dtype=None) -> RewardModel:
    """`r_θ = θ`, `θ (S, A)`; `init` draws `N(0, init_scale²)` (zeros by default)."""
    _check_size(num_states, "num_states")
    _check_size(num_actions, "num_actions")
    dtype = jnp.result_type(float) if dtype is None else dtype

    def apply(theta, mdp):
        return jnp.asarray(theta, mdp.dtype)

    return RewardModel(_normal((num_states, num_actions), init_scale, dtype), apply, "tabular")


def state(num_states: int, *, init_scale: float = 0.0, dtype=None) -> RewardModel:
    """Reward for entering a state: `r_θ[s, a] = Σ_s' P[s, a, s'] θ[s']`, `θ (S,)`."""
    _check_size(num_states, "num_states")
    dtype = jnp.result_type(float) if dtype is None else dtype

    def apply(theta, mdp):
        return expectation(mdp.transitions, jnp.asarray(theta, mdp.dtype))

    return RewardModel(_normal((num_states,), init_scale, dtype), apply, "state")


def linear(features, *, init_scale: float = 0.0) -> RewardModel:
    """Linear reward `Φ w`: `Φ (S, F)` rewards entering `s'` with `(Φ w)[s']`; `Φ (S, A, F)`
    gives `r[s, a] = Φ[s, a] · w` directly. `w (F,)`."""
    features = jnp.asarray(features)
    if features.ndim not in (2, 3):
        raise ValueError(f"features: expected shape (S, F) or (S, A, F), got {features.shape}")
    if not np.all(np.isfinite(np.asarray(features))):
        raise ValueError("features: non-finite values")
    dtype = features.dtype if jnp.issubdtype(features.dtype, jnp.floating) else jnp.result_type(float)
    features = features.astype(dtype)

    def apply(w, mdp):
        phi = features.astype(mdp.dtype)
        w = jnp.asarray(w, mdp.dtype)
        if phi.ndim == 3:
            return phi @ w
        return expectation(mdp.transitions, phi @ w)

    return RewardModel(_normal((features.shape[-1],), init_scale, dtype), apply, "linear")


def fit(model: RewardModel, mdp: MDP, target: Array, key=None) -> Params:
    """Least-squares parameters `argmin_θ ‖r_θ − target‖²` (every model here is linear in θ).

    Useful to start learning from the extrinsic reward (`target = mdp.rewards`). Builds the
    dense Jacobian of `θ ↦ r_θ`, so it is meant for small problems (a few thousand parameters).
    """
    key = jax.random.key(0) if key is None else key
    theta0 = jax.tree.map(jnp.zeros_like, model.init(key))
    flat0, unravel = jax.flatten_util.ravel_pytree(theta0)

    def residual(flat):
        return model.apply(unravel(flat), mdp).reshape(-1)

    jac = jax.jacfwd(residual)(flat0)
    solution, *_ = jnp.linalg.lstsq(jac, jnp.asarray(target, jac.dtype).reshape(-1))
    return unravel(solution.astype(flat0.dtype))
