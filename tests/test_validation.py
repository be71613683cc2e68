"""Every public function refuses malformed input with a `ValueError` that names the argument,
skips its checks on tracers, and keeps accepting the legal edge cases.

The table below is the adversarial sweep of the reliability issue, kept as a test: each row
calls one public function with one malformed argument and names the argument the message must
start with.
"""

import re

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og

S, A, K = 4, 2, 3
RNG = np.random.default_rng(0)
P = RNG.random((S, A, S))
P /= P.sum(-1, keepdims=True)
R = RNG.normal(size=(S, A))
MDP = og.MDP(P, R, 0.9)
PI = np.full((S, A), 0.5)
OPTIONS = og.Options(np.full((K, S, A), 0.5), np.full((K, S), 0.3),
                     np.array([[True, True, False, True]] * K))
MU = np.full((S, K), 1 / K)
REWARDS_O, TRANSITIONS_O = og.option_models(MDP, OPTIONS)
GRID = og.gridworld.four_rooms()
ENV = og.gridworld.navigation_mdp(GRID, 0.9)
MODEL = og.rewards.state(GRID.num_states)
PARAMS = og.init_params(0, MODEL, 2, GRID.num_states)
PLANNER = og.ExtrinsicPlanner()
SMALL_OPTIONS = og.Options(np.full((2, GRID.num_states, 4), 0.25), np.full((2, 104), 0.5))


def _with(arr, index, value):
    arr = np.array(arr, dtype=float)
    arr[index] = value
    return arr


def _other_options():
    return og.Options(np.full((2, S + 1, A), 0.5), np.full((2, S + 1), 0.5))


CASES = {
    # -- MDP, transitions, converters ------------------------------------------------------
    "MDP-discount-string": (lambda: og.MDP(P, R, "0.9"), "discount"),
    "MDP-discount-object": (lambda: og.MDP(P, R, object()), "discount"),
    "MDP-rewards-strings": (lambda: og.MDP(P, np.full((S, A), "x"), 0.9), "rewards"),
    "MDP-transitions-none": (lambda: og.MDP(None, R, 0.9), "transitions"),
    "MDP-initial-list": (lambda: og.MDP(P, R, 0.9, [0.5, 0.5]), "initial"),
    "MDP-initial-string": (lambda: og.MDP(P, R, 0.9, "uniform"), "initial"),
    "Sparse-float-index": (lambda: og.SparseTransitions(np.zeros((S, A, 1)), np.ones((S, A, 1))),
                           "next_states"),
    "Sparse-overflow-index": (lambda: og.SparseTransitions(
        np.full((S, A, 1), 2**32 + 1), np.ones((S, A, 1))), "next_states"),
    "Sparse-negative-index": (lambda: og.SparseTransitions(
        np.full((S, A, 1), -1), np.ones((S, A, 1))), "next_states"),
    "Sparse-index-out-of-range": (lambda: og.SparseTransitions(
        np.full((S, A, 1), S), np.ones((S, A, 1))), "next_states"),
    "Sparse-probs-shape": (lambda: og.SparseTransitions(np.zeros((S, A, 1), int),
                                                        np.ones((S, A, 2))), "probs"),
    "Sparse-probs-negative": (lambda: og.SparseTransitions(
        np.zeros((S, A, 2), int), np.tile([1.5, -0.5], (S, A, 1))), "probs"),
    "Sparse-probs-string": (lambda: og.SparseTransitions(np.zeros((S, A, 1), int), "1"), "probs"),
    "random_mdp-states": (lambda: og.random_mdp(0, 0, 2, 1), "num_states"),
    "random_mdp-actions-float": (lambda: og.random_mdp(0, 3, 1.5, 1), "num_actions"),
    "random_mdp-branching": (lambda: og.random_mdp(0, 3, 2, 4), "branching"),
    "random_mdp-discount": (lambda: og.random_mdp(0, 3, 2, 1, 1.0), "discount"),
    "random_mdp-initial": (lambda: og.random_mdp(0, 3, 2, 1, initial="gauss"), "initial"),
    "random_mdp-key": (lambda: og.random_mdp("seed", 3, 2, 1), "key"),
    "random_mdp-key-negative": (lambda: og.random_mdp(-1, 3, 2, 1), "key"),
    "random_mdp-dtype": (lambda: og.random_mdp(0, 3, 2, 1, dtype=np.int32), "dtype"),
    "from_action_major-shape": (lambda: og.from_action_major(P, R, 0.9), "transitions"),
    "from_action_major-rewards": (lambda: og.from_action_major(
        np.transpose(P, (1, 0, 2)), np.zeros(3), 0.9), "rewards"),
    "from_action_major-discount": (lambda: og.from_action_major(
        np.transpose(P, (1, 0, 2)), R, "x"), "discount"),
    "to_action_major-mdp": (lambda: og.to_action_major("mdp"), "mdp"),
    # -- evaluation ------------------------------------------------------------------------
    "policy_evaluation-zeros": (lambda: og.policy_evaluation(MDP, np.zeros((S, A))), "policy"),
    "policy_evaluation-negative-row": (lambda: og.policy_evaluation(
        MDP, _with(PI, (0,), [-1.0, 2.0])), "policy"),
    "policy_evaluation-shape": (lambda: og.policy_evaluation(MDP, PI[:2]), "policy"),
    "policy_evaluation-nan": (lambda: og.policy_evaluation(MDP, _with(PI, (1, 0), np.nan)),
                              "policy"),
    "policy_evaluation-string": (lambda: og.policy_evaluation(MDP, "greedy"), "policy"),
    "policy_evaluation-method": (lambda: og.policy_evaluation(MDP, PI, method="exact"),
                                 "method"),
    "policy_evaluation-rtol": (lambda: og.policy_evaluation(MDP, PI, rtol=-1.0), "rtol"),
    "policy_evaluation-max_iter": (lambda: og.policy_evaluation(MDP, PI, max_iter=0),
                                   "max_iter"),
    "policy_evaluation-throw": (lambda: og.policy_evaluation(MDP, PI, throw="yes"), "throw"),
    "policy_evaluation-mdp": (lambda: og.policy_evaluation({"P": P}, PI), "mdp"),
    "q_values-policy": (lambda: og.q_values(MDP, np.ones((S, A))), "policy"),
    "q_values-method": (lambda: og.q_values(MDP, PI, method=3), "method"),
    "occupancy-policy": (lambda: og.occupancy(MDP, PI * 2), "policy"),
    "occupancy-rtol": (lambda: og.occupancy(MDP, PI, rtol=np.inf), "rtol"),
    "expected_return-policy": (lambda: og.expected_return(MDP, PI[:, :1]), "policy"),
    "expected_return-max_iter": (lambda: og.expected_return(MDP, PI, max_iter=1.5),
                                 "max_iter"),
    # -- planning --------------------------------------------------------------------------
    "svi-temperature-string": (lambda: og.soft_value_iteration(MDP, "0.1"), "temperature"),
    "svi-temperature-zero": (lambda: og.soft_value_iteration(MDP, 0.0), "temperature"),
    "svi-temperature-negative-max": (lambda: og.soft_value_iteration(MDP, -1.0, backup="max"),
                                     "temperature"),
    "svi-temperature-nan": (lambda: og.soft_value_iteration(MDP, np.nan), "temperature"),
    "svi-temperature-vector": (lambda: og.soft_value_iteration(MDP, np.ones(2)),
                               "temperature"),
    "svi-backup": (lambda: og.soft_value_iteration(MDP, 0.1, backup="softmax"), "backup"),
    "svi-tol-inf": (lambda: og.soft_value_iteration(MDP, 0.1, tol=np.inf), "tol"),
    "svi-tol-negative": (lambda: og.soft_value_iteration(MDP, 0.1, tol=-1e-3), "tol"),
    "svi-tol-string": (lambda: og.soft_value_iteration(MDP, 0.1, tol="small"), "tol"),
    "svi-max_iter-zero": (lambda: og.soft_value_iteration(MDP, 0.1, max_iter=0), "max_iter"),
    "svi-max_iter-float": (lambda: og.soft_value_iteration(MDP, 0.1, max_iter=10.0),
                           "max_iter"),
    "svi-init-shape": (lambda: og.soft_value_iteration(MDP, 0.1, init=np.zeros((A, S))),
                       "init"),
    "svi-init-nan": (lambda: og.soft_value_iteration(MDP, 0.1, init=np.full((S, A), np.nan)),
                     "init"),
    "svi-solver-name": (lambda: og.soft_value_iteration(MDP, 0.1, solver="gradient"),
                        "solver"),
    "svi-solver-object": (lambda: og.soft_value_iteration(MDP, 0.1, solver=og.solvers.Implicit()),
                          "solver"),
    "svi-adjoint-string": (lambda: og.soft_value_iteration(MDP, 0.1, adjoint="implicit"),
                           "adjoint"),
    "svi-adjoint-conflict": (lambda: og.soft_value_iteration(
        MDP, 0.1, adjoint=og.solvers.Implicit(), num_sweeps=3), "num_sweeps"),
    "svi-differentiation": (lambda: og.soft_value_iteration(MDP, 0.1, differentiation="auto"),
                            "differentiation"),
    "svi-num_sweeps-zero": (lambda: og.soft_value_iteration(MDP, 0.1, num_sweeps=0),
                            "num_sweeps"),
    "svi-unrolled-without-sweeps": (lambda: og.soft_value_iteration(
        MDP, 0.1, differentiation="unrolled"), "num_sweeps"),
    "svi-throw": (lambda: og.soft_value_iteration(MDP, 0.1, throw=1), "throw"),
    "svi-mdp": (lambda: og.soft_value_iteration(P, 0.1), "mdp"),
    "svi-newton-sparse": (lambda: og.soft_value_iteration(
        og.gridworld.goal_task(GRID, 3, sparse=True), 0.1, solver="newton"), "solver"),
    "svi-adjoint-max_iter": (lambda: og.soft_value_iteration(
        MDP, 0.1, adjoint=og.solvers.Implicit(max_iter=0)), "max_iter"),
    "Anderson-memory": (lambda: og.solvers.Anderson(memory=0), "memory"),
    "Unrolled-sweeps": (lambda: og.solvers.Unrolled(num_sweeps=-2), "num_sweeps"),
    "Newton-steps": (lambda: og.solvers.Newton(max_steps="many"), "max_steps"),
    "smdp-rewards-ndim": (lambda: og.smdp_value_iteration(REWARDS_O[:, 0], TRANSITIONS_O, 0.1),
                          "rewards"),
    "smdp-rewards-nan": (lambda: og.smdp_value_iteration(
        _with(REWARDS_O, (0, 0), np.nan), TRANSITIONS_O, 0.1), "rewards"),
    "smdp-transitions-shape": (lambda: og.smdp_value_iteration(
        REWARDS_O, TRANSITIONS_O[:, :2], 0.1), "transitions"),
    "smdp-transitions-negative": (lambda: og.smdp_value_iteration(
        REWARDS_O, _with(TRANSITIONS_O, (0, 0, 0), -0.3), 0.1), "transitions"),
    "smdp-transitions-stochastic": (lambda: og.smdp_value_iteration(
        REWARDS_O, TRANSITIONS_O / TRANSITIONS_O.sum(-1, keepdims=True), 0.1), "transitions"),
    "smdp-initiation-shape": (lambda: og.smdp_value_iteration(
        REWARDS_O, TRANSITIONS_O, 0.1, initiation=np.ones((S, K), bool)), "initiation"),
    "smdp-initiation-int": (lambda: og.smdp_value_iteration(
        REWARDS_O, TRANSITIONS_O, 0.1, initiation=np.ones((K, S), int)), "initiation"),
    "smdp-initiation-empty-state": (lambda: og.smdp_value_iteration(
        REWARDS_O, TRANSITIONS_O, 0.1, initiation=OPTIONS.initiation), "initiation"),
    "smdp-temperature": (lambda: og.smdp_value_iteration(REWARDS_O, TRANSITIONS_O, -0.1),
                         "temperature"),
    "smdp-gauss-seidel": (lambda: og.smdp_value_iteration(REWARDS_O, TRANSITIONS_O, 0.1,
                                                          solver="gauss-seidel"), "solver"),
    "smdp-newton-mellowmax": (lambda: og.smdp_value_iteration(
        REWARDS_O, TRANSITIONS_O, 0.1, backup="mellowmax", solver="newton"), "solver"),
    "plan_adjoint-cotangent": (lambda: og.plan_adjoint(MDP, 0.1, np.zeros((S, A)),
                                                       np.zeros((S, A + 1))), "cotangent"),
    "plan_adjoint-unrolled": (lambda: og.plan_adjoint(
        MDP, 0.1, np.zeros((S, A)), np.zeros((S, A)), adjoint=og.solvers.Unrolled(3)),
        "adjoint"),
    "Auto-newton_factor": (lambda: og.solvers.Auto(newton_factor=np.nan), "newton_factor"),
    "smdp-init": (lambda: og.smdp_value_iteration(REWARDS_O, TRANSITIONS_O, 0.1,
                                                  init=np.zeros((S, A))), "init"),
    "intra-options-states": (lambda: og.intra_option_value_iteration(MDP, _other_options(), 0.1),
                             "options"),
    "intra-options-type": (lambda: og.intra_option_value_iteration(MDP, PI, 0.1), "options"),
    "intra-temperature": (lambda: og.intra_option_value_iteration(
        MDP, og.with_primitives(OPTIONS), 0.0), "temperature"),
    "intra-tol": (lambda: og.intra_option_value_iteration(
        MDP, og.with_primitives(OPTIONS), 0.1, tol=np.nan), "tol"),
    "jacobian-q": (lambda: og.jacobian_spectral_radius(MDP, np.zeros((S,)), 0.1), "q"),
    "jacobian-backup": (lambda: og.jacobian_spectral_radius(MDP, np.zeros((S, A)), 0.1,
                                                            backup="soft"), "backup"),
    "backup-kind": (lambda: og.backup(np.zeros((S, A)), 0.1, "softmax"), "kind"),
    "backup-temperature": (lambda: og.backup(np.zeros((S, A)), 0.0), "temperature"),
    "backup-q-string": (lambda: og.backup("q", 0.1), "q"),
    "backup-q-scalar": (lambda: og.backup(1.0, 0.1), "q"),
    "backup-mask-shape": (lambda: og.backup(np.zeros((S, A)), 0.1, mask=np.ones((S,), bool)),
                          "mask"),
    "backup-mask-empty-row": (lambda: og.backup(np.zeros((S, A)), 0.1,
                                                mask=np.zeros((S, A), bool)), "mask"),
    "backup_policy-kind": (lambda: og.backup_policy(np.zeros((S, A)), 0.1, "hard"), "kind"),
    "backup_policy-temperature": (lambda: og.backup_policy(np.zeros((S, A)), -1.0),
                                  "temperature"),
    "fixed_point-tol": (lambda: og.fixed_point(lambda p, x: x / 2, None, jnp.ones(2), tol=-1),
                        "tol"),
    "fixed_point-max_iter": (lambda: og.fixed_point(lambda p, x: x / 2, None, jnp.ones(2),
                                                    max_iter=0), "max_iter"),
    "fixed_point-init": (lambda: og.fixed_point(lambda p, x: x / 2, None, "x"), "init"),
    "fixed_point-newton": (lambda: og.fixed_point(lambda p, x: x / 2, None, jnp.ones(2),
                                                  solver="newton"), "solver"),
    "fixed_point-throw": (lambda: og.fixed_point(lambda p, x: x / 2, None, jnp.ones(2),
                                                 throw="no"), "throw"),
    "fixed_point-adjoint": (lambda: og.fixed_point(lambda p, x: x / 2, None, jnp.ones(2),
                                                   adjoint=3), "adjoint"),
    "fixed_point-adjoint_start": (lambda: og.fixed_point(lambda p, x: x / 2, None,
                                                         jnp.ones(2), adjoint_start=3),
                                  "adjoint_start"),
    # -- λ-models and options --------------------------------------------------------------
    "lambda-policy": (lambda: og.lambda_model(MDP, np.zeros((S, A)), np.ones(S)), "policy"),
    "lambda-continuation-2": (lambda: og.lambda_model(MDP, PI, np.full(S, 2.0)),
                              "continuation"),
    "lambda-continuation-negative": (lambda: og.lambda_model(MDP, PI, np.full(S, -0.1)),
                                     "continuation"),
    "lambda-continuation-shape": (lambda: og.lambda_model(MDP, PI, np.ones(S + 1)),
                                  "continuation"),
    "lambda-continuation-nan": (lambda: og.lambda_model(MDP, PI, _with(np.ones(S), 0, np.nan)),
                                "continuation"),
    "Options-ndim": (lambda: og.Options(PI, np.ones((1, S))), "policy"),
    "Options-zero-options": (lambda: og.Options(np.zeros((0, S, A)), np.zeros((0, S))),
                             "policy"),
    "Options-rows": (lambda: og.Options(np.ones((K, S, A)), np.ones((K, S))), "policy"),
    "Options-string": (lambda: og.Options("options", np.ones((K, S))), "policy"),
    "Options-termination-range": (lambda: og.Options(np.full((K, S, A), 0.5),
                                                     np.full((K, S), 1.5)), "termination"),
    "Options-termination-shape": (lambda: og.Options(np.full((K, S, A), 0.5), np.ones(S)),
                                  "termination"),
    "Options-initiation-int": (lambda: og.Options(np.full((K, S, A), 0.5), np.ones((K, S)),
                                                  np.ones((K, S), int)), "initiation"),
    "Options-initiation-shape": (lambda: og.Options(np.full((K, S, A), 0.5), np.ones((K, S)),
                                                    np.ones((S, K), bool)), "initiation"),
    "primitive_options-states": (lambda: og.primitive_options(0, A), "num_states"),
    "primitive_options-actions": (lambda: og.primitive_options(S, 1.5), "num_actions"),
    "primitive_options-dtype": (lambda: og.primitive_options(S, A, dtype=np.int32), "dtype"),
    "concatenate-empty": (lambda: og.concatenate(), "option_sets"),
    "concatenate-type": (lambda: og.concatenate(OPTIONS, PI), "option_sets[1]"),
    "concatenate-shapes": (lambda: og.concatenate(OPTIONS, _other_options()), "option_sets"),
    "with_primitives-type": (lambda: og.with_primitives(PI), "options"),
    "option_models-states": (lambda: og.option_models(MDP, _other_options()), "options"),
    "option_models-mdp": (lambda: og.option_models(None, OPTIONS), "mdp"),
    "apply_option_models-v-shape": (lambda: og.apply_option_models(MDP, OPTIONS, np.ones(S + 1)),
                                    "v"),
    "apply_option_models-v-nan": (lambda: og.apply_option_models(
        MDP, OPTIONS, _with(np.ones(S), 0, np.nan)), "v"),
    "apply_option_models-tol": (lambda: og.apply_option_models(MDP, OPTIONS, np.ones(S), tol=-1),
                                "tol"),
    "smdp_eval-mu-ones": (lambda: og.smdp_policy_evaluation(REWARDS_O, TRANSITIONS_O,
                                                            np.ones((S, K))), "mu"),
    "smdp_eval-mu-negative": (lambda: og.smdp_policy_evaluation(
        REWARDS_O, TRANSITIONS_O, _with(MU, (0,), [1.5, -0.5, 0.0])), "mu"),
    "smdp_eval-mu-shape": (lambda: og.smdp_policy_evaluation(REWARDS_O, TRANSITIONS_O, MU.T),
                           "mu"),
    "smdp_eval-transitions-negative": (lambda: og.smdp_policy_evaluation(
        REWARDS_O, -TRANSITIONS_O, MU), "transitions"),
    "smdp_eval-rewards-nan": (lambda: og.smdp_policy_evaluation(
        _with(REWARDS_O, (1, 1), np.inf), TRANSITIONS_O, MU), "rewards"),
    "intra_eval-mu-zeros": (lambda: og.intra_option_policy_evaluation(
        MDP, OPTIONS, np.zeros((S, K))), "mu"),
    "intra_eval-mu-outside-initiation": (lambda: og.intra_option_policy_evaluation(
        MDP, OPTIONS, MU), "mu"),
    "intra_eval-max_iter": (lambda: og.intra_option_policy_evaluation(
        MDP, og.Options(OPTIONS.policy, OPTIONS.termination), MU, max_iter=0), "max_iter"),
    "flat_eval-mu-shape": (lambda: og.flat_policy_evaluation(MDP, OPTIONS, MU[:, :2]), "mu"),
    "flat_eval-options": (lambda: og.flat_policy_evaluation(MDP, "options", MU), "options"),
    "rollout-start-99": (lambda: og.rollout(0, MDP, og.Options(OPTIONS.policy,
                                                               OPTIONS.termination),
                                            MU, 5, start=99), "start"),
    "rollout-start-negative": (lambda: og.rollout(0, MDP, og.Options(
        OPTIONS.policy, OPTIONS.termination), MU, 5, start=-1), "start"),
    "rollout-start-float": (lambda: og.rollout(0, MDP, og.Options(
        OPTIONS.policy, OPTIONS.termination), MU, 5, start=1.5), "start"),
    "rollout-horizon": (lambda: og.rollout(0, MDP, og.Options(OPTIONS.policy, OPTIONS.termination),
                                           MU, 0), "horizon"),
    "rollout-key": (lambda: og.rollout("key", MDP, OPTIONS, MU, 5), "key"),
    "rollout-mu": (lambda: og.rollout(0, MDP, og.Options(OPTIONS.policy, OPTIONS.termination),
                                      np.ones((S, K)), 5), "mu"),
    "sample_returns-episodes": (lambda: og.sample_returns(
        0, MDP, og.Options(OPTIONS.policy, OPTIONS.termination), MU, 0, 5), "num_episodes"),
    "sample_returns-horizon": (lambda: og.sample_returns(
        0, MDP, og.Options(OPTIONS.policy, OPTIONS.termination), MU, 10, "5"), "horizon"),
    "planning_sweeps-criterion": (lambda: og.planning_sweeps(MDP, criterion="time"),
                                  "criterion"),
    "planning_sweeps-epsilon": (lambda: og.planning_sweeps(MDP, epsilon=0.0), "epsilon"),
    "planning_sweeps-max_sweeps": (lambda: og.planning_sweeps(MDP, max_sweeps=0), "max_sweeps"),
    "planning_sweeps-backup": (lambda: og.planning_sweeps(MDP, backup="hard"), "backup"),
    "planning_sweeps-include": (lambda: og.planning_sweeps(MDP, OPTIONS,
                                                           include_primitives="yes"),
                                "include_primitives"),
    "planning_sweeps-options": (lambda: og.planning_sweeps(MDP, _other_options()), "options"),
    "model_sweeps-rewards": (lambda: og.model_planning_sweeps(MDP, REWARDS_O[:2],
                                                              TRANSITIONS_O), "rewards"),
    "model_sweeps-transitions": (lambda: og.model_planning_sweeps(
        MDP, REWARDS_O, TRANSITIONS_O[:2]), "transitions"),
    "model_sweeps-optimal_q": (lambda: og.model_planning_sweeps(
        MDP, REWARDS_O, TRANSITIONS_O, optimal_q=np.zeros(S)), "optimal_q"),
    "sweep_values-sweeps": (lambda: og.sweep_values(MDP, None, 0), "num_sweeps"),
    "sweep_values-temperature": (lambda: og.sweep_values(MDP, None, 3, backup="logsumexp",
                                                         temperature=0.0), "temperature"),
    # -- goal tasks and the option gradient -------------------------------------------------
    "goal_task-negative": (lambda: og.goal_task(GRID, -1), "goal"),
    "goal_task-too-large": (lambda: og.goal_task(GRID, 104), "goal"),
    "goal_task-float": (lambda: og.goal_task(GRID, 1.5), "goal"),
    "goal_task-string": (lambda: og.goal_task(GRID, "corner"), "goal"),
    "goal_task-vector": (lambda: og.goal_task(ENV, np.array([1, 2])), "goal"),
    "goal_task-sparse-with-mdp": (lambda: og.goal_task(ENV, 3, sparse=True), "sparse"),
    "goal_task-discount": (lambda: og.goal_task(GRID, 3, 1.0), "discount"),
    "goal_task-environment": (lambda: og.goal_task("four rooms", 3), "mdp"),
    "goal_task-one-state": (lambda: og.goal_task(og.MDP(np.ones((1, 1, 1)), np.zeros((1, 1)),
                                                        0.9), 0), "mdp"),
    "goal_option_models-goals": (lambda: og.goal_option_models(ENV, SMALL_OPTIONS, [3, 200]),
                                 "goals"),
    "goal_option_models-goals-2d": (lambda: og.goal_option_models(ENV, SMALL_OPTIONS,
                                                                  np.ones((2, 2), int)),
                                    "goals"),
    "goal_option_models-options": (lambda: og.goal_option_models(ENV, OPTIONS, [3]),
                                   "options"),
    "reference_returns-goals": (lambda: og.reference_returns(ENV, [-1]), "goals"),
    "ExtrinsicPlanner-temperature": (lambda: og.ExtrinsicPlanner(-1.0), "temperature"),
    "ExtrinsicPlanner-string": (lambda: og.ExtrinsicPlanner("cold"), "temperature"),
    "ExtrinsicPlanner-sweeps": (lambda: og.ExtrinsicPlanner(0.01, 0), "num_sweeps"),
    "ExtrinsicPlanner-primitives": (lambda: og.ExtrinsicPlanner(include_primitives="no"),
                                    "include_primitives"),
    "ExtrinsicPlanner-backup": (lambda: og.ExtrinsicPlanner(backup="best"), "backup"),
    "ExtrinsicPlanner-tol": (lambda: og.ExtrinsicPlanner(tol=-1.0), "tol"),
    "ExtrinsicPlanner-sweeps-float": (lambda: og.ExtrinsicPlanner(num_sweeps=2.5), "num_sweeps"),
    "init_params-options": (lambda: og.init_params(0, MODEL, 0, 104), "num_options"),
    "init_params-termination": (lambda: og.init_params(0, MODEL, 2, 104, termination_init=1.0),
                                "termination_init"),
    "init_params-key": (lambda: og.init_params("zero", MODEL, 2, 104), "key"),
    "init_params-model": (lambda: og.init_params(0, "state", 2, 104), "model"),
    "make_options-params": (lambda: og.make_options((1, 2), MODEL, ENV, 0.05), "params"),
    "make_options-termination": (lambda: og.make_options(PARAMS, MODEL, ENV, 0.05,
                                                         termination=1.5), "termination"),
    "make_options-temperature": (lambda: og.make_options(PARAMS, MODEL, ENV, 0.0),
                                 "temperature"),
    "make_options-omega-nan": (lambda: og.make_options(
        og.OptionParams(PARAMS.reward, jnp.full((2, 104), jnp.nan)), MODEL, ENV, 0.05),
        "params.termination"),
    "objective-goals": (lambda: og.option_gradient_objective(
        PARAMS, MODEL, ENV, [-1], temperature_options=0.05, planner=PLANNER), "goals"),
    "objective-diversity": (lambda: og.option_gradient_objective(
        PARAMS, MODEL, ENV, [3], temperature_options=0.05, planner=PLANNER,
        diversity_weight=np.nan), "diversity_weight"),
    "objective-planner": (lambda: og.option_gradient_objective(
        PARAMS, MODEL, ENV, [3], temperature_options=0.05, planner={"temperature": 0.01}),
        "planner"),
    "goal_returns-goals": (lambda: og.goal_returns(SMALL_OPTIONS, ENV, [999], PLANNER),
                           "goals"),
    "goal_returns-planner": (lambda: og.goal_returns(SMALL_OPTIONS, ENV, [3], None), "planner"),
    "hierarchical_return-options": (lambda: og.hierarchical_return(OPTIONS, ENV, PLANNER),
                                    "options"),
    # -- intrinsic rewards -------------------------------------------------------------------
    "planner_return-plan_discount": (lambda: og.planner_return(
        R, og.rewards.tabular(S, A), MDP, 0.1, plan_discount=1.0), "plan_discount"),
    "planner_return-model": (lambda: og.planner_return(R, "tabular", MDP, 0.1), "model"),
    "planner_return-theta": (lambda: og.planner_return(R[:2], og.rewards.tabular(S, A), MDP,
                                                       0.1), "theta"),
    "soft_optimal_return-temperature": (lambda: og.soft_optimal_return(MDP, 0.0),
                                        "temperature"),
    "envelope_gradient-backup": (lambda: og.envelope_gradient(MDP, 0.1, backup="boltzmann"),
                                 "backup"),
    "rewards.tabular-states": (lambda: og.rewards.tabular(0, A), "num_states"),
    "rewards.tabular-scale": (lambda: og.rewards.tabular(S, A, init_scale=-1.0), "init_scale"),
    "rewards.tabular-dtype": (lambda: og.rewards.tabular(S, A, dtype="text"), "dtype"),
    "rewards.state-states": (lambda: og.rewards.state("4"), "num_states"),
    "rewards.state-apply": (lambda: og.rewards.state(S).apply(np.ones(S + 1), MDP), "theta"),
    "rewards.linear-ndim": (lambda: og.rewards.linear(np.ones(S)), "features"),
    "rewards.linear-nan": (lambda: og.rewards.linear(np.full((S, 2), np.nan)), "features"),
    "rewards.linear-apply": (lambda: og.rewards.linear(np.ones((S, 2))).apply(np.ones(3), MDP),
                             "w"),
    "rewards.linear-states": (lambda: og.rewards.linear(np.ones((S + 1, 2))).apply(
        np.ones(2), MDP), "features"),
    "rewards.fit-target": (lambda: og.rewards.fit(og.rewards.tabular(S, A), MDP, R[:2]),
                           "target"),
    # -- option families -------------------------------------------------------------------
    "subgoal_options-range": (lambda: og.discovery.subgoal_options(ENV, [0, 104]), "subgoals"),
    "subgoal_options-empty": (lambda: og.discovery.subgoal_options(ENV, np.zeros(0, int)),
                              "subgoals"),
    "subgoal_options-float": (lambda: og.discovery.subgoal_options(ENV, [1.5]), "subgoals"),
    "subgoal_options-temperature": (lambda: og.discovery.subgoal_options(ENV, [3], -1.0),
                                    "temperature"),
    "random_options-zero": (lambda: og.discovery.random_options(0, ENV, 0), "num_options"),
    "random_options-too-many": (lambda: og.discovery.random_options(0, ENV, 105),
                                "num_options"),
    "random_options-key": (lambda: og.discovery.random_options(1.5, ENV, 2), "key"),
    "eigenoptions-odd": (lambda: og.discovery.eigenoptions(ENV, 3), "num_options"),
    "eigenoptions-one": (lambda: og.discovery.eigenoptions(ENV, 1), "num_options"),
    "potential_options-shape": (lambda: og.discovery.potential_options(ENV, np.ones(104)),
                                "potentials"),
    "potential_options-nan": (lambda: og.discovery.potential_options(
        ENV, np.full((1, 104), np.nan)), "potentials"),
    "laplacian-num": (lambda: og.discovery.laplacian_eigenvectors(ENV, 104), "num"),
    "hallway_options-grid": (lambda: og.discovery.hallway_options(ENV), "grid"),
    # -- grid worlds -----------------------------------------------------------------------
    "from_ascii-type": (lambda: og.gridworld.GridWorld.from_ascii(["w  w"]), "text"),
    "from_ascii-empty": (lambda: og.gridworld.GridWorld.from_ascii("\n\n"), "text"),
    "from_ascii-ragged": (lambda: og.gridworld.GridWorld.from_ascii("www\nw w\nww"), "text"),
    "from_ascii-slip": (lambda: og.gridworld.GridWorld.from_ascii("w  w", slip=2.0), "slip"),
    "from_ascii-slip-string": (lambda: og.gridworld.GridWorld.from_ascii("w  w", slip="a"),
                               "slip"),
    "from_walls-ndim": (lambda: og.gridworld.GridWorld.from_walls(np.zeros((2, 2, 2), bool)),
                        "walls"),
    "from_walls-one-cell": (lambda: og.gridworld.GridWorld.from_walls([[True, False]]),
                            "walls"),
    "from_walls-values": (lambda: og.gridworld.GridWorld.from_walls([[2, 0, 0]]), "walls"),
    "open-height": (lambda: og.gridworld.GridWorld.open(0, 5), "height"),
    "open-width": (lambda: og.gridworld.GridWorld.open(3, "3"), "width"),
    "state-negative": (lambda: GRID.state(-1, 3), "row"),
    "state-wall": (lambda: GRID.state(0, 0), "row"),
    "state-float": (lambda: GRID.state(1.5, 1), "row"),
    "values_to_image-shape": (lambda: GRID.values_to_image(np.ones(3)), "values"),
    "four_rooms-slip": (lambda: og.gridworld.four_rooms(-0.1), "slip"),
    "navigation_mdp-discount": (lambda: og.gridworld.navigation_mdp(GRID, 1.0), "discount"),
    "navigation_mdp-rewards": (lambda: og.gridworld.navigation_mdp(GRID, 0.9,
                                                                   rewards=np.ones((104, 3))),
                               "rewards"),
    "navigation_mdp-sparse": (lambda: og.gridworld.navigation_mdp(GRID, 0.9, sparse="yes"),
                              "sparse"),
    "navigation_mdp-dtype": (lambda: og.gridworld.navigation_mdp(GRID, 0.9, dtype=np.int32),
                             "dtype"),
    "navigation_mdp-grid": (lambda: og.gridworld.navigation_mdp(MDP, 0.9), "grid"),
    "rooms_and_hallways-grid": (lambda: og.gridworld.rooms_and_hallways("map"), "grid"),
    # -- gymnasium ---------------------------------------------------------------------------
    "from_gymnasium-discount": (lambda: og.from_gymnasium(gymnasium.make("FrozenLake-v1"), 1.5),
                                "discount"),
    "from_gymnasium-initial": (lambda: og.from_gymnasium(gymnasium.make("FrozenLake-v1"), 0.9,
                                                         initial=np.ones(3) / 3), "initial"),
    "from_gymnasium-env": (lambda: og.from_gymnasium(gymnasium.make("CartPole-v1"), 0.9),
                           "env"),
    "from_gymnasium-dtype": (lambda: og.from_gymnasium(gymnasium.make("FrozenLake-v1"), 0.9,
                                                       dtype=np.int64), "dtype"),
    "TabularEnv-mdp": (lambda: og.TabularEnv(P), "mdp"),
    "TabularEnv-terminal-shape": (lambda: og.TabularEnv(MDP, terminal=np.zeros(S + 1, bool)),
                                  "terminal"),
    "TabularEnv-terminal-int": (lambda: og.TabularEnv(MDP, terminal=np.zeros(S, int)),
                                "terminal"),
    "TabularEnv-render": (lambda: og.TabularEnv(MDP, render_mode="human"), "render_mode"),
    "OptionsEnv-options": (lambda: og.OptionsEnv(MDP, _other_options()), "options"),
    "OptionsEnv-steps": (lambda: og.OptionsEnv(MDP, OPTIONS, max_option_steps=0),
                         "max_option_steps"),
    # -- plotting and sharding -------------------------------------------------------------------
    "plot_values-shape": (lambda: og.plotting.plot_values(GRID, np.ones(5)), "values"),
    "plot_values-grid": (lambda: og.plotting.plot_values(MDP, np.ones(104)), "grid"),
    "plot_policy-shape": (lambda: og.plotting.plot_policy(GRID, np.ones((104, 3)) / 3),
                          "policy"),
    "plot_policy-rows": (lambda: og.plotting.plot_policy(GRID, np.ones((104, 4))), "policy"),
    "plot_policy-states": (lambda: og.plotting.plot_policy(GRID, np.full((104, 4), 0.25),
                                                           states=[500]), "states"),
    "plot_policy-marks": (lambda: og.plotting.plot_policy(GRID, np.full((104, 4), 0.25),
                                                          marks=[-3]), "marks"),
    "plot_options-states": (lambda: og.plotting.plot_options(GRID, OPTIONS), "options"),
    "plot_options-columns": (lambda: og.plotting.plot_options(GRID, SMALL_OPTIONS, columns=0),
                             "columns"),
    "plot_sweeps-shape": (lambda: og.plotting.plot_sweeps(GRID, {"a": np.ones((3, 5))}, [1]),
                          "rows['a']"),
    "plot_sweeps-index": (lambda: og.plotting.plot_sweeps(GRID, {"a": np.ones((3, 104))}, [5]),
                          "sweeps"),
    "sharded_vmap-fn": (lambda: og.sharding.sharded_vmap("f", jnp.ones(3)), "fn"),
    "sharded_vmap-mesh": (lambda: og.sharding.sharded_vmap(jnp.sin, jnp.ones(3), mesh="cpu"),
                          "mesh"),
    "sharded_vmap-batch": (lambda: og.sharding.sharded_vmap(
        lambda a, b: a, (jnp.ones(3), jnp.ones(4))), "batch"),
    # -- found by the adversarial sweep after the first round ------------------------------------
    "svi-max_iter-int32": (lambda: og.soft_value_iteration(MDP, 0.1, max_iter=2**31), "max_iter"),
    "fixed_point-max_iter-huge": (lambda: og.fixed_point(lambda p, x: x / 2, None, jnp.ones(2),
                                                         max_iter=2**40), "max_iter"),
    "Implicit-max_iter-int32": (lambda: og.solvers.Implicit(max_iter=2**31), "max_iter"),
    "policy_evaluation-max_iter-huge": (lambda: og.policy_evaluation(
        MDP, PI, method="iterative", max_iter=2**40), "max_iter"),
    "planning_sweeps-max_sweeps-huge": (lambda: og.planning_sweeps(MDP, max_sweeps=2**40),
                                        "max_sweeps"),
    "svi-temperature-bool": (lambda: og.soft_value_iteration(MDP, True), "temperature"),
    "svi-tol-bool": (lambda: og.soft_value_iteration(MDP, 0.1, tol=True), "tol"),
    "from_ascii-slip-bool": (lambda: og.gridworld.GridWorld.from_ascii("w  w", slip=True),
                             "slip"),
    "objective-mdp": (lambda: og.option_gradient_objective(
        PARAMS, MODEL, None, [3], temperature_options=0.05, planner=PLANNER), "mdp"),
    "objective-no-goals": (lambda: og.option_gradient_objective(
        PARAMS, MODEL, ENV, np.zeros(0, int), temperature_options=0.05, planner=PLANNER),
        "goals"),
    "init_params-learn_termination": (lambda: og.init_params(0, MODEL, 2, 104,
                                                             learn_termination="no"),
                                      "learn_termination"),
    "from_gymnasium-entry-none": (lambda: og.from_gymnasium(_toy_env(None)), "env"),
    "from_gymnasium-entry-complex": (lambda: og.from_gymnasium(_toy_env((1.0, 0, 1j, False))),
                                     "env"),
    "from_gymnasium-entry-prob-string": (lambda: og.from_gymnasium(
        _toy_env(("x", 0, 0.0, False))), "env"),
    "from_gymnasium-entry-float-state": (lambda: og.from_gymnasium(
        _toy_env((1.0, 1.7, 0.0, False))), "env"),
    "from_gymnasium-entry-string-flag": (lambda: og.from_gymnasium(
        _toy_env((1.0, 0, 0.0, "False"))), "env"),
    "action_mask-range": (lambda: og.OptionsEnv(MDP, OPTIONS).action_mask(999), "state"),
    "action_mask-negative": (lambda: og.OptionsEnv(MDP, OPTIONS).action_mask(-1), "state"),
    "action_mask-float": (lambda: og.OptionsEnv(MDP, OPTIONS).action_mask(1.0), "state"),
    "absorbing_states-mdp": (lambda: og.gym.absorbing_states("m"), "mdp"),
    "TabularEnv-step-bool": (lambda: _reset(og.TabularEnv(MDP)).step(True), "action"),
    "backup-q-nan": (lambda: og.backup(np.full((S, A), np.nan), 0.1), "q"),
    "backup_policy-q-inf": (lambda: og.backup_policy(np.full((S, A), np.inf), 0.1), "q"),
    "jacobian-q-nan": (lambda: og.jacobian_spectral_radius(MDP, np.full((S, A), np.nan), 0.1),
                       "q"),
    "rewards.tabular-apply-nan": (lambda: og.rewards.tabular(S, A).apply(R * np.nan, MDP),
                                  "theta"),
    "planner_return-theta-nan": (lambda: og.planner_return(R * np.nan, og.rewards.tabular(S, A),
                                                           MDP, 0.1), "theta"),
    "smdp-no-options": (lambda: og.smdp_value_iteration(np.zeros((S, 0)), np.zeros((0, S, S)),
                                                        0.1), "rewards"),
    "model_sweeps-no-options": (lambda: og.model_planning_sweeps(
        MDP, np.zeros((S, 0)), np.zeros((0, S, S))), "rewards"),
    "fixed_point-operator": (lambda: og.fixed_point(3, None, jnp.ones(2)), "operator"),
    "shard_batch-mesh": (lambda: og.sharding.shard_batch(jnp.ones(2), mesh="m"), "mesh"),
    "batch_mesh-devices": (lambda: og.sharding.batch_mesh("cpu"), "devices"),
    "open-huge": (lambda: og.gridworld.GridWorld.open(2**40, 2), "height"),
    "astype-int": (lambda: MDP.astype(jnp.int32), "dtype"),
    "plot_values-cmap": (lambda: og.plotting.plot_values(GRID, np.ones(104), cmap="nope"),
                         "cmap"),
    "plot_options-names": (lambda: og.plotting.plot_options(GRID, SMALL_OPTIONS, names=["a"]),
                           "names"),
    "plot_sweeps-empty-rows": (lambda: og.plotting.plot_sweeps(GRID, {}, [1]), "rows"),
    "plot_sweeps-empty-sweeps": (lambda: og.plotting.plot_sweeps(
        GRID, {"a": np.ones((3, 104))}, []), "sweeps"),
    "plot_curves-list": (lambda: og.plotting.plot_curves([1, 2]), "curves"),
    "envelope_gradient-budget": (lambda: og.envelope_gradient(MDP, 0.1, num_sweeps=2),
                                 "num_sweeps"),
    # -- found by the second sweep ---------------------------------------------------------------
    "MDP-discount-bool": (lambda: og.MDP(P, R, False), "discount"),
    "replace-discount-bool": (lambda: MDP.replace(discount=np.array(False)), "discount"),
    "planning_sweeps-epsilon-bool": (lambda: og.planning_sweeps(MDP, epsilon=np.array(True)),
                                     "epsilon"),
    "four_rooms-slip-bool-array": (lambda: og.gridworld.four_rooms(np.array(True)), "slip"),
    "svi-temperature-bool-array": (lambda: og.soft_value_iteration(MDP, np.array(True)),
                                   "temperature"),
    "navigation_mdp-float16": (lambda: og.gridworld.navigation_mdp(GRID, 0.9,
                                                                   dtype=np.float16), "dtype"),
    "backup-max-temperature": (lambda: og.backup(np.zeros((S, A)), "x", "max"), "temperature"),
    "backup-max-temperature-negative": (lambda: og.backup_policy(np.zeros((S, A)), -1.0, "max"),
                                        "temperature"),
    "fixed_point-dtype-mismatch": (lambda: og.fixed_point(
        lambda th, x: 0.5 * x + th, np.float64(1.0), np.zeros(3, np.float32)), "operator"),
    "fixed_point-shape-mismatch": (lambda: og.fixed_point(
        lambda th, x: jnp.concatenate([x, x]), None, jnp.zeros(3)), "operator"),
    "fixed_point-init-nan": (lambda: og.fixed_point(lambda p, x: x / 2, None,
                                                    jnp.full(2, jnp.nan)), "init"),
    "Anderson-memory-huge": (lambda: og.solvers.Anderson(memory=2**20), "memory"),
    "subgoal_options-throw": (lambda: og.discovery.subgoal_options(ENV, [3], 0.1, throw=False),
                              "throw"),
    "sweep_values-uncovered": (lambda: og.sweep_values(MDP, OPTIONS, 2,
                                                       include_primitives=False), "initiation"),
    "sharded_vmap-mesh-axis": (lambda: og.sharding.sharded_vmap(
        jnp.sin, jnp.ones(2), mesh=jax.sharding.Mesh(np.asarray(jax.devices()), ("x",))),
        "mesh"),
    "plot_values-marks-int": (lambda: og.plotting.plot_values(GRID, np.ones(104), marks=3),
                              "marks"),
    "plot_values-ax": (lambda: og.plotting.plot_values(GRID, np.ones(104), ax="x"), "ax"),
    "plot_values-vmin": (lambda: og.plotting.plot_values(GRID, np.ones(104), vmin="x"), "vmin"),
    "plot_policy-color": (lambda: og.plotting.plot_policy(GRID, np.full((104, 4), 0.25),
                                                          color="notacolor"), "color"),
    "plot_options-panel": (lambda: og.plotting.plot_options(GRID, SMALL_OPTIONS,
                                                            panel_size=-1), "panel_size"),
    "plot_curves-strings": (lambda: og.plotting.plot_curves({"a": "abc"}), "curves['a']"),
    "plot_curves-none": (lambda: og.plotting.plot_curves({"a": None}), "curves['a']"),
    "plot_curves-hline": (lambda: og.plotting.plot_curves({"a": [1, 2]}, hlines={"h": "x"}),
                          "hlines['h']"),
    "plot_curves-xy": (lambda: og.plotting.plot_curves({"a": ([1, 2], [1, 2, 3])}),
                       "curves['a']"),
    "plot_sweeps-nan-rows": (lambda: og.plotting.plot_sweeps(
        GRID, {"a": np.full((3, 104), np.nan)}, [0]), "rows['a']"),
    "batch_mesh-duplicates": (lambda: og.sharding.batch_mesh([jax.devices()[0]] * 2),
                              "devices"),
    "random_mdp-batched-key": (lambda: og.random_mdp(jax.random.split(jax.random.key(0), 3),
                                                     3, 2, 1), "key"),
    "plot_sweeps-generator": (lambda: og.plotting.plot_sweeps(
        GRID, {"a": np.ones((3, 104))}, (k for k in [])), "sweeps"),
}


class _ToyEnv(gymnasium.Env):
    """A one-state toy-text environment whose only outcome is `entry`."""

    observation_space = gymnasium.spaces.Discrete(1)
    action_space = gymnasium.spaces.Discrete(1)

    def __init__(self, entry):
        self.P = {0: {0: [entry]}}


def _toy_env(entry):
    return _ToyEnv(entry)


class _Unhashable:
    __hash__ = None

    def __call__(self, x):
        return 2 * x


def _reset(env):
    env.reset(seed=0)
    return env


def test_the_table_is_large():
    assert len(CASES) >= 150


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_input_raises_a_value_error_naming_the_argument(case):
    call, name = CASES[case]
    with pytest.raises(ValueError) as err:
        call()
    assert re.match(re.escape(name) + r"(?=[:,])", str(err.value)), str(err.value)


def test_unknown_keywords_are_type_errors_as_in_python():
    with pytest.raises(TypeError, match="budget"):
        og.ExtrinsicPlanner(budget=3)
    with pytest.raises(TypeError, match="sweeps"):
        og.soft_value_iteration(MDP, 0.1, sweeps=3)


def test_checks_are_skipped_on_tracers():
    """Inside `jit`/`vmap` a value check cannot run; shapes still are checked."""
    @jax.jit
    def plan(scale, temperature):
        mdp = og.MDP(P * scale, R, 0.9)         # rows sum to `scale`: not checked
        return og.soft_value_iteration(mdp, temperature).q

    assert plan(1.0, 0.1).shape == (S, A)
    jax.jit(lambda mu: og.smdp_policy_evaluation(REWARDS_O, TRANSITIONS_O, mu))(MU * 2)
    jax.vmap(lambda g: og.goal_task(ENV, g).rewards.sum())(jnp.arange(3))
    with pytest.raises(ValueError, match="policy"):
        jax.jit(lambda pi: og.policy_evaluation(MDP, pi))(jnp.ones((S + 1, A)))


def test_legal_edge_cases_keep_working():
    one_state = og.MDP(np.ones((1, 1, 1)), [[2]], 0.5)          # integer, list input
    plan = og.soft_value_iteration(one_state, 0.1)
    assert bool(plan.converged) and float(plan.q[0, 0]) == pytest.approx(4.0)
    one_action = og.MDP(P[:, :1], R[:, :1], 0.9)
    np.testing.assert_allclose(og.soft_value_iteration(one_action, 1.0, tol=1e-12).q[:, 0],
                               og.policy_evaluation(one_action, np.ones((S, 1))), rtol=1e-9)
    huge = og.soft_value_iteration(MDP.replace(rewards=R * 1e3), 1e-3)
    assert np.all(np.isfinite(huge.q)) and bool(huge.converged)
    values = og.policy_evaluation(MDP, [[1, 0], [0, 1], [1, 0], [0, 1]])   # integer list
    assert values.shape == (S,)
    og.lambda_model(MDP, PI.tolist(), [1, 0, 1, 0])                        # integer continuation
    grid = og.gridworld.GridWorld.from_walls([[0, 0, 1], [0, 0, 0]])        # 0/1 wall mask
    assert grid.num_states == 5
    windows = og.gridworld.GridWorld.from_ascii(og.gridworld.FOUR_ROOMS.replace("\n", "\r\n"))
    assert windows.num_states == 104 and windows.shape == (13, 13)
    assert og.goal_task(GRID, np.int64(5)).num_states == 104
    assert og.random_mdp(np.uint32(3), 3, 2, 1).num_states == 3
    # numpy scalars are settings like any other number (not traced by the compiled planner)
    plan = og.soft_value_iteration(MDP, 0.1, tol=np.float64(1e-9), max_iter=np.int64(5000),
                                   solver=og.solvers.Anderson(memory=np.int64(3)))
    assert bool(plan.converged)
    assert bool(og.smdp_value_iteration(REWARDS_O, TRANSITIONS_O, 0.1,
                                        max_iter=np.int64(500)).converged)
    # a raw uint32[2] key, numpy or JAX
    og.random_mdp(np.array([0, 3], np.uint32), 3, 2, 1)
    # a map's free rows at the top and bottom are rows, not blank lines
    no_border = og.gridworld.GridWorld.from_ascii("   \n w \n   ")
    assert no_border.shape == (3, 3) and no_border.num_states == 8
    assert og.gridworld.GridWorld.from_ascii("\n  \n  \n").num_states == 4
    # half precision is promoted to float32 (the linear algebra needs 32 bits)
    assert og.MDP(np.full((S, A, S), 1 / S, np.float16), R.astype(np.float16), 0.9).dtype \
        == np.float32
    assert og.Options(np.full((1, S, A), 0.5, np.float16), np.ones((1, S))).policy.dtype \
        == np.float32
    assert og.fixed_point(lambda p, x: x / 2, None, jnp.ones(2, jnp.float16)).value.dtype \
        == jnp.float32
    # a generator of devices, an unhashable function, an empty list of states
    og.sharding.batch_mesh(d for d in jax.devices())
    og.sharding.sharded_vmap(_Unhashable(), jnp.ones(2))
    og.plotting.plot_policy(GRID, np.full((104, 4), 0.25), states=[])
    model = og.rewards.tabular(S, A, init_scale=1.0)
    assert model.init(0).shape == (S, A)                                # an integer seed
