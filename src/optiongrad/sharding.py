"""Batches of tasks across devices: `sharded_vmap(fn, batch, *args)` is `jit(vmap(fn))` with
the batch axis split over a 1-D device mesh (`batch_mesh`, `shard_batch`); `map_blocks` is the
same split inside a traced function (`jax.shard_map`), with the gradient of broadcast arguments
summed over devices and processes."""

from optiongrad._src.sharding import (
    AXIS,
    batch_mesh,
    map_blocks,
    pad_batch,
    shard_batch,
    sharded_vmap,
)

__all__ = ["AXIS", "batch_mesh", "map_blocks", "pad_batch", "shard_batch", "sharded_vmap"]
