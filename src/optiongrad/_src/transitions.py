"""Transition operators: dense `(S, A, S)` tensors and sparse `(S, A, B)` successor lists.

Every algorithm in optiongrad touches the dynamics only through the few functions of this
module, so a dense tensor `P[s, a, s']` and a `SparseTransitions` (for each state-action pair,
`B` successor indices with their probabilities) are interchangeable everywhere:

* `expectation(P, v)[s, a] = Σ_s' P[s, a, s'] v[s']`  (the backup's "γ P v" without γ),
* `push_forward(P, w)[s'] = Σ_{s, a} w[s, a] P[s, a, s']` (its transpose; occupancies),
* `policy_matrix(P, π)[s, s'] = Σ_a π[s, a] P[s, a, s']` (dense `P_π`, for direct solves).

`v` may carry trailing batch axes: `v (S, ...)` gives `(S, A, ...)`.
"""

from __future__ import annotations

import dataclasses
from typing import Union

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._src import checks
from optiongrad._src.checks import is_concrete
from optiongrad._src.pytree import ValidatedPytree

Array = jax.Array


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False, init=False)
class SparseTransitions(ValidatedPytree):
    """Sparse transitions: `P[s, a, next_states[s, a, b]] += probs[s, a, b]`.

    Args:
      next_states: `(S, A, B)` integer successor indices in `[0, S)`. Repeated indices are
        allowed; their probabilities add up.
      probs: `(S, A, B)` probabilities, non-negative, summing to 1 over `B`.

    Built from concrete arrays it is validated (`ValueError` naming the field); built from
    tracers (inside `jit`/`vmap`/`grad`) it is not. Memory is `O(S·A·B)` instead of `O(S²·A)`.
    """

    next_states: Array
    probs: Array
    _fields = ("next_states", "probs")

    def __init__(self, next_states, probs):
        next_states = checks.as_array(next_states, "next_states", kind="int")
        if is_concrete(next_states):
            next_states = next_states.astype(jnp.int32)
        probs = checks.as_array(probs, "probs")
        if jnp.ndim(next_states) != 3:
            raise ValueError(
                f"next_states: expected shape (S, A, B), got shape {jnp.shape(next_states)}"
            )
        if jnp.shape(probs) != jnp.shape(next_states):
            raise ValueError(
                f"probs: expected the shape of next_states {jnp.shape(next_states)}, "
                f"got {jnp.shape(probs)}"
            )
        if is_concrete(probs) and not jnp.issubdtype(probs.dtype, jnp.floating):
            probs = probs.astype(jnp.result_type(float))
        self._set(next_states, probs)
        _validate_sparse(self)

    @property
    def shape(self) -> tuple[int, int, int]:
        """The `(S, A, S)` shape of the equivalent dense tensor."""
        s, a, _ = jnp.shape(self.next_states)
        return (s, a, s)

    @property
    def dtype(self):
        return self.probs.dtype

    def todense(self) -> Array:
        """The equivalent dense `(S, A, S)` tensor."""
        s, a, _ = self.shape
        one_hot = jax.nn.one_hot(self.next_states, s, dtype=self.probs.dtype)
        return jnp.einsum("sab,sabt->sat", self.probs, one_hot)

    def astype(self, dtype) -> "SparseTransitions":
        """The same transitions with `probs` cast to `dtype`."""
        return SparseTransitions(self.next_states, self.probs.astype(dtype))


def _validate_sparse(p: SparseTransitions) -> None:
    num_states = p.shape[0]
    if is_concrete(p.next_states):
        idx = np.asarray(p.next_states)
        if idx.size and (idx.min() < 0 or idx.max() >= num_states):
            bad = np.argwhere((idx < 0) | (idx >= num_states))[0]
            raise ValueError(
                f"next_states: index {idx[tuple(bad)]} at {tuple(int(i) for i in bad)} "
                f"is outside [0, {num_states})"
            )
    checks.distribution_rows(p.probs, "probs", "(s, a)")


Transitions = Union[Array, SparseTransitions]


def num_states(transitions: Transitions) -> int:
    """`S`, for either representation."""
    return transitions.shape[0]


def expectation(transitions: Transitions, v: Array) -> Array:
    """`E[v(s') | s, a] = Σ_s' P[s, a, s'] v[s']`.

    Args:
      transitions: dense `(S, A, S)` or `SparseTransitions`.
      v: `(S, ...)` values over next states (trailing axes are batch axes).
    Returns:
      `(S, A, ...)`.
    """
    if isinstance(transitions, SparseTransitions):
        gathered = v[transitions.next_states]  # (S, A, B, ...)
        probs = transitions.probs.reshape(transitions.probs.shape + (1,) * (v.ndim - 1))
        return jnp.sum(probs * gathered, axis=2)
    return jnp.tensordot(transitions, v, axes=(2, 0))


def push_forward(transitions: Transitions, w: Array) -> Array:
    """Transpose of `expectation`: `u[s'] = Σ_{s, a} w[s, a] P[s, a, s']`.

    Args:
      transitions: dense `(S, A, S)` or `SparseTransitions`.
      w: `(S, A, ...)` weights on state-action pairs.
    Returns:
      `(S, ...)` mass on next states.
    """
    if isinstance(transitions, SparseTransitions):
        s = transitions.shape[0]
        probs = transitions.probs.reshape(transitions.probs.shape + (1,) * (w.ndim - 2))
        mass = probs * w[:, :, None]  # (S, A, B, ...)
        flat = mass.reshape((-1,) + mass.shape[3:])
        return jax.ops.segment_sum(flat, transitions.next_states.reshape(-1), num_segments=s)
    return jnp.einsum("sa...,sat->t...", w, transitions)


def policy_matrix(transitions: Transitions, policy: Array) -> Array:
    """Dense state-to-state matrix `P_π[s, s'] = Σ_a π[s, a] P[s, a, s']`, shape `(S, S)`."""
    if isinstance(transitions, SparseTransitions):
        s = transitions.shape[0]
        weights = policy[:, :, None] * transitions.probs  # (S, A, B)
        rows = jnp.broadcast_to(jnp.arange(s)[:, None, None], weights.shape)
        return jnp.zeros((s, s), weights.dtype).at[rows, transitions.next_states].add(weights)
    return jnp.einsum("sa,sat->st", policy, transitions)


def to_dense(transitions: Transitions) -> Array:
    """Dense `(S, A, S)` tensor of either representation."""
    if isinstance(transitions, SparseTransitions):
        return transitions.todense()
    return transitions
