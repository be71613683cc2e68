import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optiongrad as og
import reference as ref
from optiongrad._src.multistep import execution_distribution, lambda_model, model_evaluation


def setup(seed, s=6, a=3, gamma=0.9):
    rng = np.random.default_rng(seed)
    p, r, g, s0 = ref.random_mdp(rng, s, a, gamma)
    pi = rng.random((s, a))
    pi /= pi.sum(-1, keepdims=True)
    lam = rng.random(s)
    return og.MDP(p, r, g, s0), (p, r, g), pi, lam


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), s=st.integers(1, 8), a=st.integers(1, 4),
       gamma=st.floats(0.0, 0.99))
def test_lambda_model_value_equals_v_pi_for_every_lambda(seed, s, a, gamma):
    mdp, (p, r, g), pi, lam = setup(seed, s, a, gamma)
    v_pi = ref.evaluate(p, r, g, pi)
    for continuation in (lam, np.zeros(s), np.ones(s), (lam > 0.5).astype(float)):
        reward, transition = lambda_model(mdp, pi, continuation)
        np.testing.assert_allclose(model_evaluation(reward, transition), v_pi,
                                   rtol=1e-9, atol=1e-9)
        # rows of P^λ sum to at most γ (γ is inside the model)
        assert np.asarray(transition).sum(1).max() <= g + 1e-12


def test_lambda_zero_is_the_one_step_model_and_lambda_one_is_v_pi():
    mdp, (p, r, g), pi, _ = setup(1)
    reward, transition = lambda_model(mdp, pi, np.zeros(6))
    np.testing.assert_allclose(reward, (pi * r).sum(-1), rtol=1e-12)
    np.testing.assert_allclose(transition, g * ref.p_pi(p, pi), rtol=1e-12)
    reward, transition = lambda_model(mdp, pi, np.ones(6))
    np.testing.assert_allclose(reward, ref.evaluate(p, r, g, pi), rtol=1e-12)
    np.testing.assert_allclose(transition, 0.0, atol=1e-15)


def test_models_match_their_series_definitions():
    """r^λ = Σ_t (γ P_π Λ)^t r_π and P^λ = Σ_t (γ P_π Λ)^t γ P_π B, summed explicitly."""
    mdp, (p, r, g), pi, lam = setup(2)
    ppi = ref.p_pi(p, pi)
    step = g * ppi * lam[None, :]
    term, d = np.eye(6), np.zeros((6, 6))
    for _ in range(2000):
        d += term
        term = term @ step
    reward, transition = lambda_model(mdp, pi, lam)
    np.testing.assert_allclose(execution_distribution(mdp, pi, lam), d, rtol=1e-10)
    np.testing.assert_allclose(reward, d @ (pi * r).sum(-1), rtol=1e-10)
    np.testing.assert_allclose(transition, d @ (g * ppi * (1 - lam)[None, :]), rtol=1e-10)


def test_lambda_model_is_differentiable_in_continuation():
    mdp, _, pi, lam = setup(3)
    w = np.random.default_rng(0).normal(size=6)

    def f(lam):
        reward, transition = lambda_model(mdp, pi, lam)
        return jnp.dot(w, reward) + jnp.sum(transition)

    grad = jax.grad(f)(jnp.asarray(lam))
    h = 1e-6
    for i in range(6):
        e = np.zeros(6)
        e[i] = h
        fd = (f(jnp.asarray(lam + e)) - f(jnp.asarray(lam - e))) / (2 * h)
        assert float(grad[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-10)


def test_bad_shapes():
    mdp, _, pi, lam = setup(4)
    with pytest.raises(ValueError, match="policy"):
        lambda_model(mdp, pi[:, :2], lam)
    with pytest.raises(ValueError, match="continuation"):
        lambda_model(mdp, pi, lam[:3])
