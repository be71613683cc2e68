"""Batched dense solves: the library's path under each JAX against JAX 0.9's batched call.

    python benchmarks/linalg.py [--repeats 30] [--json out.json]

Every dense solve of optiongrad goes through `optiongrad._src.linalg`, which never makes a
LAPACK call that jaxlib 0.10 would split over its thread pool (such calls can deadlock: README,
"Known problems"); under `vmap` it makes one batched call per chunk of small matrices and one
call per large matrix. This times, alternately in one process, the systems the option gradient
solves — 104 systems `(I − γ P_π) x = b` of 104 × 104 (four rooms, one per goal, γ = 0.99) and
a thousand 12 × 12 ones — by `jax.vmap(jnp.linalg.solve)` (one batched call) and by
`jax.vmap(optiongrad._src.linalg.solve)`, forward and with the gradient of `Σ x` with respect
to the matrices and right-hand sides.

The target compares versions, which cannot share a process: run the script under JAX 0.9.2
and under 0.10 into the same `--json` file, alternately and several times (one run is a
*round*), for example

    export PYTHONPATH=src
    for i in 1 2 3 4; do .venv-oldest/bin/python benchmarks/linalg.py --json l.json
                         .venv/bin/python benchmarks/linalg.py --json l.json; done

Each run prints its own times, then the summary of every round in the file: per JAX version,
case and runner the median over rounds, and its ratio to the median of 0.9's batched call.
With jaxlib 0.10 the batched call itself can deadlock, so runs there time the library's path
only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(__file__))

import optiongrad as og  # noqa: E402
from common import machine  # noqa: E402
from optiongrad._src import linalg  # noqa: E402
from solvers import alternate  # noqa: E402

CASES = ("104 systems of 104 × 104 (four rooms)", "1000 systems of 12 × 12")
BATCHED = "jnp.linalg.solve (one batched call)"
LIBRARY = "optiongrad linalg.solve"


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


def batched_calls_are_safe() -> bool:
    """jaxlib before 0.10 runs a batched LAPACK call on its calling thread; from 0.10 on it may
    split the call over the intra-op pool and deadlock (the value + gradient program makes two
    such calls), so the batched runners are left out there."""
    return tuple(int(x) for x in jax.__version__.split(".")[:2]) < (0, 10)


def runners(a, b) -> dict:
    """`{(runner, mode): thunk}`, each thunk a compiled call on `a, b`."""
    fns = {}
    solvers = {LIBRARY: linalg.solve}
    if batched_calls_are_safe():
        solvers[BATCHED] = jnp.linalg.solve
    for name, solve in solvers.items():
        def total(a, b, solve=solve):
            return jnp.sum(jax.vmap(solve)(a, b))
        forward = jax.jit(jax.vmap(solve)).lower(a, b).compile()
        gradient = jax.jit(jax.value_and_grad(total, (0, 1))).lower(a, b).compile()
        fns[name, "forward"] = lambda f=forward: f(a, b)
        fns[name, "value + gradient"] = lambda f=gradient: f(a, b)
    return fns


def summary(rows: list) -> list[str]:
    """Per (JAX, case, runner, mode): the median over rounds and its ratio to the median of
    JAX 0.9's batched call in the same case and mode (`nan` until a 0.9 round is in)."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["jax"], r["case"], r["runner"], r["mode"]), []).append(r["ms"])
    base = {(case, mode): statistics.median(ms) for (version, case, runner, mode), ms
            in groups.items() if runner == BATCHED and version.startswith("0.9")}
    lines = ["| JAX | systems | runner | mode | rounds | median ms | ÷ 0.9's batched call |",
             "|---|---|---|---|---|---|---|"]
    for (version, case, runner, mode), ms in sorted(groups.items(),
                                                    key=lambda kv: (kv[0][1], kv[0][3])):
        median = statistics.median(ms)
        ratio = median / base.get((case, mode), float("nan"))
        lines.append(f"| {version} | {case} | {runner} | {mode} | {len(ms)} | {median:.2f} | "
                     f"{ratio:.2f}× |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", default=None, help="add this round to this file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        raise ValueError(f"--repeats: expected at least 1, got {args.repeats}")
    print(machine(), flush=True)
    old = json.load(open(args.json)) if args.json and os.path.exists(args.json) else []
    rows = []
    for case, (a, b) in zip(CASES, (four_rooms_systems(), systems(1000, 12))):
        for (runner, mode), t in alternate(runners(a, b), args.repeats).items():
            rows.append({"jax": jax.__version__, "case": case, "runner": runner,
                         "mode": mode, "ms": t * 1e3})
            print(f"JAX {jax.__version__} | {case} | {runner} | {mode} | {t * 1e3:.2f} ms",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(old + rows, f, indent=1)
    print("\n".join(summary(old + rows)))


if __name__ == "__main__":
    main()
