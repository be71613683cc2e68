"""Core benchmark: forward and gradient time of the smooth planner; implicit vs unrolled.

    python benchmarks/core.py                 # print the tables
    python benchmarks/core.py --readme README.md   # also write them into the README

Forward = `soft_value_iteration` with plain sweeps (`solver="iteration"`, except the rows that
name another solver; `benchmarks/solver_grid.py` times the default) to the default tolerance
(1e-10 in float64, 1e-5 in float32), τ = 0.1, γ = 0.99. Gradient = `jax.value_and_grad` of the intrinsic-reward objective
`J(θ) = s0 · V^{π̂_θ}_r` (planner + exact policy evaluation + implicit backward pass).
Times are medians of repeated calls of the compiled function (compilation excluded and listed).
Peak memory is XLA's compile-time estimate for the whole jitted computation.
"""

from __future__ import annotations

import argparse
import os
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import optiongrad as og  # noqa: E402


TAU = 0.1
GAMMA = 0.99


def cases(dtype):
    rooms = og.gridworld.four_rooms()
    goal = rooms.state(11, 11)
    model = og.rewards.tabular(104, 4)
    one = og.gridworld.goal_task(rooms, goal, GAMMA, dtype=dtype)

    def fwd_one(r):
        return og.soft_value_iteration(one.replace(rewards=r), TAU, solver="iteration")

    def grad_one(r):
        return jax.value_and_grad(og.planner_return, has_aux=True)(r, model, one, TAU,
                                                                    solver="iteration")

    goals = jnp.arange(rooms.num_states)

    def batch(sparse, solver="iteration"):
        def task(g):
            return og.gridworld.goal_task(rooms, g, GAMMA, dtype=dtype, sparse=sparse)

        def fwd_all(gs):
            return jax.vmap(lambda g: og.soft_value_iteration(task(g), TAU, solver=solver))(gs)

        def grad_all(gs):
            def single(g):
                mdp = task(g)
                return jax.value_and_grad(og.planner_return, has_aux=True)(mdp.rewards, model, mdp,
                                                                        TAU, solver=solver)
            return jax.vmap(single)(gs)
        return fwd_all, grad_all

    big_grid = og.gridworld.GridWorld.open(100, 100)
    big = og.gridworld.goal_task(big_grid, big_grid.state(50, 50), GAMMA, dtype=dtype)
    big_model = og.rewards.tabular(big.num_states, 4)

    def fwd_big(r):
        return og.soft_value_iteration(big.replace(rewards=r), TAU, solver="iteration")

    def grad_big(r):
        return jax.value_and_grad(og.planner_return, has_aux=True)(r, big_model, big, TAU,
                                                                    solver="iteration")

    return [
        ("four rooms, 1 goal (S=104)", fwd_one, grad_one, one.rewards),
        ("four rooms, all 104 goals (vmap)", *batch(False), goals),
        ("four rooms, all 104 goals (vmap, sparse)", *batch(True), goals),
        ("four rooms, all 104 goals (vmap, solver=\"newton\")", *batch(False, "newton"),
         goals),
        ("100×100 open grid (S=10⁴, sparse)", fwd_big, grad_big, big.rewards),
    ]


def sweeps_of(out):
    plan = out if isinstance(out, og.PlanResult) else out[0][1]
    its = np.asarray(plan.iterations)
    return str(int(its)) if its.ndim == 0 else f"{int(its.min())}–{int(its.max())}"


def forward_gradient_table(dtypes, repeats):
    rows = []
    for dtype in dtypes:
        for name, fwd, grad, arg in cases(dtype):
            c_f, t_f, out_f = common.time_compiled(fwd, arg, repeats=repeats)
            c_g, t_g, out_g = common.time_compiled(grad, arg, repeats=repeats)
            rows.append([name, np.dtype(dtype).name, sweeps_of(out_f), common.fmt_ms(t_f),
                         common.fmt_ms(t_g), f"{t_g / t_f:.2f}",
                         f"{c_f:.1f} / {c_g:.1f}"])
            print(" | ".join(rows[-1]), flush=True)
    header = ["case", "dtype", "sweeps", "forward (ms)", "value + gradient (ms)",
              "gradient / forward", "compile (s) fwd / grad"]
    return common.markdown_table(header, rows)


def implicit_vs_unrolled_table(sweep_counts, repeats, dtype=jnp.float32):
    grid = og.gridworld.GridWorld.open(100, 100)
    mdp = og.gridworld.goal_task(grid, grid.state(50, 50), GAMMA, dtype=dtype)

    def objective(r, **kwargs):
        return og.soft_optimal_return(mdp.replace(rewards=r), TAU, **kwargs)

    rows = []
    for label, kwargs in [("implicit (to tol)", {})] + [
        (f"unrolled, {n} sweeps", dict(differentiation="unrolled", num_sweeps=n))
        for n in sweep_counts
    ]:
        def grad(r, kwargs=kwargs):
            return jax.value_and_grad(objective)(r, **kwargs)

        _, t, _ = common.time_compiled(grad, mdp.rewards, repeats=repeats, min_time=0.05)
        mem = common.peak_memory(grad, mdp.rewards)
        plan = og.soft_value_iteration(mdp, TAU, **kwargs)
        rows.append([label, str(int(plan.iterations)), common.fmt_ms(t), common.fmt_bytes(mem)])
        print(" | ".join(rows[-1]), flush=True)
    header = ["differentiation", "sweeps", "value + gradient (ms)", "peak memory (XLA)"]
    return common.markdown_table(header, rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", help="write the tables into this README")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sweep counts")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 5
    print("machine:", common.machine())
    table_a = forward_gradient_table([jnp.float32, jnp.float64], repeats)
    counts = (10, 100, 1000) if args.quick else (10, 100, 1000, 3000)
    table_b = implicit_vs_unrolled_table(counts, repeats)
    text = (f"Machine: {common.machine()}.\n\n{table_a}\n\n"
            "Implicit vs unrolled differentiation of `s0 · m_τ(Q*)` on the 100×100 grid "
            f"(float32, γ = {GAMMA}, τ = {TAU}):\n\n{table_b}")
    common.report(text, args.readme, "core")


if __name__ == "__main__":
    main()
