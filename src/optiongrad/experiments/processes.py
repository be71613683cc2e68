"""Many processes, one result: the experiments on JAX's multi-process runtime.

`initialize(coordinator, num_processes, process_id)` starts JAX's distributed runtime
(`jax.distributed.initialize`) from the command line's `--coordinator HOST:PORT
--num-processes N --process-id I`; with none of them, JAX's own cluster detection (Slurm, Open
MPI, Cloud TPU, …: what `jax.distributed.initialize()` does without arguments) decides, and a
single process (no cluster, or a cluster of one task) runs as before, without the runtime.

With `N` processes every process runs the same program: `jax.devices()` then lists the devices
of all of them, the training step splits its goal tasks over that global mesh (`goal_mesh`,
`og.option_gradient_objective(..., mesh=...)`) and the gradient is all-reduced across
processes, so every process holds the same parameters after every step. Process 0 alone
reads and writes the output directory (`is_writer`); what it decides before the first step
(the output directory's checks, the checkpoint it resumes) reaches the others by
`first_process` and `broadcast`, so that a refusal stops every process instead of leaving them
waiting in a collective.

Cross-process collectives on CPU need a CPU collectives implementation: JAX 0.9's default
`jax_cpu_collectives_implementation` is "gloo" (over TCP, nothing to install), which this
module relies on; "mpi" needs an MPI library (`MPITRAMPOLINE_LIB`).
"""

from __future__ import annotations

from typing import Callable, Optional, TypeVar

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from optiongrad._src.sharding import batch_mesh

T = TypeVar("T")
FLAGS = {"coordinator": "--coordinator", "num_processes": "--num-processes",
         "process_id": "--process-id"}


def parse_coordinator(text: str) -> tuple[str, int]:
    """`"HOST:PORT"` → `(host, port)` (an IPv6 host in brackets: `[::1]:1234`); raises
    `ValueError` naming `--coordinator`."""
    host, colon, port = str(text).rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--coordinator: expected HOST:PORT with a port in 1-65535 (e.g. "
                         f"node01:12345), got {text!r}")
    return host, int(port)


def check(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
          process_id: Optional[int] = None) -> None:
    r"""Raise `ValueError` naming the flag unless the three settings are given together and
    consistent (a coordinator `HOST:PORT`, $N \ge 1$ processes, $0 \le I < N$), or none is given,
    or only `num_processes = 1`."""
    given = {k: v for k, v in (("coordinator", coordinator), ("num_processes", num_processes),
                               ("process_id", process_id)) if v is not None}
    if num_processes is not None and (isinstance(num_processes, bool)
                                      or not isinstance(num_processes, int)
                                      or num_processes < 1):
        raise ValueError(f"--num-processes: expected an integer >= 1, got {num_processes!r}")
    if process_id is not None and (isinstance(process_id, bool)
                                   or not isinstance(process_id, int) or process_id < 0):
        raise ValueError(f"--process-id: expected an integer >= 0, got {process_id!r}")
    if coordinator is not None:
        parse_coordinator(coordinator)
    if not given or set(given) == {"num_processes"} and num_processes == 1:
        return
    for name in FLAGS:
        if name not in given:
            others = ", ".join(FLAGS[k] for k in given)
            raise ValueError(f"{FLAGS[name]}: required with {others} (give --coordinator, "
                             "--num-processes and --process-id together, or none of them "
                             "to let JAX detect a cluster such as Slurm)")
    if process_id >= num_processes:
        raise ValueError(f"--process-id: expected 0 <= I < --num-processes = {num_processes}, "
                         f"got {process_id}")


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> int:
    """Start JAX's multi-process runtime when the settings (or a detected cluster) ask for
    more than one process; returns the number of processes. Call it before any JAX
    computation. Raises `ValueError` naming the flag for bad settings (`check`)."""
    check(coordinator, num_processes, process_id)
    if num_processes == 1:
        return 1
    if coordinator is None:
        num_processes = _detected_processes()
        if num_processes is None or num_processes <= 1:
            return 1
        jax.distributed.initialize()        # JAX fills in everything from the cluster
    else:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    return jax.process_count()


def _detected_processes() -> Optional[int]:
    """The number of processes of the cluster JAX detects (None: no cluster), by the detection
    `jax.distributed.initialize()` runs without arguments."""
    try:
        from jax._src.clusters import ClusterEnv
    except ImportError:  # a JAX without it: no detection
        return None
    _, count, _, _ = ClusterEnv.auto_detect_unset_distributed_params(
        None, None, None, None, None, None)
    return count


def is_writer() -> bool:
    """Whether this process writes the outputs (process 0)."""
    return jax.process_index() == 0


def first_process(fn: Callable[[], T], what: str) -> Optional[T]:
    """`fn()` on process 0 only (None elsewhere). With several processes, the others learn
    whether it raised and then raise a `RuntimeError` naming `what`, so that an error on
    process 0 (e.g. an output directory it refuses) stops them all."""
    error, result = None, None
    if is_writer():
        try:
            result = fn()
        except Exception as err:  # re-raised below, after the others are told
            error = err
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        failed = bool(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
        if failed and not is_writer():
            raise RuntimeError(f"process 0 stopped ({what}); its output says why")
    if error is not None:
        raise error
    return result


def broadcast(tree: T) -> T:
    """Process 0's value of `tree` on every process (itself with one process)."""
    if jax.process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.broadcast_one_to_all(tree)


def goal_mesh() -> Optional[Mesh]:
    """The mesh the training step splits its goals over: every device of every process
    (`og.sharding.batch_mesh()`), or None with a single device (the step as it always was)."""
    return batch_mesh() if jax.device_count() > 1 else None


def replicate(tree: T, mesh: Optional[Mesh]) -> T:
    """`tree` placed whole on every device of `mesh` (unchanged when `mesh` is None), so
    that a step compiled for the mesh sees the same placement at every call."""
    if mesh is None:
        return tree
    whole = NamedSharding(mesh, PartitionSpec())

    def put(x):
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
            # a key array is placed by its data (device_put refuses keys across processes)
            return jax.random.wrap_key_data(put(jax.random.key_data(x)),
                                            impl=jax.random.key_impl(x))
        return jax.device_put(x, whole)

    return jax.tree.map(put, tree)
