"""A base for the validated containers (`MDP`, `Options`, `SparseTransitions`)."""

from __future__ import annotations

from typing import ClassVar


class ValidatedPytree:
    """A frozen container whose pytree children are the fields named in `_fields`, in order.

    The constructor validates (subclasses define it); `tree_unflatten` builds an instance
    without validation, as JAX does when it rebuilds a pytree from tracers or sentinels.
    Subclasses are registered with `jax.tree_util.register_pytree_node_class`.
    """

    _fields: ClassVar[tuple[str, ...]] = ()

    def _set(self, *values) -> None:
        for name, value in zip(self._fields, values):
            object.__setattr__(self, name, value)

    def tree_flatten(self):
        return tuple(getattr(self, f) for f in self._fields), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj._set(*children)
        return obj
