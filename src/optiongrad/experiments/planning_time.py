"""Planning time with options on four rooms (Sutton, Precup & Singh 1999; Jinnai et al. 2019).

Value-iteration sweeps from zero values (hard `max` backup) until the greedy policy is optimal
("policy") or the values are within ε of optimal ("values"), for primitives alone and for
primitives plus hallway options, eigenoptions or random (subgoal) options, on named goals and
averaged over all goals. Figures: value propagation after 1, 2, 3… sweeps for primitives vs
hallway options, and every option family as arrows + termination maps.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad import discovery, gridworld
from optiongrad.experiments.io import write_json
from optiongrad.planning_time import planning_sweeps, sweep_values

GOALS = {"hallway (7,9)": (7, 9), "hallway (3,6)": (3, 6), "corner (1,1)": (1, 1),
         "corner (11,11)": (11, 11), "room centre (9,3)": (9, 3)}


@dataclasses.dataclass(frozen=True)
class PlanningTimeConfig:
    discount: float = 0.9
    slip: float = 0.0
    epsilon: float = 1e-6
    num_options: int = 8
    option_temperature: float = 1e-3
    seed: int = 0

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid field."""
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"discount: expected 0 <= discount < 1, got {self.discount}")
        if not 0.0 <= self.slip <= 1.0:
            raise ValueError(f"slip: expected a probability, got {self.slip}")
        if not self.epsilon > 0:
            raise ValueError(f"epsilon: expected > 0, got {self.epsilon}")
        if self.num_options < 2 or self.num_options % 2:
            raise ValueError(f"num_options: expected an even number >= 2, got {self.num_options}")


def option_families(grid, config: PlanningTimeConfig) -> dict:
    """The baselines: hallway options, eigenoptions and random subgoal options."""
    nav = gridworld.navigation_mdp(grid, config.discount)
    return {
        "hallway": gridworld.hallway_options(grid),
        "eigenoptions": discovery.eigenoptions(nav, config.num_options,
                                               config.option_temperature),
        "random": discovery.random_options(config.seed, nav, config.num_options,
                                           config.option_temperature),
    }


def run_planning_time(config: PlanningTimeConfig, out_dir: Optional[str] = None,
                      *, progress: bool = True) -> dict:
    """Planning sweeps of every option family on every goal of the four rooms, both criteria;
    writes `planning_time.json` and figures to `out_dir` (when given); returns the results."""
    config.validate()
    from tqdm.auto import tqdm

    grid = gridworld.four_rooms(config.slip)
    families = {"primitives": None, **option_families(grid, config)}
    all_goals = jnp.arange(grid.num_states)

    def sweeps(goal, options, criterion):
        mdp = gridworld.goal_task(grid, goal, config.discount)
        return planning_sweeps(mdp, options, criterion=criterion, epsilon=config.epsilon)

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
        os.makedirs(out_dir, exist_ok=True)
        write_json(os.path.join(out_dir, "planning_time.json"), results)
        _figures(out_dir, grid, families, config)
    return results


def _figures(out_dir, grid, families, config) -> None:
    import matplotlib.pyplot as plt

    from optiongrad import plotting

    goal = grid.state(7, 9)
    mdp = gridworld.goal_task(grid, goal, config.discount)
    rows = {"primitives": sweep_values(mdp, None, 4),
            "hallway options": sweep_values(mdp, families["hallway"], 4)}
    fig = plotting.plot_sweeps(grid, rows, [1, 2, 3, 4], marks=[goal],
                               title="Value iteration from zero, goal in hallway (7,9)")
    fig.savefig(os.path.join(out_dir, "value_propagation.png"), dpi=110)
    plt.close(fig)
    for name in ("hallway", "eigenoptions", "random"):
        fig = plotting.plot_options(grid, families[name],
                                    title=f"{name} options (arrows: policy; red: termination)")
        fig.savefig(os.path.join(out_dir, f"options_{name}.png"), dpi=110)
        plt.close(fig)


def format_table(results: dict) -> str:
    """Markdown table: one row per option family, columns per goal, for each criterion."""
    lines = []
    for criterion in ("policy", "values"):
        columns = list(next(iter(results["sweeps"].values()))[criterion])
        lines.append(f"| options + primitives, criterion `{criterion}` | "
                     + " | ".join(columns) + " |")
        lines.append("|---|" + "---|" * len(columns))
        for name, by_criterion in results["sweeps"].items():
            cells = [f"{v:.1f}" if isinstance(v, float) else str(v)
                     for v in by_criterion[criterion].values()]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines).rstrip()
