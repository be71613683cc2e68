"""The four-rooms option-gradient experiment (the seed note's experiment; DESIGN.md).

All 104 cells are goals, split 83/21 by a seeded permutation. `K` options are learned on the
train goals by the option gradient (`optiongrad.option_gradient`): each option's policy is the
smooth planner's policy for its own intrinsic reward, its termination `sigmoid(ω)` is learned,
and the policy over options comes from the smooth SMDP planner on the goal's reward with a
budget of `N` sweeps from zero values (primitives appended by default). Learned options and the
baselines (primitives only, hallway options, random subgoal options, eigenoptions) are scored
the same way on both sets: mean return `s0 · v_μ`, normalised return
`(J − J_random)/(J* − J_random)` (set means of the per-goal returns of the optimal and the
uniform-random primitive policies) and planning time (hard value-iteration sweeps from zero
until the greedy primitive policy is optimal, Jinnai et al. 2019).

Training is deterministic given the seed, writes one `metrics.csv` row per step and an atomic
checkpoint after every step, so a killed run resumed with `resume=True` loses nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optiongrad import discovery, gridworld, rewards
from optiongrad.experiments.io import atomic_write, write_csv, write_json
from optiongrad.goal_tasks import goal_task, reference_returns
from optiongrad.option_gradient import (
    ExtrinsicPlanner,
    batched_smdp_returns,
    goal_models,
    goal_returns,
    init_params,
    make_options,
    option_gradient_objective,
)
from optiongrad.options import Options, primitive_options
from optiongrad.planning_time import model_planning_sweeps

REWARDS = ("tabular", "state")
CHECKPOINT = "checkpoint.npz"
MAX_SWEEPS = 100  # primitives alone need 20 on four rooms at γ = 0.9


@dataclasses.dataclass(frozen=True)
class FourRoomsConfig:
    """The experiment's settings; the first eight are the `results.json` "config" of DESIGN.md.

    `planning_budget=None` plans `μ` to convergence (implicit gradient). `termination` is the
    initial termination probability of learned options, or the fixed one when
    `learn_termination` is False. `baseline_temperature` is `τ` of the planners that make the
    random and eigen options (near-deterministic policies, as in the papers).
    """

    discount: float = 0.9
    temperature_options: float = 0.05
    temperature_mu: float = 0.01
    planning_budget: Optional[int] = 3
    include_primitives: bool = True
    num_options: int = 8
    seed: int = 0
    steps: int = 150
    learning_rate: float = 0.1
    reward: str = "state"
    init_scale: float = 1.0
    learn_termination: bool = True
    termination: float = 0.1
    diversity_weight: float = 0.0
    train_fraction: float = 0.8
    baseline_temperature: float = 1e-3

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid field."""
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"discount: expected 0 < discount < 1, got {self.discount}")
        for name in ("temperature_options", "temperature_mu", "learning_rate",
                     "baseline_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")
        if self.planning_budget is not None and self.planning_budget < 1:
            raise ValueError(f"planning_budget: expected >= 1 or None, got {self.planning_budget}")
        if self.num_options < 2 or self.num_options % 2:
            raise ValueError(f"num_options: expected an even number >= 2 (eigenoptions come in "
                             f"± pairs), got {self.num_options}")
        if self.steps < 0:
            raise ValueError(f"steps: expected >= 0, got {self.steps}")
        if self.reward not in REWARDS:
            raise ValueError(f"reward: expected one of {REWARDS}, got {self.reward!r}")
        if not 0.0 < self.termination < 1.0:
            raise ValueError(f"termination: expected a probability in (0, 1), got "
                             f"{self.termination}")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction: expected in (0, 1), got {self.train_fraction}")

    @property
    def planner(self) -> ExtrinsicPlanner:
        return ExtrinsicPlanner(self.temperature_mu, self.planning_budget,
                                self.include_primitives)


def split_goals(num_states: int, seed: int, train_fraction: float = 0.8):
    """Seeded random split of all states into sorted train and test goal lists (83/21 on four
    rooms)."""
    order = np.random.default_rng(seed).permutation(num_states)
    cut = int(round(train_fraction * num_states))
    return np.sort(order[:cut]), np.sort(order[cut:])


class Setup:
    """Everything fixed by the config: grid, environment, split, reference returns, model."""

    def __init__(self, config: FourRoomsConfig):
        config.validate()
        self.config = config
        self.grid = gridworld.four_rooms()
        s = self.grid.num_states
        self.environment = gridworld.navigation_mdp(self.grid, config.discount)
        self.train, self.test = split_goals(s, config.seed, config.train_fraction)
        self.model = (rewards.state(s, init_scale=config.init_scale) if config.reward == "state"
                      else rewards.tabular(s, 4, init_scale=config.init_scale))
        q, j_star, j_rand = jax.jit(reference_returns)(self.environment, jnp.arange(s))
        self.optimal_q, self.optimal, self.uniform = q, np.asarray(j_star), np.asarray(j_rand)

    def normalise(self, mean_return: float, goals: np.ndarray) -> float:
        """`(J − J_random)/(J* − J_random)` with set means over `goals`."""
        j_star, j_rand = self.optimal[goals].mean(), self.uniform[goals].mean()
        return float((mean_return - j_rand) / (j_star - j_rand))


def baselines(setup: Setup) -> dict[str, Options]:
    """The baseline option sets (`primitives` is the empty set: primitives alone)."""
    c, env = setup.config, setup.environment
    return {
        "hallway": gridworld.hallway_options(setup.grid),
        "random": discovery.random_options(c.seed, env, c.num_options, c.baseline_temperature),
        "eigenoptions": discovery.eigenoptions(env, c.num_options, c.baseline_temperature),
    }


def evaluate(setup: Setup, options: Optional[Options], planner: ExtrinsicPlanner) -> dict:
    """Scores of an option set (None: primitives alone) on the train and test goals."""
    env = setup.environment
    if options is None:
        options = primitive_options(env.num_states, env.num_actions, env.dtype)
        planner = dataclasses.replace(planner, include_primitives=False)
    options = Options._unchecked(options.policy, options.termination, options.initiation_mask())
    returns, counts = (np.asarray(x) for x in _goal_scores(options, env, setup.optimal_q,
                                                             planner))
    scores = {}
    for name, subset in (("train", setup.train), ("test", setup.test)):
        mean_return = float(np.mean(returns[subset]))
        scores[name] = {
            "return": mean_return,
            "normalized_return": setup.normalise(mean_return, subset),
            "planning_sweeps": float(np.mean(counts[subset])),
            "never_optimal": int(np.sum(counts[subset] > MAX_SWEEPS)),
        }
    return scores


@functools.partial(jax.jit, static_argnames="planner")
def _goal_scores(options: Options, environment, optimal_q, planner: ExtrinsicPlanner):
    """Per goal (all states): return of the planned `μ` and planning sweeps (hard VI)."""
    goals = jnp.arange(environment.num_states)
    planned, reward, transition, initial = goal_models(options, environment, goals, planner)
    returns = batched_smdp_returns(reward, transition, initial, planner, planned.initiation)

    def sweeps(goal, r, p, q_star):
        return model_planning_sweeps(goal_task(environment, goal), r, p,
                                     initiation=planned.initiation, optimal_q=q_star,
                                     max_sweeps=MAX_SWEEPS)

    return returns, jax.vmap(sweeps)(goals, reward, transition, optimal_q)


def _checkpoint_path(out_dir):
    return os.path.join(out_dir, CHECKPOINT)


def _save_checkpoint(out_dir, config, step, state, rows) -> None:
    leaves = jax.tree.leaves(state)
    arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)}
    arrays["step"] = np.asarray(step)
    arrays["config"] = np.asarray(json.dumps(dataclasses.asdict(config), sort_keys=True))
    arrays["metrics"] = np.asarray(json.dumps(rows))
    atomic_write(_checkpoint_path(out_dir), lambda f: np.savez(f, **arrays), binary=True)


def _load_checkpoint(out_dir, config, template):
    path = _checkpoint_path(out_dir)
    with np.load(path) as data:
        saved = json.loads(str(data["config"]))
        mine = dataclasses.asdict(config)
        different = sorted(k for k in mine if k != "steps" and saved.get(k) != mine[k])
        if different:
            raise ValueError(f"resume: the checkpoint in {out_dir} was made with a different "
                             f"config ({', '.join(f'{k}={saved.get(k)!r}' for k in different)})")
        leaves, treedef = jax.tree.flatten(template)
        loaded = [jnp.asarray(data[f"leaf_{i}"], dtype=x.dtype) for i, x in enumerate(leaves)]
        return (int(data["step"]), jax.tree.unflatten(treedef, loaded),
                json.loads(str(data["metrics"])))


def train(setup: Setup, out_dir: Optional[str] = None, *, resume: bool = False,
          progress: bool = True):
    """Learn the options; returns `(params, metrics rows)`.

    Row `t` of the metrics scores the options after `t` updates (the objective, its gradient
    and the train/test returns are computed together, before update `t + 1` is applied). With
    `out_dir`, writes `metrics.csv` and `checkpoint.npz` after every step; with `resume`,
    continues from the checkpoint there (same config except `steps`).
    """
    c, env = setup.config, setup.environment
    planner = c.planner
    params = init_params(jax.random.key(c.seed), setup.model, c.num_options,
                         env.num_states, learn_termination=c.learn_termination,
                         termination_init=c.termination)
    optimiser = optax.adam(c.learning_rate)
    state = (params, optimiser.init(params))
    train_goals, test_goals = jnp.asarray(setup.train), jnp.asarray(setup.test)
    objective_kwargs = dict(temperature_options=c.temperature_options, planner=planner,
                            termination=c.termination, diversity_weight=c.diversity_weight)

    @jax.jit
    def step(state):
        params, opt_state = state
        (objective, aux), grad = jax.value_and_grad(option_gradient_objective, has_aux=True)(
            params, setup.model, env, train_goals, **objective_kwargs)
        updates, opt_state = optimiser.update(jax.tree.map(jnp.negative, grad), opt_state)
        grad_norm = jnp.sqrt(sum(jnp.vdot(g, g) for g in jax.tree.leaves(grad)))
        test = jnp.mean(goal_returns(aux["options"], env, test_goals, planner))
        metrics = {"objective": objective, "train_return": aux["return"], "test_return": test,
                   "diversity": aux["diversity"], "grad_norm": grad_norm,
                   "intrinsic_converged": jnp.all(aux["intrinsic_converged"])}
        return (optax.apply_updates(params, updates), opt_state), metrics

    start, rows = 0, []
    if resume and out_dir is not None and os.path.exists(_checkpoint_path(out_dir)):
        start, state, rows = _load_checkpoint(out_dir, c, state)
        if start > c.steps:
            raise ValueError(f"steps: the checkpoint in {out_dir} already holds {start} steps; "
                             f"resume with steps >= {start}")
    bar = _progress(c.steps, start, progress)
    for t in range(start, c.steps):
        tic = time.perf_counter()
        state, metrics = step(state)
        row = {"step": t, **{k: v.item() for k, v in metrics.items()}}
        row["train_normalized"] = setup.normalise(row["train_return"], setup.train)
        row["test_normalized"] = setup.normalise(row["test_return"], setup.test)
        row["seconds"] = time.perf_counter() - tic
        rows.append(row)
        if out_dir is not None:
            _save_checkpoint(out_dir, c, t + 1, state, rows)
            write_csv(os.path.join(out_dir, "metrics.csv"), rows)
        bar.set_postfix(train=f"{row['train_normalized']:.3f}",
                        test=f"{row['test_normalized']:.3f}")
        bar.update()
    bar.close()
    return state[0], rows


def _progress(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="option gradient", disable=not enabled)


def learned_options(setup: Setup, params) -> Options:
    """The learned options as a concrete, validated `Options` (initiation: everywhere)."""
    c = setup.config
    options, _ = make_options(params, setup.model, setup.environment, c.temperature_options,
                              termination=c.termination)
    mask = np.ones(options.termination.shape, bool)
    return Options(np.asarray(options.policy), np.asarray(options.termination), mask)


def save_options(path: str, options: Options, grid) -> None:
    """`.npz` with `policy (K, S, A)`, `termination (K, S)`, `initiation (K, S)` bool and
    `cells (S, 2)` (DESIGN.md)."""
    arrays = dict(policy=np.asarray(options.policy), termination=np.asarray(options.termination),
                  initiation=np.asarray(options.initiation_mask()),
                  cells=np.asarray(grid.cells))
    atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)


def load_options(path: str) -> Options:
    """Options from a `.npz` written by `save_options` (validated)."""
    with np.load(path) as data:
        return Options(data["policy"], data["termination"], data["initiation"])


def run_four_rooms(config: FourRoomsConfig, out_dir: Optional[str] = None, *,
                   resume: bool = False, progress: bool = True) -> dict:
    """The whole experiment: train, evaluate every method in the configured regime and in the
    other one, write `results.json`, `metrics.csv`, `options.npz` (and `options_<method>.npz`
    for the baselines) and figures into `out_dir`. Returns the results dictionary."""
    setup = Setup(config)
    params, rows = train(setup, out_dir, resume=resume, progress=progress)
    sets = {"learned": learned_options(setup, params), "primitives": None, **baselines(setup)}
    other = dataclasses.replace(config.planner, include_primitives=not config.include_primitives)
    methods, other_regime = {}, {}
    for name, options in sets.items():
        methods[name] = evaluate(setup, options, config.planner)
        other_regime[name] = evaluate(setup, options, other)
    results = {
        "config": dataclasses.asdict(config),
        "split": {"train": setup.train.tolist(), "test": setup.test.tolist()},
        "methods": methods,
        "other_regime": {"include_primitives": other.include_primitives,
                         "methods": other_regime},
        "machine": _machine(),
        "training_seconds": float(sum(r["seconds"] for r in rows)),
    }
    if out_dir is not None:
        write_json(os.path.join(out_dir, "results.json"), results)
        save_options(os.path.join(out_dir, "options.npz"), sets["learned"], setup.grid)
        for name, options in sets.items():
            if name not in ("learned", "primitives"):
                save_options(os.path.join(out_dir, f"options_{name}.npz"), options, setup.grid)
        from optiongrad.experiments.four_rooms_figures import write_figures

        write_figures(out_dir, setup, results, rows, sets["learned"])
    return results


def _machine() -> dict:
    import platform

    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "jax": jax.__version__,
            "float64": bool(jax.config.jax_enable_x64)}


def format_table(results: dict) -> str:
    """Every method on train and test goals, as aligned text."""
    regime = "options + primitives" if results["config"]["include_primitives"] else "options only"
    budget = results["config"]["planning_budget"]
    lines = [f"regime: {regime}, planning budget: "
             f"{'converged' if budget is None else f'{budget} sweeps'}",
             f"{'method':<13} {'train J':>8} {'train norm':>10} {'test J':>8} {'test norm':>9} "
             f"{'test sweeps':>11}", "-" * 64]
    for name, m in results["methods"].items():
        tr, te = m["train"], m["test"]
        lines.append(f"{name:<13} {tr['return']:>8.4f} {tr['normalized_return']:>10.3f} "
                     f"{te['return']:>8.4f} {te['normalized_return']:>9.3f} "
                     f"{te['planning_sweeps']:>11.1f}")
    return "\n".join(lines)
