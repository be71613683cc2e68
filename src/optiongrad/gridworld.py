"""Grid worlds from ASCII maps, Sutton's four rooms and goal-reaching tasks.

Conventions (DESIGN.md, "The four-rooms experiment"): `w` (or `#`) is a wall, any other
character a free cell; states are the free cells in row-major order; actions are
0 up, 1 right, 2 down, 3 left; a move into a wall leaves the agent in place. With `slip > 0`
the intended move happens with probability `1 − slip` and each of the three other directions
with `slip / 3` (`slip = 1/3` is Sutton, Precup & Singh 1999: 2/3 intended, 1/9 each other).

`goal_task(grid, g, γ)`: reward 1 on any transition that enters `g`; `g` is absorbing with zero
reward; `s0` uniform over the other free cells.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._checks import is_concrete
from optiongrad.mdp import MDP
from optiongrad.transitions import SparseTransitions

Array = jax.Array

FOUR_ROOMS = """\
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
wwwwwwwwwwwww"""

WALL_CHARS = frozenset("w#")
#: (row, col) displacement of actions 0 up, 1 right, 2 down, 3 left.
ACTION_DELTAS = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])
ACTION_NAMES = ("up", "right", "down", "left")
#: Grids with more states than this get sparse transitions from `goal_task` by default.
SPARSE_THRESHOLD = 1000


@dataclasses.dataclass(frozen=True, eq=False)
class GridWorld:
    """A deterministic or slippery grid world (static configuration, not a pytree).

    Attributes:
      walls: `(H, W)` bool, True on walls.
      slip: probability that the move goes in one of the three other directions.
      cells: `(S, 2)` int `(row, col)` of each state, row-major.
      index: `(H, W)` int state index of each cell, −1 on walls.
      successors: `(S, 4)` int, the state reached by moving in each direction.
    """

    walls: np.ndarray
    slip: float
    cells: np.ndarray
    index: np.ndarray
    successors: np.ndarray

    @classmethod
    def from_ascii(cls, text: str, slip: float = 0.0) -> "GridWorld":
        """Parse a map: one line per row, `w`/`#` walls, anything else free.

        Leading and trailing blank lines are ignored; rows must all have the same length.
        Cells outside the map count as walls.
        """
        if not isinstance(text, str):
            raise ValueError(f"text: expected a string, got {type(text).__name__}")
        lines = text.split("\n")
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            raise ValueError("text: the map is empty")
        widths = {len(line) for line in lines}
        if len(widths) != 1:
            raise ValueError(
                f"text: all rows must have the same length, got lengths {sorted(widths)}"
            )
        walls = np.array([[c in WALL_CHARS for c in line] for line in lines], dtype=bool)
        return cls.from_walls(walls, slip)

    @classmethod
    def from_walls(cls, walls, slip: float = 0.0) -> "GridWorld":
        """Build from an `(H, W)` bool wall mask."""
        walls = np.asarray(walls, dtype=bool)
        if walls.ndim != 2:
            raise ValueError(f"walls: expected a 2-d mask, got shape {walls.shape}")
        slip = float(slip)
        if not 0.0 <= slip <= 1.0:
            raise ValueError(f"slip: expected a probability in [0, 1], got {slip}")
        cells = np.argwhere(~walls)
        if len(cells) < 2:
            raise ValueError(f"text: the map needs at least 2 free cells, got {len(cells)}")
        index = -np.ones(walls.shape, dtype=np.int64)
        index[cells[:, 0], cells[:, 1]] = np.arange(len(cells))
        padded = np.pad(index, 1, constant_values=-1)
        succ = np.empty((len(cells), 4), dtype=np.int64)
        for a, (dr, dc) in enumerate(ACTION_DELTAS):
            target = padded[cells[:, 0] + 1 + dr, cells[:, 1] + 1 + dc]
            succ[:, a] = np.where(target >= 0, target, np.arange(len(cells)))
        return cls(walls, slip, cells, index, succ)

    @classmethod
    def open(cls, height: int, width: int, slip: float = 0.0) -> "GridWorld":
        """An open `height × width` room with no inner walls."""
        if height < 1 or width < 1 or height * width < 2:
            raise ValueError(f"height, width: need at least 2 cells, got {height}x{width}")
        return cls.from_walls(np.zeros((height, width), dtype=bool), slip)

    @property
    def num_states(self) -> int:
        return len(self.cells)

    @property
    def num_actions(self) -> int:
        return 4

    @property
    def shape(self) -> tuple[int, int]:
        return self.walls.shape

    def state(self, row: int, col: int) -> int:
        """State index of cell `(row, col)`."""
        if not (0 <= row < self.shape[0] and 0 <= col < self.shape[1]) or self.index[row, col] < 0:
            raise ValueError(f"(row, col) = ({row}, {col}) is not a free cell of the grid")
        return int(self.index[row, col])

    def sparse_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """`(next_states (S, 4, B), probs (S, 4, B))` with `B = 1` (no slip) or 4."""
        s = self.num_states
        if self.slip == 0.0:
            return self.successors[:, :, None].copy(), np.ones((s, 4, 1))
        next_states = np.broadcast_to(self.successors[:, None, :], (s, 4, 4)).copy()
        probs = np.full((4, 4), self.slip / 3.0)
        np.fill_diagonal(probs, 1.0 - self.slip)
        return next_states, np.broadcast_to(probs, (s, 4, 4)).copy()

    def values_to_image(self, values) -> np.ndarray:
        """`(S,)` values to an `(H, W)` float image with NaN on walls."""
        values = np.asarray(values, dtype=float)
        if values.shape != (self.num_states,):
            raise ValueError(f"values: expected shape (S,) = ({self.num_states},), "
                             f"got {values.shape}")
        image = np.full(self.shape, np.nan)
        image[self.cells[:, 0], self.cells[:, 1]] = values
        return image


def four_rooms(slip: float = 0.0) -> GridWorld:
    """Sutton, Precup & Singh's (1999) four-rooms grid: 13×13, 104 free cells."""
    return GridWorld.from_ascii(FOUR_ROOMS, slip)


def goal_task(
    grid: GridWorld,
    goal,
    discount=0.99,
    *,
    sparse: Optional[bool] = None,
    dtype=None,
) -> MDP:
    """The goal-reaching MDP of `grid` for goal state `goal`.

    `P` is the grid's dynamics except that `goal` is absorbing; `r[s, a] = P[s, a, goal]` for
    `s ≠ goal` (reward 1 on entering the goal) and `r[goal, :] = 0`; `s0` is uniform over the
    other `S − 1` cells.

    Args:
      grid: a `GridWorld`.
      goal: goal state index; may be a tracer (e.g. `jax.vmap` over goals).
      discount: `γ`.
      sparse: return `SparseTransitions` (True), a dense tensor (False), or decide by size
        (None: sparse when `S > 1000`).
      dtype: floating dtype (default: JAX's default float).
    """
    s = grid.num_states
    if is_concrete(goal):
        g = np.asarray(goal)
        if g.ndim != 0 or g.dtype.kind not in "iu" or not 0 <= int(g) < s:
            raise ValueError(f"goal: expected a state index in [0, {s}), got {goal!r}")
    dtype = jnp.result_type(float) if dtype is None else dtype
    sparse = s > SPARSE_THRESHOLD if sparse is None else bool(sparse)
    goal = jnp.asarray(goal, jnp.int32)
    is_goal = jnp.arange(s) == goal
    initial = jnp.where(is_goal, 0.0, 1.0 / (s - 1)).astype(dtype)
    next_states, probs = grid.sparse_arrays()
    next_states = jnp.asarray(next_states, jnp.int32)
    probs = jnp.asarray(probs, dtype)
    enter = jnp.sum(jnp.where(next_states == goal, probs, 0.0), axis=-1)
    rewards = jnp.where(is_goal[:, None], 0.0, enter).astype(dtype)
    absorbing = jnp.zeros_like(probs).at[:, :, 0].set(1.0)
    probs = jnp.where(is_goal[:, None, None], absorbing, probs)
    next_states = jnp.where(is_goal[:, None, None], goal, next_states)
    transitions = SparseTransitions(next_states, probs)
    if not sparse:
        transitions = transitions.todense()
    return MDP(transitions, rewards, jnp.asarray(discount, dtype), initial)
