r"""Options: the container, primitive actions as options, and sets of options.

An option $o = (\pi^o, \beta^o)$ with an initiation set $I^o \subseteq S$ (DESIGN.md, "Options"): once
started in $s \in I^o$ it acts with $\pi^o$, and on entering `s'` it terminates with probability
$\beta^o[s']$; it always runs at least one step. A primitive action `a` is the option (one-hot `a`,
$\beta \equiv 1$). Its models are in `option_models`, its values in `hierarchical`, its episodes in
`rollouts`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.checks import is_concrete
from optiongrad._src.pytree import ValidatedPytree

Array = jax.Array


@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False, init=False)
class Options(ValidatedPytree):
    r"""A set of $K \ge 1$ options as a pytree.

    Args:
      policy: `(K, S, A)` option policies $\pi^o[s, a]$, rows summing to 1.
      termination: `(K, S)` $\beta^o[s'] \in [0, 1]$, probability of terminating on entering `s'`.
      initiation: optional `(K, S)` bool, $I^o$; None means every option is available
        everywhere. (Planning over the options needs every state to have one available.)

    Built from concrete arrays it is validated and raises `ValueError` naming the field; built
    from tracers only shapes are checked.
    """

    policy: Array
    termination: Array
    initiation: Optional[Array]
    _fields = ("policy", "termination", "initiation")

    def __init__(self, policy, termination, initiation=None):
        policy = checks.as_array(policy, "policy")
        if is_concrete(policy):
            policy = policy.astype(checks.float_dtype(policy))
        if jnp.ndim(policy) != 3:
            raise ValueError(f"policy: expected shape (K, S, A), got {jnp.shape(policy)}")
        k, s, a = jnp.shape(policy)
        if min(k, s, a) < 1:
            raise ValueError(f"policy: need at least one option, state and action, got "
                             f"(K, S, A) = {(k, s, a)}")
        termination = checks.as_array(termination, "termination", dtype=policy.dtype)
        checks.shape(termination, "termination", (k, s), "(K, S)")
        if initiation is not None:
            initiation = checks.as_array(initiation, "initiation", kind="bool")
            checks.shape(initiation, "initiation", (k, s), "(K, S)")
        checks.distribution_rows(policy, "policy", "(o, s)")
        checks.in_unit_interval(termination, "termination")
        self._set(policy, termination, initiation)

    @property
    def num_options(self) -> int:
        return self.policy.shape[0]

    @property
    def num_states(self) -> int:
        return self.policy.shape[1]

    @property
    def num_actions(self) -> int:
        return self.policy.shape[2]

    def initiation_mask(self) -> Array:
        """`(K, S)` bool; all True when no initiation sets were given."""
        if self.initiation is None:
            return jnp.ones(self.termination.shape, dtype=bool)
        return self.initiation

    def check_mdp(self, mdp, name: str = "options") -> None:
        """Raise `ValueError` unless the options' `(S, A)` are the MDP's."""
        if (self.num_states, self.num_actions) != (mdp.num_states, mdp.num_actions):
            raise ValueError(f"{name}: built for (S, A) = ({self.num_states}, "
                             f"{self.num_actions}), the MDP has ({mdp.num_states}, "
                             f"{mdp.num_actions})")

    def __repr__(self) -> str:
        return f"Options(K={self.num_options}, S={self.num_states}, A={self.num_actions})"


def primitive_options(num_states: int, num_actions: int, dtype=None) -> Options:
    r"""The `A` primitive actions as options: one-hot policies, $\beta \equiv 1$, available everywhere."""
    checks.integer(num_states, "num_states")
    checks.integer(num_actions, "num_actions")
    dtype = checks.dtype(dtype)
    policy = jnp.broadcast_to(jnp.eye(num_actions, dtype=dtype)[:, None, :],
                              (num_actions, num_states, num_actions))
    return Options(policy, jnp.ones((num_actions, num_states), dtype))


def concatenate(*option_sets: Options) -> Options:
    """One `Options` holding all options of `option_sets`, in order."""
    if not option_sets:
        raise ValueError("option_sets: need at least one set of options")
    for i, o in enumerate(option_sets):
        checks.instance(o, f"option_sets[{i}]", Options, "an optiongrad.Options")
    shapes = {o.policy.shape[1:] for o in option_sets}
    if len(shapes) != 1:
        raise ValueError(f"option_sets: (S, A) must agree, got {sorted(shapes)}")
    dtype = jnp.result_type(*(o.policy for o in option_sets))
    policy = jnp.concatenate([o.policy.astype(dtype) for o in option_sets])
    termination = jnp.concatenate([o.termination.astype(dtype) for o in option_sets])
    initiation = None
    if any(o.initiation is not None for o in option_sets):
        initiation = jnp.concatenate([o.initiation_mask() for o in option_sets])
    return Options(policy, termination, initiation)


def with_primitives(options: Options) -> Options:
    """`options` followed by the primitive actions ("options + primitives")."""
    checks.instance(options, "options", Options, "an optiongrad.Options")
    return concatenate(options, primitive_options(options.num_states, options.num_actions,
                                                  options.policy.dtype))


def check_terminating(options: Options, exact) -> int:
    r"""`exact` (an int in `[0, K]`): the number of trailing options of `options` declared to
    terminate everywhere ($\beta \equiv 1$, e.g. the primitives appended by `with_primitives`); checked
    against the terminations when they are concrete (`ValueError` naming `exact`)."""
    exact = checks.integer(exact, "exact", minimum=0, maximum=options.num_options)
    if exact and is_concrete(options.termination) and not bool(
            jnp.all(jnp.asarray(options.termination)[options.num_options - exact:] == 1)):
        raise ValueError(f"exact: the last {exact} options must have termination 1 everywhere")
    return exact
