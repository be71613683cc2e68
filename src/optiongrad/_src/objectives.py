"""Objectives that differentiate through the planner.

**Intrinsic reward gradient** (seed note, first section; Singh, Lewis & Barto 2009; Sorg, Singh &
Lewis 2010). An agent plans with a smooth planner on an *intrinsic* reward `r_θ` (possibly with a
bounded planner: a short planning discount `γ_plan` or a fixed budget of sweeps) and acts with
`π̂_θ = softmax(Q*_θ/τ)`. Its designer scores it by the *extrinsic* return

    J(θ) = s0 · V^{π̂_θ}_r = s0 · (I − γ P_{π̂_θ})^{-1} r_{π̂_θ}.

`∂J/∂θ` goes through the planner by the IFT (`optiongrad.fixed_point`). For tabular `r_θ = θ`,
logsumexp and the planner's own discount (DESIGN.md, "Reference gradient"):

    g_Q[s, a] = d_π̂[s] π̂[s, a] (Q^{π̂}_r[s, a] − V^{π̂}_r[s]) / τ
    dJ/dθ     = (I − γ M)^{-ᵀ} g_Q,        M[(s, a), (s', a')] = P[s, a, s'] π̂[s', a'].

**Envelope theorem** (the note's aside). The planner's *own* objective, the soft-optimal value
`s0 · V*_θ` with `V*_θ = m_τ(Q*_θ)`, has gradient

    ∂(s0 · V*_θ)/∂r_θ[s, a] = d_π̂[s] π̂[s, a]

with no policy-change term (the policy is optimal for that objective). The extrinsic return
of `π̂` is a different objective: for `r = r_θ` its gradient is this envelope term *plus* the
policy-change term `(I − γ M)^{-ᵀ} g_Q` above.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.backups import backup
from optiongrad._src.evaluation import expected_return, occupancy
from optiongrad._src.implicit import nan_where
from optiongrad._src.mdp import MDP
from optiongrad._src.planning import PlanResult, soft_value_iteration
from optiongrad._src.rewards import Params, RewardModel
from optiongrad._src.solvers import Unrolled, resolve

Array = jax.Array


def planner_return(
    theta: Params,
    model: RewardModel,
    mdp: MDP,
    temperature,
    *,
    plan_discount=None,
    **plan_kwargs,
) -> tuple[Array, PlanResult]:
    """Extrinsic return of the planner's policy for the intrinsic reward `r_θ`.

    Args:
      theta: parameters of `model`.
      model: a `RewardModel` (`optiongrad.rewards`).
      mdp: the extrinsic MDP; its reward and discount score the policy.
      temperature: the planner's `τ`.
      plan_discount: the planner's discount `γ_plan` (default: `mdp.discount`); a smaller value
        is a bounded (myopic) planner.
      **plan_kwargs: passed to `soft_value_iteration` (backup, tol, differentiation,
        num_sweeps, …); `differentiation="unrolled", num_sweeps=N` is a planner with a budget of
        N sweeps.

    Returns:
      `(J, plan)`: the scalar `s0 · V^{π̂_θ}_r` and the planner's `PlanResult` (use
      `jax.value_and_grad(..., has_aux=True)`). If the planner failed (`plan.failed`), `J`
      and its gradient are NaN.
    """
    checks.instance(model, "model", RewardModel, "an optiongrad.rewards.RewardModel")
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.number(plan_discount, "plan_discount", low=0.0, high=1.0, high_open=True,
                  allow_none=True)
    discount = mdp.discount if plan_discount is None else jnp.asarray(plan_discount, mdp.dtype)
    planning_mdp = mdp.replace(rewards=model.apply(theta, mdp), discount=discount)
    plan = soft_value_iteration(planning_mdp, temperature, **plan_kwargs)
    return nan_where(plan.failed, expected_return(mdp, plan.usable_policy())), plan


def soft_optimal_return(mdp: MDP, temperature, **plan_kwargs) -> Array:
    """The planner's own objective `s0 · m_τ(Q*)` (the soft-optimal value), differentiable.
    `**plan_kwargs` as in `soft_value_iteration`; NaN if the planner failed."""
    kind = plan_kwargs.get("backup", "logsumexp")
    plan = soft_value_iteration(mdp, temperature, **plan_kwargs)
    q = jnp.where(plan.failed, 0.0, plan.q)  # a failed plan's values may not be finite
    value = jnp.dot(mdp.initial, backup(q, jnp.asarray(temperature, mdp.dtype), kind))
    return nan_where(plan.failed, value)


def envelope_gradient(mdp: MDP, temperature, **plan_kwargs) -> Array:
    """Closed-form `∂(s0 · V*)/∂r[s, a] = d_π̂[s] π̂[s, a]`, shape `(S, A)`.

    Valid for the regularised backups whose value is the optimum of the planner's objective
    (logsumexp, mellowmax; and max where the greedy action is unique). The occupancy `d_π̂` is
    that of the planner's policy in `mdp` itself.
    """
    kind = plan_kwargs.get("backup", "logsumexp")
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    _, adjoint = resolve(plan_kwargs.get("solver"), plan_kwargs.get("adjoint"),
                         differentiation=plan_kwargs.get("differentiation"),
                         num_sweeps=plan_kwargs.get("num_sweeps"))
    if isinstance(adjoint, Unrolled):
        raise ValueError("num_sweeps: the envelope theorem holds at the fixed point, not after "
                         "a budget of sweeps; differentiate soft_optimal_return instead")
    if kind == "boltzmann":
        raise ValueError(
            "backup: the envelope theorem does not apply to 'boltzmann' (its value is not the "
            "optimum of a regularised objective)"
        )
    plan = soft_value_iteration(mdp, temperature, **plan_kwargs)
    policy = plan.usable_policy()
    return nan_where(plan.failed, occupancy(mdp, policy)[:, None] * policy)
