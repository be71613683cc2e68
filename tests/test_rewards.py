import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref


def mdp_and_p(seed=0, s=5, a=3):
    p, r, g, s0 = ref.random_mdp(np.random.default_rng(seed), s, a, 0.9)
    return og.MDP(p, r, g, s0), p


def test_tabular_state_and_linear_apply():
    mdp, p = mdp_and_p()
    theta = np.random.default_rng(1).normal(size=(5, 3))
    np.testing.assert_allclose(og.rewards.tabular(5, 3).apply(theta, mdp), theta)
    theta_s = np.arange(5.0)
    np.testing.assert_allclose(og.rewards.state(5).apply(theta_s, mdp), p @ theta_s, rtol=1e-12)
    phi = np.random.default_rng(2).normal(size=(5, 2))
    w = np.array([0.5, -1.0])
    np.testing.assert_allclose(og.rewards.linear(phi).apply(w, mdp), p @ (phi @ w), rtol=1e-12)
    phi_sa = np.random.default_rng(3).normal(size=(5, 3, 2))
    np.testing.assert_allclose(og.rewards.linear(phi_sa).apply(w, mdp), phi_sa @ w, rtol=1e-12)


def test_init_shapes_scale_and_seed():
    model = og.rewards.tabular(4, 2, init_scale=0.1)
    a = model.init(jax.random.key(0))
    assert a.shape == (4, 2) and 0 < float(jnp.abs(a).max()) < 1.0
    np.testing.assert_array_equal(a, model.init(jax.random.key(0)))
    assert float(jnp.abs(og.rewards.state(4).init(jax.random.key(0))).max()) == 0.0
    assert og.rewards.linear(np.ones((4, 3))).init(jax.random.key(0)).shape == (3,)


def test_fit_recovers_representable_rewards_exactly():
    mdp, p = mdp_and_p(4)
    theta = np.random.default_rng(5).normal(size=5)
    target = p @ theta
    fitted = og.rewards.fit(og.rewards.state(5), mdp, target)
    np.testing.assert_allclose(og.rewards.state(5).apply(fitted, mdp), target, atol=1e-10)
    tab = og.rewards.fit(og.rewards.tabular(5, 3), mdp, mdp.rewards)
    np.testing.assert_allclose(tab, mdp.rewards, atol=1e-12)


def test_fit_is_least_squares_when_not_representable():
    mdp, p = mdp_and_p(6)
    phi = np.random.default_rng(7).normal(size=(5, 2))
    w = og.rewards.fit(og.rewards.linear(phi), mdp, mdp.rewards)
    design = np.einsum("sat,tf->saf", p, phi).reshape(-1, 2)
    expected = np.linalg.lstsq(design, np.asarray(mdp.rewards).reshape(-1), rcond=None)[0]
    np.testing.assert_allclose(w, expected, rtol=1e-8)


@pytest.mark.parametrize("build,name", [
    (lambda: og.rewards.tabular(0, 3), "num_states"),
    (lambda: og.rewards.tabular(3, 0), "num_actions"),
    (lambda: og.rewards.state(-1), "num_states"),
    (lambda: og.rewards.linear(np.ones(3)), "features"),
    (lambda: og.rewards.linear(np.full((3, 2), np.nan)), "features"),
])
def test_bad_arguments(build, name):
    with pytest.raises(ValueError, match=name):
        build()
