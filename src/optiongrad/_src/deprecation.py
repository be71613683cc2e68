"""Deprecation paths: renamed keywords and the module paths of optiongrad 0.1.

optiongrad 0.1 exposed every implementation module (`optiongrad.options`,
`optiongrad.planning`, …) and spelled some arguments differently (`reward=` for `rewards=`,
`planning_budget=` for `num_sweeps=`, `environment=` / `task=` for `mdp=`). Both keep working
and warn with a `DeprecationWarning` that names the new spelling.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

#: optiongrad 0.1 module → the implementation modules that now hold its names.
OLD_MODULES = {
    "mdp": ("mdp",),
    "transitions": ("transitions",),
    "evaluation": ("evaluation",),
    "implicit": ("implicit", "solvers"),
    "planning": ("planning", "backups"),
    "newton": ("newton",),
    "multistep": ("multistep",),
    "options": ("options", "option_models", "hierarchical", "rollouts"),
    "planning_time": ("planning_time",),
    "goal_tasks": ("goal_tasks",),
    "option_gradient": ("option_gradient",),
    "objectives": ("objectives",),
}


def renamed(**old_to_new):
    """Decorator: accept `old=` keywords as the deprecated spelling of `new=`."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise ValueError(f"{old}: the deprecated spelling of {new}; give one")
                    name = fn.__qualname__.removesuffix(".__init__")
                    warnings.warn(f"{name}: the keyword {old}= is deprecated, use {new}=",
                                  DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate


class _OldModule(types.ModuleType):
    """A 0.1 module path: every attribute is looked up in the new modules, with a warning."""

    def __init__(self, name: str, sources: tuple[str, ...]):
        super().__init__(name, f"Deprecated: optiongrad 0.1's `{name}`; use `optiongrad`.")
        self._sources = sources

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        for source in self._sources:
            module = importlib.import_module(f"optiongrad._src.{source}")
            if hasattr(module, attr):
                warnings.warn(f"{self.__name__}.{attr} is deprecated: import optiongrad as og "
                              "and use og.<name> (see the API page)", DeprecationWarning,
                              stacklevel=2)
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")


class _OldModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes `import optiongrad.<old>` give an `_OldModule`."""

    def find_spec(self, fullname, path, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix == "optiongrad" and name in OLD_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return _OldModule(spec.name, OLD_MODULES[spec.name.partition(".")[2]])

    def exec_module(self, module):
        pass


def install() -> None:
    """Register the finder for the 0.1 module paths (once)."""
    if not any(isinstance(f, _OldModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_OldModuleFinder())


def old_module(name: str):
    """`optiongrad.<name>` for a 0.1 module name (the package's `__getattr__`)."""
    if name not in OLD_MODULES:
        raise AttributeError(f"module 'optiongrad' has no attribute {name!r}")
    warnings.warn(f"optiongrad.{name} is deprecated: use og.<name> (see the API page)",
                  DeprecationWarning, stacklevel=3)
    return importlib.import_module(f"optiongrad.{name}")
