r"""Grid worlds from ASCII maps, Sutton's four rooms, and their dynamics.

Conventions (DESIGN.md, "The four-rooms experiment"): `w` (or `#`) is a wall, any other
character a free cell; states are the free cells in row-major order; actions are
0 up, 1 right, 2 down, 3 left; a move into a wall leaves the agent in place. With `slip > 0`
the intended move happens with probability $1 - \mathtt{slip}$ and each of the three other directions
with `slip / 3` (`slip = 1/3` is Sutton, Precup & Singh 1999: 2/3 intended, 1/9 each other).

`navigation_mdp(grid, γ)` is the grid's dynamics with no goal; `goal_task(grid, g, γ)`
(`optiongrad.goal_task`) the task of reaching `g`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._src import checks
from optiongrad._src.mdp import MDP
from optiongrad._src.transitions import SparseTransitions

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
#: The largest grid `GridWorld.open` builds (state indices are int32).
MAX_CELLS = 2**31 - 1


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

        Lines end with `\\n`, `\\r\\n` or `\\r`. Leading and trailing empty lines are ignored
        (a line of spaces is a row of free cells); rows must all have the same length. Cells
        outside the map count as walls.
        """
        if not isinstance(text, str):
            raise ValueError(f"text: expected a string, got {type(text).__name__}")
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
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
        """Build from an `(H, W)` wall mask (True or 1 on walls); at least 2 free cells."""
        walls = checks.to_numpy(walls, "walls")
        if not np.all((walls == 0) | (walls == 1)):
            raise ValueError("walls: expected a mask of booleans (or 0/1)")
        walls = walls.astype(bool)
        if walls.ndim != 2:
            raise ValueError(f"walls: expected a 2-d mask, got shape {walls.shape}")
        slip = float(checks.number(slip, "slip", low=0.0, high=1.0))
        cells = np.argwhere(~walls)
        if len(cells) < 2:
            raise ValueError(f"walls: the map needs at least 2 free cells, got {len(cells)}")
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
        r"""An open $\mathtt{height} \times \mathtt{width}$ room with no inner walls (at least 2 cells)."""
        checks.integer(height, "height", maximum=MAX_CELLS)
        checks.integer(width, "width", maximum=MAX_CELLS)
        if height * width > MAX_CELLS:
            raise ValueError(f"height: a {height}x{width} grid has more than {MAX_CELLS} cells")
        if height * width < 2:
            raise ValueError(f"height: a {height}x{width} grid has fewer than 2 cells")
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
        checks.integer(row, "row", minimum=0)
        checks.integer(col, "col", minimum=0)
        if not (row < self.shape[0] and col < self.shape[1]) or self.index[row, col] < 0:
            raise ValueError(f"row, col: ({row}, {col}) is not a free cell of the grid")
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
        values = checks.to_numpy(values, "values").astype(float)
        if values.shape != (self.num_states,):
            raise ValueError(f"values: expected shape (S,) = ({self.num_states},), "
                             f"got {values.shape}")
        image = np.full(self.shape, np.nan)
        image[self.cells[:, 0], self.cells[:, 1]] = values
        return image


def four_rooms(slip: float = 0.0) -> GridWorld:
    """Sutton, Precup & Singh's (1999) four-rooms grid: 13×13, 104 free cells; `slip` in
    [0, 1]."""
    return GridWorld.from_ascii(FOUR_ROOMS, slip)


_MAPS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "maps")


def map_names() -> tuple[str, ...]:
    """The named maps that ship with optiongrad: `four-rooms` (104 cells), `nine-rooms`
    (3×3 rooms of 7×7 joined by one-cell doorways, 453 cells), `twenty-five-rooms` (5×5 such
    rooms, 1265 cells) and `hundred-rooms` (10×10 rooms of 10×10, 10,180 cells). Doorways were
    placed once at random (seeded) and are fixed."""
    files = sorted(f[:-4] for f in os.listdir(_MAPS_DIR) if f.endswith(".txt"))
    return ("four-rooms", *files)


def map_text(map: str) -> str:
    """The ASCII text of a named map (`map_names`) or of a map file `map` (a path)."""
    if not isinstance(map, str) or not map:
        raise ValueError(f"map: expected a map name {map_names()} or a file path, got {map!r}")
    if map == "four-rooms":
        return FOUR_ROOMS
    if map in map_names():
        path = os.path.join(_MAPS_DIR, f"{map}.txt")
    elif os.path.isfile(map):
        path = map
    else:
        raise ValueError(f"map: {map!r} is neither a named map {map_names()} nor a file")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"map: cannot read {path} ({type(err).__name__}: {err})") from None


def load_map(map: str, slip: float = 0.0) -> GridWorld:
    """The grid of a named map (`map_names()`) or of an ASCII map file, with `slip`."""
    return GridWorld.from_ascii(map_text(map), slip)


def _grid_transitions(grid: GridWorld, sparse: Optional[bool], dtype):
    """The grid's dynamics as `SparseTransitions` arrays (jnp) and whether to densify."""
    sparse = grid.num_states > SPARSE_THRESHOLD if sparse is None else bool(sparse)
    next_states, probs = grid.sparse_arrays()
    return jnp.asarray(next_states, jnp.int32), jnp.asarray(probs, dtype), sparse


def _finish(next_states, probs, sparse: bool):
    transitions = SparseTransitions(next_states, probs)
    return transitions if sparse else transitions.todense()


def navigation_mdp(
    grid: GridWorld,
    discount=0.99,
    *,
    rewards=None,
    sparse: Optional[bool] = None,
    dtype=None,
) -> MDP:
    r"""The grid's dynamics with no goal: reward `rewards (S, 4)` (zeros by default) and a
    uniform initial distribution. The environment in which option policies are planned.

    Args:
      grid: a `GridWorld`. discount: $\gamma \in [0, 1)$.
      rewards: optional `(S, 4)` reward table.
      sparse: `SparseTransitions` (True), dense (False) or by size (None: sparse when
        `S > 1000`).
      dtype: floating dtype (default: JAX's default float).
    """
    checks.instance(grid, "grid", GridWorld, "a GridWorld")
    dtype = checks.dtype(dtype)
    if sparse is not None:
        checks.boolean(sparse, "sparse")
    next_states, probs, sparse = _grid_transitions(grid, sparse, dtype)
    s = grid.num_states
    if rewards is None:
        rewards = jnp.zeros((s, 4), dtype)
    else:
        rewards = checks.as_array(rewards, "rewards", dtype=dtype)
        checks.shape(rewards, "rewards", (s, 4), "(S, 4)")
    checks.number(discount, "discount", low=0.0, high=1.0, high_open=True)
    return MDP(_finish(next_states, probs, sparse), rewards, jnp.asarray(discount, dtype))


def rooms_and_hallways(grid: GridWorld) -> tuple[list[np.ndarray], np.ndarray]:
    """Hallway (doorway) cells and the rooms they connect.

    A hallway is a free cell with walls on two opposite sides and free cells on the other two.
    Rooms are the connected components of the free cells that are not hallways.

    Returns:
      `(rooms, hallways)`: a list of `(n_i,)` state-index arrays (ordered by their first cell,
      row-major) and a `(H,)` array of hallway state indices.
    """
    checks.instance(grid, "grid", GridWorld, "a GridWorld")
    walls = np.pad(grid.walls, 1, constant_values=True)
    r, c = grid.cells[:, 0] + 1, grid.cells[:, 1] + 1
    up, down, left, right = walls[r - 1, c], walls[r + 1, c], walls[r, c - 1], walls[r, c + 1]
    is_hallway = (up & down & ~left & ~right) | (left & right & ~up & ~down)
    hallways = np.flatnonzero(is_hallway)
    label = -np.ones(grid.num_states, dtype=int)
    rooms = []
    for start in np.flatnonzero(~is_hallway):
        if label[start] >= 0:
            continue
        label[start] = len(rooms)
        stack, members = [start], []
        while stack:
            x = stack.pop()
            members.append(x)
            for y in grid.successors[x]:
                if not is_hallway[y] and label[y] < 0:
                    label[y] = len(rooms)
                    stack.append(y)
        rooms.append(np.sort(np.array(members)))
    return rooms, hallways
