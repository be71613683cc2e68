import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from optiongrad.gridworld import FOUR_ROOMS, GridWorld, four_rooms, goal_task

DESIGN_LAYOUT = """
wwwwwwwwwwwww
w     w     w
w     w     w
w           w
w     w     w
w     w     w
ww wwww     w
w     www www
w     w     w
w     w     w
w           w
w     w     w
wwwwwwwwwwwww
"""


def test_four_rooms_layout_is_the_design_one():
    assert FOUR_ROOMS == DESIGN_LAYOUT.strip("\n")
    grid = four_rooms()
    assert grid.num_states == 104 and grid.shape == (13, 13)
    # row-major order of free cells
    cells = [tuple(c) for c in grid.cells]
    assert cells == sorted(cells)
    assert cells[0] == (1, 1) and cells[-1] == (11, 11)
    assert grid.state(1, 1) == 0 and grid.state(3, 6) == cells.index((3, 6))
    with pytest.raises(ValueError):
        grid.state(0, 0)


def test_actions_move_and_walls_block():
    grid = GridWorld.from_ascii("wwww\nw  w\nw ww\nwwww")
    # states: (1,1)=0, (1,2)=1, (2,1)=2
    up, right, down, left = range(4)
    succ = grid.successors
    assert succ[0, right] == 1 and succ[0, down] == 2
    assert succ[0, up] == 0 and succ[0, left] == 0
    assert succ[1, left] == 0 and succ[1, down] == 1 and succ[1, right] == 1
    assert succ[2, up] == 0 and succ[2, right] == 2


def test_slip_probabilities_are_sutton_1999():
    grid = four_rooms(slip=1 / 3)
    mdp = goal_task(grid, 0, 0.9, sparse=False, dtype=jnp.float64)
    p = np.asarray(mdp.transitions)
    s = grid.state(3, 3)  # centre of a room: every move succeeds
    for a in range(4):
        intended = grid.successors[s, a]
        assert p[s, a, intended] == pytest.approx(2 / 3)
        for other in set(range(4)) - {a}:
            assert p[s, a, grid.successors[s, other]] == pytest.approx(1 / 9)
    np.testing.assert_allclose(p.sum(-1), 1.0)


def test_goal_task_reward_absorption_and_start():
    grid = four_rooms()
    goal = grid.state(5, 5)
    mdp = goal_task(grid, goal, 0.9, dtype=jnp.float64)
    p, r = np.asarray(mdp.transitions), np.asarray(mdp.rewards)
    np.testing.assert_allclose(p[goal, :, goal], 1.0)
    np.testing.assert_allclose(r[goal], 0.0)
    above = grid.state(4, 5)
    assert r[above, 2] == 1.0 and r[above, 0] == 0.0  # moving down enters the goal
    assert r.sum() == pytest.approx(2.0)  # (5, 5) has 2 free neighbours: (4, 5) and (5, 4)
    s0 = np.asarray(mdp.initial)
    assert s0[goal] == 0.0 and s0.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(np.delete(s0, goal), 1 / 103)


def test_optimal_values_are_gamma_to_the_distance():
    """Deterministic grid: V*(s) = γ^(dist(s, g) − 1) for s ≠ g (reward on entering g)."""
    grid = four_rooms()
    gamma = 0.9
    for cell in [(1, 1), (6, 2), (11, 11), (3, 6)]:
        goal = grid.state(*cell)
        mdp = goal_task(grid, goal, gamma, dtype=jnp.float64)
        plan = og.soft_value_iteration(mdp, 0.0, backup="max", tol=1e-12)
        v = np.asarray(plan.q).max(1)
        dist = ref.grid_distances(grid.walls, cell)[grid.cells[:, 0], grid.cells[:, 1]]
        expected = np.where(dist == 0, 0.0, gamma ** (dist - 1))
        np.testing.assert_allclose(v, expected, atol=1e-10)


@pytest.mark.parametrize("slip", [0.0, 0.2])
def test_sparse_and_dense_goal_tasks_agree(slip):
    grid = four_rooms(slip)
    dense = goal_task(grid, 17, 0.95, sparse=False, dtype=jnp.float64)
    sparse = goal_task(grid, 17, 0.95, sparse=True, dtype=jnp.float64)
    assert sparse.is_sparse and not dense.is_sparse
    np.testing.assert_allclose(sparse.transitions.todense(), dense.transitions)
    np.testing.assert_allclose(sparse.rewards, dense.rewards)
    assert goal_task(GridWorld.open(40, 40), 0).is_sparse  # large grids default to sparse


def test_goal_task_vmaps_over_goals():
    grid = four_rooms()
    goals = jnp.arange(0, 104, 13)
    batched = jax.vmap(lambda g: goal_task(grid, g, 0.9, dtype=jnp.float64))(goals)
    for i, g in enumerate(goals):
        single = goal_task(grid, int(g), 0.9, dtype=jnp.float64)
        np.testing.assert_array_equal(batched.transitions[i], single.transitions)
        np.testing.assert_array_equal(batched.rewards[i], single.rewards)
        np.testing.assert_array_equal(batched.initial[i], single.initial)


@pytest.mark.parametrize("build,message", [
    (lambda: GridWorld.from_ascii("www\nw w\nww"), "same length"),
    (lambda: GridWorld.from_ascii("\n\n"), "empty"),
    (lambda: GridWorld.from_ascii("www\nw w\nwww"), "at least 2"),
    (lambda: GridWorld.from_ascii(FOUR_ROOMS, slip=1.5), "slip"),
    (lambda: GridWorld.from_ascii(3), "text"),
    (lambda: goal_task(four_rooms(), 104, 0.9), "goal"),
    (lambda: goal_task(four_rooms(), -1, 0.9), "goal"),
    (lambda: goal_task(four_rooms(), 2.5, 0.9), "goal"),
    (lambda: goal_task(four_rooms(), 3, 1.0), "discount"),
])
def test_bad_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_values_to_image():
    grid = four_rooms()
    image = grid.values_to_image(np.arange(104.0))
    assert np.isnan(image[0, 0]) and image[1, 1] == 0.0 and image[11, 11] == 103.0
    with pytest.raises(ValueError, match="values"):
        grid.values_to_image(np.zeros(3))


# -- rooms, hallways and hallway options -------------------------------------------------------

def test_rooms_and_hallways_of_four_rooms():
    grid = four_rooms()
    rooms, hallways = og.gridworld.rooms_and_hallways(grid)
    assert sorted(tuple(grid.cells[h]) for h in hallways) == [(3, 6), (6, 2), (7, 9), (10, 6)]
    assert [len(r) for r in rooms] == [25, 30, 25, 20]
    assert sum(len(r) for r in rooms) + len(hallways) == 104


def test_hallway_options_are_shortest_paths_with_the_design_sets():
    grid = four_rooms()
    options = og.gridworld.hallway_options(grid)
    assert options.num_options == 8
    rooms, hallways = og.gridworld.rooms_and_hallways(grid)
    init = np.asarray(options.initiation)
    beta = np.asarray(options.termination)
    gamma = 0.9
    nav = og.gridworld.navigation_mdp(grid, gamma, dtype=jnp.float64)
    _, transition = og.option_models(nav, options)
    for o in range(8):
        room = rooms[o // 2]
        targets = [h for h in hallways if beta[o, h] == 1 and not init[o, h]
                   and np.isin(grid.successors[h], room).any()]
        assert len(targets) == 1
        target = targets[0]
        others = [h for h in hallways if h != target and np.isin(grid.successors[h], room).any()]
        expected_init = np.zeros(104, bool)
        expected_init[room] = True
        expected_init[others] = True
        np.testing.assert_array_equal(init[o], expected_init)
        expected_beta = (~expected_init).astype(float)
        expected_beta[target] = 1.0
        np.testing.assert_array_equal(beta[o], expected_beta)
        # deterministic grid: the option reaches its hallway in exactly the shortest-path
        # distance d (inside the room), so P^o[s, target] = γ^d
        walls = grid.walls.copy()
        allowed = expected_init.copy()
        allowed[target] = True
        for x in np.flatnonzero(~allowed):
            walls[tuple(grid.cells[x])] = True
        dist = ref.grid_distances(walls, tuple(grid.cells[target]))
        d = dist[grid.cells[expected_init, 0], grid.cells[expected_init, 1]]
        np.testing.assert_allclose(np.asarray(transition[o])[expected_init, target],
                                   gamma ** d, rtol=1e-12)


def test_hallway_options_need_hallways():
    with pytest.raises(ValueError, match="hallway"):
        og.gridworld.hallway_options(GridWorld.open(5, 5))


def test_navigation_mdp_is_the_goal_free_dynamics():
    grid = four_rooms(slip=0.1)
    nav = og.gridworld.navigation_mdp(grid, 0.95, dtype=jnp.float64)
    task = goal_task(grid, 0, 0.95, dtype=jnp.float64)
    np.testing.assert_allclose(np.asarray(nav.transitions)[1:], np.asarray(task.transitions)[1:])
    assert float(jnp.abs(nav.rewards).max()) == 0.0
