"""Batched dense solves: the library's unbatched-LAPACK path against JAX's batched call.

    python benchmarks/linalg.py [--repeats 15] [--json out.json]

Every dense solve of optiongrad goes through `optiongrad._src.linalg`, which makes unbatched
LAPACK calls only (under `vmap`, a loop over the matrices), because jaxlib 0.10's batched LAPACK
kernels can deadlock (README, "Known problems"). This times, alternately in one process, the
systems the option gradient solves — 104 systems `(I − γ P_π) x = b` of 104 × 104 (four rooms,
one per goal, γ = 0.99) and a thousand 12 × 12 ones — by `jax.vmap(jnp.linalg.solve)` (one
batched call) and by `jax.vmap(optiongrad._src.linalg.solve)`, forward and with the gradient of
`Σ x` with respect to the matrices and right-hand sides. Run it with JAX 0.9 first and then with
0.10 into the same `--json` file: with jaxlib 0.10 the batched call itself can deadlock, so that
run times the library's path only and divides by the batched call's time from the 0.9 run.
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


BATCHED = ("jnp.linalg.solve (batched call), forward", "jnp.linalg.solve, value + gradient")


def batched_calls_are_safe() -> bool:
    """jaxlib before 0.10 runs a batched LAPACK call on its calling thread; from 0.10 on it may
    split the call over the intra-op pool and deadlock (the value + gradient program makes two
    such calls), so the batched runners are left out there and the ratios refer to the batched
    call's times measured with the older JAX (`--json` file)."""
    return tuple(int(x) for x in jax.__version__.split(".")[:2]) < (0, 10)


def runners(a, b):
    def total(solve):
        return lambda a, b: jnp.sum(jax.vmap(solve)(a, b))
    fns = {BATCHED[0]: jax.jit(lambda: jax.vmap(jnp.linalg.solve)(a, b)),
           "optiongrad linalg.solve (unbatched calls), forward":
               jax.jit(lambda: jax.vmap(linalg.solve)(a, b)),
           BATCHED[1]: jax.jit(lambda: jax.value_and_grad(total(jnp.linalg.solve), (0, 1))(a, b)),
           "optiongrad linalg.solve, value + gradient":
               jax.jit(lambda: jax.value_and_grad(total(linalg.solve), (0, 1))(a, b))}
    if not batched_calls_are_safe():
        fns = {name: fn for name, fn in fns.items() if name not in BATCHED}
    return fns


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", default=None, help="append the measurements to this file")
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    old = json.load(open(args.json)) if args.json and os.path.exists(args.json) else []
    rows = []
    for case, (a, b) in (("104 systems of 104 × 104 (four rooms)", four_rooms_systems()),
                         ("1000 systems of 12 × 12", systems(1000, 12))):
        seconds = alternate(runners(a, b), args.repeats)
        earlier = {r["runner"]: r["ms"] / 1e3 for r in old if r["case"] == case}
        batched = {name: seconds.get(name, earlier.get(name, float("nan"))) for name in BATCHED}
        base = {"forward": batched[BATCHED[0]], "gradient": batched[BATCHED[1]]}
        for name, t in seconds.items():
            ratio = t / base["gradient" if "gradient" in name else "forward"]
            rows.append({"jax": jax.__version__, "case": case, "runner": name,
                         "ms": t * 1e3, "ratio": ratio})
            print(f"JAX {jax.__version__} | {case} | {name} | {t * 1e3:.2f} ms | "
                  f"{ratio:.2f}×", flush=True)
    if args.json:
        json.dump(old + rows, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
