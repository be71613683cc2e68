"""A base for the validated containers (`MDP`, `Options`, `SparseTransitions`)."""

from __future__ import annotations

from typing import ClassVar


class ValidatedPytree:
    """A frozen container whose pytree children are the fields named in `_fields`, in order.

    The constructor validates (subclasses define it); `tree_unflatten` and `_unchecked` build
    an instance without validation, as JAX does when it rebuilds a pytree from tracers or
    sentinels. Subclasses are registered with `jax.tree_util.register_pytree_node_class`.
    """

    _fields: ClassVar[tuple[str, ...]] = ()

    def _set(self, *values) -> None:
        for name, value in zip(self._fields, values):
            object.__setattr__(self, name, value)

    @classmethod
    def _unchecked(cls, *values):
        obj = object.__new__(cls)
        obj._set(*values)
        return obj

    def _replace_unchecked(self, **changes):
        """A copy with fields replaced, without validation (for fields known to be valid)."""
        return self._unchecked(*(changes.get(f, getattr(self, f)) for f in self._fields))

    def tree_flatten(self):
        return tuple(getattr(self, f) for f in self._fields), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls._unchecked(*children)
