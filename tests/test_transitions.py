import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
from optiongrad._src.transitions import expectation, policy_matrix, push_forward, to_dense
from reference import p_pi, random_mdp


def sparse_case(seed=0, s=6, a=3, b=3):
    rng = np.random.default_rng(seed)
    next_states = rng.integers(0, s, size=(s, a, b))
    probs = rng.random((s, a, b))
    probs /= probs.sum(-1, keepdims=True)
    dense = np.zeros((s, a, s))
    for i in range(s):
        for j in range(a):
            for k in range(b):
                dense[i, j, next_states[i, j, k]] += probs[i, j, k]
    return og.SparseTransitions(next_states, probs), dense


def test_sparse_todense_matches_loop_with_repeated_successors():
    sparse, dense = sparse_case()
    np.testing.assert_allclose(sparse.todense(), dense, atol=1e-15)
    assert sparse.shape == dense.shape


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_expectation_push_forward_and_policy_matrix(kind):
    sparse, dense = sparse_case(1)
    p = sparse if kind == "sparse" else jnp.asarray(dense)
    rng = np.random.default_rng(2)
    v = rng.normal(size=(6,))
    vb = rng.normal(size=(6, 5))
    w = rng.normal(size=(6, 3))
    wb = rng.normal(size=(6, 3, 5))
    pi = rng.random((6, 3))
    pi /= pi.sum(-1, keepdims=True)
    np.testing.assert_allclose(expectation(p, v), dense @ v, atol=1e-12)
    np.testing.assert_allclose(expectation(p, vb), np.einsum("sat,tb->sab", dense, vb), atol=1e-12)
    np.testing.assert_allclose(push_forward(p, w), np.einsum("sa,sat->t", w, dense), atol=1e-12)
    np.testing.assert_allclose(push_forward(p, wb), np.einsum("sab,sat->tb", wb, dense),
                               atol=1e-12)
    # push_forward is the transpose of expectation: <w, E v> = <push w, v>
    assert float(jnp.sum(w * expectation(p, v))) == pytest.approx(float(push_forward(p, w) @ v))
    np.testing.assert_allclose(policy_matrix(p, pi), p_pi(dense, pi), atol=1e-12)
    np.testing.assert_allclose(to_dense(p), dense, atol=1e-15)


def test_sparse_is_a_pytree_under_jit():
    sparse, dense = sparse_case(3)
    v = jnp.arange(6.0)
    out = jax.jit(expectation)(sparse, v)
    np.testing.assert_allclose(out, dense @ np.arange(6.0), atol=1e-12)


@pytest.mark.parametrize("next_states,probs,field,message", [
    (np.full((2, 1, 1), 2), np.ones((2, 1, 1)), "next_states", "outside"),
    (np.full((2, 1, 1), -1), np.ones((2, 1, 1)), "next_states", "outside"),
    (np.zeros((2, 1, 1)), np.ones((2, 1, 1)), "next_states", "integer"),
    (np.zeros((2, 1), int), np.ones((2, 1)), "next_states", "shape"),
    (np.zeros((2, 1, 2), int), np.ones((2, 1, 1)), "probs", "shape"),
    (np.zeros((2, 1, 2), int), np.full((2, 1, 2), 0.4), "probs", "sum to 1"),
    (np.zeros((2, 1, 2), int), np.array([[[1.5, -0.5]], [[1.0, 0.0]]]), "probs", "negative"),
])
def test_sparse_validation(next_states, probs, field, message):
    with pytest.raises(ValueError) as err:
        og.SparseTransitions(next_states, probs)
    assert str(err.value).startswith(field) and message in str(err.value), err.value


def test_mdp_with_sparse_transitions_checks_shapes():
    sparse, _ = sparse_case(4)
    mdp = og.MDP(sparse, np.zeros((6, 3)), 0.9)
    assert mdp.is_sparse
    with pytest.raises(ValueError, match="rewards"):
        og.MDP(sparse, np.zeros((6, 2)), 0.9)


def test_dense_random_mdp_through_sparse_representation_agrees():
    p, r, g, s0 = random_mdp(np.random.default_rng(5), 5, 2, 0.9)
    idx = np.broadcast_to(np.arange(5), (5, 2, 5))
    sparse = og.SparseTransitions(idx, p)
    np.testing.assert_allclose(sparse.todense(), p, atol=1e-15)


def test_probabilities_to_targets_equal_the_dense_tensor():
    from optiongrad._src.transitions import SparseTransitions, probabilities_to
    rng = np.random.default_rng(4)
    p = SparseTransitions(rng.integers(0, 6, (6, 3, 4)), rng.dirichlet(np.ones(4), (6, 3)))
    dense = np.asarray(p.todense())
    targets = np.array([2, 5, 2])
    for transitions in (p, jnp.asarray(dense)):
        np.testing.assert_allclose(probabilities_to(transitions, targets), dense[:, :, targets],
                                   atol=1e-15)
        np.testing.assert_allclose(probabilities_to(transitions, 5), dense[:, :, 5], atol=1e-15)
