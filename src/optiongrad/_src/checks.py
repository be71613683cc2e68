"""Validation at the API boundary, and dtype-dependent defaults.

Every public function checks its arguments here. The rules, the same everywhere:

* a check runs only on concrete values; a tracer (inside `jit`, `vmap`, `grad`) passes with
  at most its shape checked, so validated functions compose with JAX transformations;
* a failed check raises `ValueError` whose message starts with the argument's name
  (`"policy: row (3,) sums to 0.5; rows must sum to 1"`);
* input that is not numeric at all (a string, `None` where an array is needed, an object)
  gets the same `ValueError`, never a `TypeError` from deep inside JAX;
* lists, integers and numpy arrays are accepted wherever arrays are.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def is_concrete(x) -> bool:
    """True when `x` holds concrete values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def row_sum_tolerance(dtype) -> float:
    """How far a probability row may sum from 1 and still be accepted."""
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-6


def default_tol(dtype) -> float:
    r"""Default stopping tolerance $\Vert x_{k+1} - x_k\Vert _\infty \le \mathtt{tol}$ for fixed-point iterations.

    float64: 1e-10; float32 (and narrower): 1e-5, a few ulps of values of order 10.
    """
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-10


def default_rtol(dtype) -> float:
    """Default relative tolerance for linear solves (evaluation, adjoints)."""
    return 1e-6 if jnp.finfo(dtype).bits <= 32 else 1e-12


def float_dtype(*arrays):
    """The floating dtype of `arrays`: JAX's default float when none is floating, float32 at
    least (half precision is promoted: the linear algebra needs 32 bits)."""
    dtype = jnp.result_type(*arrays) if arrays else jnp.result_type(float)
    if not jnp.issubdtype(dtype, jnp.floating):
        return jnp.result_type(float)
    return jnp.promote_types(dtype, jnp.float32)


def _where(mask: np.ndarray) -> str:
    return str(tuple(int(i) for i in np.argwhere(mask)[0])) if mask.ndim else "()"


# -- conversion ---------------------------------------------------------------------------------


def as_array(x, name: str, *, dtype=None, kind: str = "float"):
    """`x` as a JAX array, as `jnp.asarray(x, dtype)` makes it (Python scalars stay weakly
    typed); a tracer is returned as is (cast to `dtype` when given).

    Args:
      x: array-like.
      name: the argument's name, for the error message.
      dtype: cast to this dtype.
      kind: "float" (any real number: bool, integer or floating), "int" (an integer dtype)
        or "bool" (the bool dtype).
    """
    if not is_concrete(x):
        return x if dtype is None else x.astype(dtype)
    to_numpy(x, name, kind)
    return jnp.asarray(x, dtype)


def to_numpy(x, name: str, kind: str = "float") -> np.ndarray:
    """The concrete `x` as a numpy array of the given kind (see `as_array`), or `ValueError`."""
    if x is None:
        raise ValueError(f"{name}: expected an array, got None")
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{name}: expected a numeric array, got {type(x).__name__} "
                         f"({err})") from None
    if arr.dtype.kind == "c":
        raise ValueError(f"{name}: complex values are not supported (dtype {arr.dtype})")
    allowed = {"float": "biuf", "int": "iu", "bool": "b"}[kind]
    if arr.dtype.kind not in allowed:
        what = {"float": "a numeric array", "int": "integers", "bool": "a bool array"}[kind]
        raise ValueError(f"{name}: expected {what}, got {_describe(x, arr)}")
    if kind == "int" and arr.size and (arr.min() < np.iinfo(np.int32).min
                                       or arr.max() > np.iinfo(np.int32).max):
        raise ValueError(f"{name}: integer {arr.max() if arr.max() > 0 else arr.min()} does "
                         "not fit in int32")
    return arr


def _describe(x, arr: np.ndarray) -> str:
    if arr.dtype.kind in "OSUV":
        return f"{type(x).__name__} {x!r:.60}"
    return f"dtype {arr.dtype}"


def number(value, name: str, *, low: Optional[float] = None, high: Optional[float] = None,
           low_open: bool = False, high_open: bool = False, allow_none: bool = False):
    """A finite real scalar in the given range (a tracer passes unchecked); returned as is.

    `low_open` / `high_open` exclude the bound itself.
    """
    if value is None and allow_none:
        return None
    if not is_concrete(value):
        return value
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    arr = to_numpy(value, name)
    if arr.dtype == np.bool_:
        raise ValueError(f"{name}: expected a number, got a bool {arr!r}")
    if arr.ndim != 0:
        raise ValueError(f"{name}: expected a scalar, got shape {arr.shape}")
    v = float(arr)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    interval = f"{lo}{'-inf' if low is None else f'{low:g}'}, " \
        f"{'inf' if high is None else f'{high:g}'}{hi}"
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name}: expected a number in {interval}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name}: expected a number in {interval}, got {v}")
    return value


def integer(value, name: str, *, minimum: int = 1, maximum: Optional[int] = None,
            allow_none: bool = False) -> Optional[int]:
    r"""A Python integer (not a bool or a float) $\ge \mathtt{minimum}$ (and $\le \mathtt{maximum}$)."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name}: expected an integer {bound}, got {value}")
    return int(value)


def tolerance(value, name: str = "tol") -> Optional[float]:
    r"""A stopping tolerance: None (the default) or a finite number $\ge 0$, as a Python float
    (a static setting of the compiled solve)."""
    number(value, name, low=0.0, allow_none=True)
    return None if value is None else float(value)


#: The largest iteration count a solve takes (its counters are int32).
MAX_ITERATIONS = 2**31 - 2


def iterations(value, name: str = "max_iter", *, allow_none: bool = False) -> Optional[int]:
    """An iteration limit: an integer in `[1, 2**31 − 2]` (the counters are int32)."""
    return integer(value, name, maximum=MAX_ITERATIONS, allow_none=allow_none)


def choice(value, name: str, choices: Sequence) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")


def shape(x, name: str, expected: tuple, layout: str) -> None:
    """`x` has shape `expected`; the message names the layout, e.g. "(S, A)"."""
    got = tuple(jnp.shape(x))
    if got != tuple(expected):
        raise ValueError(f"{name}: expected shape {layout} = {tuple(expected)}, got {got}")


def finite(x, name: str) -> None:
    if is_concrete(x):
        arr = np.asarray(x)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: non-finite value at {_where(~np.isfinite(arr))}")


# -- probabilities ------------------------------------------------------------------------------


def distribution_rows(probs, name: str, row_name: str = "") -> None:
    """Raise `ValueError` unless every row along the last axis is a probability vector."""
    if not is_concrete(probs):
        return
    probs = np.asarray(probs)
    finite(probs, name)
    if np.any(probs < 0):
        bad = probs < 0
        raise ValueError(f"{name}: negative probability {probs[np.nonzero(bad)][0]} "
                         f"at {_where(bad)}")
    sums = probs.sum(axis=-1)
    off = np.abs(sums - 1.0) > row_sum_tolerance(probs.dtype)
    if np.any(off):
        total = float(np.asarray(sums)[np.nonzero(off)][0]) if off.ndim else float(sums)
        if row_name and off.ndim:
            raise ValueError(f"{name}: rows must sum to 1; row {row_name} = {_where(off)} "
                             f"sums to {total:.6g}")
        raise ValueError(f"{name}: must sum to 1, sums to {total:.6g}")


def in_unit_interval(x, name: str) -> None:
    """Every entry of `x` is a probability in [0, 1]."""
    if is_concrete(x):
        arr = np.asarray(x)
        finite(arr, name)
        bad = (arr < 0) | (arr > 1)
        if np.any(bad):
            raise ValueError(f"{name}: {arr[np.nonzero(bad)][0] if arr.ndim else float(arr)} "
                             f"at {_where(bad)} is outside [0, 1]")


def policy(x, name: str, expected: tuple, layout: str, dtype, *,
           support: Optional[Array] = None, row_name: str = "s"):
    """A stochastic policy: shape `expected`, rows on the simplex, cast to `dtype`.

    `support` (bool, same shape) marks the entries allowed to be positive (e.g. the options
    available in each state); a positive probability outside it is refused.
    """
    x = as_array(x, name, dtype=dtype)
    shape(x, name, expected, layout)
    distribution_rows(x, name, row_name)
    if support is not None and is_concrete(x) and is_concrete(support):
        bad = (np.asarray(x) > 0) & ~np.asarray(support)
        if np.any(bad):
            raise ValueError(f"{name}: positive probability at {_where(bad)} where the "
                             "action (option) is not available")
    return x


def substochastic(transitions, name: str) -> None:
    """Option transition models `(K, S, S)`: non-negative (up to rounding, `row_sum_tolerance`),
    every row summing to less than 1 (γ is inside the models, so a row sums to at most γ)."""
    if not is_concrete(transitions):
        return
    arr = np.asarray(transitions)
    finite(arr, name)
    bad = arr < -row_sum_tolerance(arr.dtype)
    if np.any(bad):
        raise ValueError(f"{name}: negative entry {arr[np.nonzero(bad)][0]} at {_where(bad)}")
    sums = arr.sum(axis=-1)
    if np.any(sums >= 1.0):
        bad = sums >= 1.0
        raise ValueError(f"{name}: row {_where(bad)} sums to "
                         f"{float(sums[np.nonzero(bad)][0]):.6g}; option transition models "
                         "must sum to less than 1 (the discount γ is inside them)")


def indices(x, name: str, size: int, *, scalar: bool = False, allow_empty: bool = False):
    """Integer state indices in `[0, size)`: one index when `scalar`, else a 1-d array
    (non-empty unless `allow_empty`)."""
    if not is_concrete(x):
        return x
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"{name}: expected an integer state index, got {x!r}")
    arr = to_numpy(x, name, kind="int")
    if scalar and arr.ndim != 0:
        raise ValueError(f"{name}: expected one state index, got shape {arr.shape}")
    if not scalar and arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array of state indices, got shape {arr.shape}")
    if not scalar and arr.size == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one state index, got none")
    bad = (arr < 0) | (arr >= size)
    if np.any(bad):
        value = int(arr[np.nonzero(bad)][0]) if arr.ndim else int(arr)
        raise ValueError(f"{name}: state index {value} is outside [0, {size})")
    return jnp.asarray(arr, jnp.int32)


def temperature(value, backup: str, name: str = "temperature"):
    r"""$\tau > 0$ for the smooth backups, $\tau \ge 0$ for `max`; a finite scalar."""
    return number(value, name, low=0.0, low_open=backup != "max")


def boolean(value, name: str) -> bool:
    """A Python or numpy bool (not a number or a string that happens to be truthy)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def instance(value, name: str, cls, what: str) -> None:
    if not isinstance(value, cls):
        raise ValueError(f"{name}: expected {what}, got {type(value).__name__}")


def random_key(key, name: str = "key"):
    """A `jax.random` key from a key (typed or raw `uint32[2]`) or an integer seed in
    `[0, 2**32)`; a tracer passes."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        integer(key, name, minimum=0, maximum=2**32 - 1)
        return jax.random.key(int(key))
    if not is_concrete(key):
        return key
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{name}: expected a single key, got a batch of shape {key.shape}")
        return key
    if isinstance(key, (jax.Array, np.ndarray)) and key.shape == (2,) and key.dtype == np.uint32:
        return jnp.asarray(key)
    raise ValueError(f"{name}: expected a jax.random key or an integer seed, got {key!r:.60}")


def dtype(value, name: str = "dtype"):
    """A floating dtype (None: JAX's default float, float64 only with x64 enabled)."""
    if value is None:
        return jnp.result_type(float)
    try:
        dt = np.dtype(value)
    except TypeError:
        raise ValueError(f"{name}: expected a floating dtype, got {value!r}") from None
    if dt.kind != "f" or dt.itemsize < 4:
        raise ValueError(f"{name}: expected float32 or float64, got {dt}")
    return jnp.result_type(dt)
