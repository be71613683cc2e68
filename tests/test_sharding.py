"""Sharded batches: the same numbers as one `vmap`, with the work spread over 4 CPU devices."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optiongrad.sharding import batch_mesh, sharded_vmap

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import optiongrad as og
    from optiongrad._src.sharding import _jit_vmap, shard_batch, sharded_vmap

    assert len(jax.devices()) == 4, jax.devices()
    grid = og.gridworld.four_rooms()

    def plan_and_grad(goal, tau):
        task = og.gridworld.goal_task(grid, goal, 0.9)
        def ret(r):
            policy = og.soft_value_iteration(task.replace(rewards=r), tau).policy
            return og.expected_return(task, policy)
        value, grad = jax.value_and_grad(ret)(task.rewards)
        return value, grad

    goals = jnp.arange(10)                      # not a multiple of 4: padded to 12
    value, grad = sharded_vmap(plan_and_grad, goals, 0.1)
    ref_value, ref_grad = jax.jit(jax.vmap(plan_and_grad, (0, None)))(goals, 0.1)
    np.testing.assert_allclose(np.asarray(value), np.asarray(ref_value), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(ref_grad), rtol=1e-10, atol=1e-14)
    sharded = shard_batch(jnp.arange(12))
    assert len(sharded.sharding.device_set) == 4
    out = _jit_vmap(plan_and_grad)(sharded, 0.1)
    assert len(out[0].sharding.device_set) == 4 and not out[0].sharding.is_fully_replicated
    try:
        shard_batch(jnp.ones(3))
        raise AssertionError("no error for a batch of 3 on 4 devices")
    except ValueError as err:
        assert "not a multiple" in str(err)

    # the option-gradient objective with its goal tasks split over the 4 devices (map_blocks):
    # the objective, the held-out return and the gradient (summed over the devices) of one device
    env = og.gridworld.navigation_mdp(grid, 0.9)
    model = og.rewards.state(grid.num_states)
    params = og.init_params(jax.random.key(0), model, 2, grid.num_states)

    def objective(p, mesh):
        return og.option_gradient_objective(
            p, model, env, jnp.arange(0, 104, 7), eval_goals=jnp.arange(3, 104, 13),
            temperature_options=0.05, planner=og.ExtrinsicPlanner(0.01, 3), mesh=mesh)

    step = jax.jit(jax.value_and_grad(objective, has_aux=True), static_argnums=1)
    (one, one_aux), one_grad = step(params, None)
    (four, four_aux), four_grad = step(params, og.sharding.batch_mesh())
    np.testing.assert_allclose(float(four), float(one), rtol=1e-13)
    np.testing.assert_allclose(four_aux["eval_returns"], one_aux["eval_returns"], rtol=1e-13)
    for a, b in zip(jax.tree.leaves(four_grad), jax.tree.leaves(one_grad)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-15)
    print("OK")
""")


def test_sharded_vmap_on_four_cpu_devices_equals_vmap():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("OK")


def test_single_device_path_and_padding():
    mesh = batch_mesh()
    batch = {"x": jnp.arange(5.0), "y": jnp.ones((5, 2))}
    out = sharded_vmap(lambda item, c: item["x"] * c + item["y"].sum(), batch, 3.0, mesh=mesh)
    np.testing.assert_allclose(np.asarray(out), np.arange(5.0) * 3.0 + 2.0)


def test_map_blocks_splits_batches_of_different_sizes_and_sums_gradients():
    """One device here: the blocks are the whole batch; None leaves pass through."""
    from optiongrad.sharding import map_blocks

    def fn(batch, w):
        x, y, none = batch
        return x * w, jnp.sin(y * w), none

    def total(w):
        x, y, _ = map_blocks(fn, (jnp.arange(5.0), jnp.arange(3.0), None), w)
        return x.sum() + y.sum()

    x, y, none = map_blocks(fn, (jnp.arange(5.0), jnp.arange(3.0), None), 2.0)
    np.testing.assert_allclose(np.asarray(x), np.arange(5.0) * 2)
    np.testing.assert_allclose(np.asarray(y), np.sin(np.arange(3.0) * 2))
    assert none is None
    np.testing.assert_allclose(jax.grad(total)(2.0), 10.0 + np.sum(np.arange(3.0) * np.cos(
        np.arange(3.0) * 2)))
    with pytest.raises(ValueError, match="batch: every leaf"):
        map_blocks(fn, (jnp.float32(1.0), jnp.ones(2), None), 2.0)
    with pytest.raises(ValueError, match="mesh"):
        map_blocks(fn, (jnp.ones(2), jnp.ones(2), None), 2.0, mesh="all")


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="batch: every leaf"):
        sharded_vmap(lambda item: item, {"x": jnp.ones(3), "y": jnp.ones(4)})
    with pytest.raises(ValueError, match="batch: every leaf"):
        sharded_vmap(lambda item: item, jnp.float32(1.0))
    with pytest.raises(ValueError, match="devices"):
        batch_mesh([])
