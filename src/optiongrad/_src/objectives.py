r"""Objectives that differentiate through the planner.

**Intrinsic reward gradient** (the research note the project grew out of, first section; Singh,
Lewis & Barto 2009; Sorg, Singh & Lewis 2010). An agent plans with a smooth planner on an *intrinsic* reward $r_\theta$ (possibly with a
bounded planner: a short planning discount $\gamma_{\mathrm{plan}}$ or a fixed budget of sweeps) and acts with
$\hat{\pi}_\theta = \operatorname{softmax}(Q^*_\theta/\tau)$. Its designer scores it by the *extrinsic* return

$$
J(\theta) = s_0 \cdot V^{\hat\pi_\theta}_r = s_0 \cdot (I - \gamma P_{\hat\pi_\theta})^{-1} r_{\hat\pi_\theta}.
$$

$\partial J/\partial\theta$ goes through the planner by the IFT (`optiongrad.fixed_point`). For tabular $r_\theta = \theta$,
logsumexp and the planner's own discount (DESIGN.md, "Reference gradient"):

$$
\begin{aligned}
g_Q[s, a] &= d_{\hat\pi}[s]\, \hat\pi[s, a]\, \bigl(Q^{\hat\pi}_r[s, a] - V^{\hat\pi}_r[s]\bigr) / \tau \\
dJ/d\theta &= (I - \gamma M)^{-\top} g_Q, \qquad M[(s, a), (s', a')] = P[s, a, s']\, \hat\pi[s', a'].
\end{aligned}
$$

**Envelope theorem** (the note's aside). The planner's *own* objective, the soft-optimal value
$s_0 \cdot V^*_\theta$ with $V^*_\theta = m_\tau(Q^*_\theta)$, has gradient

$$
\partial (s_0 \cdot V^*_\theta) / \partial r_\theta[s, a] = d_{\hat\pi}[s]\, \hat\pi[s, a]
$$

with no policy-change term (the policy is optimal for that objective). The extrinsic return
of $\hat{\pi}$ is a different objective: for $r = r_\theta$ its gradient is this envelope term *plus* the
policy-change term $(I - \gamma M)^{-\top} g_Q$ above.
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
    r"""Extrinsic return of the planner's policy for the intrinsic reward $r_\theta$.

    Args:
      theta: parameters of `model`.
      model: a `RewardModel` (`optiongrad.rewards`).
      mdp: the extrinsic MDP; its reward and discount score the policy.
      temperature: the planner's $\tau$.
      plan_discount: the planner's discount $\gamma_{\mathrm{plan}}$ (default: `mdp.discount`); a smaller value
        is a bounded (myopic) planner.
      **plan_kwargs: passed to `soft_value_iteration` (backup, tol, differentiation,
        num_sweeps, …); `differentiation="unrolled", num_sweeps=N` is a planner with a budget of
        N sweeps.

    Returns:
      `(J, plan)`: the scalar $s_0 \cdot V^{\hat{\pi}_\theta}_r$ and the planner's `PlanResult` (use
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
    r"""The planner's own objective $s_0 \cdot m_\tau(Q^*)$ (the soft-optimal value), differentiable.
    `**plan_kwargs` as in `soft_value_iteration`; NaN if the planner failed."""
    kind = plan_kwargs.get("backup", "logsumexp")
    plan = soft_value_iteration(mdp, temperature, **plan_kwargs)
    q = jnp.where(plan.failed, 0.0, plan.q)  # a failed plan's values may not be finite
    value = jnp.dot(mdp.initial, backup(q, jnp.asarray(temperature, mdp.dtype), kind))
    return nan_where(plan.failed, value)


def envelope_gradient(mdp: MDP, temperature, **plan_kwargs) -> Array:
    r"""Closed-form $\partial(s_0 \cdot V^*)/\partial r[s, a] = d_{\hat{\pi}}[s] \hat{\pi}[s, a]$, shape `(S, A)`.

    Valid for the regularised backups whose value is the optimum of the planner's objective
    (logsumexp, mellowmax; and max where the greedy action is unique). The occupancy $d_{\hat{\pi}}$ is
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
