"""Figures on grid worlds: value heat-maps, policy arrows, learning curves.

All functions draw on a matplotlib `Axes` (a new figure when `ax` is None) and return it; they
never call `plt.show()`, so they work headless (the CLI uses the Agg backend).
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from optiongrad._src import checks  # noqa: E402
from optiongrad._src.gridworld import ACTION_DELTAS, GridWorld  # noqa: E402
from optiongrad._src.options import Options  # noqa: E402


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    elif not isinstance(ax, matplotlib.axes.Axes):
        raise ValueError(f"ax: expected a matplotlib Axes or None, got {type(ax).__name__}")
    return ax


def _frame(grid: GridWorld, ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlim(-0.5, grid.shape[1] - 0.5)
    ax.set_ylim(grid.shape[0] - 0.5, -0.5)
    ax.set_aspect("equal")


def plot_values(
    grid: GridWorld,
    values,
    ax=None,
    *,
    cmap: str = "viridis",
    title: Optional[str] = None,
    colorbar: bool = True,
    vmin: Optional[float] = None,
    vmax: Optional[float] = None,
    marks: Sequence[int] = (),
):
    """Heat-map of `values (S,)` on the grid; walls are drawn dark grey.

    Args:
      grid: the `GridWorld`.
      values: `(S,)` one number per state.
      marks: states to mark with a star (e.g. goals).
    """
    checks.instance(grid, "grid", GridWorld, "a GridWorld")
    image = np.ma.masked_invalid(grid.values_to_image(values))
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap: {cmap!r} is not a matplotlib colormap")
    checks.number(vmin, "vmin", allow_none=True)
    checks.number(vmax, "vmax", allow_none=True)
    _check_marks(grid, marks)
    ax = _axes(ax)
    colormap = matplotlib.colormaps[cmap].with_extremes(bad="#404040")
    artist = ax.imshow(image, cmap=colormap, vmin=vmin, vmax=vmax, interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(artist, ax=ax, fraction=0.046, pad=0.04)
    _mark(grid, ax, marks)
    _frame(grid, ax)
    if title:
        ax.set_title(title)
    return ax


def plot_policy(
    grid: GridWorld,
    policy,
    ax=None,
    *,
    values=None,
    title: Optional[str] = None,
    color: str = "white",
    marks: Sequence[int] = (),
    states: Optional[Sequence[int]] = None,
):
    r"""Policy arrows: in each state the mean displacement $\sum_a \pi[s, a] \delta_a$.

    Args:
      grid: the `GridWorld`.
      policy: `(S, 4)` action probabilities.
      values: optional `(S,)` heat-map drawn underneath (walls only when None).
      states: draw arrows only in these states (default: all).
      marks: states to mark with a star.
    """
    checks.instance(grid, "grid", GridWorld, "a GridWorld")
    policy = np.asarray(checks.policy(policy, "policy", (grid.num_states, 4), "(S, 4)", None),
                        dtype=np.float64)
    states = np.arange(grid.num_states) if states is None else np.asarray(
        checks.indices(np.asarray(states, dtype=int) if len(states) == 0 else states,
                       "states", grid.num_states, allow_empty=True))
    if not matplotlib.colors.is_color_like(color):
        raise ValueError(f"color: {color!r} is not a matplotlib color")
    _check_marks(grid, marks)
    ax = _axes(ax)
    if values is not None:
        plot_values(grid, values, ax, colorbar=False)
    else:
        walls = np.where(grid.walls, 1.0, np.nan)
        ax.imshow(np.ma.masked_invalid(walls), cmap="Greys", vmin=0, vmax=1.2,
                  interpolation="nearest")
        color = "black" if color == "white" else color
    drift = policy[states] @ ACTION_DELTAS  # (n, 2) in (row, col)
    rows, cols = grid.cells[states, 0], grid.cells[states, 1]
    ax.quiver(cols, rows, drift[:, 1], drift[:, 0], color=color, angles="xy",
              scale_units="xy", scale=1.6, pivot="middle", width=0.008)
    _mark(grid, ax, marks)
    _frame(grid, ax)
    if title:
        ax.set_title(title)
    return ax


def _check_marks(grid: GridWorld, marks) -> None:
    if not isinstance(marks, (list, tuple, np.ndarray)):
        raise ValueError(f"marks: expected a sequence of states, got {type(marks).__name__}")
    if len(marks):
        checks.indices(np.asarray(marks), "marks", grid.num_states)


def _mark(grid: GridWorld, ax, marks) -> None:
    for s in marks:
        r, c = grid.cells[int(s)]
        ax.plot(c, r, marker="*", color="red", markersize=12, markeredgecolor="black")


def plot_curves(
    curves: dict,
    ax=None,
    *,
    xlabel: str = "step",
    ylabel: str = "return",
    title: Optional[str] = None,
    hlines: Optional[dict] = None,
):
    """Line plot of named curves (`{label: y}` or `{label: (x, y)}`), with optional
    horizontal reference lines (`{label: y}`)."""
    for name, value in (("curves", curves), ("hlines", hlines)):
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{name}: expected a dict {{label: values}}, got "
                             f"{type(value).__name__}")
    for label, curve in curves.items():
        parts = curve if isinstance(curve, tuple) else (curve,)
        arrays = [checks.to_numpy(part, f"curves[{label!r}]") for part in parts]
        if len(arrays) > 2 or any(a.ndim != 1 for a in arrays) or (
                len(arrays) == 2 and arrays[0].shape != arrays[1].shape):
            raise ValueError(f"curves[{label!r}]: expected y (n,) or (x (n,), y (n,))")
    for label, y in (hlines or {}).items():
        checks.number(y, f"hlines[{label!r}]")
    ax = _axes(ax)
    for label, curve in curves.items():
        if isinstance(curve, tuple):
            ax.plot(*curve, label=label)
        else:
            ax.plot(np.asarray(curve), label=label)
    for i, (label, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, linestyle="--", color=f"C{i + len(curves)}", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_options(
    grid: GridWorld,
    options,
    *,
    names: Optional[Sequence[str]] = None,
    columns: int = 4,
    panel_size: float = 2.6,
    title: Optional[str] = None,
):
    r"""One panel per option: termination probability $\beta^o$ as a heat-map, the option's policy
    as arrows in its initiation set (everywhere when it has none). Returns the figure."""
    checks.instance(grid, "grid", GridWorld, "a GridWorld")
    checks.instance(options, "options", Options, "an optiongrad.Options")
    if options.num_states != grid.num_states:
        raise ValueError(f"options: built for S = {options.num_states}, the grid has "
                         f"{grid.num_states} states")
    checks.integer(columns, "columns")
    checks.number(panel_size, "panel_size", low=0.0, low_open=True)
    k = options.num_options
    if names is not None and len(names) != k:
        raise ValueError(f"names: expected {k} names, one per option, got {len(names)}")
    rows = (k + columns - 1) // columns
    cols = min(columns, k)
    fig, axes = plt.subplots(rows, cols, figsize=(panel_size * cols, panel_size * rows + 0.4),
                             squeeze=False)
    init = np.asarray(options.initiation_mask())
    beta = np.asarray(options.termination)
    policy = np.asarray(options.policy)
    for o in range(rows * cols):
        ax = axes.flat[o]
        if o >= k:
            ax.axis("off")
            continue
        plot_values(grid, beta[o], ax, cmap="Reds", vmin=0.0, vmax=1.0, colorbar=False)
        plot_policy(grid, policy[o], ax, values=None, color="black",
                    states=np.flatnonzero(init[o]))
        ax.set_title(names[o] if names else f"option {o}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_sweeps(grid: GridWorld, rows: dict, sweeps: Sequence[int], *, marks=(), title=None):
    """Value propagation: for each named row of `(n, S)` values-after-k-sweeps arrays, one
    heat-map per k in `sweeps` (Sutton, Precup & Singh 1999). Returns the figure."""
    checks.instance(grid, "grid", GridWorld, "a GridWorld")
    if not isinstance(rows, dict) or not rows:
        raise ValueError("rows: expected a non-empty dict {name: values after each sweep}")
    try:
        sweeps = [] if isinstance(sweeps, (str, bytes)) else list(sweeps)
    except TypeError:
        sweeps = []
    if not sweeps:
        raise ValueError("sweeps: expected a non-empty sequence of sweep counts")
    names = list(rows)
    for name in names:
        values = checks.to_numpy(rows[name], f"rows[{name!r}]")
        checks.finite(values, f"rows[{name!r}]")
        if values.ndim != 2 or values.shape[1] != grid.num_states:
            raise ValueError(f"rows[{name!r}]: expected shape (n, S) with S = "
                             f"{grid.num_states}, got {values.shape}")
        for k in sweeps:
            checks.integer(k, "sweeps", minimum=0, maximum=values.shape[0] - 1)
    fig, axes = plt.subplots(len(names), len(sweeps),
                             figsize=(2.4 * len(sweeps), 2.5 * len(names) + 0.4), squeeze=False)
    vmax = max(float(np.max(v)) for v in rows.values())
    for i, name in enumerate(names):
        for j, k in enumerate(sweeps):
            ax = axes[i, j]
            plot_values(grid, np.asarray(rows[name])[k], ax, vmin=0.0, vmax=vmax,
                        colorbar=False, marks=marks)
            ax.set_title(f"{name}: {k} sweep{'s' if k != 1 else ''}", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
