import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
from reference import random_mdp


def arrays(seed=0, s=4, a=3, gamma=0.9):
    return random_mdp(np.random.default_rng(seed), s, a, gamma)


def test_fields_and_dtype_are_kept(dtype):
    p, r, g, s0 = arrays()
    mdp = og.MDP(p.astype(dtype), r.astype(dtype), g, s0.astype(dtype))
    for leaf in jax.tree.leaves(mdp):
        assert leaf.dtype == dtype
    assert (mdp.num_states, mdp.num_actions) == (4, 3)
    np.testing.assert_allclose(mdp.transitions, p.astype(dtype))
    np.testing.assert_allclose(mdp.initial, s0.astype(dtype))
    assert float(mdp.discount) == pytest.approx(0.9)


def test_defaults_and_promotion():
    p, r, g, _ = arrays()
    mdp = og.MDP(p, np.round(r * 10).astype(int), g)
    assert jnp.issubdtype(mdp.rewards.dtype, jnp.floating)
    np.testing.assert_allclose(mdp.initial, np.full(4, 0.25))
    mixed = og.MDP(p.astype(np.float32), r.astype(np.float64), g)
    assert mixed.dtype == np.float64 and mixed.transitions.dtype == np.float64


def test_is_a_pytree_and_vmaps_over_rewards():
    p, r, g, s0 = arrays()
    mdp = og.MDP(p, r, g, s0)
    leaves, tree = jax.tree.flatten(mdp)
    assert len(leaves) == 4
    rebuilt = jax.tree.unflatten(tree, leaves)
    np.testing.assert_array_equal(rebuilt.rewards, mdp.rewards)
    batch = jnp.stack([mdp.rewards, 2 * mdp.rewards])
    out = jax.vmap(lambda rr: mdp.replace(rewards=rr).rewards.sum())(batch)
    np.testing.assert_allclose(out, [r.sum(), 2 * r.sum()])


def _bad(field, value):
    p, r, g, s0 = arrays()
    fields = dict(transitions=p, rewards=r, discount=g, initial=s0)
    fields[field] = value(fields[field]) if callable(value) else value
    return fields


def _with(arr, idx, v):
    arr = np.array(arr, dtype=float)
    arr[idx] = v
    return arr


MALFORMED = {
    "transitions-ndim": ("transitions", lambda p: p[0], "shape"),
    "transitions-shape": ("transitions", lambda p: p[:, :, :3], "shape"),
    "transitions-nan": ("transitions", lambda p: _with(p, (0, 0, 0), np.nan), "non-finite"),
    "transitions-inf": ("transitions", lambda p: _with(p, (1, 2, 3), np.inf), "non-finite"),
    "transitions-negative": ("transitions", lambda p: _with(_with(p, (0, 1, 0), -0.2), (0, 1, 1),
                                                            p[0, 1, 1] + p[0, 1, 0] + 0.2),
                             "negative"),
    "transitions-rows": ("transitions", lambda p: p * 0.9, "sum to 1"),
    "rewards-ndim": ("rewards", lambda r: r[:, 0], "shape"),
    "rewards-shape": ("rewards", lambda r: r[:, :2], "shape"),
    "rewards-nan": ("rewards", lambda r: _with(r, (2, 1), np.nan), "non-finite"),
    "rewards-inf": ("rewards", lambda r: _with(r, (0, 0), -np.inf), "non-finite"),
    "rewards-complex": ("rewards", lambda r: r + 1j, "complex"),
    "discount-one": ("discount", 1.0, "in [0, 1)"),
    "discount-negative": ("discount", -0.1, "in [0, 1)"),
    "discount-nan": ("discount", np.nan, "discount"),
    "discount-vector": ("discount", np.array([0.9, 0.9]), "scalar"),
    "initial-shape": ("initial", lambda s0: s0[:3], "shape"),
    "initial-sum": ("initial", lambda s0: s0 * 2, "must sum to 1"),
    "initial-negative": ("initial", np.array([1.5, -0.5, 0.0, 0.0]), "negative"),
    "initial-nan": ("initial", lambda s0: _with(s0, 0, np.nan), "non-finite"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_is_refused_naming_the_field(case):
    field, value, message = MALFORMED[case]
    with pytest.raises(ValueError) as err:
        og.MDP(**_bad(field, value))
    assert str(err.value).startswith(field), err.value
    assert message in str(err.value), err.value


def test_tracers_skip_value_checks_but_not_shape_checks():
    p, r, g, s0 = arrays()

    @jax.jit
    def build(scale):
        return og.MDP(p * scale, r, g, s0).transitions.sum()

    assert np.isfinite(build(0.5))  # rows sum to 0.5: not checked on tracers

    @jax.jit
    def bad_shape(rr):
        return og.MDP(p, rr[:, :2], g, s0).rewards

    with pytest.raises(ValueError, match="rewards"):
        bad_shape(r)


def test_replace_validates_and_astype_casts():
    p, r, g, s0 = arrays()
    mdp = og.MDP(p, r, g, s0)
    with pytest.raises(ValueError, match="discount"):
        mdp.replace(discount=1.5)
    assert mdp.replace(discount=0.5).discount == 0.5
    assert mdp.astype(np.float32).transitions.dtype == np.float32


def test_action_major_round_trip_and_reward_layouts():
    p, r, g, s0 = arrays(s=5, a=2)
    p_ass = np.transpose(p, (1, 0, 2))
    mdp = og.from_action_major(p_ass, r, g, s0)
    np.testing.assert_allclose(mdp.transitions, p)
    back_p, back_r = og.to_action_major(mdp)
    np.testing.assert_allclose(back_p, p_ass)
    np.testing.assert_allclose(back_r, r)
    state_r = np.arange(5.0)
    np.testing.assert_allclose(og.from_action_major(p_ass, state_r, g).rewards,
                               np.repeat(state_r[:, None], 2, axis=1))
    transition_r = np.random.default_rng(1).normal(size=(2, 5, 5))
    expected = np.einsum("ast,ast->sa", p_ass, transition_r)
    np.testing.assert_allclose(og.from_action_major(p_ass, transition_r, g).rewards, expected)
    with pytest.raises(ValueError, match="rewards"):
        og.from_action_major(p_ass, np.zeros((3, 3)), g)
    with pytest.raises(ValueError, match="transitions"):
        og.from_action_major(p_ass[:, :, :4], r, g)


def test_random_mdp_is_garnet_and_seeded(dtype):
    mdp = og.random_mdp(3, 20, 4, branching=3, discount=0.95, dtype=dtype)
    p = np.asarray(mdp.transitions)
    assert p.dtype == dtype
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-6)
    assert ((p > 0).sum(-1) == 3).all()
    again = og.random_mdp(3, 20, 4, branching=3, discount=0.95, dtype=dtype)
    np.testing.assert_array_equal(p, again.transitions)
    other = og.random_mdp(4, 20, 4, branching=3, discount=0.95, dtype=dtype)
    assert not np.array_equal(p, other.transitions)
    rand_init = og.random_mdp(jax.random.key(0), 6, 2, 2, initial="random")
    assert float(rand_init.initial.sum()) == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs,field", [
    (dict(num_states=0, num_actions=2, branching=1), "num_states"),
    (dict(num_states=3, num_actions=2, branching=4), "branching"),
    (dict(num_states=3, num_actions=-1, branching=1), "num_actions"),
    (dict(num_states=3, num_actions=2, branching=1, initial="peaked"), "initial"),
])
def test_random_mdp_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        og.random_mdp(0, **kwargs)
