"""The option gradient: learn options whose policies are planned from intrinsic rewards.

The seed note's "multi-option multi-intrinsic-motivation single-task" (DESIGN.md, "Option
gradient"). With parameters `θ_k` (an intrinsic-reward model per option) and optional
termination logits `ω_k`:

1. **Intrinsic phase** — `Q*_k = T_{θ_k}(Q*_k)` by soft value iteration in the environment's
   dynamics with reward `r_{θ_k}`; `π^k = softmax(Q*_k / τ_o)`; `β_k = sigmoid(ω_k)` (or a fixed
   termination probability). `K` planners under one `vmap`.
2. **Option models** of `(π^k, β_k)` in each task, with the task's (extrinsic) reward, and the
   primitive actions appended when configured (`optiongrad.options`).
3. **Extrinsic phase** — smooth SMDP planning over the options, either to convergence
   (`planning_budget=None`, implicit gradient) or with a fixed budget of `N` sweeps from zero
   values (unrolled): `μ = softmax(Q_O / τ_μ)`.
4. **Objective** — the mean over a batch of goal tasks (a `vmap`, not a loop) of the
   call-and-return return `s0 · v_μ`, plus `diversity_weight ×` the mean pairwise
   occupancy-weighted KL divergence between option policies (DESIGN.md's "minus a diversity
   term" with the similarity penalty written as a divergence bonus).

`jax.grad` of the objective goes back through both planners, with the IFT at each converged
fixed point (`optiongrad.implicit`). `goal_returns` (fast, rank-one goal models) is the
evaluation used for every method of the four-rooms experiment and `hierarchical_return` (dense
models of any task) the reference it is tested against, so exported options can be re-scored
with either.

Reference: the seed note; Sutton, Precup & Singh (1999) for options and SMDP planning; Jinnai
et al. (ICML 2019) for why a planning budget makes options useful.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from optiongrad.evaluation import occupancy
from optiongrad.goal_tasks import goal_option_models
from optiongrad.mdp import MDP
from optiongrad.options import Options, option_models, smdp_policy_evaluation, with_primitives
from optiongrad.planning import PlanResult, smdp_value_iteration, soft_value_iteration
from optiongrad.rewards import Params, RewardModel

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class ExtrinsicPlanner:
    """How the policy over options is obtained from the option models (static settings).

    Attributes:
      temperature: `τ_μ`.
      planning_budget: `N` sweeps from zero values (unrolled), or None: converge (implicit).
      include_primitives: append the primitive actions after the options.
      backup: the SMDP backup (`logsumexp` by default).
      tol: convergence tolerance when `planning_budget` is None (None: the planner's default).
    """

    temperature: float = 0.01
    planning_budget: Optional[int] = 3
    include_primitives: bool = True
    backup: str = "logsumexp"
    tol: Optional[float] = None

    def __post_init__(self):
        if not self.temperature >= 0:
            raise ValueError(f"temperature: expected >= 0, got {self.temperature}")
        if self.planning_budget is not None and (
                not isinstance(self.planning_budget, int) or self.planning_budget < 1):
            raise ValueError(f"planning_budget: expected a positive int or None, got "
                             f"{self.planning_budget!r}")


class OptionParams(NamedTuple):
    """Learned parameters: stacked intrinsic-reward parameters `(K, …)` and termination logits
    `ω (K, S)` (None when terminations are fixed)."""

    reward: Params
    termination: Optional[Array]


def init_params(key, model: RewardModel, num_options: int, num_states: int, *,
                learn_termination: bool = True, termination_init: float = 0.1) -> OptionParams:
    """Independent draws of `model.init` per option (they must differ: identical options get
    identical gradients and stay identical) and `ω = logit(termination_init)` everywhere."""
    if num_options < 1:
        raise ValueError(f"num_options: expected >= 1, got {num_options}")
    if not 0.0 < termination_init < 1.0:
        raise ValueError(f"termination_init: expected a probability in (0, 1), "
                         f"got {termination_init}")
    rewards = jax.vmap(model.init)(jax.random.split(key, num_options))
    omega = None
    if learn_termination:
        logit = jnp.log(termination_init) - jnp.log1p(-termination_init)
        omega = jnp.full((num_options, num_states), logit, jax.tree.leaves(rewards)[0].dtype)
    return OptionParams(rewards, omega)


def make_options(
    params: OptionParams,
    model: RewardModel,
    environment: MDP,
    temperature,
    *,
    termination: float = 0.1,
    **plan_kwargs,
) -> tuple[Options, PlanResult]:
    """Options from parameters: `π^k = softmax(Q*_k/τ_o)` planned in `environment` with reward
    `r_{θ_k}`, `β_k = sigmoid(ω_k)` (or the constant `termination` when `ω` is None).

    Returns the `Options` (no initiation sets) and the batch of intrinsic `PlanResult`s.
    """
    def plan(theta):
        mdp = environment._with(rewards=model.apply(theta, environment))
        return soft_value_iteration(mdp, temperature, **plan_kwargs)

    plans = jax.vmap(plan)(params.reward)
    if params.termination is None:
        beta = jnp.full(plans.policy.shape[:2], termination, environment.dtype)
    else:
        beta = jax.nn.sigmoid(params.termination.astype(environment.dtype))
    return Options._unchecked(plans.policy, beta, None), plans


def smdp_return(reward: Array, transition: Array, initial: Array, planner: ExtrinsicPlanner,
                initiation: Optional[Array] = None) -> tuple[Array, PlanResult]:
    """`s0 · v_μ` for the policy over options `μ` that `planner` derives from option models.

    Args:
      reward: `(S, K)` option reward models; transition: `(K, S, S)` option transition models
        (primitives, if any, already included); initial: `(S,)` `s0`.
      planner: `ExtrinsicPlanner` — `μ = softmax(Q_O / τ_μ)` with `Q_O` after `N` sweeps from
        zero values (unrolled gradient) or at convergence (implicit gradient).
      initiation: optional `(K, S)` bool initiation sets.

    Returns:
      `(return, plan)`, the return `s0 · (I − P^O_μ)^{-1} r^O_μ` (exact evaluation of `μ`).
    """
    kwargs = dict(tol=planner.tol)
    if planner.planning_budget is not None:
        kwargs = dict(differentiation="unrolled", num_sweeps=planner.planning_budget)
    plan = smdp_value_iteration(reward, transition, planner.temperature, initiation=initiation,
                                backup=planner.backup, **kwargs)
    value = smdp_policy_evaluation(reward, transition, plan.policy)
    return jnp.dot(initial, value), plan


def _planned_options(options: Options, planner: ExtrinsicPlanner) -> Options:
    return with_primitives(options) if planner.include_primitives else options


def hierarchical_return(options: Options, task: MDP, planner: ExtrinsicPlanner
                        ) -> tuple[Array, PlanResult]:
    """`s0 · v_μ` in any `task` of the call-and-return policy `μ` that `planner` derives for
    `options` (primitives appended after the options when configured), and the SMDP plan.
    The reference computation: option models by `optiongrad.option_models`."""
    options = _planned_options(options, planner)
    reward, transition = option_models(task, options)
    return smdp_return(reward, transition, task.initial, planner, options.initiation)


def goal_models(options: Options, environment: MDP, goals: Array, planner: ExtrinsicPlanner
                ) -> tuple[Options, Array, Array, Array]:
    """The options as `planner` uses them (primitives appended when configured) and their
    models in the goal tasks `goals (T,)` of `environment`: `(options, reward (T, S, K),
    transition (T, K, S, S), initial (T, S))`, from one factorisation per option
    (`optiongrad.goal_tasks.goal_option_models`)."""
    options = _planned_options(options, planner)
    return (options, *goal_option_models(environment, options, goals))


def batched_smdp_returns(reward: Array, transition: Array, initial: Array,
                         planner: ExtrinsicPlanner, initiation: Optional[Array] = None
                         ) -> Array:
    """`smdp_return` for a batch of tasks (leading axis `T` of `reward`, `transition` and
    `initial`; shared `initiation`), one `vmap`; shape `(T,)`."""
    returns, _ = jax.vmap(lambda r, p, s0: smdp_return(r, p, s0, planner, initiation))(
        reward, transition, initial)
    return returns


def goal_returns(options: Options, environment: MDP, goals: Array, planner: ExtrinsicPlanner
                 ) -> Array:
    """`hierarchical_return` in every goal task `goals (T,)` of `environment`, shape `(T,)`:
    `goal_models` then `batched_smdp_returns`."""
    options, reward, transition, initial = goal_models(options, environment, goals, planner)
    return batched_smdp_returns(reward, transition, initial, planner, options.initiation)


def diversity(options: Options, environment: MDP) -> Array:
    """Mean over ordered pairs `k ≠ l` of `Σ_s w_k[s] KL(π^k[s] ‖ π^l[s])`, with `w_k` the
    normalised discounted occupancy of `π^k` in `environment` (scalar ≥ 0; 0 for K = 1)."""
    k = options.num_options
    if k < 2:
        return jnp.zeros((), environment.dtype)
    log_pi = jnp.log(options.policy)
    weights = jax.vmap(lambda pi: occupancy(environment, pi))(options.policy)
    weights = weights / jnp.sum(weights, axis=1, keepdims=True)
    # kl[k, l, s] = Σ_a π^k (log π^k − log π^l)
    kl = jnp.einsum("ksa,ksa->ks", options.policy, log_pi)[:, None, :] - jnp.einsum(
        "ksa,lsa->kls", options.policy, log_pi)
    total = jnp.einsum("ks,kls->", weights, kl)
    return total / (k * (k - 1))


def option_gradient_objective(
    params: OptionParams,
    model: RewardModel,
    environment: MDP,
    goals: Array,
    *,
    temperature_options,
    planner: ExtrinsicPlanner,
    termination: float = 0.1,
    diversity_weight: float = 0.0,
    **plan_kwargs,
):
    """The option-gradient objective and diagnostics.

    Args:
      params: `OptionParams`.
      model: the intrinsic-reward model shared by all options.
      environment: the dynamics the options are planned in (e.g. `navigation_mdp`); its
        discount is the options' planning discount.
      goals: `(T,)` goal states: the batch of goal tasks of `environment`
        (`optiongrad.goal_tasks`), one `vmap`.
      temperature_options: `τ_o` of the option policies.
      planner: how `μ` is planned (`ExtrinsicPlanner`).
      termination: the fixed termination probability used when `params.termination` is None.
      diversity_weight: weight of the diversity bonus.
      **plan_kwargs: passed to the intrinsic planners (`soft_value_iteration`).

    Returns:
      The pair `(objective, aux)` (use `jax.value_and_grad(..., has_aux=True)`), `aux` a dict
      with the mean return under "return", the per-goal returns `(T,)` under "returns", the
      diversity (scalar), the `Options` under "options" and `(K,)` bool "intrinsic_converged".
    """
    options, plans = make_options(params, model, environment, temperature_options,
                                  termination=termination, **plan_kwargs)
    returns = goal_returns(options, environment, goals, planner)
    mean_return = jnp.mean(returns)
    div = diversity(options, environment) if diversity_weight else jnp.zeros((), mean_return.dtype)
    objective = mean_return + diversity_weight * div
    aux = {"return": mean_return, "returns": returns, "diversity": div, "options": options,
           "intrinsic_converged": plans.converged}
    return objective, aux
