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


def test_no_batched_lapack_call_in_the_program():
    """Batched LAPACK calls split over XLA's intra-op pool in jaxlib 0.10 and can deadlock
    (module docstring): a vmapped solve and its gradient must call LAPACK one matrix at a
    time."""
    a, b, _ = systems(3)

    def loss(a, b):
        return jnp.sum(jax.vmap(jax.vmap(linalg.solve))(a, b) ** 2)

    hlo = jax.jit(jax.value_and_grad(loss)).lower(a, b).compile().as_text()
    calls = re.findall(r"= (\([^=]*?\)|\S+) custom-call\(.*?custom_call_target=\"lapack_", hlo)
    assert calls
    for shape in calls:
        first = re.search(r"\[([\d,]*)\]", shape).group(1).split(",")
        assert len(first) <= 2, f"batched LAPACK call {shape}"
