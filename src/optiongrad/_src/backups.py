r"""The backups $m_\tau$ of the smooth Bellman operator and the planner's policy.

A backup maps each row `Q[s, :]` of action (or option) values to one number (DESIGN.md,
"Smooth planner"):

| backup        | $m_\tau(Q)[s]$                          | contraction     |
|---------------|--------------------------------------|-----------------|
| `logsumexp`   | $\tau \log \sum_a \exp(Q[s, a]/\tau)$           | yes, modulus γ  |
| `mellowmax`   | $\tau \log((1/A) \sum_a \exp(Q[s, a]/\tau))$    | yes, modulus γ  |
| `boltzmann`   | $\sum_a \operatorname{softmax}(Q[s]/\tau)_a Q[s, a]$      | not in general  |
| `max`         | `max_a Q[s, a]`                      | yes (τ = 0)     |

The planner's policy is $\hat{\pi} = \operatorname{softmax}(Q/\tau)$ row-wise (greedy, ties split evenly, for `max`).
References: entropy-regularised value iteration (Ziebart 2010; Haarnoja et al. 2017),
mellowmax (Asadi & Littman 2017).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._src import checks

Array = jax.Array

BACKUPS = ("logsumexp", "mellowmax", "boltzmann", "max")
r"""The smooth backups $m_\tau$ (and the τ = 0 reference `max`); see `backup`."""


def _check(q, temperature, kind, mask):
    checks.choice(kind, "kind", BACKUPS)
    q = checks.as_array(q, "q")
    if not jnp.issubdtype(q.dtype, jnp.floating):
        q = q.astype(jnp.result_type(float))
    if jnp.ndim(q) < 1 or jnp.shape(q)[-1] < 1:
        raise ValueError(f"q: expected shape (..., A) with A >= 1, got {jnp.shape(q)}")
    checks.finite(q, "q")
    checks.temperature(temperature, kind)
    if mask is not None:
        mask = checks.as_array(mask, "mask", kind="bool")
        checks.shape(mask, "mask", jnp.shape(q), "(..., A) like q")
        if checks.is_concrete(mask) and not np.asarray(mask).any(axis=-1).all():
            raise ValueError("mask: a row has no available action")
    return q, mask


def backup(q: Array, temperature, kind: str = "logsumexp", mask: Optional[Array] = None) -> Array:
    r"""Row-wise backup $m_\tau(Q)$ over the last axis.

    Args:
      q: `(..., A)` action values.
      temperature: $\tau > 0$ (ignored by `max`).
      kind: one of `BACKUPS`.
      mask: optional `(..., A)` bool; actions where it is False are excluded (initiation sets).
    Returns:
      `(...)` backed-up values. Computed stably (`logsumexp` subtracts the row max), so
      $\tau = 1e-3$ with values of `1e3` does not overflow.
    """
    q, mask = _check(q, temperature, kind, mask)
    if kind == "max":
        return jnp.max(q if mask is None else jnp.where(mask, q, -jnp.inf), axis=-1)
    scaled = q / temperature
    if kind in ("logsumexp", "mellowmax"):
        value = temperature * jax.nn.logsumexp(scaled, axis=-1, where=mask)
        if kind == "mellowmax":
            count = q.shape[-1] if mask is None else jnp.sum(mask, axis=-1)
            value = value - temperature * jnp.log(jnp.asarray(count, q.dtype))
        return value
    weights = jax.nn.softmax(scaled, axis=-1, where=mask)
    return jnp.sum(weights * (q if mask is None else jnp.where(mask, q, 0.0)), axis=-1)


def backup_policy(
    q: Array, temperature, kind: str = "logsumexp", mask: Optional[Array] = None
) -> Array:
    r"""The planner's policy: $\operatorname{softmax}(Q/\tau)$ row-wise, or greedy (ties split) for `max`.

    Args:
      q: `(..., A)`; temperature: $\tau$; kind: backup name; mask: optional `(..., A)` bool.
    Returns:
      `(..., A)` rows summing to 1, zero where `mask` is False.
    """
    q, mask = _check(q, temperature, kind, mask)
    if kind == "max":
        masked = q if mask is None else jnp.where(mask, q, -jnp.inf)
        best = (masked == jnp.max(masked, axis=-1, keepdims=True)).astype(q.dtype)
        return best / jnp.sum(best, axis=-1, keepdims=True)
    policy = jax.nn.softmax(q / temperature, axis=-1, where=mask)
    return policy if mask is None else jnp.where(mask, policy, 0.0)

