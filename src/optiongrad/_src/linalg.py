"""Dense linear solves that never reach a split batched LAPACK call.

Every `(S, S)` system of the library — policy evaluation `(I − γ P_π) v = r_π`, the λ-models
`(I − γ P_π Λ) X = [r_π, γ P_π B]`, the option and goal models, the Newton steps and the
implicit adjoints — is solved here, by one LU factorisation with partial pivoting (LAPACK
`getrf`) and two triangular solves (`trsm`). The factorisation is of `Aᵀ`: `P Aᵀ = L U`, so
`A = Uᵀ Lᵀ P` and

    A x = b      ⇔   Uᵀ y = b,    Lᵀ z = y,   x = Pᵀ z,
    Aᵀ x = b     ⇔   L y = P b,   U x = y.

LAPACK works on column-major matrices and XLA stores row-major ones, so a row-major `A` is a
column-major `Aᵀ` as it lies in memory: factorising `Aᵀ`, and keeping its factors
`F = L + U − I` as the row-major `G = Fᵀ`, hands LAPACK every matrix without a transposing
copy (that saved 14–16 % of a batched solve of 104 systems of 104 × 104).

Why not `jnp.linalg.solve`: under `vmap` it becomes *one* batched LAPACK call, and jaxlib
0.10.0–0.11.0 split a batched call whose estimated work (batch × `n³` for `getrf`, `n² m` for
`trsm` with `m` right-hand sides) reaches 2·10⁵ flops over XLA's intra-op thread pool, while
the calling pool thread blocks until the pieces finish. When two such calls run at once (XLA's
CPU runtime runs independent operations concurrently on that pool), every pool thread can end
up blocked waiting for pieces queued behind it, and the program hangs at 0 % CPU (on a 2-core
machine, two independent batched solves of 104 systems of 104 × 104 hung within a few hundred
calls in every run). A call below that work, or of one matrix, runs whole on its thread. So
under `vmap` the functions here make only such calls: the whole batch in one call when it is
below the threshold, else a loop (`lax.map`) over chunks that are, or over single matrices
when a chunk would hold fewer than 32 (measured on 2 cores: triangular solves in chunks of
18 systems of 104 × 104 were 4 % slower than one at a time, in chunks of 48 of 64 × 64 as
fast, and in chunks of 124 of 40 × 40 and 347 of 24 × 24, like factorisations in chunks of
115 of 12 × 12, 1.1–1.7× faster). A further `vmap` over
a chunk merges its axis into the batch and chunks again, so no nesting of `vmap`s can make a
call larger. A batch of right-hand sides that share one matrix becomes the columns of a
single (unbatched) solve. Under jaxlib 0.9 (which never splits) as under 0.10, this path is
faster than jaxlib 0.9's one batched call (`benchmarks/linalg.py`; README, "Known problems").

Derivatives: `solve` is a `lax.custom_linear_solve`, so forward and reverse mode see the
implicit-function rules `dx = A^{-1}(db − dA x)` and `b̄ = A^{-T} x̄`, `Ā = −b̄ xᵀ`, evaluated
with the same factors; the factorisation itself is never differentiated.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

Array = jax.Array

# jaxlib 0.10's `GetLapackBatchChunkSize` (kMinWorkPerTask): a batched LAPACK call whose
# estimated work, batch × cost per matrix, is below this many flops runs on the calling
# thread in one piece; only larger calls are split over the intra-op pool.
_SPLIT_WORK = 200_000
# Chunks of fewer matrices than this are no faster than one matrix at a time (measured:
# module docstring), so below it the loop makes unbatched calls.
_MIN_CHUNK = 32


def _chunk(cost: int) -> int:
    """The most matrices of `cost` estimated flops each that one batched call can take
    without being split (`batch × cost < _SPLIT_WORK`); at least one."""
    return max(1, (_SPLIT_WORK - 1) // max(cost, 1))


def _moved_front(x: Array, batched: bool, size: int) -> Array:
    """`x` with a leading batch axis of `size` (broadcast if it has none)."""
    return x if batched else jnp.broadcast_to(x, (size,) + x.shape)


def _all_batched(tree):
    return jax.tree_util.tree_map(lambda _: True, tree)


def _unsplit(plain: Callable, cost: Callable[..., int]) -> Callable:
    """`plain` (one matrix's LAPACK work, positional array arguments) as a function whose
    `vmap` makes no LAPACK call that jaxlib would split: the batch in one call if
    `size × cost(*args) < _SPLIT_WORK` (`cost` of the shapes and dtypes of one matrix's
    arguments, jaxlib's estimate), else `lax.map` over chunks of `_chunk(cost)` matrices or,
    below `_MIN_CHUNK`, one matrix at a time. The chunk's batched call is itself
    custom-batched: an outer `vmap` merges its axis into the chunk's and chunks again."""
    op = custom_vmap(plain)
    chunk_op = custom_vmap(jax.vmap(plain))

    @chunk_op.def_vmap
    def chunk_batched(axis_size, in_batched, *args):
        args = [_moved_front(x, b, axis_size) for x, b in zip(args, in_batched)]
        merged = jax.vmap(op)(*[x.reshape((-1,) + x.shape[2:]) for x in args])
        out = jax.tree_util.tree_map(lambda y: y.reshape((axis_size, -1) + y.shape[1:]), merged)
        return out, _all_batched(out)

    @op.def_vmap
    def batched(axis_size, in_batched, *args):
        args = tuple(_moved_front(x, b, axis_size) for x, b in zip(args, in_batched))
        chunk = _chunk(cost(*(jax.ShapeDtypeStruct(x.shape[1:], x.dtype) for x in args)))
        if axis_size <= chunk:
            out = chunk_op(*args)
        else:
            out = jax.lax.map(lambda xs: op(*xs), args,
                              batch_size=chunk if chunk >= _MIN_CHUNK else None)
        return out, _all_batched(out)

    return op


def _cost(a: Array, per_matrix: int) -> int:
    """jaxlib's flop estimate for one matrix: `per_matrix`, three times that for complex."""
    return per_matrix * (3 if jnp.iscomplexobj(a) else 1)


def _lu(a: Array) -> tuple[Array, Array]:
    """The factors `(G, pivots)` of `a (n, n)`: LAPACK's LU of `aᵀ` (module docstring), whose
    column-major result stored row-major is `G = Fᵀ`, and its row swaps."""
    f, pivots, _ = jax.lax.linalg.lu(a.T)
    return f.T, pivots


_pivoted = _unsplit(_lu, lambda a: _cost(a, a.shape[-1] ** 3))


def _factor(a: Array) -> tuple[Array, Array]:
    """`(G, perm)` of `a (n, n)` (module docstring). LAPACK's call (`_pivoted`) returns the
    row swaps; they become a permutation outside it, so that under `vmap` the swaps of all
    matrices are composed at once, not in a loop per matrix."""
    g, pivots = _pivoted(a)
    return g, jax.lax.linalg.lu_pivots_to_permutation(pivots, a.shape[-1])


def _substitute(g: Array, perm: Array, b: Array, transpose: bool) -> Array:
    """`A^{-1} b` (or `A^{-T} b`) for `b (n, m)` from the factors `(G, perm)` of `A`: two
    triangular solves with `F = Gᵀ` and a permutation (module docstring)."""
    tri = functools.partial(jax.lax.linalg.triangular_solve, g.T, left_side=True)
    if transpose:
        y = tri(b[perm], lower=True, unit_diagonal=True)
        return tri(y, lower=False)
    y = tri(b, lower=False, transpose_a=True)
    z = tri(y, lower=True, unit_diagonal=True, transpose_a=True)
    return jnp.zeros_like(z).at[perm].set(z)


def _make_substitute(transpose: bool):
    def plain(g: Array, perm: Array, b: Array) -> Array:
        column = b.ndim == 1
        x = _substitute(g, perm, b[:, None] if column else b, transpose)
        return x[:, 0] if column else x

    def cost(g: Array, perm: Array, b: Array) -> int:
        return _cost(g, g.shape[-1] ** 2 * (b.shape[-1] if b.ndim == 2 else 1))

    per_system = _unsplit(plain, cost)
    apply = custom_vmap(plain)

    @apply.def_vmap
    def apply_batched(axis_size, in_batched, g, perm, b):
        g_batched, perm_batched, b_batched = in_batched
        b = _moved_front(b, b_batched, axis_size)
        if not (g_batched or perm_batched):
            # one matrix, a batch of right-hand sides: they are the columns of one solve
            cols = jnp.moveaxis(b, 0, -1)                        # (n, [m,] batch)
            x = apply(g, perm, cols.reshape(cols.shape[0], -1))
            return jnp.moveaxis(x.reshape(cols.shape), -1, 0), True
        return jax.vmap(per_system, (0 if g_batched else None, 0 if perm_batched else None, 0))(
            g, perm, b), True

    return apply


_forward = _make_substitute(False)
_transposed = _make_substitute(True)


def lu_factor(a: Array) -> tuple[Array, Array]:
    """LU factors of a square matrix `a (n, n)` with partial pivoting, for `lu_solve`: the
    pair `(G, perm)` of the module docstring (LAPACK's factors of `aᵀ`, stored transposed).
    Not differentiable (factor a constant, or use `solve`); under `vmap`, no LAPACK call
    that jaxlib would split (module docstring)."""
    return _factor(jnp.asarray(a))


def lu_solve(factors: tuple[Array, Array], b: Array, trans: int = 0) -> Array:
    """`A^{-1} b` (`trans=0`) or `A^{-T} b` (`trans=1`) from `factors = lu_factor(A)`,
    `b (n,)` or `(n, m)`. Differentiable in `b` only (`A` is fixed by its factors)."""
    g, perm = factors
    return (_transposed if trans else _forward)(g, perm, jnp.asarray(b))


def solve(a: Array, b: Array) -> Array:
    """`x = A^{-1} b` for `a (n, n)` and `b (n,)` or `(n, m)` — `jnp.linalg.solve` without
    its batched LAPACK kernels (module docstring), differentiable in both arguments (implicit
    derivatives from the same factors), and `vmap`-able.

    Extra leading axes (`a (…, n, n)` with `b (…, n)` or `(…, n, m)`, the same leading
    shape) are mapped over as by `vmap`."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise ValueError(f"a: expected a square matrix (…, n, n), got shape {a.shape}")
    if a.ndim > 2:
        return jax.vmap(solve)(a, b)
    dtype = jnp.result_type(a, b)
    a, b = a.astype(dtype), b.astype(dtype)
    if b.shape[:1] != a.shape[:1] or b.ndim > 2:
        raise ValueError(f"b: expected shape ({a.shape[0]},) or ({a.shape[0]}, m), got {b.shape}")
    g, perm = _factor(jax.lax.stop_gradient(a))
    return jax.lax.custom_linear_solve(
        lambda x: a @ x, b,
        solve=lambda _, y: _forward(g, perm, y),
        transpose_solve=lambda _, y: _transposed(g, perm, y))


def inv(a: Array) -> Array:
    """`A^{-1}` of `a (n, n)`: `solve(a, I)`."""
    a = jnp.asarray(a)
    if a.ndim > 2:
        return jax.vmap(inv)(a)
    return solve(a, jnp.eye(a.shape[-1], dtype=a.dtype))
