"""Batched dense solves: the library's unbatched-LAPACK path against JAX's batched call.

    python benchmarks/linalg.py [--repeats 15] [--json out.json]

Every dense solve of optiongrad goes through `optiongrad._src.linalg`, which makes unbatched
LAPACK calls only (under `vmap`, a loop over the matrices), because jaxlib 0.10's batched LAPACK
kernels can deadlock (README, "Known problems"). This times, alternately in one process, the
systems the option gradient solves — 104 systems `(I − γ P_π) x = b` of 104 × 104 (four rooms,
one per goal, γ = 0.99) and a thousand 12 × 12 ones — by `jax.vmap(jnp.linalg.solve)` (one
batched call) and by `jax.vmap(optiongrad._src.linalg.solve)`, forward and with the gradient of
`Σ x` with respect to the matrices and right-hand sides. Run it once with each JAX version to
compare them; the ratio column is the library's time over the batched call's in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(__file__))

import optiongrad as og  # noqa: E402
from common import machine  # noqa: E402
from optiongrad._src import linalg  # noqa: E402
from solvers import alternate  # noqa: E402


def systems(count: int, size: int, seed: int = 0):
    """`count` diagonally dominant systems `I − 0.99 P` with random stochastic `P (size, size)`
    and right-hand sides, float32."""
    key_p, key_b = jax.random.split(jax.random.key(seed))
    p = jax.nn.softmax(4 * jax.random.normal(key_p, (count, size, size)), axis=-1)
    return (jnp.eye(size) - 0.99 * p).astype(jnp.float32), jax.random.normal(
        key_b, (count, size), jnp.float32)


def four_rooms_systems():
    """The 104 goal tasks' `I − γ P_π` of four rooms under the uniform policy, float32."""
    grid = og.gridworld.four_rooms()
    p = jax.vmap(lambda g: og.gridworld.goal_task(grid, g, 0.99, dtype=jnp.float32)
                 .transitions.mean(axis=1))(jnp.arange(grid.num_states))
    return jnp.eye(grid.num_states) - 0.99 * p, jnp.ones(p.shape[:2], jnp.float32)


def runners(a, b):
    def total(solve):
        return lambda a, b: jnp.sum(jax.vmap(solve)(a, b))
    return {"jnp.linalg.solve (batched call), forward":
                jax.jit(lambda: jax.vmap(jnp.linalg.solve)(a, b)),
            "optiongrad linalg.solve (unbatched calls), forward":
                jax.jit(lambda: jax.vmap(linalg.solve)(a, b)),
            "jnp.linalg.solve, value + gradient":
                jax.jit(lambda: jax.value_and_grad(total(jnp.linalg.solve), (0, 1))(a, b)),
            "optiongrad linalg.solve, value + gradient":
                jax.jit(lambda: jax.value_and_grad(total(linalg.solve), (0, 1))(a, b))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", default=None, help="append the measurements to this file")
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    rows = []
    for case, (a, b) in (("104 systems of 104 × 104 (four rooms)", four_rooms_systems()),
                         ("1000 systems of 12 × 12", systems(1000, 12))):
        seconds = alternate(runners(a, b), args.repeats)
        base = {"forward": seconds["jnp.linalg.solve (batched call), forward"],
                "gradient": seconds["jnp.linalg.solve, value + gradient"]}
        for name, t in seconds.items():
            ratio = t / base["gradient" if "gradient" in name else "forward"]
            rows.append({"jax": jax.__version__, "case": case, "runner": name,
                         "ms": t * 1e3, "ratio": ratio})
            print(f"JAX {jax.__version__} | {case} | {name} | {t * 1e3:.2f} ms | "
                  f"{ratio:.2f}×", flush=True)
    if args.json:
        old = json.load(open(args.json)) if os.path.exists(args.json) else []
        json.dump(old + rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
