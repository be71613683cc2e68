"""The intrinsic-reward-gradient demonstration (seed note, first section).

A *bounded* planner — soft value iteration with a short planning discount `γ_plan` (default
0.5), or a fixed budget of sweeps — acting on the extrinsic four-rooms reward only "sees" the
goal from a few steps away and performs poorly. Learning an intrinsic reward `r_θ` for that same
planner, by gradient ascent on the extrinsic return `J(θ) = s0 · V^{π̂_θ}_r` (gradient through the
planner by the implicit function theorem), recovers near-optimal extrinsic return: the optimal
reward problem of Singh, Lewis & Barto (2009) and Sorg, Singh & Lewis (2010).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optiongrad import gridworld, rewards
from optiongrad.evaluation import expected_return, policy_evaluation
from optiongrad.experiments.io import write_csv, write_json
from optiongrad.objectives import planner_return
from optiongrad.planning import soft_value_iteration

REWARDS = ("tabular", "state", "linear")


@dataclasses.dataclass(frozen=True)
class IRGConfig:
    """Configuration of the demonstration (all fields are CLI flags of `optiongrad irg`)."""

    goal: tuple[int, int] = (11, 11)
    discount: float = 0.99
    plan_discount: float = 0.5
    plan_sweeps: Optional[int] = None
    temperature: float = 0.03
    reward: str = "tabular"
    steps: int = 300
    learning_rate: float = 0.05
    slip: float = 0.0
    seed: int = 0

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid field."""
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"discount: expected 0 <= discount < 1, got {self.discount}")
        if not 0.0 <= self.plan_discount < 1.0:
            raise ValueError(f"plan_discount: expected 0 <= value < 1, got {self.plan_discount}")
        if self.plan_sweeps is not None and self.plan_sweeps < 1:
            raise ValueError(f"plan_sweeps: expected a positive integer, got {self.plan_sweeps}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward: expected one of {REWARDS}, got {self.reward!r}")
        if self.steps < 0:
            raise ValueError(f"steps: expected >= 0, got {self.steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: expected > 0, got {self.learning_rate}")

    @property
    def bound(self) -> str:
        if self.plan_sweeps is not None:
            return f"{self.plan_sweeps} sweeps at γ={self.discount}"
        return f"γ_plan={self.plan_discount}"


def rbf_features(grid: gridworld.GridWorld, goal: int, centres: int = 4) -> np.ndarray:
    """Features for the linear reward: a goal indicator, a constant and Gaussian bumps on a
    `centres × centres` lattice over the grid (width one lattice spacing). Shape `(S, F)`."""
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
        return rewards.tabular(s, 4)
    if config.reward == "state":
        return rewards.state(s)
    return rewards.linear(rbf_features(grid, goal))


def run_irg(config: IRGConfig, out_dir: Optional[str] = None, *, progress: bool = True) -> dict:
    """Run the demonstration; write `metrics.csv`, `results.json` and figures to `out_dir`.

    Returns the results dictionary (also written as `results.json`).
    """
    config.validate()
    grid = gridworld.four_rooms(config.slip)
    goal = grid.state(*config.goal)
    mdp = gridworld.goal_task(grid, goal, config.discount)
    tau = config.temperature
    plan_kwargs = dict(plan_discount=config.plan_discount)
    if config.plan_sweeps is not None:
        plan_kwargs = dict(differentiation="unrolled", num_sweeps=config.plan_sweeps)

    optimal = soft_value_iteration(mdp, 0.0, backup="max")
    uniform = jnp.full((grid.num_states, 4), 0.25, mdp.dtype)
    j_star = float(expected_return(mdp, optimal.policy))
    j_rand = float(expected_return(mdp, uniform))

    def normalise(j):
        return (j - j_rand) / (j_star - j_rand)

    model = _reward_model(config, grid, goal)
    theta0 = rewards.fit(model, mdp, mdp.rewards)
    optimiser = optax.adam(config.learning_rate)

    @jax.jit
    def step(theta, opt_state):
        (value, plan), grad = jax.value_and_grad(planner_return, has_aux=True)(
            theta, model, mdp, tau, **plan_kwargs
        )
        updates, opt_state = optimiser.update(jax.tree.map(jnp.negative, grad), opt_state)
        grad_norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad)))
        return optax.apply_updates(theta, updates), opt_state, value, plan, grad_norm

    theta, opt_state = theta0, optimiser.init(theta0)
    rows = []
    bar = _progress(config.steps, progress)
    for t in range(config.steps):
        theta, opt_state, value, plan, grad_norm = step(theta, opt_state)
        value = float(value)
        rows.append({
            "step": t, "return": value, "normalized_return": normalise(value),
            "planner_iterations": int(plan.iterations),
            "planner_converged": bool(plan.converged), "grad_norm": float(grad_norm),
        })
        bar.set_postfix(J=f"{value:.4f}", norm=f"{normalise(value):.3f}")
        bar.update()
    bar.close()

    before, plan_before = planner_return(theta0, model, mdp, tau, **plan_kwargs)
    after, plan_after = planner_return(theta, model, mdp, tau, **plan_kwargs)
    full, _ = planner_return(theta0, model, mdp, tau)
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
        os.makedirs(out_dir, exist_ok=True)
        write_csv(os.path.join(out_dir, "metrics.csv"), rows)
        write_json(os.path.join(out_dir, "results.json"), results)
        _figures(out_dir, grid, goal, mdp, model, theta0, theta, rows, normalise, table,
                 tau, plan_kwargs)
    return results


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="intrinsic reward", disable=not enabled, leave=True)


def _figures(out_dir, grid, goal, mdp, model, theta0, theta, rows, normalise, table, tau,
             plan_kwargs) -> None:
    import matplotlib.pyplot as plt

    from optiongrad import plotting

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
    fig.savefig(os.path.join(out_dir, "irg_learning_curve.png"), dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    for ax, params, title in ((axes[0], theta0, "before: extrinsic reward"),
                              (axes[1], theta, "after: learned reward")):
        _, plan = planner_return(params, model, mdp, tau, **plan_kwargs)
        values = policy_evaluation(mdp, plan.policy)
        plotting.plot_policy(grid, plan.policy, ax, values=np.asarray(values), marks=[goal],
                             title=f"{title}\npolicy on V (extrinsic)")
    learned = np.asarray(model.apply(theta, mdp))
    best = np.eye(4)[learned.argmax(axis=1)]
    plotting.plot_policy(grid, best, axes[2], values=learned.max(axis=1), marks=[goal],
                         title="learned r_θ: max over actions\n(arrow: its action)")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "irg_reward.png"), dpi=120)
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
