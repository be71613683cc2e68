"""Batches of tasks across devices: one `vmap`, its batch axis sharded over a device mesh.

A sweep over goals, seeds, reward tables or temperatures is a pytree of arrays with a leading
batch axis, mapped by one `jax.vmap`. `shard_batch` places that axis across all (or the given)
JAX devices with a 1-D `jax.sharding.Mesh` (`NamedSharding(mesh, P("batch"))`); a `jax.jit`
of the `vmap`ped function then runs each device's slice of the batch on that device (XLA's
SPMD partitioner; no code change between one CPU, several CPU devices and a multi-GPU host).
`sharded_vmap` does the whole thing, padding the batch to a multiple of the number of devices
and dropping the padding from the results.

`map_blocks` is the same split inside a traced function (under `jax.jit` and `jax.grad`): the
batch's items are divided into one block per device by `jax.shard_map`, the broadcast
arguments are replicated, and the gradient with respect to a broadcast argument is the sum of
the devices' contributions (shard_map's transpose of a replicated input is an all-reduce). That
is how the option-gradient objective spreads its goal tasks (`option_gradient_objective(...,
mesh=...)`).

With several processes (`jax.distributed.initialize`, one or more devices each), `jax.devices()`
lists every process's devices, so `batch_mesh()` is the global mesh: the same program on every
process computes its own devices' blocks, and the all-reduces cross processes (on CPU through
gloo, JAX's default `jax_cpu_collectives_implementation`). Every process must pass the same
batch and arguments.

On a CPU-only machine, `XLA_FLAGS=--xla_force_host_platform_device_count=4` (set before JAX is
imported) makes 4 CPU devices, which is how the tests exercise this module.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any
AXIS = "batch"


def batch_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
    """A 1-D mesh named "batch" over `devices` (default: all visible devices)."""
    if devices is not None:
        if isinstance(devices, str):
            raise ValueError(f"devices: expected a sequence of jax.Device, got {devices!r:.60}")
        devices = list(devices)
        if not all(isinstance(d, jax.Device) for d in devices):
            raise ValueError(f"devices: expected a sequence of jax.Device, got {devices!r:.60}")
        if len(set(devices)) != len(devices):
            raise ValueError("devices: a device appears more than once")
    devices = jax.devices() if devices is None else devices
    if not devices:
        raise ValueError("devices: need at least one device")
    return Mesh(np.asarray(devices), (AXIS,))


def _batch_size(tree: PyTree, name: str) -> int:
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(tree)}
    if not sizes or None in sizes or len(sizes) != 1:
        raise ValueError(f"{name}: every leaf needs the same leading batch axis, got leading "
                         f"sizes {sorted(str(s) for s in sizes)}")
    return sizes.pop()


def shard_batch(tree: PyTree, mesh: Optional[Mesh] = None) -> PyTree:
    """Place every leaf of `tree` with its leading axis split across `mesh` (default:
    `batch_mesh()`). The batch size must be a multiple of the number of devices."""
    mesh = _check_mesh(mesh)
    size = _batch_size(tree, "tree")
    if size % mesh.size:
        raise ValueError(f"tree: batch size {size} is not a multiple of the {mesh.size} "
                         f"devices (pad it, or use sharded_vmap, which pads)")

    def put(x):
        spec = PartitionSpec(AXIS, *([None] * (np.ndim(x) - 1)))
        return jax.device_put(x, NamedSharding(mesh, spec))

    return jax.tree.map(put, tree)


def sharded_vmap(fn: Callable, batch: PyTree, *args, mesh: Optional[Mesh] = None) -> PyTree:
    """`jax.jit(jax.vmap(fn))(batch, *args)` with `batch` sharded across the devices.

    Args:
      fn: `fn(item, *args)` for one element of the batch; pure and jit-able.
      batch: pytree whose leaves share a leading batch axis of size `T`.
      *args: broadcast (unbatched) arguments, replicated on every device.
      mesh: the device mesh (default: all visible devices).

    Returns:
      `fn`'s outputs stacked over the batch (leading axis `T`), as `jax.vmap` would give.
      The batch is padded to a multiple of the number of devices by repeating its last
      element; the padding is computed and dropped.
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a function, got {type(fn).__name__}")
    mesh = _check_mesh(mesh)
    size = _batch_size(batch, "batch")
    out = _jit_vmap(fn)(shard_batch(pad_batch(batch, mesh.size), mesh), *args)
    out = jax.tree.map(lambda x: x[:size], out)
    if not mesh.is_multi_process:
        return out
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(out, tiled=True)


def pad_batch(tree: PyTree, multiple: int) -> PyTree:
    """Each leaf of `tree` with its leading axis padded to a multiple of `multiple` by repeating
    its last element (leaves are padded independently; a multiple already is unchanged)."""
    def pad(x):
        size = jnp.shape(x)[0]
        extra = -(-size // multiple) * multiple - size
        return x if not extra else jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)])

    return jax.tree.map(pad, tree)


def map_blocks(fn: Callable, batch: PyTree, *args, mesh: Optional[Mesh] = None) -> PyTree:
    """`fn(batch, *args)` computed block by block, one block of the batch per device of `mesh`;
    usable inside `jax.jit` and `jax.grad`.

    Args:
      fn: `fn(block, *args)` maps a block of `batch` (every leaf cut to the same items, a
        leading axis of the block's size) to outputs of the same pytree structure as `batch`,
        each output leaf a per-item result of its batch leaf (leading axis the size of that
        leaf's block). Items must be independent: `fn` of a block is the block of `fn`.
      batch: a pytree of arrays with leading item axes (the leaves may have different sizes:
        e.g. training goals and held-out goals); None leaves are left out.
      *args: broadcast arguments, replicated on every device; the gradient with respect to
        them sums the blocks' contributions across devices (and processes).
      mesh: the device mesh (default: `batch_mesh()`, every device of every process).

    Returns:
      `fn`'s outputs for the whole batch, as `fn(batch, *args)` would give them (to rounding):
      each leaf is padded to a multiple of the number of devices `D` by repeating its last
      item, split into `D` equal blocks by `jax.shard_map`, and the padding is dropped.
    """
    if not callable(fn):
        raise ValueError(f"fn: expected a function, got {type(fn).__name__}")
    mesh = _check_mesh(mesh)
    leaves = jax.tree.leaves(batch)
    if not leaves or not all(jnp.ndim(x) for x in leaves):
        raise ValueError("batch: every leaf needs a leading item axis")
    sizes = jax.tree.map(lambda x: jnp.shape(x)[0], batch)
    blocks = jax.tree.map(lambda _: PartitionSpec(AXIS), batch)
    mapped = jax.shard_map(fn, mesh=mesh, in_specs=(blocks, *[PartitionSpec()] * len(args)),
                           out_specs=blocks, check_vma=False)
    out = mapped(pad_batch(batch, mesh.size), *args)
    return jax.tree.map(lambda x, size: x[:size], out, sizes)


def _check_mesh(mesh: Optional[Mesh]) -> Mesh:
    """`mesh`, or `batch_mesh()` when None; it must have the batch axis."""
    mesh = batch_mesh() if mesh is None else mesh
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh: expected a jax.sharding.Mesh, got {type(mesh).__name__}")
    if AXIS not in mesh.axis_names:
        raise ValueError(f"mesh: expected an axis named {AXIS!r}, got {mesh.axis_names}")
    return mesh


def _jit_vmap(fn: Callable) -> Callable:
    """One compiled `vmap` per `fn` (a new `fn` object, e.g. a fresh lambda, recompiles);
    unhashable callables are compiled each time."""
    try:
        return _cached_jit_vmap(fn)
    except TypeError:
        return _compile_vmap(fn)


def _compile_vmap(fn: Callable) -> Callable:
    return jax.jit(lambda batch, *args: jax.vmap(lambda item: fn(item, *args))(batch))


_cached_jit_vmap = functools.lru_cache(maxsize=64)(_compile_vmap)
