r"""The option-gradient experiment on any map (DESIGN.md, "The four-rooms experiment" and "Any
map"); `optiongrad four-rooms` is this on the four-rooms map.

Every free cell of the map is a goal; a seeded permutation splits them 80/20 into train and test
goals. `K` options are learned on the train goals by the option gradient
(`optiongrad.option_gradient_objective`): each option's policy is the smooth planner's policy
for its own intrinsic reward, its termination $\operatorname{sigmoid}(\omega)$ is learned, and the policy over
options comes from the smooth SMDP planner on the goal's reward with a budget of `N` sweeps
from zero values (primitives appended by default), on the factored goal models
(`optiongrad.goal_models`: never a `(T, K, S, S)` tensor), or matrix-free by intra-option sweeps
above `SWEEPS_ABOVE` cells (`optiongrad.sweep_goal_returns`; the same objective and gradient
to the solves' tolerance). With `goal_batch = B` each step uses
`B` train goals drawn without replacement (seeded by the step), all of them otherwise.

Learned options and the baselines (primitives only; hallway options from the map's doorways;
random subgoal options; eigenoptions; covering options) are scored the same way on both sets:
mean return $s_0 \cdot v_\mu$, normalised return $(J - J_{\mathrm{random}})/(J^* - J_{\mathrm{random}})$ (set means of the
per-goal returns of the optimal and the uniform-random primitive policies) and planning time
(hard value-iteration sweeps from zero until the greedy primitive policy is optimal, Jinnai et
al. 2019).

Training (`experiments.training.train`) is deterministic given the seed, writes one
`metrics.csv` row per step and an atomic checkpoint after every step, so a killed run resumed
with `resume=True` loses nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optiongrad as og
from optiongrad._src.goal_models import goal_model_returns, goal_models, option_table
from optiongrad._src.planning_time import goal_planning_sweeps
from optiongrad.experiments import config as cfg
from optiongrad.experiments import processes
from optiongrad.experiments.figures import regime_name, write_figures
from optiongrad.experiments.io import atomic_write, prepare_output, write_json
from optiongrad.experiments.training import CHECKPOINT, METRICS, run_record, train

REWARDS = ("tabular", "state")
MAX_SWEEPS = 100  # primitives alone need 20 on four rooms at γ = 0.9
# Score with the compact goal models (only the options available in each state) when at most
# this share of the options is available in any one state (hallway options: 10 of 84 on
# twenty-five rooms).
COMPACT_SHARE = 0.5
# Maps of at most this many cells score every method in both regimes with one compiled program
# (`_scored_set`): there compiling (≈ 1.2 s a program) costs more than scoring (0.07–0.2 s a
# set on four rooms, measured).
SHARED_PROGRAM_STATES = 300
SPARSE_CELLS = 300  # maps with more free cells get sparse dynamics
# The protocol scores every method on every goal through the factored goal models, `(K, S, S)`
# per option set: about 2000 cells is where that stops fitting in a few GiB. (Training alone
# runs matrix-free on larger maps: `og.option_gradient_objective(method="sweeps")`.)
MAX_CELLS = 2000
# By default the held-out goals are scored at every training step on maps up to
# EVAL_EVERY_CELLS free cells and every EVAL_EVERY_LARGE steps above: their (S, S) solves are a
# fifth of a nine-rooms step (3.72 s against 3.07 s without them, measured).
EVAL_EVERY_CELLS = 300
EVAL_EVERY_LARGE = 10
RESULTS_FILE = "results.json"
#: The columns of metrics.csv, one row per training step.
COLUMNS = ("step", "diversity", "grad_norm", "intrinsic_converged", "objective", "test_return",
           "train_return", "train_normalized", "test_normalized", "seconds")
FIGURES = ("learning_curves.png", "learned_options.png", "methods.png")
BASELINES = ("hallway", "random", "eigenoptions", "covering")
#: The methods whose options do not depend on the seed: their per-goal scores (every goal of the
#: map is scored) are the same for every seed of a multi-seed run, so `MapWork` keeps them.
SEEDLESS = ("primitives", "hallway", "eigenoptions", "covering")


def _map(value, name: str) -> None:
    og.gridworld.map_text(value)


@dataclasses.dataclass(frozen=True)
class LearnOptionsConfig:
    r"""The experiment's settings; `results.json` "config" holds all of them (DESIGN.md's
    keys among them). Each field's command-line flag and range are in its metadata.

    `planning_budget=None` plans $\mu$ to convergence (implicit gradient). `termination` is the
    initial termination probability of learned options, or the fixed one when
    `learn_termination` is False. `baseline_temperature` is $\tau$ of the planners that make the
    random and eigen options (near-deterministic policies, as in the papers).
    """

    discount: float = cfg.setting(0.9, "discount γ of every task", flag="--discount",
                                  check=cfg.real(0.0, 1.0, low_open=True, high_open=True))
    temperature_options: float = cfg.setting(
        0.05, "temperature τ_o of the option policies", flag="--temperature-options",
        check=cfg.real(0.0, low_open=True))
    temperature_mu: float = cfg.setting(
        0.01, "temperature τ_μ of the policy over options", flag="--temperature-mu",
        check=cfg.real(0.0, low_open=True))
    planning_budget: Optional[int] = cfg.setting(
        3, "planning budget N: sweeps of the SMDP planner from zero values (None: converge)",
        flag="--budget", check=cfg.whole(optional=True))
    include_primitives: bool = cfg.setting(
        True, "plan over the options alone, without the primitive actions",
        flag="--options-only", check=cfg.flag, invert=True)
    num_options: int = cfg.setting(8, "number of options K (even: eigenoptions come in pairs)",
                                   flag="--options", check=cfg.whole(2))
    seed: int = cfg.setting(0, "random seed: the split, the initialisation, random options",
                            flag="--seed", check=cfg.whole(0, cfg.SEED_MAX))
    steps: int = cfg.setting(150, "training steps", flag="--steps", check=cfg.whole(0))
    learning_rate: float = cfg.setting(0.1, "Adam learning rate", flag="--lr",
                                       check=cfg.real(0.0, low_open=True))
    reward: str = cfg.setting("state", "intrinsic reward parametrisation", flag="--reward",
                              choices=REWARDS)
    init_scale: float = cfg.setting(1.0, "standard deviation of the initial intrinsic rewards",
                                    check=cfg.real(0.0))
    learn_termination: bool = cfg.setting(
        True, "do not learn terminations: β = --termination everywhere",
        flag="--fixed-termination", check=cfg.flag, invert=True)
    termination: float = cfg.setting(
        0.1, "initial (or, with --fixed-termination, fixed) termination probability",
        flag="--termination", check=cfg.real(0.0, 1.0, low_open=True, high_open=True))
    diversity_weight: float = cfg.setting(0.0, "weight of the option-diversity bonus",
                                          flag="--diversity", check=cfg.real())
    train_fraction: float = cfg.setting(0.8, "share of the goals used for training",
                                        check=cfg.real(0.0, 1.0, low_open=True, high_open=True))
    baseline_temperature: float = cfg.setting(
        1e-3, "τ of the planners of the random, eigen and covering options",
        check=cfg.real(0.0, low_open=True))
    map: str = cfg.setting("four-rooms", "a named map (four-rooms, nine-rooms, "
                           "twenty-five-rooms; hundred-rooms is for the library's matrix-free "
                           "step only) or an ASCII map file (w or # walls)",
                           flag="--map", check=_map)
    slip: float = cfg.setting(0.0, "slip probability of the moves (1/3: Sutton et al. 1999)",
                              flag="--slip", check=cfg.real(0.0, 1.0))
    goal_batch: Optional[int] = cfg.setting(
        None, "train goals per step, drawn without replacement (none: all of them)",
        flag="--goal-batch", check=cfg.whole(1, optional=True))
    eval_every: Optional[int] = cfg.setting(
        None, "score the held-out goals every N training steps (and at the last one); the "
        "metrics of the other steps leave the test columns empty (none: every step on maps "
        f"of up to {EVAL_EVERY_CELLS} cells, every {EVAL_EVERY_LARGE}th on larger ones)",
        flag="--eval-every", check=cfg.whole(1, optional=True))

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid field."""
        cfg.validate(self)
        if self.num_options % 2:
            raise ValueError(f"num_options: expected an even number >= 2 (eigenoptions come in "
                             f"± pairs), got {self.num_options}")
        cells = self.grid().num_states
        if cells > MAX_CELLS:
            raise ValueError(
                f"map: {cells} free cells; the experiment's evaluation (every method on every "
                f"goal, factored models) supports up to {MAX_CELLS}. A training step on a "
                "larger map runs matrix-free: og.option_gradient_objective(..., "
                "method='sweeps') (benchmarks/option_gradient.py --large)")
        train = int(round(self.train_fraction * cells))
        if not 1 <= train <= cells - 1:
            raise ValueError(f"train_fraction: {self.train_fraction} of {cells} goals leaves "
                             "the training or the test set empty")
        if self.num_options > cells:
            raise ValueError(f"num_options: at most the {cells} cells of the map (random "
                             f"options need distinct subgoals), got {self.num_options}")
        if self.goal_batch is not None and self.goal_batch > train:
            raise ValueError(f"goal_batch: at most the {train} train goals, got "
                             f"{self.goal_batch}")

    def held_out_every(self) -> int:
        """How often the held-out goals are scored during training: `eval_every`, or, when it
        is None, every step on maps of up to `EVAL_EVERY_CELLS` free cells and every
        `EVAL_EVERY_LARGE` steps on larger ones."""
        if self.eval_every is not None:
            return self.eval_every
        return 1 if self.grid().num_states <= EVAL_EVERY_CELLS else EVAL_EVERY_LARGE

    def grid(self) -> og.gridworld.GridWorld:
        """The map's grid with the configured slip."""
        return og.gridworld.load_map(self.map, self.slip)

    @property
    def planner(self) -> og.ExtrinsicPlanner:
        return og.ExtrinsicPlanner(self.temperature_mu, self.planning_budget,
                                   self.include_primitives)


def split_goals(num_states: int, seed: int, train_fraction: float = 0.8):
    """Seeded random split of all states into sorted train and test goal lists (83/21 on four
    rooms)."""
    order = np.random.default_rng(seed).permutation(num_states)
    cut = int(round(train_fraction * num_states))
    return np.sort(order[:cut]), np.sort(order[cut:])


class MapWork:
    """What every seed of one configuration shares (the config with its seed and steps set
    aside): the grid, the environment, the reference returns of every goal task, the baseline
    options that do not depend on the seed and their per-goal scores. `run_seeds` makes one
    and hands it to each seed's run, so that this work is done once per map, not per seed."""

    def __init__(self, config: LearnOptionsConfig):
        self.key = _seedless(config)
        self.grid = config.grid()
        s = self.grid.num_states
        # sparse dynamics beyond a few hundred cells: the intrinsic planners then cost
        # O(K S A) a sweep instead of O(K S² A) (the goal models form P_π densely either way)
        self.environment = og.gridworld.navigation_mdp(self.grid, config.discount,
                                                       sparse=s > SPARSE_CELLS)
        q, j_star, j_rand = jax.jit(og.reference_returns)(self.environment, jnp.arange(s))
        self.optimal_q, self.optimal, self.uniform = q, np.asarray(j_star), np.asarray(j_rand)
        self._options: Optional[dict] = None
        self.scores: dict = {}       # (method, planner) -> per-goal (returns, sweeps)

    def seedless_options(self) -> dict[str, og.Options]:
        """The baseline option sets that do not depend on the seed, made on first use:
        hallway options (if the map has doorways), eigenoptions and covering options."""
        if self._options is None:
            c, env, sets = self.key, self.environment, {}
            if len(og.gridworld.rooms_and_hallways(self.grid)[1]):
                sets["hallway"] = og.discovery.hallway_options(self.grid, env.dtype)
            sets["eigenoptions"] = og.discovery.eigenoptions(env, c.num_options,
                                                             c.baseline_temperature)
            sets["covering"] = og.discovery.covering_options(env, c.num_options,
                                                             c.baseline_temperature)
            self._options = sets
        return self._options

    def check(self, config: LearnOptionsConfig) -> None:
        """Raise `ValueError` unless `config` differs from this work's only in seed and
        steps."""
        if _seedless(config) != self.key:
            raise ValueError("shared: made for another configuration (only the seed and the "
                             "number of steps may differ between the runs that share it)")


def _seedless(config: LearnOptionsConfig) -> LearnOptionsConfig:
    return dataclasses.replace(config, seed=0, steps=0)


class Setup:
    """Everything fixed by the config: grid, environment, split, reference returns, model;
    the map's share (`MapWork`) is made here unless `shared` brings it."""

    def __init__(self, config: LearnOptionsConfig, shared: Optional[MapWork] = None):
        config.validate()
        if shared is None:
            shared = MapWork(config)
        else:
            shared.check(config)
        self.config, self.shared = config, shared
        self.grid, self.environment = shared.grid, shared.environment
        s = self.grid.num_states
        self.train, self.test = split_goals(s, config.seed, config.train_fraction)
        self.model = _reward_model(config.reward, s, float(config.init_scale))
        self.optimal_q, self.optimal, self.uniform = (shared.optimal_q, shared.optimal,
                                                      shared.uniform)

    def normalise(self, mean_return: float, goals: np.ndarray) -> float:
        r"""$(J - J_{\mathrm{random}})/(J^* - J_{\mathrm{random}})$ with set means over `goals`."""
        j_star, j_rand = self.optimal[goals].mean(), self.uniform[goals].mean()
        return float((mean_return - j_rand) / (j_star - j_rand))


def baselines(setup: Setup) -> dict[str, og.Options]:
    """The baseline option sets (`primitives` is the empty set: primitives alone). Hallway
    options come from the map's doorways (their number follows from the map); a map without
    doorways has none."""
    c, seedless = setup.config, setup.shared.seedless_options()
    random = og.discovery.random_options(c.seed, setup.environment, c.num_options,
                                         c.baseline_temperature)
    return {name: random if name == "random" else seedless[name]
            for name in BASELINES if name == "random" or name in seedless}


def evaluate(setup: Setup, options: Optional[og.Options], planner: og.ExtrinsicPlanner,
             method: Optional[str] = None) -> dict:
    """Scores of an option set (None: primitives alone) on the train and test goals. Every
    goal of the map is scored; for a `SEEDLESS` `method` the per-goal scores are kept in the
    map's shared work and reused (by the other regime, for primitives, and by other seeds)."""
    env = setup.environment
    num_options = 0 if options is None else options.num_options
    key = (method, planner if options is not None else planner.replace(include_primitives=False))
    if method in SEEDLESS and key in setup.shared.scores:
        returns, counts = setup.shared.scores[key]
    else:
        planned, planner, table, exact = _scored_set(setup, options, planner)
        returns, counts = (np.asarray(x) for x in _goal_scores(
            planned, env, setup.optimal_q, planner, table, exact=exact))
        if method in SEEDLESS:
            setup.shared.scores[key] = returns, counts
    scores = {}
    for name, subset in (("train", setup.train), ("test", setup.test)):
        mean_return = float(np.mean(returns[subset]))
        scores[name] = {
            "return": mean_return,
            "normalized_return": setup.normalise(mean_return, subset),
            "planning_sweeps": float(np.mean(counts[subset])),
            "never_optimal": int(np.sum(counts[subset] > MAX_SWEEPS)),
        }
    scores["num_options"] = num_options
    return scores


def _scored_set(setup: Setup, options: Optional[og.Options], planner: og.ExtrinsicPlanner):
    """`(planned options, planner, table, exact)` that `_goal_scores` scores `options` (None:
    primitives alone) with, in the regime of `planner`.

    On maps of at most `SHARED_PROGRAM_STATES` cells every option set of at most `K` options is
    scored by one compiled program, whatever the method and the regime: the set is padded to
    `K` options that may start nowhere, and the primitives are appended, available only where
    the regime has them (primitives alone: all `K` padding). The padding is never chosen, so
    the scores are those of the set itself (to rounding); compiling once instead of once per
    shape is what saves time there. Larger maps score each set as it is, with the compact
    layout when few of its options may start in any one state (`COMPACT_SHARE`)."""
    env, k = setup.environment, setup.config.num_options
    s, a = env.num_states, env.num_actions
    with_primitives = options is not None and planner.include_primitives
    if s <= SHARED_PROGRAM_STATES and (options is None or options.num_options <= k):
        pad = k - (0 if options is None else options.num_options)
        primitives = og.primitive_options(s, a, env.dtype)
        sets = [] if options is None else [options]
        if pad:
            sets.append(og.Options(jnp.full((pad, s, a), 1.0 / a, env.dtype),
                                   jnp.full((pad, s), 0.5, env.dtype), jnp.zeros((pad, s), bool)))
        sets.append(og.Options(primitives.policy, primitives.termination,
                               jnp.full((a, s), options is None or with_primitives)))
        return og.concatenate(*sets), planner.replace(include_primitives=True), None, a
    if options is None:
        planned, exact = og.primitive_options(s, a, env.dtype), a
    else:
        planned = og.with_primitives(options) if with_primitives else options
        exact = a if with_primitives else 0
    planned = og.Options(planned.policy, planned.termination, planned.initiation_mask())
    table = option_table(planned.initiation)
    if table.ids.shape[1] > COMPACT_SHARE * planned.num_options:
        table = None         # available almost everywhere: the full layout is as cheap
    return planned, planner, table, exact


@functools.partial(jax.jit, static_argnames=("planner", "exact"))
def _goal_scores(planned: og.Options, environment, optimal_q, planner: og.ExtrinsicPlanner,
                 table=None, exact: int = 0):
    r"""Per goal (all states): return of the planned $\mu$ and planning sweeps (hard VI), both on
    the factored goal models of all goals at once (`planned`: the options the planner uses,
    primitives appended if it includes them; `table`: their compact layout, or None; `exact`:
    how many trailing options terminate everywhere)."""
    goals = jnp.arange(environment.num_states)
    models = goal_models(environment, planned, goals, table, exact=exact)
    returns, _ = goal_model_returns(models, planner.temperature,
                                    num_sweeps=planner.num_sweeps, backup=planner.backup,
                                    tol=planner.tol, initiation=planned.initiation)
    sweeps = goal_planning_sweeps(environment, models, goals, optimal_q,
                                  initiation=planned.initiation, max_sweeps=MAX_SWEEPS)
    return returns, sweeps


def train_options(setup: Setup, out_dir: Optional[str] = None, *, resume: bool = False,
                  progress: bool = True):
    """Learn the options; returns `(params, metrics rows)`.

    Row `t` of the metrics scores the options after `t` updates (the objective, its gradient
    and the train/test returns are computed together, before update `t + 1` is applied); with
    a goal batch, "train_return" is the mean over that step's batch. With
    `out_dir`, writes `metrics.csv` and `checkpoint.npz` after every step; with `resume`,
    continues from the checkpoint there (same config except `steps`).
    """
    c, env = setup.config, setup.environment
    params = og.init_params(jax.random.key(c.seed), setup.model, c.num_options,
                            env.num_states, learn_termination=c.learn_termination,
                            termination_init=c.termination)
    optimiser = _optimiser(c)
    goals = (jnp.asarray(setup.train), jnp.asarray(setup.test),
             jax.random.fold_in(jax.random.key(c.seed), 1))
    # the seed, the step count and how often the held-out goals are scored do not change the
    # step's program: one compilation (two with `eval_every` > 1) serves every seed of a map
    settings = dataclasses.replace(c, seed=0, steps=0, eval_every=1)
    every = c.held_out_every()
    shown = {}
    # with several devices (several processes, or GPUs) the goals are split over all of them
    mesh = processes.goal_mesh()
    env, goals = processes.replicate((env, goals), mesh)

    def step(state):
        t = int(state[2])
        scored = t % every == 0 or t == c.steps - 1
        return _train_step(state, env, *goals, model=setup.model, settings=settings,
                           evaluate=scored, mesh=mesh)

    def finish_row(row):
        row["train_normalized"] = setup.normalise(row["train_return"], setup.train)
        test = row.get("test_return")
        row["test_return"] = test
        row["test_normalized"] = None if test is None else setup.normalise(test, setup.test)
        return {name: row[name] for name in COLUMNS if name != "seconds"}

    def postfix(row):
        shown["train"] = f"{row['train_normalized']:.3f}"
        if row["test_normalized"] is not None:
            shown["test"] = f"{row['test_normalized']:.3f}"
        return dict(shown)

    state, rows = train(
        step, (params, optimiser.init(params), jnp.int32(0)), _record(c),
        steps=c.steps, out_dir=out_dir, resume=resume, progress=progress,
        description="option gradient", finish_row=finish_row,
        flags=cfg.flag_names(LearnOptionsConfig), columns=COLUMNS,
        optional=("test_return", "test_normalized"), postfix=postfix,
        place=lambda state: processes.replicate(state, mesh))
    return state[0], rows


def _record(config: LearnOptionsConfig) -> dict:
    """What a checkpoint must match; `eval_every` (as resolved: `held_out_every`) only when
    it is not 1, so that checkpoints made before it existed still resume."""
    record = dataclasses.asdict(config)
    record["eval_every"] = config.held_out_every()
    if record["eval_every"] == 1:
        del record["eval_every"]
    return run_record(record)


@functools.partial(jax.jit, static_argnames=("model", "settings", "evaluate", "mesh"))
def _train_step(state, env, train_goals, test_goals, batch_key, *, model, settings,
                evaluate=True, mesh=None):
    """One Adam step on the option-gradient objective of a goal batch, with (if `evaluate`)
    the held-out goals' return from the same factorisation; `state = (params, opt_state, step
    index)`; with a `mesh`, the goals are split over its devices (and the gradient summed)."""
    c = settings
    params, opt_state, step_index = state
    goals = train_goals
    if c.goal_batch is not None and c.goal_batch != train_goals.shape[0]:
        key = jax.random.fold_in(batch_key, step_index)
        goals = jnp.sort(jax.random.choice(key, train_goals, (c.goal_batch,), replace=False))
    (objective, aux), grad = jax.value_and_grad(og.option_gradient_objective, has_aux=True)(
        params, model, env, goals, eval_goals=test_goals if evaluate else None,
        temperature_options=c.temperature_options, planner=c.planner,
        termination=c.termination, diversity_weight=c.diversity_weight, mesh=mesh)
    updates, opt_state = _optimiser(c).update(jax.tree.map(jnp.negative, grad), opt_state)
    metrics = {"objective": objective, "train_return": aux["return"],
               "diversity": aux["diversity"], "grad_norm": optax.tree.norm(grad),
               "intrinsic_converged": jnp.all(aux["intrinsic_converged"])}
    if evaluate:
        metrics["test_return"] = aux["eval_return"]
    return (optax.apply_updates(params, updates), opt_state, step_index + 1), metrics


def _optimiser(config: LearnOptionsConfig) -> optax.GradientTransformation:
    """Adam ascent on the objective (the step negates the gradient)."""
    return optax.adam(config.learning_rate)


@functools.lru_cache(maxsize=None)
def _reward_model(kind: str, num_states: int, init_scale: float) -> og.rewards.RewardModel:
    """One model object per setting, so that compiled steps are shared between runs."""
    if kind == "state":
        return og.rewards.state(num_states, init_scale=init_scale)
    return og.rewards.tabular(num_states, 4, init_scale=init_scale)


def learned_options(setup: Setup, params) -> og.Options:
    """The learned options as a concrete, validated `Options` (initiation: everywhere)."""
    c = setup.config
    options, _ = og.make_options(params, setup.model, setup.environment,
                                 c.temperature_options, termination=c.termination)
    mask = np.ones(options.termination.shape, bool)
    return og.Options(np.asarray(options.policy), np.asarray(options.termination), mask)


def save_options(path: str, options: og.Options, grid) -> None:
    """`.npz` with `policy (K, S, A)`, `termination (K, S)`, `initiation (K, S)` bool and
    `cells (S, 2)` (DESIGN.md)."""
    arrays = dict(policy=np.asarray(options.policy), termination=np.asarray(options.termination),
                  initiation=np.asarray(options.initiation_mask()),
                  cells=np.asarray(grid.cells))
    atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)


def load_options(path: str) -> og.Options:
    """Options from a `.npz` written by `save_options` (validated)."""
    with np.load(path) as data:
        return og.Options(data["policy"], data["termination"], data["initiation"])


def output_files(config: LearnOptionsConfig) -> tuple[str, ...]:
    """Every file a run writes into its output directory."""
    return (RESULTS_FILE, METRICS, CHECKPOINT, "options.npz", *FIGURES,
            *(f"options_{name}.npz" for name in BASELINES))


def run_learn_options(config: LearnOptionsConfig, out_dir: Optional[str] = None, *,
                      resume: bool = False, force: bool = False, progress: bool = True,
                      shared: Optional[MapWork] = None) -> dict:
    """The whole experiment: train, evaluate every method in the configured regime and in the
    other one, write `results.json`, `metrics.csv`, `options.npz` (and `options_<method>.npz`
    for the baselines) and figures into `out_dir`. Returns the results dictionary.

    `out_dir` is checked first: a finished or unfinished run there is refused unless `resume`
    (continue it) or `force` (start over). `shared` is the map's work from an earlier run of
    the same configuration but its seed and steps (`MapWork`; made here when None).

    With several processes (`experiments.processes`) every process calls this alike: the
    goals of each training step are split over all their devices, and process 0 alone checks,
    reads and writes `out_dir` (the others write nothing); every process returns the
    results."""
    config.validate()
    if shared is not None:
        shared.check(config)
    lock = contextlib.nullcontext()
    if out_dir is not None:
        lock = processes.first_process(functools.partial(
            prepare_output, out_dir, finished=RESULTS_FILE, unfinished=(CHECKPOINT,),
            outputs=output_files(config), resume=resume, force=force), f"--out {out_dir}")
    with lock or contextlib.nullcontext():
        return _run(config, out_dir if processes.is_writer() else None, resume, progress,
                    shared)


def _run(config: LearnOptionsConfig, out_dir: Optional[str], resume: bool, progress: bool,
         shared: Optional[MapWork]) -> dict:
    setup = Setup(config, shared)
    params, rows = train_options(setup, out_dir, resume=resume, progress=progress)
    sets = {"learned": learned_options(setup, params), "primitives": None, **baselines(setup)}
    other = config.planner.replace(include_primitives=not config.include_primitives)
    methods, other_regime = {}, {}
    from tqdm.auto import tqdm

    with tqdm(total=2 * len(sets), desc="scoring every goal", disable=not progress) as bar:
        for name, options in sets.items():
            for scores, planner in ((methods, config.planner), (other_regime, other)):
                bar.set_postfix_str(f"{name}, {regime_name(planner.include_primitives)}")
                scores[name] = evaluate(setup, options, planner, name)
                bar.update()
    results = {
        "config": dataclasses.asdict(config),
        "split": {"train": setup.train.tolist(), "test": setup.test.tolist()},
        "methods": methods,
        "other_regime": {"include_primitives": other.include_primitives,
                         "methods": other_regime},
        "machine": machine(),
        "training_seconds": float(sum(r["seconds"] for r in rows)),
    }
    if out_dir is not None:
        save_options(os.path.join(out_dir, "options.npz"), sets["learned"], setup.grid)
        for name, options in sets.items():
            if name not in ("learned", "primitives"):
                save_options(os.path.join(out_dir, f"options_{name}.npz"), options, setup.grid)
        write_figures(out_dir, setup, results, rows, sets["learned"])
        write_json(os.path.join(out_dir, RESULTS_FILE), results)
    return results


def machine() -> dict:
    """The platform, CPU count, JAX version, precision and devices of this run."""
    import platform

    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "jax": jax.__version__,
            "float64": bool(jax.config.jax_enable_x64), "processes": jax.process_count(),
            "devices": jax.device_count()}


def format_table(results: dict) -> str:
    """Every method on train and test goals, as aligned text."""
    regime = regime_name(results["config"]["include_primitives"])
    budget = results["config"]["planning_budget"]
    lines = [f"map: {results['config'].get('map', 'four-rooms')}, regime: {regime}, planning "
             f"budget: {'converged' if budget is None else f'{budget} sweeps'}",
             f"{'method':<13} {'train J':>8} {'train norm':>10} {'test J':>8} {'test norm':>9} "
             f"{'test sweeps':>11}", "-" * 64]
    for name, m in results["methods"].items():
        tr, te = m["train"], m["test"]
        lines.append(f"{name:<13} {tr['return']:>8.4f} {tr['normalized_return']:>10.3f} "
                     f"{te['return']:>8.4f} {te['normalized_return']:>9.3f} "
                     f"{te['planning_sweeps']:>11.1f}")
    return "\n".join(lines)
