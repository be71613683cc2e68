r"""The tabular MDP pytree, its validation, layout converters and random (Garnet) MDPs.

Conventions (DESIGN.md): `P[s, a, s']` of shape `(S, A, S)` with rows summing to 1, `r[s, a]`
of shape `(S, A)`, discount $\gamma \in [0, 1)$, initial distribution `s0` of shape `(S,)`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._src import checks
from optiongrad._src.checks import is_concrete
from optiongrad._src.pytree import ValidatedPytree
from optiongrad._src.transitions import SparseTransitions, Transitions, to_dense

Array = jax.Array

@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False, init=False)
class MDP(ValidatedPytree):
    r"""A discounted tabular MDP $\langle P, r, \gamma, s_0\rangle$ as a JAX pytree.

    Args:
      transitions: `(S, A, S)` array `P[s, a, s']`, or a `SparseTransitions`.
      rewards: `(S, A)` expected immediate reward `r[s, a]`.
      discount: scalar $\gamma \in [0, 1)$.
      initial: `(S,)` initial distribution `s0`; uniform when omitted.

    Built from concrete arrays, every field is checked and a `ValueError` names the field and
    the problem (shape, NaN/inf, negative or non-normalised probabilities, $\gamma \notin [0, 1)$). Built
    from tracers (inside `jax.jit`, `jax.vmap`, `jax.grad`) only shapes are checked. All float
    fields are cast to one common floating dtype (float64 when any input is float64 and
    `jax_enable_x64` is on).
    """

    transitions: Transitions
    rewards: Array
    discount: Array
    initial: Array
    _fields = ("transitions", "rewards", "discount", "initial")

    def __init__(self, transitions, rewards, discount, initial=None):
        sparse = isinstance(transitions, SparseTransitions)
        probs = transitions.probs if sparse else transitions
        checks.number(discount, "discount", low=0.0, high=1.0, high_open=True)
        probs, rewards, discount = (
            checks.as_array(x, name) for x, name in
            ((probs, "transitions"), (rewards, "rewards"), (discount, "discount")))
        if initial is not None:
            initial = checks.as_array(initial, "initial")
        dtype = checks.float_dtype(
            *(x for x in (probs, rewards, discount, initial) if x is not None))
        _check_shapes(jnp.shape(probs), jnp.shape(rewards), jnp.shape(discount), sparse)
        if initial is None:
            initial = jnp.full((jnp.shape(rewards)[0],), 1.0 / jnp.shape(rewards)[0], dtype)
        if jnp.shape(initial) != (jnp.shape(rewards)[0],):
            raise ValueError(
                f"initial: expected shape (S,) = ({jnp.shape(rewards)[0]},), "
                f"got {jnp.shape(initial)}"
            )
        probs, rewards, discount, initial = (
            jnp.asarray(x, dtype) for x in (probs, rewards, discount, initial)
        )
        if sparse:
            transitions = SparseTransitions(transitions.next_states, probs)
        else:
            transitions = probs
        _check_values(transitions, rewards, discount, initial)
        self._set(transitions, rewards, discount, initial)

    # -- convenience -------------------------------------------------------------------------

    @property
    def num_states(self) -> int:
        return self.rewards.shape[0]

    @property
    def num_actions(self) -> int:
        return self.rewards.shape[1]

    @property
    def dtype(self):
        return self.rewards.dtype

    @property
    def is_sparse(self) -> bool:
        return isinstance(self.transitions, SparseTransitions)

    def replace(self, **changes) -> "MDP":
        """A copy with some fields replaced (validated like the constructor)."""
        return MDP(**{**{f: getattr(self, f) for f in self._fields}, **changes})

    def astype(self, dtype) -> "MDP":
        """The same MDP in another floating dtype."""
        dtype = checks.dtype(dtype)
        return MDP(
            self.transitions.astype(dtype),
            self.rewards.astype(dtype),
            self.discount.astype(dtype),
            self.initial.astype(dtype),
        )

    def __repr__(self) -> str:
        kind = "sparse" if self.is_sparse else "dense"
        try:
            return (
                f"MDP(S={self.num_states}, A={self.num_actions}, {kind}, "
                f"discount={self.discount}, dtype={self.dtype})"
            )
        except Exception:  # pragma: no cover - e.g. leaves replaced by sentinels in tree ops
            return "MDP(...)"


def _check_shapes(p_shape, r_shape, g_shape, sparse: bool) -> None:
    """Shapes come from `transitions`; `rewards` and `discount` must agree with them."""
    layout = "(S, A, B)" if sparse else "(S, A, S)"
    if len(p_shape) != 3 or (not sparse and p_shape[0] != p_shape[2]):
        raise ValueError(f"transitions: expected shape {layout}, got {p_shape}")
    s, a = p_shape[:2]
    if s < 1 or a < 1:
        raise ValueError(f"transitions: need at least one state and one action, got {p_shape}")
    if r_shape != (s, a):
        raise ValueError(
            f"rewards: expected shape (S, A) = ({s}, {a}) to match transitions {layout}, "
            f"got {r_shape}"
        )
    if g_shape != ():
        raise ValueError(f"discount: expected a scalar, got shape {g_shape}")


def _check_values(transitions, rewards, discount, initial) -> None:
    sparse = isinstance(transitions, SparseTransitions)
    checks.distribution_rows(transitions.probs if sparse else transitions, "transitions",
                             "(s, a)")
    checks.finite(rewards, "rewards")
    checks.distribution_rows(initial, "initial")


def from_action_major(transitions, rewards, discount, initial=None) -> MDP:
    r"""Build an `MDP` from the `(A, S, S)` layout of pymdptoolbox, fax and others.

    Args:
      transitions: `(A, S, S)` array `P[a, s, s']`.
      rewards: `(S,)` state rewards, `(S, A)` state-action rewards, or `(A, S, S)` transition
        rewards `R[a, s, s']` (reduced to $r[s, a] = \sum_{s'} P[a, s, s'] R[a, s, s']$).
      discount: scalar $\gamma \in [0, 1)$.
      initial: `(S,)`; uniform when omitted.
    """
    p = checks.as_array(transitions, "transitions")
    if p.ndim != 3 or p.shape[1] != p.shape[2]:
        raise ValueError(f"transitions: expected shape (A, S, S), got {p.shape}")
    num_actions, num_states, _ = p.shape
    r = checks.as_array(rewards, "rewards")
    if r.shape == (num_states,):
        r = jnp.broadcast_to(r[:, None], (num_states, num_actions))
    elif r.shape == (num_actions, num_states, num_states):
        r = jnp.einsum("ast,ast->sa", p, r)
    elif r.shape != (num_states, num_actions):
        raise ValueError(
            f"rewards: expected shape (S,), (S, A) or (A, S, S) with S={num_states}, "
            f"A={num_actions}; got {r.shape}"
        )
    return MDP(jnp.transpose(p, (1, 0, 2)), r, discount, initial)


def to_action_major(mdp: MDP) -> tuple[Array, Array]:
    """`(P (A, S, S), r (S, A))` in the layout of pymdptoolbox."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    return jnp.transpose(to_dense(mdp.transitions), (1, 0, 2)), mdp.rewards


def random_mdp(
    key,
    num_states: int,
    num_actions: int,
    branching: int,
    discount: float = 0.9,
    *,
    dtype=None,
    initial: Optional[str] = "uniform",
) -> MDP:
    r"""A Garnet-style random MDP (Archibald, McKinnon & Thomas 1995; Bhatnagar et al. 2009).

    For each `(s, a)`, `branching` distinct next states are drawn uniformly without replacement;
    their probabilities are the gaps between $\mathrm{branching} - 1$ uniform cut points of `[0, 1]`.
    Rewards are standard normal `(S, A)`.

    Args:
      key: a `jax.random` key or an int seed.
      num_states, num_actions: `S`, `A`.
      branching: successors per state-action pair, $1 \le \mathrm{branching} \le S$.
      discount: $\gamma$.
      dtype: floating dtype (default: JAX's default float).
      initial: "uniform", or "random" for a Dirichlet(1) initial distribution.
    """
    checks.integer(num_states, "num_states")
    checks.integer(num_actions, "num_actions")
    checks.integer(branching, "branching", maximum=num_states)
    checks.choice(initial, "initial", ("uniform", "random"))
    checks.number(discount, "discount", low=0.0, high=1.0, high_open=True)
    key = checks.random_key(key)
    dtype = checks.dtype(dtype)
    k_next, k_cut, k_rew, k_init = jax.random.split(key, 4)
    scores = jax.random.uniform(k_next, (num_states, num_actions, num_states))
    successors = jnp.argsort(scores, axis=-1)[..., :branching]
    cuts = jnp.sort(
        jax.random.uniform(k_cut, (num_states, num_actions, branching - 1), dtype), axis=-1
    )
    ends = (num_states, num_actions, 1)
    edges = jnp.concatenate([jnp.zeros(ends, dtype), cuts, jnp.ones(ends, dtype)], axis=-1)
    probs = jnp.diff(edges, axis=-1)
    dense = jnp.einsum(
        "sab,sabt->sat", probs, jax.nn.one_hot(successors, num_states, dtype=dtype)
    )
    dense = dense / dense.sum(-1, keepdims=True)
    rewards = jax.random.normal(k_rew, (num_states, num_actions), dtype)
    if initial == "uniform":
        s0 = jnp.full((num_states,), 1.0 / num_states, dtype)
    else:
        s0 = jax.random.dirichlet(k_init, jnp.ones((num_states,), dtype))
        s0 = s0 / s0.sum()
    return MDP(dense, rewards, jnp.asarray(discount, dtype), s0)

