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
