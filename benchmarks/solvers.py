"""Soft value iteration against the simplest loop anyone would write, side by side in one process:

    python benchmarks/solvers.py [--readme README.md] [--side 300] [--repeats 5]

The task is a goal in the far corner of an open `side × side` grid (sparse transitions,
float32, γ = 0.99, tol 1e-5 — the setting of the solvers issue). "plain loop" is a
`jax.lax.while_loop` of soft Bellman sweeps `Q ← r + γ P m_τ(Q)` until `‖ΔQ‖_∞ ≤ tol`, written
here without optiongrad; against it, `og.soft_value_iteration` with plain sweeps
(`og.solvers.FixedPointIteration()`) and with its default solver (`og.solvers.Auto()`, which
picks `GaussSeidel` for this sparse task). The three are timed alternately (median of `--repeats` after
compilation); ratios are the plain loop's time over each. "value + gradient" differentiates
`s0 · max_a Q*` (the implicit adjoint) with respect to the reward table. "sweeps" counts plain sweeps (for the default, those after its warm start,
and the Gauss–Seidel sweeps of the warm start). "max abs ΔQ" is the
largest difference to the plain loop's `Q` (each stops within `γ tol / (1 − γ)` of the fixed
point, so up to about 1e-3 here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import optiongrad as og  # noqa: E402
from common import block, machine, markdown_table, report  # noqa: E402
from optiongrad._src import linalg  # noqa: E402
from optiongrad._src.gauss_seidel import gauss_seidel_q, levels  # noqa: E402

TOL = 1e-5
DEFAULT = "optiongrad, default (GaussSeidel)"


def grid_task(side: int):
    grid = og.gridworld.GridWorld.open(side, side)
    return og.gridworld.goal_task(grid, grid.num_states - 1, 0.99, sparse=True,
                                  dtype=jnp.float32)


def plain_loop(mdp, tau: float, cap: int = 1_000_000):
    """The baseline: a while_loop of soft Bellman sweeps on the successor table (at most `cap`)."""
    nxt, probs = mdp.transitions.next_states, mdp.transitions.probs

    def backup(q):
        if tau == 0:
            return jnp.max(q, axis=-1)
        return tau * jax.nn.logsumexp(q / tau, axis=-1)

    def sweep(q):
        return mdp.rewards + mdp.discount * jnp.sum(probs * backup(q)[nxt], axis=-1)

    def cond(carry):
        return (carry[2] > TOL) & (carry[1] < cap)

    def body(carry):
        q, k, _ = carry
        new = sweep(q)
        return new, k + 1, jnp.max(jnp.abs(new - q))

    def run():
        q, k, _ = jax.lax.while_loop(cond, body, (jnp.zeros_like(mdp.rewards), 0, jnp.inf))
        return q, k
    return run


def dense_plain_loop(mdp, tau: float, cap: int = 1_000_000):
    """The plain loop on a dense `(S, A, S)` transition array."""
    p = mdp.transitions

    def backup(q):
        return jnp.max(q, axis=-1) if tau == 0 else tau * jax.nn.logsumexp(q / tau, axis=-1)

    def body(carry):
        q, k, _ = carry
        new = mdp.rewards + mdp.discount * jnp.einsum("sat,t->sa", p, backup(q))
        return new, k + 1, jnp.max(jnp.abs(new - q))

    def run():
        q, k, _ = jax.lax.while_loop(lambda c: (c[2] > TOL) & (c[1] < cap), body,
                                     (jnp.zeros_like(mdp.rewards), 0, jnp.inf))
        return q, k
    return run


def four_rooms_rows(tau: float, repeats: int) -> list:
    """All 104 four-rooms goal tasks under `vmap` (dense, float32, γ = 0.99): the plain loop's
    forward against optiongrad's value + implicit gradient with plain sweeps and with the
    default. Inside `jit` the goal tasks' discount is traced, so the default evaluates its
    dense rule at run time; it picks Newton here."""
    grid = og.gridworld.four_rooms()
    goals = jnp.arange(grid.num_states)

    def task(g):
        return og.gridworld.goal_task(grid, g, 0.99, dtype=jnp.float32)

    def plain(goals):
        return jax.vmap(lambda g: dense_plain_loop(task(g), tau)())(goals)

    def forward(goals, solver=None):
        return jax.vmap(lambda g: og.soft_value_iteration(task(g), tau, tol=TOL,
                                                          solver=solver).q)(goals)

    def gradient(goals, solver=None):
        def one(g):
            mdp = task(g)

            def objective(rewards):
                q = og.soft_value_iteration(mdp.replace(rewards=rewards), tau, tol=TOL,
                                            solver=solver).q
                return jnp.dot(mdp.initial, jnp.max(q, axis=1))
            return jax.value_and_grad(objective)(mdp.rewards)
        return jax.vmap(one)(goals)

    iteration = og.solvers.FixedPointIteration()
    systems = jnp.eye(grid.num_states) - 0.99 * jax.vmap(
        lambda g: og.gridworld.goal_task(grid, g, 0.99, dtype=jnp.float32).transitions[:, 0])(
            goals)
    fns = {"plain loop, forward": jax.jit(lambda: plain(goals)),
           "one LU factorisation and solve of the 104 systems of 104 × 104 (the library's "
           "path), the bound of a Newton step":
               jax.jit(lambda: jax.vmap(linalg.solve)(systems, jnp.ones(systems.shape[:2]))),
           "optiongrad, FixedPointIteration, value + gradient": jax.jit(
               lambda: gradient(goals, iteration)),
           "optiongrad, default (Newton), forward": jax.jit(lambda: forward(goals)),
           "optiongrad, default (Newton), value + gradient": jax.jit(lambda: gradient(goals))}
    seconds = alternate(fns, repeats)
    base = seconds["plain loop, forward"]
    return [[f"{tau:g}", "four rooms, 104 goals (vmap, dense)", name, "–",
             f"{t * 1e3:.0f}", f"{t / base:.2f}×"] for name, t in seconds.items()]


def planner(mdp, tau: float, solver):
    backup = "max" if tau == 0 else "logsumexp"

    def run():
        plan = og.soft_value_iteration(mdp, tau, backup=backup, tol=TOL, max_iter=1_000_000,
                                       solver=solver)
        return plan.q, plan.iterations

    def gradient():
        def objective(rewards):
            plan = og.soft_value_iteration(mdp.replace(rewards=rewards), tau, backup=backup,
                                           tol=TOL, max_iter=1_000_000, solver=solver)
            return jnp.dot(mdp.initial, jnp.max(plan.q, axis=1))
        return jax.value_and_grad(objective)(mdp.rewards)
    return run, gradient


def alternate(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, timed alternately after one compiling call."""
    for fn in fns.values():
        block(fn())
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            block(fn())
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", default=None, help="write the table into this README")
    parser.add_argument("--side", type=int, default=300, help="grid side (S = side²)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    mdp = grid_task(args.side)
    rows = []
    for tau in (0.0, 0.01, 0.1):
        forward = {"plain loop": jax.jit(plain_loop(mdp, tau))}
        gradients = {}
        for name, solver in (("optiongrad, FixedPointIteration", og.solvers.FixedPointIteration()),
                             (DEFAULT, None)):
            forward[name], gradients[name] = (jax.jit(f) for f in planner(mdp, tau, solver))
        q_plain, sweeps_plain = block(forward["plain loop"]())
        seconds = alternate(forward, args.repeats)
        grad_seconds = alternate(gradients, args.repeats) if tau > 0 else {}
        gs = og.solvers.GaussSeidel()
        _, ordered = gauss_seidel_q(mdp, jnp.asarray(tau, jnp.float32),
                                    "max" if tau == 0 else "logsumexp", TOL, gs.max_sweeps,
                                    levels(np.asarray(mdp.transitions.next_states), gs.window),
                                    gs.check_every)
        for name, fn in forward.items():
            q, sweeps = block(fn())
            note = {DEFAULT: f" + {int(ordered)} ordered"}.get(name, "")
            grad = grad_seconds.get(name)
            rows.append([f"{tau:g}", name, f"{int(sweeps)}{note}",
                         f"{seconds[name] * 1e3:.0f}",
                         f"{seconds['plain loop'] / seconds[name]:.2f}×",
                         "–" if grad is None else f"{grad * 1e3:.0f} ({grad / seconds[name]:.1f}×)",
                         f"{float(jnp.max(jnp.abs(q - q_plain))):.1e}"])
        print(rows[-3:], flush=True)
    rooms = four_rooms_rows(0.01, args.repeats)
    print(rooms, flush=True)
    side = args.side
    text = (f"Soft value iteration on a {side}×{side} open grid (S = {side * side:,}, goal in a "
            f"corner, sparse, float32, γ = 0.99, tol {TOL:g}; median of {args.repeats}, "
            f"alternating, one process); {machine()}. Ratio: the plain loop's time over the "
            "row's.\n\n" + markdown_table(
                ["τ", "solver", "sweeps", "forward (ms)", "vs plain loop",
                 "value + gradient (ms, × forward)", "max abs ΔQ"], rows)
            + "\n\nAll 104 four-rooms goal tasks under `vmap` (dense transitions, float32, "
            f"γ = 0.99, τ = 0.01, tol {TOL:g}; median of {args.repeats}, alternating); ratio: "
            "the row's time over the plain loop's forward.\n\n" + markdown_table(
                ["τ", "case", "runner", "sweeps", "time (ms)", "× plain forward"], rooms))
    report(text, args.readme, "solvers")


if __name__ == "__main__":
    main()
