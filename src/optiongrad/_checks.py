"""Small helpers for validation at the API boundary and dtype-dependent defaults."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when `x` holds concrete values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def row_sum_tolerance(dtype) -> float:
    """How far a probability row may sum from 1 and still be accepted."""
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-6


def default_tol(dtype) -> float:
    """Default stopping tolerance `‖x_{k+1} − x_k‖_∞ ≤ tol` for fixed-point iterations.

    float64: 1e-10; float32 (and narrower): 1e-5, a few ulps of values of order 10.
    """
    return 1e-5 if jnp.finfo(dtype).bits <= 32 else 1e-10


def default_rtol(dtype) -> float:
    """Default relative tolerance for linear solves (evaluation, adjoints)."""
    return 1e-6 if jnp.finfo(dtype).bits <= 32 else 1e-12


def check_finite(x, field: str) -> None:
    if is_concrete(x):
        arr = np.asarray(x)
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))
            where = f" at {tuple(int(i) for i in bad[0])}" if arr.ndim else ""
            raise ValueError(f"{field}: non-finite value{where}")


def check_positive_int(value, name: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")


def check_choice(value, name: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}, got {value!r}")


def check_nonnegative_number(value, name: str) -> None:
    if value is None:
        return
    if is_concrete(value):
        arr = np.asarray(value)
        if arr.ndim != 0 or not np.isfinite(arr) or arr < 0:
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")


def check_distribution_rows(probs: np.ndarray, field: str, row_name: str = "") -> None:
    """Raise `ValueError` unless every row along the last axis is a probability vector."""
    if not np.all(np.isfinite(probs)):
        bad = np.argwhere(~np.isfinite(probs))[0]
        raise ValueError(f"{field}: non-finite value at {tuple(int(i) for i in bad)}")
    if np.any(probs < 0):
        bad = np.argwhere(probs < 0)[0]
        raise ValueError(
            f"{field}: negative probability {probs[tuple(bad)]} at {tuple(int(i) for i in bad)}"
        )
    sums = probs.sum(axis=-1)
    off = np.abs(sums - 1.0) > row_sum_tolerance(probs.dtype)
    if np.any(off):
        bad = np.argwhere(off)[0] if off.ndim else ()
        total = float(sums[tuple(bad)])
        if row_name:
            raise ValueError(f"{field}: rows must sum to 1; row {row_name} = "
                             f"{tuple(int(i) for i in bad)} sums to {total:.6g}")
        raise ValueError(f"{field}: must sum to 1, sums to {total:.6g}")
