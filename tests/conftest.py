"""Shared test set-up: float64 available everywhere; float32 is asked for explicitly; one
compilation cache for the whole run.

Many tests compile the same programs (the four-rooms pipeline in this process and in the
command-line runs it launches, the goal tasks' planners, …), in the two pytest-xdist workers
and in the processes the tests start. JAX's persistent compilation cache, in one temporary
directory per run that every one of them inherits through the environment, compiles each
program once (a clean-clone run of the suite went from 634 s to 531 s on 2 cores). The
directory is made by the first process to load this file (pytest's controller) and removed
when its session ends; a `JAX_COMPILATION_CACHE_DIR` set by the user is left as it is.
"""

import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="optiongrad-tests-jax-")
    os.environ["OPTIONGRAD_TESTS_OWN_CACHE"] = str(os.getpid())
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")

import jax  # noqa: E402  (reads the cache settings above when it is imported)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

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


def pytest_sessionfinish(session, exitstatus):
    """The process that made the run's compilation cache removes it."""
    if os.environ.get("OPTIONGRAD_TESTS_OWN_CACHE") == str(os.getpid()):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
