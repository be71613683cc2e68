r"""The intrinsic-reward-gradient demonstration: learning a reward for a bounded planner.

A *bounded* planner — soft value iteration with a short planning discount $\gamma_{\mathrm{plan}}$ (default
0.5), or a fixed budget of sweeps — acting on the extrinsic four-rooms reward only "sees" the
goal from a few steps away and performs poorly. Learning an intrinsic reward $r_\theta$ for that same
planner, by gradient ascent on the extrinsic return $J(\theta) = s_0 \cdot V^{\hat{\pi}_\theta}_r$ (gradient through the
planner by the implicit function theorem), recovers near-optimal extrinsic return: the optimal
reward problem of Singh, Lewis & Barto (2009) and Sorg, Singh & Lewis (2010).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optiongrad as og
from optiongrad._src.deprecation import renamed
from optiongrad.experiments import config as cfg
from optiongrad.experiments.io import prepare_output, save_figure, write_json
from optiongrad.experiments.training import CHECKPOINT, METRICS, run_record, train

REWARDS = ("tabular", "state", "linear")
RESULTS_FILE = "results.json"
#: The columns of metrics.csv, one row per training step.
COLUMNS = ("step", "return", "normalized_return", "planner_iterations", "planner_converged",
           "grad_norm", "seconds")
FIGURES = ("irg_learning_curve.png", "irg_reward.png")


@dataclasses.dataclass(frozen=True)
class IRGConfig:
    """Configuration of the demonstration; each field's flag and range are in its metadata.
    `planning_budget` (sweeps at γ, unrolled) bounds the planner instead of `plan_discount`
    when set (`plan_sweeps=` is its deprecated spelling)."""

    goal: tuple[int, int] = cfg.setting((11, 11), "goal cell ROW,COL", flag="--goal",
                                        check=cfg.cell, parse=cfg.parse_cell)
    discount: float = cfg.setting(0.99, "extrinsic discount γ", flag="--discount",
                                  check=cfg.real(0.0, 1.0, high_open=True))
    plan_discount: float = cfg.setting(0.5, "the bounded planner's discount γ_plan",
                                       flag="--plan-discount",
                                       check=cfg.real(0.0, 1.0, high_open=True))
    planning_budget: Optional[int] = cfg.setting(
        None, "bound the planner by N sweeps at γ instead of by γ_plan", flag="--budget",
        check=cfg.whole(optional=True))
    temperature: float = cfg.setting(0.03, "planner temperature τ", flag="--temperature",
                                     check=cfg.real(0.0, low_open=True))
    reward: str = cfg.setting("tabular", "intrinsic reward parametrisation", flag="--reward",
                              choices=REWARDS)
    steps: int = cfg.setting(300, "training steps", flag="--steps", check=cfg.whole(0))
    learning_rate: float = cfg.setting(0.05, "Adam learning rate", flag="--lr",
                                       check=cfg.real(0.0, low_open=True))
    slip: float = cfg.setting(0.0, "probability a move slips", flag="--slip",
                              check=cfg.real(0.0, 1.0))

    #: A budget of sweeps replaces the planning discount: giving both is refused.
    CONFLICTS = (("plan_discount", "planning_budget"),)

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid field (the goal must be a free cell;
        slip 0.75 makes every action the same uniform move, so there is nothing to learn)."""
        cfg.validate(self)
        if self.slip == 0.75:
            raise ValueError("slip: 0.75 makes every action the same uniform move: every policy "
                             "has the same return, and there is nothing to learn")
        try:
            og.gridworld.four_rooms().state(*self.goal)
        except ValueError:
            raise ValueError(f"goal: {self.goal} is not a free cell of four rooms") from None

    @property
    def bound(self) -> str:
        if self.planning_budget is not None:
            return f"{self.planning_budget} sweeps at γ={self.discount}"
        return f"γ_plan={self.plan_discount}"


IRGConfig.__init__ = renamed(plan_sweeps="planning_budget")(IRGConfig.__init__)


def rbf_features(grid: og.gridworld.GridWorld, goal: int, centres: int = 4) -> np.ndarray:
    r"""Features for the linear reward: a goal indicator, a constant and Gaussian bumps on a
    $\mathtt{centres} \times \mathtt{centres}$ lattice over the grid (width one lattice spacing). Shape `(S, F)`."""
    h, w = grid.shape
    rows = np.linspace(0, h - 1, centres)
    cols = np.linspace(0, w - 1, centres)
    width = max((h - 1) / (centres - 1), 1.0)
    cr, cc = np.meshgrid(rows, cols, indexing="ij")
    d2 = ((grid.cells[:, None, 0] - cr.reshape(-1)) ** 2
          + (grid.cells[:, None, 1] - cc.reshape(-1)) ** 2)
    bumps = np.exp(-d2 / (2 * width**2))
    indicator = (np.arange(grid.num_states) == goal).astype(float)[:, None]
    return np.concatenate([indicator, np.ones((grid.num_states, 1)), bumps], axis=1)


def _reward_model(config: IRGConfig, grid, goal):
    s = grid.num_states
    if config.reward == "tabular":
        return og.rewards.tabular(s, 4)
    if config.reward == "state":
        return og.rewards.state(s)
    return og.rewards.linear(rbf_features(grid, goal))


def run_irg(config: IRGConfig, out_dir: Optional[str] = None, *, resume: bool = False,
            force: bool = False, progress: bool = True) -> dict:
    """Run the demonstration; write `metrics.csv`, `results.json` and figures to `out_dir`
    (checked first, as in `run_four_rooms`; `resume` continues an interrupted run).

    Returns the results dictionary (also written as `results.json`).
    """
    config.validate()
    lock = contextlib.nullcontext()
    if out_dir is not None:
        lock = prepare_output(out_dir, finished=RESULTS_FILE, unfinished=(CHECKPOINT,),
                              outputs=(RESULTS_FILE, METRICS, CHECKPOINT, *FIGURES),
                              resume=resume, force=force)
    with lock:
        return _run(config, out_dir, resume, progress)


def _run(config: IRGConfig, out_dir: Optional[str], resume: bool, progress: bool) -> dict:
    grid = og.gridworld.four_rooms(config.slip)
    goal = grid.state(*config.goal)
    mdp = og.gridworld.goal_task(grid, goal, config.discount)
    tau = config.temperature
    plan_kwargs = dict(plan_discount=config.plan_discount)
    if config.planning_budget is not None:
        plan_kwargs = dict(num_sweeps=config.planning_budget)

    optimal = og.soft_value_iteration(mdp, 0.0, backup="max")
    uniform = jnp.full((grid.num_states, 4), 0.25, mdp.dtype)
    j_star = float(og.expected_return(mdp, optimal.policy))
    j_rand = float(og.expected_return(mdp, uniform))
    if not j_star - j_rand > 1e-6 * max(1.0, abs(j_star)):
        raise ValueError(f"slip: with slip {config.slip} the optimal and the uniform-random "
                         f"policies have the same return ({j_star:.6g}); normalised returns "
                         "are undefined and there is nothing to learn")

    def normalise(j):
        return (j - j_rand) / (j_star - j_rand)

    model = _reward_model(config, grid, goal)
    theta0 = og.rewards.fit(model, mdp, mdp.rewards)
    optimiser = optax.adam(config.learning_rate)

    @jax.jit
    def step(state):
        theta, opt_state = state
        (value, plan), grad = jax.value_and_grad(og.planner_return, has_aux=True)(
            theta, model, mdp, tau, **plan_kwargs)
        updates, opt_state = optimiser.update(jax.tree.map(jnp.negative, grad), opt_state)
        metrics = {"return": value, "planner_iterations": plan.iterations,
                   "planner_converged": plan.converged, "grad_norm": optax.tree.norm(grad)}
        return (optax.apply_updates(theta, updates), opt_state), metrics

    def finish_row(row):
        row = {"step": row["step"], "return": row["return"],
               "normalized_return": normalise(row["return"]),
               **{k: row[k] for k in ("planner_iterations", "planner_converged", "grad_norm")}}
        return row

    (theta, _), rows = train(
        step, (theta0, optimiser.init(theta0)), run_record(dataclasses.asdict(config)),
        steps=config.steps, out_dir=out_dir, resume=resume, progress=progress,
        description="intrinsic reward", finish_row=finish_row, objective="return",
        flags=cfg.flag_names(IRGConfig), columns=COLUMNS,
        postfix=lambda row: {"J": f"{row['return']:.4f}",
                             "norm": f"{row['normalized_return']:.3f}"})

    before, plan_before = og.planner_return(theta0, model, mdp, tau, **plan_kwargs)
    after, plan_after = og.planner_return(theta, model, mdp, tau, **plan_kwargs)
    full, _ = og.planner_return(theta0, model, mdp, tau)
    table = [
        ("optimal policy (hard VI, γ)", j_star),
        ("uniform random policy", j_rand),
        ("unbounded soft planner (γ_plan=γ) on extrinsic r", float(full)),
        (f"bounded planner ({config.bound}) on extrinsic r", float(before)),
        (f"bounded planner ({config.bound}) on learned r_θ", float(after)),
    ]
    results = {
        "config": dataclasses.asdict(config),
        "goal_state": goal,
        "table": [{"policy": name, "return": j, "normalized_return": normalise(j)}
                  for name, j in table],
        "planner_converged": {"before": bool(plan_before.converged),
                              "after": bool(plan_after.converged)},
    }
    if out_dir is not None:
        _figures(out_dir, grid, goal, mdp, model, theta0, theta, rows, normalise, table,
                 tau, plan_kwargs)
        write_json(os.path.join(out_dir, RESULTS_FILE), results)
    return results


def _figures(out_dir, grid, goal, mdp, model, theta0, theta, rows, normalise, table, tau,
             plan_kwargs) -> None:
    import matplotlib.pyplot as plt

    plotting = og.plotting
    fig, ax = plt.subplots(figsize=(6, 4))
    curve = [r["normalized_return"] for r in rows]
    plotting.plot_curves(
        {"bounded planner on learned r_θ": curve}, ax, ylabel="normalised extrinsic return",
        title="Intrinsic reward gradient (four rooms)",
        hlines={"bounded planner on extrinsic r": normalise(table[3][1]),
                "unbounded soft planner": normalise(table[2][1])},
    )
    ax.set_ylim(-0.05, 1.05)
    fig.tight_layout()
    save_figure(fig, os.path.join(out_dir, "irg_learning_curve.png"), dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    for ax, params, title in ((axes[0], theta0, "before: extrinsic reward"),
                              (axes[1], theta, "after: learned reward")):
        _, plan = og.planner_return(params, model, mdp, tau, **plan_kwargs)
        values = og.policy_evaluation(mdp, plan.policy)
        plotting.plot_policy(grid, plan.policy, ax, values=np.asarray(values), marks=[goal],
                             title=f"{title}\npolicy on V (extrinsic)")
    learned = np.asarray(model.apply(theta, mdp))
    best = np.eye(4)[learned.argmax(axis=1)]
    plotting.plot_policy(grid, best, axes[2], values=learned.max(axis=1), marks=[goal],
                         title="learned r_θ: max over actions\n(arrow: its action)")
    fig.tight_layout()
    save_figure(fig, os.path.join(out_dir, "irg_reward.png"), dpi=120)
    plt.close(fig)


def format_table(results: dict) -> str:
    """The before/after table as aligned text."""
    rows = results["table"]
    width = max(len(r["policy"]) for r in rows)
    lines = [f"{'policy':<{width}}  {'return':>8}  {'normalised':>10}",
             "-" * (width + 22)]
    for r in rows:
        lines.append(f"{r['policy']:<{width}}  {r['return']:>8.4f}  {r['normalized_return']:>10.4f}")
    return "\n".join(lines)
