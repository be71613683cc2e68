"""optiongrad: differentiable planning in tabular MDPs, in JAX.

Smooth (soft) value iteration whose policy is a differentiable function of the reward, exact
gradients by the implicit function theorem at the Bellman fixed point, intrinsic rewards,
λ-models, option models and the option gradient. `import optiongrad as og`; the mathematics is
in each function's docstring and in docs/DESIGN.md.

Namespaces: `og.gridworld` (maps, goal tasks), `og.rewards` (intrinsic-reward models),
`og.discovery` (option families), `og.solvers` (solver and adjoint objects, `RESULTS`),
`og.gym`, `og.plotting`, `og.sharding`.
"""

from optiongrad import discovery, gridworld, gym, plotting, rewards, sharding, solvers
from optiongrad._src import deprecation as _deprecation
from optiongrad._src.backups import BACKUPS, backup, backup_policy
from optiongrad._src.evaluation import expected_return, occupancy, policy_evaluation, q_values
from optiongrad._src.goal_models import (
    GoalModels,
    OptionTable,
    goal_model_returns,
    goal_models,
    option_table,
)
from optiongrad._src.goal_sweeps import sweep_goal_returns
from optiongrad._src.goal_tasks import goal_option_models, goal_task, reference_returns
from optiongrad._src.gym import OptionsEnv, TabularEnv, from_gymnasium
from optiongrad._src.hierarchical import (
    flat_policy_evaluation,
    intra_option_policy_evaluation,
    smdp_policy_evaluation,
)
from optiongrad._src.implicit import (
    AdjointResult,
    FixedPointResult,
    fixed_point,
    fixed_point_adjoint,
)
from optiongrad._src.mdp import MDP, from_action_major, random_mdp, to_action_major
from optiongrad._src.multistep import lambda_model
from optiongrad._src.objectives import envelope_gradient, planner_return, soft_optimal_return
from optiongrad._src.option_gradient import (
    ExtrinsicPlanner,
    OptionParams,
    goal_returns,
    hierarchical_return,
    init_params,
    make_options,
    option_gradient_objective,
)
from optiongrad._src.option_models import apply_option_models, option_models
from optiongrad._src.options import Options, concatenate, primitive_options, with_primitives
from optiongrad._src.planning import (
    PlanResult,
    intra_option_value_iteration,
    jacobian_spectral_radius,
    plan_adjoint,
    smdp_value_iteration,
    soft_value_iteration,
)
from optiongrad._src.planning_time import (
    goal_planning_sweeps,
    model_planning_sweeps,
    planning_sweeps,
    sweep_values,
)
from optiongrad._src.rollouts import rollout, sample_returns
from optiongrad._src.solvers import RESULTS
from optiongrad._src.transitions import SparseTransitions

__version__ = "0.2.0"

__all__ = [
    # MDPs and their evaluation
    "MDP", "SparseTransitions", "random_mdp", "from_action_major", "to_action_major",
    "policy_evaluation", "q_values", "occupancy", "expected_return",
    # planning and its gradients
    "soft_value_iteration", "smdp_value_iteration", "intra_option_value_iteration",
    "PlanResult", "RESULTS", "fixed_point", "FixedPointResult", "backup", "backup_policy",
    "BACKUPS", "jacobian_spectral_radius", "plan_adjoint", "fixed_point_adjoint",
    "AdjointResult",
    # intrinsic rewards
    "planner_return", "soft_optimal_return", "envelope_gradient",
    # λ-models and options
    "lambda_model", "Options", "primitive_options", "with_primitives", "concatenate",
    "option_models", "apply_option_models", "smdp_policy_evaluation",
    "intra_option_policy_evaluation", "flat_policy_evaluation", "rollout", "sample_returns",
    "planning_sweeps", "model_planning_sweeps", "sweep_values",
    # goal tasks and the option gradient
    "goal_task", "goal_models", "GoalModels", "option_table", "OptionTable",
    "goal_model_returns", "sweep_goal_returns",
    "goal_option_models",
    "goal_planning_sweeps", "reference_returns", "ExtrinsicPlanner",
    "OptionParams", "init_params", "make_options", "option_gradient_objective",
    "goal_returns", "hierarchical_return",
    # gymnasium
    "from_gymnasium", "TabularEnv", "OptionsEnv",
    # namespaces
    "gridworld", "rewards", "discovery", "solvers", "gym", "plotting", "sharding",
]

_deprecation.install()


def __getattr__(name: str):
    # optiongrad 0.1's module paths (og.options, og.planning, …), with a DeprecationWarning.
    return _deprecation.old_module(name)


def __dir__():
    return sorted(__all__ + ["__version__"])
