import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from optiongrad import discovery


@pytest.fixture(scope="module")
def nav():
    grid = og.gridworld.four_rooms()
    return grid, og.gridworld.navigation_mdp(grid, 0.9, dtype=jnp.float64)


def test_subgoal_options_reach_their_subgoal(nav):
    grid, mdp = nav
    subgoals = [grid.state(1, 1), grid.state(11, 11), grid.state(7, 9)]
    options = discovery.subgoal_options(mdp, subgoals)
    np.testing.assert_array_equal(np.asarray(options.termination),
                                  np.eye(104)[subgoals])
    _, transition = og.option_models(mdp, options)
    for o, g in enumerate(subgoals):
        dist = ref.grid_distances(grid.walls, tuple(grid.cells[g]))[grid.cells[:, 0],
                                                                    grid.cells[:, 1]]
        # from g itself: bump into a wall (1 step, re-entering g) or go out and back (2)
        back = 1 if (grid.successors[g] == g).any() else 2
        expected = 0.9 ** np.where(np.arange(104) == g, back, dist)
        # near-greedy policies (τ = 1e-3): the discounted arrival probability is γ^distance
        np.testing.assert_allclose(np.asarray(transition[o])[:, g], expected, rtol=1e-3)


def test_random_options_are_seeded(nav):
    _, mdp = nav
    a = discovery.random_options(0, mdp, 5)
    b = discovery.random_options(0, mdp, 5)
    c = discovery.random_options(1, mdp, 5)
    np.testing.assert_array_equal(a.termination, b.termination)
    assert not np.array_equal(a.termination, c.termination)
    assert np.asarray(a.termination).sum() == 5
    with pytest.raises(ValueError, match="num_options"):
        discovery.random_options(0, mdp, 0)


def test_laplacian_eigenvectors(nav):
    _, mdp = nav
    vectors = discovery.laplacian_eigenvectors(mdp, 4)
    p = np.asarray(mdp.transitions)
    adjacency = (p.max(1) > 0).astype(float)
    np.fill_diagonal(adjacency, 0)
    lap = np.diag(adjacency.sum(1)) - adjacency
    evals = np.linalg.eigvalsh(lap)
    for i, v in enumerate(vectors):
        np.testing.assert_allclose(lap @ v, evals[i + 1] * v, atol=1e-10)
        assert np.linalg.norm(v) == pytest.approx(1.0)
        assert v[np.abs(v).argmax()] > 0


def test_eigenoptions_climb_their_potential_and_stop_at_local_maxima(nav):
    grid, mdp = nav
    options = discovery.eigenoptions(mdp, 4)
    assert options.num_options == 4
    vectors = discovery.laplacian_eigenvectors(mdp, 2)
    potentials = np.stack([vectors[0], -vectors[0], vectors[1], -vectors[1]])
    beta = np.asarray(options.termination)
    succ = grid.successors
    _, transition = og.option_models(mdp, options)
    for o in range(4):
        e = potentials[o]
        local_max = e[succ].max(1) <= e + 1e-12
        np.testing.assert_array_equal(beta[o] == 1.0, local_max)
        assert local_max.sum() >= 1
        # the option reaches a local maximum, and so terminates, from every state
        assert np.asarray(transition[o]).sum(1).min() > 1e-3
        # ... and it ends higher than it started: E[e(s_T)] > e(s) away from local maxima
        ends = np.asarray(transition[o]) / np.asarray(transition[o]).sum(1, keepdims=True)
        assert np.all(ends[~local_max] @ e > e[~local_max])
    with pytest.raises(ValueError, match="even"):
        discovery.eigenoptions(mdp, 3)
    with pytest.raises(ValueError, match="potentials"):
        discovery.potential_options(mdp, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="subgoals"):
        discovery.subgoal_options(mdp, [200])
