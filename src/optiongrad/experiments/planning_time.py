"""Planning time with options on four rooms (Sutton, Precup & Singh 1999; Jinnai et al. 2019).

Value-iteration sweeps from zero values (hard `max` backup) until the greedy policy is optimal
("policy") or the values are within ε of optimal ("values"), for primitives alone and for
primitives plus hallway options, eigenoptions or random (subgoal) options, on named goals and
averaged over all goals. Figures: value propagation after 1, 2, 3… sweeps for primitives vs
hallway options, and every option family as arrows + termination maps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

import optiongrad as og
from optiongrad.experiments import config as cfg
from optiongrad.experiments.io import prepare_output, save_figure, write_json

GOALS = {"hallway (7,9)": (7, 9), "hallway (3,6)": (3, 6), "corner (1,1)": (1, 1),
         "corner (11,11)": (11, 11), "room centre (9,3)": (9, 3)}
RESULTS_FILE = "planning_time.json"
FAMILIES = ("hallway", "eigenoptions", "random")


@dataclasses.dataclass(frozen=True)
class PlanningTimeConfig:
    """Settings of `optiongrad planning-time`; each field's flag and range in its metadata."""

    discount: float = cfg.setting(0.9, "discount γ", flag="--discount",
                                  check=cfg.real(0.0, 1.0, high_open=True))
    slip: float = cfg.setting(0.0, "probability a move slips", flag="--slip",
                              check=cfg.real(0.0, 1.0))
    epsilon: float = cfg.setting(1e-6, 'value tolerance of the "values" criterion',
                                 flag="--epsilon", check=cfg.real(0.0, low_open=True))
    num_options: int = cfg.setting(8, "eigen/random options (even)", flag="--options",
                                   check=cfg.whole(2))
    option_temperature: float = cfg.setting(1e-3, "τ of the options' planners",
                                            check=cfg.real(0.0, low_open=True))
    seed: int = cfg.setting(0, "random seed (the random options)", flag="--seed",
                            check=cfg.whole(0, cfg.SEED_MAX))

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid field."""
        cfg.validate(self)
        if self.num_options % 2:
            raise ValueError(f"num_options: expected an even number >= 2, got "
                             f"{self.num_options}")
        if self.num_options > 104:
            raise ValueError(f"num_options: at most the 104 cells of four rooms (random "
                             f"options need distinct subgoals), got {self.num_options}")


def option_families(grid, config: PlanningTimeConfig) -> dict:
    """The baselines: hallway options, eigenoptions and random subgoal options."""
    nav = og.gridworld.navigation_mdp(grid, config.discount)
    return {
        "hallway": og.discovery.hallway_options(grid),
        "eigenoptions": og.discovery.eigenoptions(nav, config.num_options,
                                                  config.option_temperature),
        "random": og.discovery.random_options(config.seed, nav, config.num_options,
                                              config.option_temperature),
    }


def run_planning_time(config: PlanningTimeConfig, out_dir: Optional[str] = None,
                      *, force: bool = False, progress: bool = True) -> dict:
    """Planning sweeps of every option family on every goal of the four rooms, both criteria;
    writes `planning_time.json` and figures to `out_dir` (when given; a finished run there is
    refused unless `force`); returns the results."""
    config.validate()
    lock = contextlib.nullcontext()
    if out_dir is not None:
        lock = prepare_output(out_dir, finished=RESULTS_FILE, force=force,
                              outputs=(RESULTS_FILE, "value_propagation.png",
                                       *(f"options_{name}.png" for name in FAMILIES)))
    with lock:
        return _run(config, out_dir, progress)


def _run(config: PlanningTimeConfig, out_dir: Optional[str], progress: bool) -> dict:
    from tqdm.auto import tqdm

    grid = og.gridworld.four_rooms(config.slip)
    families = {"primitives": None, **option_families(grid, config)}
    all_goals = jnp.arange(grid.num_states)

    def sweeps(goal, options, criterion):
        mdp = og.gridworld.goal_task(grid, goal, config.discount)
        return og.planning_sweeps(mdp, options, criterion=criterion, epsilon=config.epsilon)

    table = {}
    bar = tqdm(total=len(families) * 2, desc="planning time", disable=not progress)
    for name, options in families.items():
        table[name] = {}
        for criterion in ("policy", "values"):
            counts = np.asarray(jax.jit(jax.vmap(lambda g: sweeps(g, options, criterion)))(
                all_goals))
            table[name][criterion] = {
                "mean over all goals": float(counts.mean()),
                **{label: int(counts[grid.state(*cell)]) for label, cell in GOALS.items()},
            }
            bar.update()
    bar.close()
    results = {"config": dataclasses.asdict(config), "sweeps": table}
    if out_dir is not None:
        _figures(out_dir, grid, families, config)
        write_json(os.path.join(out_dir, RESULTS_FILE), results)
    return results


def _figures(out_dir, grid, families, config) -> None:
    import matplotlib.pyplot as plt

    plotting = og.plotting
    goal = grid.state(7, 9)
    mdp = og.gridworld.goal_task(grid, goal, config.discount)
    rows = {"primitives": og.sweep_values(mdp, None, 4),
            "hallway options": og.sweep_values(mdp, families["hallway"], 4)}
    fig = plotting.plot_sweeps(grid, rows, [1, 2, 3, 4], marks=[goal],
                               title="Value iteration from zero, goal in hallway (7,9)")
    save_figure(fig, os.path.join(out_dir, "value_propagation.png"), dpi=110)
    plt.close(fig)
    for name in FAMILIES:
        fig = plotting.plot_options(grid, families[name],
                                    title=f"{name} options (arrows: policy; red: termination)")
        save_figure(fig, os.path.join(out_dir, f"options_{name}.png"), dpi=110)
        plt.close(fig)


def format_table(results: dict) -> str:
    """Markdown table: one row per action set (primitives alone, then each option family with the
    primitives), columns per goal, for each criterion."""
    lines = []
    for criterion in ("policy", "values"):
        columns = list(next(iter(results["sweeps"].values()))[criterion])
        lines.append(f"| actions, criterion `{criterion}` | " + " | ".join(columns) + " |")
        lines.append("|---|" + "---|" * len(columns))
        for name, by_criterion in results["sweeps"].items():
            cells = [f"{v:.1f}" if isinstance(v, float) else str(v)
                     for v in by_criterion[criterion].values()]
            label = ("primitives only" if name == "primitives" else
                     f"primitives + {name}" + ("" if name.endswith("options") else " options"))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()
