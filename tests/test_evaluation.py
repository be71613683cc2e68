import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from conftest import tolerance


def make(dtype, kind="dense", seed=0, s=7, a=3, gamma=0.9):
    p, r, g, s0 = ref.random_mdp(np.random.default_rng(seed), s, a, gamma)
    rng = np.random.default_rng(seed + 100)
    pi = rng.random((s, a))
    pi /= pi.sum(-1, keepdims=True)
    if kind == "sparse":
        idx = np.broadcast_to(np.arange(s), (s, a, s))
        transitions = og.SparseTransitions(idx, p.astype(dtype))
    else:
        transitions = p.astype(dtype)
    mdp = og.MDP(transitions, r.astype(dtype), g, s0.astype(dtype))
    return mdp, (p, r, g, s0), pi.astype(dtype)


@pytest.mark.parametrize("method", ["direct", "iterative"])
@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_evaluation_matches_dense_numpy(dtype, maybe_jit, method, kind):
    mdp, (p, r, g, s0), pi = make(dtype, kind)
    pi64 = pi.astype(np.float64)
    tol = tolerance(dtype, 1e-10, 1e-4)
    v = maybe_jit(lambda m, x: og.policy_evaluation(m, x, method=method))(mdp, pi)
    assert v.dtype == dtype
    np.testing.assert_allclose(v, ref.evaluate(p, r, g, pi64), rtol=tol, atol=tol)
    q = maybe_jit(lambda m, x: og.q_values(m, x, method=method))(mdp, pi)
    np.testing.assert_allclose(q, ref.q_values(p, r, g, pi64), rtol=tol, atol=tol)
    d = maybe_jit(lambda m, x: og.occupancy(m, x, method=method))(mdp, pi)
    np.testing.assert_allclose(d, ref.occupancy(p, s0, g, pi64), rtol=tol, atol=tol)
    j = maybe_jit(lambda m, x: og.expected_return(m, x, method=method))(mdp, pi)
    assert float(j) == pytest.approx(float(s0 @ ref.evaluate(p, r, g, pi64)), rel=tol, abs=tol)


def test_identities(dtype):
    mdp, _, pi = make(dtype, seed=3)
    tol = tolerance(dtype, 1e-10, 1e-4)
    v = og.policy_evaluation(mdp, pi)
    q = og.q_values(mdp, pi)
    d = og.occupancy(mdp, pi)
    # V = Σ_a π Q ; d sums to 1/(1 − γ) ; J = s0·V = d·r_π
    np.testing.assert_allclose(v, (pi * q).sum(-1), rtol=tol, atol=tol)
    assert float(d.sum()) == pytest.approx(1 / (1 - 0.9), rel=tol)
    r_pi = (pi * mdp.rewards).sum(-1)
    assert float(mdp.initial @ v) == pytest.approx(float(d @ r_pi), rel=tol, abs=tol)


def test_gradient_wrt_policy_is_d_times_q():
    """Policy-gradient theorem for tabular π: ∂J/∂π[s, a] = d_π[s] Q_π[s, a]."""
    mdp, (p, r, g, s0), pi = make(np.float64, seed=4)
    grad = jax.grad(lambda x: og.expected_return(mdp, x))(jnp.asarray(pi))
    expected = ref.occupancy(p, s0, g, pi)[:, None] * ref.q_values(p, r, g, pi)
    np.testing.assert_allclose(grad, expected, rtol=1e-10)


def test_iterative_gradient_matches_direct():
    mdp, _, pi = make(np.float64, "sparse", seed=5)

    def j(rewards, method):
        return og.expected_return(mdp.replace(rewards=rewards), pi, method=method)

    g_direct = jax.grad(j)(mdp.rewards, "direct")
    g_iter = jax.grad(j)(mdp.rewards, "iterative")
    np.testing.assert_allclose(g_iter, g_direct, rtol=1e-9)


def test_iterative_non_convergence_gives_nan_not_a_wrong_number():
    mdp, _, pi = make(np.float64, seed=6)
    v = og.policy_evaluation(mdp, pi, method="iterative", max_iter=3)
    assert np.isnan(v).all()


def test_bad_arguments():
    mdp, _, pi = make(np.float64)
    with pytest.raises(ValueError, match="policy"):
        og.policy_evaluation(mdp, pi[:, :2])
    with pytest.raises(ValueError, match="method"):
        og.policy_evaluation(mdp, pi, method="lu")
