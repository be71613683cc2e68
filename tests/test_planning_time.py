import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og
import reference as ref
from optiongrad import planning_sweeps, sweep_values


def task(cell, gamma=0.9):
    grid = og.gridworld.four_rooms()
    mdp = og.gridworld.goal_task(grid, grid.state(*cell), gamma, dtype=jnp.float64)
    dist = ref.grid_distances(grid.walls, cell)[grid.cells[:, 0], grid.cells[:, 1]]
    return grid, mdp, dist


@pytest.mark.parametrize("cell", [(7, 9), (1, 1), (11, 11)])
def test_primitive_value_iteration_closed_forms(cell):
    """Deterministic grid, hard VI from zero: after k sweeps V_k(s) = γ^(d−1) if d ≤ k else 0.
    So values are exact after max d sweeps and the greedy policy is optimal after max d − 1."""
    _, mdp, dist = task(cell)
    values = np.asarray(sweep_values(mdp, None, 6))
    for k in range(7):
        expected = np.where((dist >= 1) & (dist <= k), 0.9 ** (dist - 1), 0.0)
        np.testing.assert_allclose(values[k], expected, atol=1e-12)
    assert int(planning_sweeps(mdp, criterion="values", epsilon=1e-9)) == dist.max()
    assert int(planning_sweeps(mdp, criterion="policy")) == dist.max() - 1


def test_hallway_options_cut_planning_time_for_a_hallway_goal():
    """Sutton, Precup & Singh (1999): with a hallway goal, hallway options + primitives reach
    the optimal values in far fewer sweeps than primitives alone."""
    grid, mdp, dist = task((7, 9))
    hallway = og.gridworld.hallway_options(grid)
    prim = int(planning_sweeps(mdp, criterion="values", epsilon=1e-9))
    with_options = int(planning_sweeps(mdp, hallway, criterion="values", epsilon=1e-9))
    assert prim == dist.max()
    assert with_options <= 3 < prim
    values = np.asarray(sweep_values(mdp, hallway, 3))
    assert (values[2] > 0).mean() > 0.9  # two sweeps reach (almost) every cell


def test_planning_sweeps_vmaps_over_goals_and_reports_failure():
    grid = og.gridworld.four_rooms()
    goals = jnp.array([0, 50, 103])
    sweeps = jax.vmap(lambda g: planning_sweeps(
        og.gridworld.goal_task(grid, g, 0.9, dtype=jnp.float64)))(goals)
    for i, g in enumerate(goals):
        single = planning_sweeps(og.gridworld.goal_task(grid, int(g), 0.9, dtype=jnp.float64))
        assert int(sweeps[i]) == int(single)
    _, mdp, _ = task((1, 1))
    assert int(planning_sweeps(mdp, max_sweeps=3)) == 4


def test_soft_backup_and_only_options():
    grid, mdp, _ = task((3, 6))
    hallway = og.gridworld.hallway_options(grid)
    soft = int(planning_sweeps(mdp, hallway, backup="logsumexp", temperature=0.01,
                               criterion="values", epsilon=1e-6))
    assert 0 < soft < 100_000
    only = int(planning_sweeps(mdp, hallway, include_primitives=False, criterion="values",
                               epsilon=1e-9))
    assert 0 < only <= 3


def test_bad_arguments():
    _, mdp, _ = task((1, 1))
    with pytest.raises(ValueError, match="criterion"):
        planning_sweeps(mdp, criterion="time")
    with pytest.raises(ValueError, match="max_sweeps"):
        planning_sweeps(mdp, max_sweeps=0)
    with pytest.raises(ValueError, match="num_sweeps"):
        sweep_values(mdp, None, 0)


def test_table_names_each_row_by_its_actions():
    """The rows are primitives alone and each family with the primitives: no heading claims
    options for the primitives-only row."""
    from optiongrad.experiments.planning_time import format_table

    row = {"policy": {"mean over all goals": 15.8}, "values": {"mean over all goals": 16.8}}
    table = format_table({"sweeps": {"primitives": row, "hallway": row, "eigenoptions": row}})
    assert "| actions, criterion `policy` |" in table and "options + primitives" not in table
    labels = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| p")]
    assert labels[:3] == ["| primitives only", "| primitives + hallway options",
                          "| primitives + eigenoptions"]
