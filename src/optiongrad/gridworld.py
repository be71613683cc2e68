"""Grid worlds: ASCII maps, Sutton's four rooms, their dynamics and goal tasks.

    grid = og.gridworld.four_rooms()                       # 13×13, 104 free cells
    grid = og.gridworld.load_map("nine-rooms")             # a named map, or a file path
    grid = og.gridworld.GridWorld.from_ascii(text, slip)   # any map: `w`/`#` walls
    env = og.gridworld.navigation_mdp(grid, 0.9)           # dynamics, no goal
    task = og.gridworld.goal_task(grid, goal, 0.9)         # = og.goal_task
    options = og.gridworld.hallway_options(grid)           # = og.discovery.hallway_options
"""

from optiongrad._src.discovery import hallway_options
from optiongrad._src.goal_tasks import goal_task
from optiongrad._src.gridworld import (
    ACTION_DELTAS,
    ACTION_NAMES,
    FOUR_ROOMS,
    SPARSE_THRESHOLD,
    WALL_CHARS,
    GridWorld,
    four_rooms,
    load_map,
    map_names,
    map_text,
    navigation_mdp,
    rooms_and_hallways,
)

__all__ = ["ACTION_DELTAS", "ACTION_NAMES", "FOUR_ROOMS", "SPARSE_THRESHOLD", "WALL_CHARS",
           "GridWorld", "four_rooms", "goal_task", "hallway_options", "load_map", "map_names",
           "map_text", "navigation_mdp", "rooms_and_hallways"]
