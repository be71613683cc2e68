"""The library's dense solves (`optiongrad._src.linalg`): the values and derivatives of
`jnp.linalg.solve`, under any batching, with only unbatched LAPACK calls in the program."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optiongrad._src import linalg


def systems(seed=0, batch=(3, 2), n=6, m=4):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=batch + (n, n)) + 3 * np.eye(n)
    return a, rng.normal(size=batch + (n,)), rng.normal(size=batch + (n, m))


def close(x, y):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-10, atol=1e-10)


def test_solve_matches_jnp_for_vectors_matrices_and_leading_axes():
    a, b, c = systems()
    close(linalg.solve(a[0, 0], b[0, 0]), np.linalg.solve(a[0, 0], b[0, 0]))
    close(linalg.solve(a[0, 0], c[0, 0]), np.linalg.solve(a[0, 0], c[0, 0]))
    close(linalg.solve(a, c), np.linalg.solve(a, c))
    close(linalg.solve(a, b), np.linalg.solve(a, b[..., None])[..., 0])
    close(linalg.inv(a), np.linalg.inv(a))


@pytest.mark.parametrize("axes", [(0, 0), (None, 0), (0, None)])
def test_solve_under_vmap(axes):
    a, b, c = systems()
    a0 = a[0] if axes[0] == 0 else a[0, 0]
    for rhs in (b, c):
        r0 = rhs[0] if axes[1] == 0 else rhs[0, 0]
        got = jax.vmap(linalg.solve, axes)(a0, r0)
        want = [np.linalg.solve(a0[i] if axes[0] == 0 else a0,
                                r0[i] if axes[1] == 0 else r0) for i in range(2)]
        close(got, np.stack(want))
    close(jax.vmap(jax.vmap(linalg.solve))(a, b), np.linalg.solve(a, b[..., None])[..., 0])
    close(jax.jit(lambda a, b: jax.lax.map(lambda ab: linalg.solve(*ab), (a, b), batch_size=2))(
        a[:, 0], b[:, 0]), np.linalg.solve(a[:, 0], b[:, 0, :, None])[..., 0])


@pytest.mark.parametrize("transform", [jax.grad, jax.jacfwd, jax.jacrev, jax.hessian])
def test_solve_derivatives_match_jnp(transform):
    a, _, c = systems(1)

    def loss(solve):
        return lambda a, c: jnp.sum(jnp.sin(solve(a, c)))

    for arg in (0, 1):
        close(transform(loss(linalg.solve), arg)(a[0, 0], c[0, 0]),
              transform(loss(jnp.linalg.solve), arg)(a[0, 0], c[0, 0]))
    batched = jax.vmap(jax.vmap(jax.grad(loss(linalg.solve))))(a, c)
    close(batched, jax.vmap(jax.vmap(jax.grad(loss(jnp.linalg.solve))))(a, c))


def test_lu_solve_both_ways_and_batched():
    a, b, _ = systems(2)
    factors = linalg.lu_factor(a[0, 0])
    close(linalg.lu_solve(factors, b[0, 0]), np.linalg.solve(a[0, 0], b[0, 0]))
    close(linalg.lu_solve(factors, b[0, 0], trans=1), np.linalg.solve(a[0, 0].T, b[0, 0]))
    got = jax.vmap(lambda a, b: linalg.lu_solve(linalg.lu_factor(a), b, trans=1))(a[0], b[0])
    close(got, np.stack([np.linalg.solve(x.T, y) for x, y in zip(a[0], b[0])]))


def lapack_calls(hlo: str):
    """`(target, batch, work)` of every LAPACK call in compiled HLO text, with jaxlib's flop
    estimate per call (`batch × cost per matrix`; the library solves with the matrix on the
    left, so a `trsm` on `y (rows, cols)` costs `rows · cols · rows`)."""
    calls = []
    for shape, target in re.findall(
            r"= \(?(\w+\[[\d,]*\])[^=]*? custom-call\(.*?custom_call_target=\"(lapack_\w+)\"", hlo):
        dims = [int(d) for d in re.search(r"\[([\d,]*)\]", shape).group(1).split(",") if d]
        *batch, rows, cols = dims
        size = int(np.prod(batch)) if batch else 1
        cost = rows * cols * min(rows, cols) if "getrf" in target else rows * cols * rows
        calls.append((target, size, size * cost))
    return calls


@pytest.mark.parametrize("count, n", [(300, 12), (5, 64)])
def test_no_lapack_call_is_split_over_threads(count, n):
    """jaxlib 0.10 splits a batched LAPACK call of 2·10⁵ estimated flops or more over XLA's
    intra-op pool, which can deadlock (module docstring): every call of a vmapped solve and
    its gradient must stay below that, in chunks of small matrices (300 of 12 × 12) or one
    matrix at a time (64 × 64), and the values and gradients must be numpy's."""
    rng = np.random.default_rng(3)
    a = rng.normal(size=(2, count, n, n)) + 3 * np.sqrt(n) * np.eye(n)
    b = rng.normal(size=(2, count, n))

    def loss(a, b):
        return jnp.sum(jax.vmap(jax.vmap(linalg.solve))(a, b) ** 2)

    hlo = jax.jit(jax.value_and_grad(loss, (0, 1))).lower(a, b).compile().as_text()
    calls = lapack_calls(hlo)
    assert {"getrf" in t for t, _, _ in calls} == {True, False}
    # one matrix is never split, whatever its size
    assert all(size == 1 or work < linalg._SPLIT_WORK for _, size, work in calls), calls
    if n == 12:
        assert max(size for _, size, _ in calls) > 1    # chunks, not one matrix at a time
    value, (grad_a, grad_b) = jax.jit(jax.value_and_grad(loss, (0, 1)))(a, b)
    # numpy's reference (jnp.linalg.solve of this batch is itself a split call): for
    # L = Σ‖x‖², x = A⁻¹b: ∂L/∂b = A⁻ᵀ 2x and ∂L/∂A = −(∂L/∂b) xᵀ
    x = np.linalg.solve(a, b[..., None])
    w = np.linalg.solve(np.swapaxes(a, -1, -2), 2 * x)
    close(value, np.sum(x ** 2))
    close(grad_b, w[..., 0])
    close(grad_a, -w * np.swapaxes(x, -1, -2))
