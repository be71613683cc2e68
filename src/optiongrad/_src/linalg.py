"""Dense linear solves that never reach jaxlib's batched LAPACK kernels.

Every `(S, S)` system of the library — policy evaluation `(I − γ P_π) v = r_π`, the λ-models
`(I − γ P_π Λ) X = [r_π, γ P_π B]`, the option and goal models, the Newton steps and the
implicit adjoints — is solved here, by one LU factorisation `P A = L U` (partial pivoting,
LAPACK `getrf`) and two triangular solves (`trsm`):

    A x = b      ⇔   L y = P b,   U x = y,
    Aᵀ x = b     ⇔   Uᵀ y = b,    Lᵀ z = y,   x = Pᵀ z.

Why not `jnp.linalg.solve`: under `vmap` it becomes *one* batched LAPACK call, and jaxlib
0.10.0–0.11.0 split such a call over XLA's intra-op thread pool while the calling pool thread
blocks until the pieces finish. When two batched calls run at once (XLA's CPU runtime runs
independent operations concurrently on that pool) every pool thread can end up blocked
waiting for pieces queued behind it, and the program hangs at 0 % CPU (on a 2-core machine,
two independent batched solves of 104 systems of 104 × 104 hung within a few hundred calls
in every run). An unbatched call never splits (one matrix is one piece), so the functions here
make unbatched LAPACK calls only: under `vmap` they become a loop (`lax.map`) over the batch,
and a batch of right-hand sides that share one matrix becomes the columns of a single solve.
At the library's sizes the loop costs nothing (104 systems of 104 × 104 and their gradient
take the time of jaxlib 0.9's batched call, which is itself a loop over the batch); for
thousands of tiny systems (12 × 12) it is about twice as slow as a batched call.

Derivatives: `solve` is a `lax.custom_linear_solve`, so forward and reverse mode see the
implicit-function rules `dx = A^{-1}(db − dA x)` and `b̄ = A^{-T} x̄`, `Ā = −b̄ xᵀ`, evaluated
with the same factors; the factorisation itself is never differentiated.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

Array = jax.Array


def _loop(fn, xs):
    """`fn` over the leading axis of the pytree `xs`, one element at a time (`lax.map`)."""
    return jax.lax.map(fn, xs)


def _moved_front(x: Array, batched: bool, size: int) -> Array:
    """`x` with a leading batch axis of `size` (broadcast if it has none)."""
    return x if batched else jnp.broadcast_to(x, (size,) + x.shape)


@custom_vmap
def _factor(a: Array) -> tuple[Array, Array]:
    """`(lu, perm)` of `a (n, n)`: `a[perm] = L U`, `L` unit lower and `U` upper triangular,
    stored together in `lu` as LAPACK does."""
    lu, _, perm = jax.lax.linalg.lu(a)
    return lu, perm


@_factor.def_vmap
def _factor_batched(axis_size, in_batched, a):
    del axis_size
    (batched,) = in_batched
    if not batched:
        out = _factor(a)
        return out, (False, False)
    return _loop(_factor, a), (True, True)


def _substitute(lu: Array, perm: Array, b: Array, transpose: bool) -> Array:
    """`A^{-1} b` (or `A^{-T} b`) for `b (n, m)` from the factors of `A`: two triangular
    solves and a permutation (module docstring)."""
    tri = functools.partial(jax.lax.linalg.triangular_solve, lu, left_side=True)
    if not transpose:
        y = tri(b[perm], lower=True, unit_diagonal=True)
        return tri(y, lower=False)
    y = tri(b, lower=False, transpose_a=True)
    z = tri(y, lower=True, unit_diagonal=True, transpose_a=True)
    return jnp.zeros_like(z).at[perm].set(z)


def _make_substitute(transpose: bool):
    @custom_vmap
    def apply(lu: Array, perm: Array, b: Array) -> Array:
        column = b.ndim == 1
        x = _substitute(lu, perm, b[:, None] if column else b, transpose)
        return x[:, 0] if column else x

    @apply.def_vmap
    def apply_batched(axis_size, in_batched, lu, perm, b):
        lu_batched, perm_batched, b_batched = in_batched
        if not (lu_batched or perm_batched):
            # one matrix, a batch of right-hand sides: they are the columns of one solve
            b = _moved_front(b, b_batched, axis_size)
            cols = jnp.moveaxis(b, 0, -1)                        # (n, [m,] batch)
            x = apply(lu, perm, cols.reshape(cols.shape[0], -1))
            return jnp.moveaxis(x.reshape(cols.shape), -1, 0), True
        lu = _moved_front(lu, lu_batched, axis_size)
        perm = _moved_front(perm, perm_batched, axis_size)
        b = _moved_front(b, b_batched, axis_size)
        return _loop(lambda args: apply(*args), (lu, perm, b)), True

    return apply


_forward = _make_substitute(False)
_transposed = _make_substitute(True)


def lu_factor(a: Array) -> tuple[Array, Array]:
    """LU factors `(lu, perm)` of a square matrix `a (n, n)` with partial pivoting
    (`a[perm] = L U`), for `lu_solve`. Not differentiable (factor a constant, or use
    `solve`); under `vmap`, one unbatched factorisation per matrix (module docstring)."""
    return _factor(jnp.asarray(a))


def lu_solve(factors: tuple[Array, Array], b: Array, trans: int = 0) -> Array:
    """`A^{-1} b` (`trans=0`) or `A^{-T} b` (`trans=1`) from `factors = lu_factor(A)`,
    `b (n,)` or `(n, m)`. Differentiable in `b` only (`A` is fixed by its factors)."""
    lu, perm = factors
    return (_transposed if trans else _forward)(lu, perm, jnp.asarray(b))


def solve(a: Array, b: Array) -> Array:
    """`x = A^{-1} b` for `a (n, n)` and `b (n,)` or `(n, m)` — `jnp.linalg.solve` without
    its batched LAPACK kernels (module docstring), differentiable in both arguments (implicit
    derivatives from the same factors), and `vmap`-able.

    Extra leading axes (`a (…, n, n)` with `b (…, n)` or `(…, n, m)`, the same leading
    shape) are mapped over, one system at a time."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a: expected a square matrix (…, n, n), got shape {a.shape}")
    if a.ndim > 2:
        return jax.vmap(solve)(a, b)
    dtype = jnp.result_type(a, b)
    a, b = a.astype(dtype), b.astype(dtype)
    if b.shape[:1] != a.shape[:1] or b.ndim > 2:
        raise ValueError(f"b: expected shape ({a.shape[0]},) or ({a.shape[0]}, m), got {b.shape}")
    lu, perm = _factor(jax.lax.stop_gradient(a))
    return jax.lax.custom_linear_solve(
        lambda x: a @ x, b,
        solve=lambda _, y: _forward(lu, perm, y),
        transpose_solve=lambda _, y: _transposed(lu, perm, y))


def inv(a: Array) -> Array:
    """`A^{-1}` of `a (n, n)`: `solve(a, I)`."""
    a = jnp.asarray(a)
    if a.ndim > 2:
        return jax.vmap(inv)(a)
    return solve(a, jnp.eye(a.shape[-1], dtype=a.dtype))
