"""Batches of tasks across devices: `sharded_vmap(fn, batch, *args)` is `jit(vmap(fn))` with
the batch axis split over a 1-D device mesh (`batch_mesh`, `shard_batch`)."""

from optiongrad._src.sharding import AXIS, batch_mesh, shard_batch, sharded_vmap

__all__ = ["AXIS", "batch_mesh", "shard_batch", "sharded_vmap"]
