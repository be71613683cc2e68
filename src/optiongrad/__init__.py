"""optiongrad: differentiable planning in tabular MDPs, in JAX.

Smooth (soft) value iteration whose policy is a differentiable function of the reward, exact
gradients by the implicit function theorem at the Bellman fixed point, intrinsic rewards,
λ-models, option models and the option gradient. See docs/DESIGN.md for the mathematics.
"""

from optiongrad import (
    discovery,
    goal_tasks,
    gridworld,
    gym,
    implicit,
    multistep,
    newton,
    option_gradient,
    options,
    planning,
    planning_time,
    rewards,
    sharding,
    transitions,
)
from optiongrad.evaluation import expected_return, occupancy, policy_evaluation, q_values
from optiongrad.implicit import FixedPointResult, fixed_point
from optiongrad.mdp import MDP, from_action_major, random_mdp, to_action_major
from optiongrad.goal_tasks import goal_option_models
from optiongrad.gym import OptionsEnv, TabularEnv, from_gymnasium
from optiongrad.multistep import lambda_model
from optiongrad.option_gradient import (
    ExtrinsicPlanner,
    OptionParams,
    goal_returns,
    hierarchical_return,
    option_gradient_objective,
)
from optiongrad.objectives import envelope_gradient, planner_return, soft_optimal_return
from optiongrad.options import (
    Options,
    apply_option_models,
    concatenate,
    flat_policy_evaluation,
    intra_option_policy_evaluation,
    option_models,
    primitive_options,
    rollout,
    sample_returns,
    smdp_policy_evaluation,
    with_primitives,
)
from optiongrad.planning import (
    BACKUPS,
    PlanResult,
    backup,
    backup_policy,
    intra_option_value_iteration,
    jacobian_spectral_radius,
    smdp_value_iteration,
    soft_value_iteration,
)
from optiongrad.planning_time import model_planning_sweeps, planning_sweeps, sweep_values
from optiongrad.transitions import SparseTransitions

__version__ = "0.1.0"

__all__ = [
    "BACKUPS",
    "ExtrinsicPlanner",
    "OptionParams",
    "OptionsEnv",
    "FixedPointResult",
    "MDP",
    "Options",
    "PlanResult",
    "SparseTransitions",
    "TabularEnv",
    "apply_option_models",
    "backup",
    "backup_policy",
    "concatenate",
    "discovery",
    "envelope_gradient",
    "expected_return",
    "fixed_point",
    "flat_policy_evaluation",
    "from_action_major",
    "from_gymnasium",
    "goal_option_models",
    "goal_returns",
    "goal_tasks",
    "gridworld",
    "gym",
    "hierarchical_return",
    "implicit",
    "intra_option_policy_evaluation",
    "intra_option_value_iteration",
    "jacobian_spectral_radius",
    "lambda_model",
    "model_planning_sweeps",
    "multistep",
    "newton",
    "occupancy",
    "option_gradient",
    "option_gradient_objective",
    "option_models",
    "options",
    "planner_return",
    "planning",
    "planning_sweeps",
    "planning_time",
    "policy_evaluation",
    "primitive_options",
    "q_values",
    "random_mdp",
    "rewards",
    "rollout",
    "sample_returns",
    "sharding",
    "smdp_policy_evaluation",
    "smdp_value_iteration",
    "soft_optimal_return",
    "soft_value_iteration",
    "sweep_values",
    "to_action_major",
    "transitions",
    "with_primitives",
]
