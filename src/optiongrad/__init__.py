"""optiongrad: differentiable planning in tabular MDPs, in JAX.

Smooth (soft) value iteration whose policy is a differentiable function of the reward, exact
gradients by the implicit function theorem at the Bellman fixed point, intrinsic rewards,
λ-models, option models and the option gradient. See DESIGN.md for the mathematics.
"""

from optiongrad import gridworld, implicit, planning, rewards, transitions
from optiongrad.evaluation import expected_return, occupancy, policy_evaluation, q_values
from optiongrad.implicit import FixedPointResult, fixed_point
from optiongrad.mdp import MDP, from_action_major, random_mdp, to_action_major
from optiongrad.objectives import (
    envelope_gradient,
    planner_return,
    soft_optimal_return,
)
from optiongrad.planning import (
    BACKUPS,
    PlanResult,
    backup,
    backup_policy,
    jacobian_spectral_radius,
    smdp_value_iteration,
    soft_value_iteration,
)
from optiongrad.transitions import SparseTransitions

__version__ = "0.1.0"

__all__ = [
    "BACKUPS",
    "FixedPointResult",
    "MDP",
    "PlanResult",
    "SparseTransitions",
    "backup",
    "backup_policy",
    "envelope_gradient",
    "expected_return",
    "fixed_point",
    "from_action_major",
    "gridworld",
    "implicit",
    "jacobian_spectral_radius",
    "occupancy",
    "planner_return",
    "planning",
    "policy_evaluation",
    "q_values",
    "random_mdp",
    "rewards",
    "smdp_value_iteration",
    "soft_optimal_return",
    "soft_value_iteration",
    "to_action_major",
    "transitions",
]
