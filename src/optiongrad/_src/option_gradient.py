r"""The option gradient: learn options whose policies are planned from intrinsic rewards.

Several options, each motivated by its own intrinsic reward, serving one task distribution
(DESIGN.md, "Option gradient"). With parameters $\theta_k$ (an intrinsic-reward model per option)
and optional termination logits $\omega_k$:

1. **Intrinsic phase** — $Q^*_k = T_{\theta_k}(Q^*_k)$ by soft value iteration in the environment's
   dynamics with reward $r_{\theta_k}$; $\pi^k = \operatorname{softmax}(Q^*_k / \tau_o)$; $\beta_k = \operatorname{sigmoid}(\omega_k)$ (or a fixed
   termination probability). `K` planners under one `vmap`.
2. **Option models** of $(\pi^k, \beta_k)$ in each task, with the task's (extrinsic) reward, and the
   primitive actions appended when configured.
3. **Extrinsic phase** — smooth SMDP planning over the options, either to convergence
   (`num_sweeps=None`, implicit gradient) or with a fixed budget of `N` sweeps from zero
   values (unrolled): $\mu = \operatorname{softmax}(Q_O / \tau_\mu)$.
4. **Objective** — the mean over a batch of goal tasks (a `vmap`, not a loop) of the
   call-and-return return $s_0 \cdot v_\mu$, plus `diversity_weight` times the mean pairwise
   occupancy-weighted KL divergence between option policies (DESIGN.md's "minus a diversity
   term" with the similarity penalty written as a divergence bonus).

`jax.grad` of the objective goes back through both planners, with the IFT at each converged
fixed point. `goal_returns` (fast, rank-one goal models) is the evaluation used for every method
of the four-rooms experiment and `hierarchical_return` (dense models of any task) the reference
it is tested against, so exported options can be re-scored with either. A planner that fails
(an intrinsic planner, or the extrinsic one when it must converge) makes the returns that depend
on it — and their gradients — NaN.

References: Sutton, Precup & Singh (1999) for options and SMDP planning; Jinnai et al. (ICML
2019) for why a planning budget makes options useful.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from optiongrad._src import checks
from optiongrad._src.backups import BACKUPS
from optiongrad._src.deprecation import renamed
from optiongrad._src.evaluation import occupancy
from optiongrad._src.goal_models import goal_model_returns
from optiongrad._src.goal_models import goal_models
from optiongrad._src.goal_sweeps import sweep_goal_returns
from optiongrad._src.hierarchical import smdp_policy_evaluation
from optiongrad._src.implicit import nan_where
from optiongrad._src.mdp import MDP
from optiongrad._src.option_models import check_mdp_and_options, option_models
from optiongrad._src.options import Options, with_primitives
from optiongrad._src.planning import PlanResult, smdp_value_iteration, soft_value_iteration
from optiongrad._src.rewards import Params, RewardModel
from optiongrad._src.sharding import map_blocks
from optiongrad._src.solvers import FixedPointIteration

Array = jax.Array


@dataclasses.dataclass(frozen=True, init=False)
class ExtrinsicPlanner:
    r"""How the policy over options is obtained from the option models (static settings).

    Attributes:
      temperature: $\tau_\mu > 0$.
      num_sweeps: the planning budget `N`: sweeps from zero values, differentiated unrolled;
        or None: plan to convergence (implicit gradient). `planning_budget=` is the deprecated
        spelling.
      include_primitives: append the primitive actions after the options.
      backup: the SMDP backup (`logsumexp` by default).
      tol: convergence tolerance when `num_sweeps` is None (None: the planner's default).
    """

    temperature: float
    num_sweeps: Optional[int]
    include_primitives: bool
    backup: str
    tol: Optional[float]

    @renamed(planning_budget="num_sweeps")
    def __init__(self, temperature: float = 0.01, num_sweeps: Optional[int] = 3,
                 include_primitives: bool = True, backup: str = "logsumexp",
                 tol: Optional[float] = None):
        checks.choice(backup, "backup", BACKUPS)
        checks.temperature(temperature, backup)
        checks.boolean(include_primitives, "include_primitives")
        num_sweeps = checks.iterations(num_sweeps, "num_sweeps", allow_none=True)
        checks.tolerance(tol, "tol")
        for name, value in (("temperature", float(temperature)), ("num_sweeps", num_sweeps),
                            ("include_primitives", bool(include_primitives)), ("backup", backup),
                            ("tol", None if tol is None else float(tol))):
            object.__setattr__(self, name, value)

    @property
    def planning_budget(self) -> Optional[int]:
        """Deprecated name of `num_sweeps`."""
        return self.num_sweeps

    def replace(self, **changes) -> "ExtrinsicPlanner":
        """A copy with some fields changed (validated)."""
        current = dataclasses.asdict(self)
        if "planning_budget" in changes:
            current.pop("num_sweeps")
        return ExtrinsicPlanner(**{**current, **changes})


class OptionParams(NamedTuple):
    r"""Learned parameters: stacked intrinsic-reward parameters $(K, \dots)$ and termination logits
    $\omega$ `(K, S)` (None when terminations are fixed)."""

    reward: Params
    termination: Optional[Array]


def init_params(key, model: RewardModel, num_options: int, num_states: int, *,
                learn_termination: bool = True, termination_init: float = 0.1) -> OptionParams:
    r"""Independent draws of `model.init` per option (they must differ: identical options get
    identical gradients and stay identical) and $\omega = \operatorname{logit}(\mathtt{termination\_init})$ everywhere.

    Args:
      key: a `jax.random` key or an integer seed.
      model: the intrinsic-reward model (`og.rewards`).
      num_options: $K \ge 1$. num_states: $S \ge 1$.
      learn_termination: learn $\omega$ (else `termination` is None: fixed terminations).
      termination_init: the initial termination probability, in (0, 1).
    """
    key = checks.random_key(key)
    checks.instance(model, "model", RewardModel, "an optiongrad.rewards.RewardModel")
    checks.integer(num_options, "num_options")
    checks.integer(num_states, "num_states")
    checks.boolean(learn_termination, "learn_termination")
    checks.number(termination_init, "termination_init", low=0.0, high=1.0, low_open=True,
                  high_open=True)
    rewards = jax.vmap(model.init)(jax.random.split(key, num_options))
    omega = None
    if learn_termination:
        logit = jnp.log(termination_init) - jnp.log1p(-termination_init)
        omega = jnp.full((num_options, num_states), logit, jax.tree.leaves(rewards)[0].dtype)
    return OptionParams(rewards, omega)


def _check_params(params, mdp: MDP) -> None:
    checks.instance(params, "params", OptionParams, "an OptionParams")
    leaves = jax.tree.leaves(params.reward)
    if not leaves:
        raise ValueError("params: no intrinsic-reward parameters")
    num_options = jnp.shape(leaves[0])[0] if jnp.ndim(leaves[0]) else 0
    for leaf in leaves:
        if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != num_options or num_options < 1:
            raise ValueError("params: every reward parameter needs the same leading options "
                             f"axis K >= 1, got shapes {[jnp.shape(x) for x in leaves]}")
        checks.finite(leaf, "params.reward")
    if params.termination is not None:
        checks.shape(params.termination, "params.termination",
                     (num_options, mdp.num_states), "(K, S)")
        checks.finite(params.termination, "params.termination")


# The intrinsic planners are small (`K` planners of `S × A` values each), so testing the
# stopping rule (a reduction) costs about as much as a sweep: test it every 4th sweep (forward
# and adjoint). Measured on the four-rooms step: 95 against 105 ms.
INTRINSIC_SOLVER = FixedPointIteration(check_every=4)


@renamed(environment="mdp")
def make_options(
    params: OptionParams,
    model: RewardModel,
    mdp: MDP,
    temperature,
    *,
    termination: float = 0.1,
    **plan_kwargs,
) -> tuple[Options, PlanResult]:
    r"""Options from parameters: $\pi^k = \operatorname{softmax}(Q^*_k/\tau_o)$ planned in the environment `mdp`
    with reward $r_{\theta_k}$, $\beta_k = \operatorname{sigmoid}(\omega_k)$ (or the constant `termination` when $\omega$ is
    None). `**plan_kwargs` go to `soft_value_iteration` (default solver:
    `FixedPointIteration(check_every=4)`, `INTRINSIC_SOLVER`).

    Returns the `Options` (no initiation sets) and the batch of intrinsic `PlanResult`s. The
    policy of an option whose planner failed is NaN under a transformation (`jit`, `grad`);
    called on concrete values, a failed planner raises a `RuntimeError` naming the options.
    """
    options, plans = _options(params, model, mdp, temperature, termination, plan_kwargs)
    if checks.is_concrete(plans.q) and bool(jnp.any(plans.failed)):
        raise RuntimeError(f"make_options: the intrinsic planners of options "
                           f"{jnp.flatnonzero(plans.failed).tolist()} failed (iteration limit "
                           "or non-finite values); raise max_iter or check the rewards")
    return Options(nan_where(plans.failed, options.policy), options.termination, None), plans


def _options(params, model, mdp, temperature, termination, plan_kwargs):
    """The options of `make_options` with the uniform policy in place of a failed planner's
    (so that they are valid `Options` even on concrete values), and the plans."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.instance(model, "model", RewardModel, "an optiongrad.rewards.RewardModel")
    _check_params(params, mdp)
    checks.number(termination, "termination", low=0.0, high=1.0)

    plan_kwargs = {"solver": INTRINSIC_SOLVER, **plan_kwargs}

    def plan(theta):
        return soft_value_iteration(mdp.replace(rewards=model.apply(theta, mdp)), temperature,
                                    **plan_kwargs)

    plans = jax.vmap(plan)(params.reward)
    if params.termination is None:
        beta = jnp.full(plans.policy.shape[:2], termination, mdp.dtype)
    else:
        beta = jax.nn.sigmoid(params.termination.astype(mdp.dtype))
    return Options(plans.usable_policy(), beta, None), plans


@renamed(reward="rewards", transition="transitions")
def smdp_return(rewards: Array, transitions: Array, initial: Array, planner: ExtrinsicPlanner,
                initiation: Optional[Array] = None) -> tuple[Array, PlanResult]:
    r"""$s_0 \cdot v_\mu$ for the policy over options $\mu$ that `planner` derives from option models.

    Args:
      rewards: `(S, K)` option reward models; transitions: `(K, S, S)` option transition
        models (primitives, if any, already included); initial: `(S,)` `s0`.
      planner: `ExtrinsicPlanner` — $\mu = \operatorname{softmax}(Q_O / \tau_\mu)$ with `Q_O` after `N` sweeps from
        zero values (unrolled gradient) or at convergence (implicit gradient).
      initiation: optional `(K, S)` bool initiation sets.

    Returns:
      `(return, plan)`, the return $s_0 \cdot (I - P^O_\mu)^{-1} r^O_\mu$ (exact evaluation of $\mu$;
      NaN if the planner failed).
    """
    checks.instance(planner, "planner", ExtrinsicPlanner, "an ExtrinsicPlanner")
    # plain sweeps, as the option gradient's batched planners (whose option models are traced)
    plan = smdp_value_iteration(rewards, transitions, planner.temperature,
                                initiation=initiation, backup=planner.backup, tol=planner.tol,
                                num_sweeps=planner.num_sweeps, solver=FixedPointIteration())
    value = smdp_policy_evaluation(rewards, transitions, plan.usable_policy())
    initial = checks.as_array(initial, "initial", dtype=value.dtype)
    checks.shape(initial, "initial", value.shape, "(S,)")
    checks.distribution_rows(initial, "initial")
    return nan_where(plan.failed, jnp.dot(initial, value)), plan


def _planned_options(options: Options, planner: ExtrinsicPlanner) -> Options:
    checks.instance(planner, "planner", ExtrinsicPlanner, "an ExtrinsicPlanner")
    return with_primitives(options) if planner.include_primitives else options


def _exact(mdp: MDP, planner: ExtrinsicPlanner) -> int:
    """How many trailing planned options terminate everywhere (the appended primitives)."""
    return mdp.num_actions if planner.include_primitives else 0


@renamed(task="mdp")
def hierarchical_return(options: Options, mdp: MDP, planner: ExtrinsicPlanner
                        ) -> tuple[Array, PlanResult]:
    r"""$s_0 \cdot v_\mu$ in any task `mdp` of the call-and-return policy $\mu$ that `planner` derives
    for `options` (primitives appended after the options when configured), and the SMDP plan.
    The reference computation: option models by `option_models`."""
    check_mdp_and_options(mdp, options)
    options = _planned_options(options, planner)
    rewards, transitions = option_models(mdp, options)
    return smdp_return(rewards, transitions, mdp.initial, planner, options.initiation)


@renamed(reward="rewards", transition="transitions")
def batched_smdp_returns(rewards: Array, transitions: Array, initial: Array,
                         planner: ExtrinsicPlanner, initiation: Optional[Array] = None
                         ) -> Array:
    """`smdp_return` for a batch of tasks (leading axis `T` of `rewards`, `transitions` and
    `initial`; shared `initiation`), one `vmap`; shape `(T,)`, NaN where the planner failed."""
    checks.instance(planner, "planner", ExtrinsicPlanner, "an ExtrinsicPlanner")
    returns, _ = jax.vmap(lambda r, p, s0: smdp_return(r, p, s0, planner, initiation))(
        rewards, transitions, initial)
    return returns


# Above this many states `method="auto"` evaluates goal tasks by matrix-free sweeps: measured
# on 2 cores (benchmarks/option_gradient.py), a 32-goal training step costs the same both ways on
# 453 states and 9× less by sweeps on 1265, where the factored models' `(S, S)` solves dominate.
SWEEPS_ABOVE = 1000
GOAL_METHODS = ("auto", "factored", "sweeps")


def goal_method(method: str, mdp: MDP) -> str:
    """`"factored"` or `"sweeps"` for `method` in `GOAL_METHODS` (`"auto"`: sweeps above
    `SWEEPS_ABOVE` states)."""
    checks.choice(method, "method", GOAL_METHODS)
    if method == "auto":
        return "sweeps" if mdp.num_states > SWEEPS_ABOVE else "factored"
    return method


@renamed(environment="mdp")
def goal_returns(options: Options, mdp: MDP, goals: Array, planner: ExtrinsicPlanner,
                 *, chunk: Optional[int] = None, method: str = "auto") -> Array:
    r"""`hierarchical_return` in every goal task `goals (T,)` of the environment `mdp`, shape
    `(T,)`, for all goals at once, never with $O(T K S^2)$ memory: `method="factored"` on the
    factored goal models (`GoalModels`: memory $O(K S^2 + T K S + \mathrm{chunk} \cdot S^2)$; `chunk` goals'
    values are solved at a time, default by memory, `goal_values`), `method="sweeps"`
    matrix-free (`sweep_goal_returns`: memory `O(T K S)` in batches, time `O(K S A B)` per
    sweep; `chunk` is not used), `"auto"` sweeps above `SWEEPS_ABOVE` states. If the planner
    must converge and fails, the returns are NaN."""
    check_mdp_and_options(mdp, options)
    planned = _planned_options(options, planner)
    if goal_method(method, mdp) == "sweeps":
        return _sweep_returns(mdp, planned, goals, planner)
    models = goal_models(mdp, planned, goals, exact=_exact(mdp, planner))
    return _model_returns(models, planner, planned.initiation, chunk)


def _model_returns(models, planner: ExtrinsicPlanner, initiation, chunk=None) -> Array:
    returns, _ = goal_model_returns(models, planner.temperature, num_sweeps=planner.num_sweeps,
                                    backup=planner.backup, tol=planner.tol,
                                    initiation=initiation, chunk=chunk)
    return returns


def _sweep_returns(mdp: MDP, planned: Options, goals: Array, planner: ExtrinsicPlanner,
                   batch_size: Optional[int] = None) -> Array:
    returns, _ = sweep_goal_returns(
        mdp, planned, goals, planner.temperature, num_sweeps=planner.num_sweeps,
        backup=planner.backup, tol=planner.tol, batch_size=batch_size,
        exact=_exact(mdp, planner))
    return returns


def _eval_batch(mdp: MDP, options: Options, budget_bytes: int = 2**26) -> int:
    """Goals per batch of a forward-only sweep evaluation: `(S, batch, K)` arrays of about
    `budget_bytes`."""
    per_goal = mdp.num_states * options.num_options * jnp.dtype(mdp.dtype).itemsize
    return int(max(1, budget_bytes // per_goal))


@renamed(environment="mdp")
def diversity(options: Options, mdp: MDP) -> Array:
    r"""Mean over ordered pairs `k ≠ l` of $\sum_s w_k[s] \mathrm{KL}(\pi^k[s] \Vert \pi^l[s])$, with `w_k` the
    normalised discounted occupancy of $\pi^k$ in `mdp` (scalar ≥ 0; 0 for K = 1)."""
    check_mdp_and_options(mdp, options)
    k = options.num_options
    if k < 2:
        return jnp.zeros((), mdp.dtype)
    log_pi = jnp.log(options.policy)
    weights = jax.vmap(lambda pi: occupancy(mdp, pi))(options.policy)
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)
    # kl[k, l, s] = Σ_a π^k (log π^k − log π^l)
    kl = jnp.einsum("ksa,ksa->ks", options.policy, log_pi)[:, None, :] - jnp.einsum(
        "ksa,lsa->kls", options.policy, log_pi)
    total = jnp.einsum("ks,kls->", weights, kl)
    return total / (k * (k - 1))


@renamed(environment="mdp")
def option_gradient_objective(
    params: OptionParams,
    model: RewardModel,
    mdp: MDP,
    goals: Array,
    *,
    temperature_options,
    planner: ExtrinsicPlanner,
    termination: float = 0.1,
    diversity_weight: float = 0.0,
    eval_goals: Optional[Array] = None,
    method: str = "auto",
    mesh: Optional[Mesh] = None,
    **plan_kwargs,
):
    r"""The option-gradient objective and diagnostics.

    Args:
      params: `OptionParams`.
      model: the intrinsic-reward model shared by all options.
      mdp: the environment the options are planned in (e.g. `navigation_mdp`); its discount
        is the options' planning discount.
      goals: `(T,)` goal states: the batch of goal tasks of `mdp` (`goal_task`), one `vmap`.
      temperature_options: $\tau_o > 0$ of the option policies.
      planner: how $\mu$ is planned (`ExtrinsicPlanner`).
      termination: the fixed termination probability used when `params.termination` is None.
      diversity_weight: weight of the diversity bonus (finite).
      eval_goals: optional `(E,)` goal states to evaluate the same options on, without
        gradient (e.g. held-out goals); with the factored method their models come from the
        same factorisation of each option as the batch's (`goal_models` of `goals` and
        `eval_goals` at once).
      method: how the goal tasks are evaluated, as in `goal_returns`: "factored",
        "sweeps" (matrix-free, for large sparse maps) or "auto" (sweeps above
        `SWEEPS_ABOVE` states). The objective and its gradient are the same either way, to
        the solves' tolerance.
      mesh: None (every goal on one device), or a 1-D device mesh with the axis "batch"
        (`og.sharding.batch_mesh()`: every device of every process) over which the goal
        tasks are split (`og.sharding.map_blocks`: each device gets a block of `goals` and a
        block of `eval_goals`, its options' factorisations and its goals' solves). The
        intrinsic planners and the diversity are computed on every device; the gradient
        through the options is the sum of the devices' contributions (an all-reduce), so the
        objective and its gradient are those without a mesh, to rounding.
      **plan_kwargs: passed to the intrinsic planners (`soft_value_iteration`; default solver
        `FixedPointIteration(check_every=4)`).

    Returns:
      The pair `(objective, aux)` (use `jax.value_and_grad(..., has_aux=True)`), `aux` a dict
      with the mean return under "return", the per-goal returns `(T,)` under "returns", the
      diversity (scalar), the `Options` under "options", the intrinsic planners' `(K,)` bool
      "intrinsic_converged" and their `PlanResult`s under "intrinsic_plans"; with
      `eval_goals`, also their returns `(E,)` under "eval_returns" and mean "eval_return". A
      failed planner makes the objective NaN.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.number(diversity_weight, "diversity_weight")
    checks.instance(planner, "planner", ExtrinsicPlanner, "an ExtrinsicPlanner")
    goals = jnp.asarray(checks.indices(goals, "goals", mdp.num_states), jnp.int32)
    options, plans = _options(params, model, mdp, temperature_options, termination,
                              plan_kwargs)
    planned = _planned_options(options, planner)
    if eval_goals is not None:
        eval_goals = jnp.asarray(checks.indices(eval_goals, "eval_goals", mdp.num_states),
                                 jnp.int32)
    failed = jnp.any(plans.failed)
    sweeps = goal_method(method, mdp) == "sweeps"

    def goal_block(batch, planned):
        """Returns of a block of the goals and of the held-out goals (None without them)."""
        goals, eval_goals = batch
        held_out = None
        if sweeps:
            returns = _sweep_returns(mdp, planned, goals, planner)
            if eval_goals is not None:
                held_out = _sweep_returns(mdp, jax.lax.stop_gradient(planned), eval_goals,
                                          planner, batch_size=_eval_batch(mdp, planned))
            return returns, held_out
        # one factorisation of each option for the batch and the held-out goals
        models = goal_models(mdp, planned, goals if eval_goals is None
                             else jnp.concatenate([goals, eval_goals]),
                             exact=_exact(mdp, planner))
        returns = _model_returns(models.take(slice(0, goals.shape[0])), planner,
                                 planned.initiation)
        if eval_goals is not None:
            held_out = _model_returns(
                jax.lax.stop_gradient(models.take(slice(goals.shape[0], None))), planner,
                jax.lax.stop_gradient(planned.initiation))
        return returns, held_out

    if mesh is None:
        returns, held_out = goal_block((goals, eval_goals), planned)
    else:
        returns, held_out = map_blocks(goal_block, (goals, eval_goals), planned, mesh=mesh)
    returns = nan_where(failed, returns)
    mean_return = jnp.mean(returns)
    div = diversity(options, mdp) if diversity_weight else jnp.zeros((), mean_return.dtype)
    objective = mean_return + diversity_weight * div
    aux = {"return": mean_return, "returns": returns, "diversity": div, "options": options,
           "intrinsic_converged": plans.converged, "intrinsic_plans": plans}
    if eval_goals is not None:
        aux["eval_returns"] = nan_where(failed, held_out)
        aux["eval_return"] = jnp.mean(aux["eval_returns"])
    return objective, aux
