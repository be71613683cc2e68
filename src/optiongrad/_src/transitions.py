r"""Transition operators: dense `(S, A, S)` tensors and sparse `(S, A, B)` successor lists.

Every algorithm in optiongrad touches the dynamics only through the few functions of this
module, so a dense tensor `P[s, a, s']` and a `SparseTransitions` (for each state-action pair,
`B` successor indices with their probabilities) are interchangeable everywhere:

* $\mathtt{expectation}(P, v)[s, a] = \sum_{s'} P[s, a, s'] v[s']$  (the backup's "γ P v" without γ),
* $\mathtt{push\_forward}(P, w)[s'] = \sum_{s, a} w[s, a] P[s, a, s']$ (its transpose; occupancies),
* $\mathtt{policy\_matrix}(P, \pi)[s, s'] = \sum_a \pi[s, a] P[s, a, s']$ (dense $P_\pi$, for direct solves),
* `probabilities_to(P, g)[s, a] = P[s, a, g]` (entering a goal; a vector `g` adds an axis),
* $\mathtt{policy\_expectation}(P, \pi, u)[s, ..., k] = \sum_a \pi^k[s, a] \sum_{s'} P[s, a, s'] u[s', ..., k]$
  ($P_{\pi^k} u$ for many policies at once, the intra-option sweeps of many options).

`v` may carry trailing batch axes: `v (S, ...)` gives `(S, A, ...)`.

A `SparseTransitions` built from concrete arrays also keeps each state's *sources* (the
transpose of the successor table), so that the transpose of `policy_expectation` — its
reverse-mode derivative, which every implicit adjoint iterates — is a gather like the forward
sweep rather than the scatter-add JAX derives for a gather (on this project's 2-core CPU about
10× slower for a 10⁴-state, 384-column sweep; see `benchmarks/option_gradient.py --large`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

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
    r"""Sparse transitions: `P[s, a, next_states[s, a, b]] += probs[s, a, b]`.

    Args:
      next_states: `(S, A, B)` integer successor indices in `[0, S)`. Repeated indices are
        allowed; their probabilities add up.
      probs: `(S, A, B)` probabilities, non-negative, summing to 1 over `B`.

    Built from concrete arrays it is validated (`ValueError` naming the field) and its
    `sources` are tabulated; built from tracers (inside `jit`/`vmap`/`grad`) it is neither.
    Memory is $O(S\cdot A\cdot B)$ instead of $O(S^2\cdot A)$.

    Attributes:
      sources: `(S, D)` int, or None: for each state `s'` the flat indices $s\cdot A\cdot B + a\cdot B + b$
        of the entries with `next_states[s, a, b] = s'` (`D` the largest in-degree), padded
        with $S\cdot A\cdot B$; None when built from tracers or when $D > 4\cdot A\cdot B$ (a hub state: the
        table would dwarf the successors).
    """

    next_states: Array
    probs: Array
    sources: Optional[Array]
    _fields = ("next_states", "probs", "sources")

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
        self._set(next_states, probs, None)
        _validate_sparse(self)
        if is_concrete(next_states):
            object.__setattr__(self, "sources", _sources(np.asarray(next_states)))

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


def _sources(next_states: np.ndarray) -> Optional[Array]:
    """The `sources` table of `SparseTransitions` (None if too large)."""
    s, a, b = next_states.shape
    flat = next_states.reshape(-1)
    counts = np.bincount(flat, minlength=s)
    degree = int(counts.max()) if flat.size else 0
    if degree > 4 * a * b:
        return None
    order = np.argsort(flat, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(flat.size) - starts[flat[order]]
    table = np.full((s, max(degree, 1)), flat.size, np.int32)
    table[flat[order], rank] = order
    return jnp.asarray(table)


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
    r"""$\mathbb{E}[v(s') \mid s, a] = \sum_{s'} P[s, a, s'] v[s']$.

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
    r"""Transpose of `expectation`: $u[s'] = \sum_{s, a} w[s, a] P[s, a, s']$.

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
    r"""Dense state-to-state matrix $P_\pi[s, s'] = \sum_a \pi[s, a] P[s, a, s']$, shape `(S, S)`."""
    if isinstance(transitions, SparseTransitions):
        s = transitions.shape[0]
        weights = policy[:, :, None] * transitions.probs  # (S, A, B)
        rows = jnp.broadcast_to(jnp.arange(s)[:, None, None], weights.shape)
        return jnp.zeros((s, s), weights.dtype).at[rows, transitions.next_states].add(weights)
    return jnp.einsum("sa,sat->st", policy, transitions)


def probabilities_to(transitions: Transitions, targets: Array) -> Array:
    """`P[s, a, targets]`: the probability of moving to each target state, `(S, A)` for a
    scalar target, `(S, A, T)` for targets `(T,)` (repeated successors add up)."""
    targets = jnp.asarray(targets)
    if isinstance(transitions, SparseTransitions):
        axes = (1,) * targets.ndim
        hits = transitions.next_states.reshape(transitions.next_states.shape + axes) == targets
        probs = transitions.probs.reshape(transitions.probs.shape + axes)
        return jnp.sum(jnp.where(hits, probs, 0.0), axis=2)
    return jnp.take(transitions, targets, axis=2)


def policy_expectation(transitions: Transitions, policy: Array, u: Array) -> Array:
    r"""$P_{\pi^k} u$ for `K` policies at once: `(S, ..., K)` with

    $$
    \mathrm{out}[s, \dots, k] = \sum_a \pi^k[s, a] \sum_{s'} P[s, a, s']\, u[s', \dots, k]
    $$

    for `policy (K, S, A)` and `u (S, ..., K)` (middle axes are batch axes, e.g. goals). With
    sparse transitions it costs one gather of $A\cdot B$ rows of `u` per state, and its derivative
    with respect to `u` is a gather too when the transitions carry their `sources` (a custom
    reverse-mode rule: `jax.jvp`/`jax.jacfwd` through it then raise; use `expectation` for
    forward-mode derivatives)."""
    pi = jnp.moveaxis(policy, 0, -1)                                   # (S, A, K)
    if not isinstance(transitions, SparseTransitions):
        target = expectation(transitions, u)                           # (S, A, ..., K)
        pi = pi.reshape(pi.shape[:2] + (1,) * (u.ndim - 2) + pi.shape[2:])
        return jnp.sum(pi * target, axis=1)
    s, a, b = transitions.next_states.shape
    weights = (pi[:, :, None, :] * transitions.probs[..., None]).reshape(s, a * b, -1)
    index = transitions.next_states.reshape(s, a * b)
    if transitions.sources is None:
        return _gathered(weights, index, u)
    return _gather_both_ways(weights, index, transitions.sources, u)


def _gathered(weights, index, u):
    r"""$\mathtt{out}[s, ..., k] = \sum_m \mathtt{weights}[s, m, k] u[\mathtt{index}[s, m], ..., k]$."""
    w = weights.reshape(weights.shape[:2] + (1,) * (u.ndim - 2) + weights.shape[2:])
    return jnp.sum(w * u[index], axis=1)


@jax.custom_vjp
def _gather_both_ways(weights, index, sources, u):
    return _gathered(weights, index, u)


def _gather_both_ways_fwd(weights, index, sources, u):
    return _gathered(weights, index, u), (weights, index, sources, u)


def _gather_both_ways_bwd(saved, cotangent):
    weights, index, sources, u = saved
    s, m, k = weights.shape
    batch = (1,) * (u.ndim - 2)
    # d weights[s, m, k] = Σ_batch cotangent[s, ..., k] u[index[s, m], ..., k]
    d_weights = jnp.sum(cotangent[:, None] * u[index], axis=tuple(range(2, u.ndim)))
    # d u[t, ..., k] = Σ_{(s, m) with index[s, m] = t} weights[s, m, k] cotangent[s, ..., k]:
    # gathered through the sources table (padding points at a zero row)
    flat_w = jnp.concatenate([weights.reshape(s * m, k), jnp.zeros((1, k), weights.dtype)])
    rows = jnp.minimum(sources // m, s - 1)                            # (S, D) source states
    w = flat_w[sources].reshape(sources.shape + batch + (k,))
    d_u = jnp.sum(w * cotangent[rows], axis=1)
    return d_weights, None, None, d_u.astype(u.dtype)


_gather_both_ways.defvjp(_gather_both_ways_fwd, _gather_both_ways_bwd)


def to_dense(transitions: Transitions) -> Array:
    """Dense `(S, A, S)` tensor of either representation."""
    if isinstance(transitions, SparseTransitions):
        return transitions.todense()
    return transitions
