"""Shared test set-up: float64 available everywhere; float32 is asked for explicitly."""

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

DTYPES = [np.float32, np.float64]


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return request.param


@pytest.fixture(params=[False, True], ids=["eager", "jit"])
def maybe_jit(request):
    """Identity or `jax.jit`, to run a test with and without compilation of the caller."""
    return jax.jit if request.param else (lambda f: f)


def tolerance(dtype, f64=1e-9, f32=2e-4):
    return f64 if np.dtype(dtype) == np.float64 else f32


# Heavier parametrisations whose siblings stay in the default run (-m slow runs them): the
# default suite must stay under 10 minutes on 2 cores (870 tests took 748 s with them).
SLOW_IDS = (
    "tests/test_goal_models.py::test_the_compact_layout_equals_the_full_one[float32-0.2-True]",
    "tests/test_goal_models.py::test_returns_and_gradients_equal_the_dense_path[float64-None-False]",
    "tests/test_goal_sweeps.py::test_objective_and_gradient_equal_the_factored_method[float64-True-3]",
    "tests/test_goal_sweeps.py::test_objective_and_gradient_equal_the_factored_method[float32-False-None]",
    "tests/test_goal_values.py::test_returns_and_gradients_equal_the_dense_evaluation[float64-False-2-True]",
    "tests/test_option_gradient.py::test_gradient_matches_central_finite_differences[None-linear-True]",
    "tests/test_goal_sweeps.py::test_sweep_returns_equal_the_dense_per_goal_reference[float64-0.0-False-3-False]",
    "tests/test_goal_models.py::test_terminating_options_are_modelled_without_a_solve[False]",
    "tests/test_newton.py::test_newton_gradient_equals_value_iteration_gradient_under_vmap[eager]",
    "tests/test_goal_sweeps.py::test_sweep_returns_equal_the_dense_per_goal_reference[float32-0.2-True-3-True]",
    "tests/test_goal_sweeps.py::test_goal_batches_give_the_same_returns[2]",
    "tests/test_option_gradient.py::test_gradient_finite_over_temperatures_and_budgets[0.0001-N3]",
    "tests/test_option_gradient.py::test_gradient_finite_over_temperatures_and_budgets[10.0-N1]",
    "tests/test_option_gradient.py::test_gradient_finite_over_temperatures_and_budgets[0.01-N3]",
    "tests/test_gym.py::test_tabular_env_mean_return_is_the_value[float32]",
    "tests/test_option_gradient.py::test_goal_returns_equal_reference_hierarchical_return[True-2]",
    "tests/test_option_gradient.py::test_goal_returns_equal_reference_hierarchical_return[False-2]",
    "tests/test_option_gradient.py::test_gradient_matches_central_finite_differences[3-state-True]",
    "tests/test_goal_sweeps.py::test_sweep_returns_equal_the_dense_per_goal_reference[float64-0.2-True-3-True]",
    "tests/test_goal_models.py::test_values_in_chunks_equal_dense_evaluation[5]",
    "tests/test_goal_models.py::test_values_in_chunks_equal_dense_evaluation[7]",
    "tests/test_goal_models.py::test_values_in_chunks_equal_dense_evaluation[2]",
    "tests/test_goal_models.py::test_factored_models_equal_each_goal_tasks_option_models[float64-0.0-False-False]",
    "tests/test_option_gradient.py::test_goal_returns_equal_reference_hierarchical_return[False-None]",
    "tests/test_four_rooms.py::test_held_out_numbers_recomputed_from_options_npz[hallway]",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_IDS:
            item.add_marker(pytest.mark.slow)
