"""The option gradient's training step: the dense per-goal models of optiongrad 0.1 against the
factored goal models, side by side in one process (needs the `bench` extra):

    python benchmarks/option_gradient.py [--readme README.md] [--repeats 7] [--figure PNG]
                                         [--large] [--sweeps-figure PNG]

`--large` times the step on the large maps instead, each variant in its own process (so that
its peak memory is its own): factored against matrix-free sweeps on twenty-five-rooms (1265
cells), and on hundred-rooms (10,180 cells), where only sweeps fit, the library's sweeps in
float64 and float32 against two other ways of doing them (Anderson-accelerated solves, and the
scatter-add transpose that JAX derives without the sources table).

The step is the four-rooms job's (default settings: K = 8 options, state rewards, τ_o = 0.05,
τ_μ = 0.01, 3 SMDP sweeps, primitives appended, 83 train goals, the 21 test goals' returns
computed too). "dense" forms the `(T, K + 4, S, S)` option models of every goal
(`og.goal_option_models`) and plans each goal with `vmap` — the 0.1 algorithm; "factored" is
`og.goal_returns` on `og.goal_models` (what the library and the experiment run). Both compute
the same objective and gradient (checked here to 1e-9) and are timed alternately.
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
jax.config.update("jax_enable_x64", True)

import optiongrad as og  # noqa: E402
from common import block, fmt_ms, machine, markdown_table, peak_memory, report  # noqa: E402
from optiongrad._src import option_gradient as _og  # noqa: E402
from optiongrad.experiments.learn_options import LearnOptionsConfig, Setup  # noqa: E402


def dense_goal_returns(options, mdp, goals, planner):
    """The 0.1 path: dense `(T, K, S, S)` goal option models, one SMDP plan per goal."""
    planned = og.with_primitives(options) if planner.include_primitives else options
    rewards, transitions, initial = og.goal_option_models(mdp, planned, goals)
    return _og.batched_smdp_returns(rewards, transitions, initial, planner, planned.initiation)


def make_step(setup: Setup, returns_fn):
    """Value, gradient and test return of the four-rooms objective with `returns_fn`."""
    c, env = setup.config, setup.environment
    train, test = jnp.asarray(setup.train), jnp.asarray(setup.test)

    def objective(params):
        options, plans = _og._options(params, setup.model, env, c.temperature_options,
                                      c.termination, {})
        returns = returns_fn(options, env, train, c.planner)
        return jnp.mean(returns), options

    def step(params):
        (value, options), grad = jax.value_and_grad(objective, has_aux=True)(params)
        return value, grad, jnp.mean(returns_fn(options, env, test, c.planner))

    return jax.jit(step)


def shared_step(setup: Setup):
    """The experiment's step: `option_gradient_objective` with the test goals as
    `eval_goals` (one factorisation of each option for train and test goals)."""
    c, env = setup.config, setup.environment
    train, test = jnp.asarray(setup.train), jnp.asarray(setup.test)

    def step(params):
        (value, aux), grad = jax.value_and_grad(og.option_gradient_objective, has_aux=True)(
            params, setup.model, env, train, temperature_options=c.temperature_options,
            planner=c.planner, termination=c.termination, eval_goals=test)
        return value, grad, aux["eval_return"]

    return jax.jit(step)


def room_map(side: int) -> str:
    """An open square room of `side × side` free cells (walls around)."""
    wall = "w" * (side + 2)
    return "\n".join([wall] + ["w" + " " * side + "w"] * side + [wall])


def scaled_step(num_states_side: int, num_goals: int, num_options: int,
                method: str = "factored"):
    """A training step (value + gradient, no test goals) on an open room, `T` goals, `K`
    options, factored models or matrix-free sweeps; returns `(step, params)`."""
    grid = og.gridworld.GridWorld.from_ascii(room_map(num_states_side))
    env = og.gridworld.navigation_mdp(grid, 0.9, sparse=True)
    model = og.rewards.state(grid.num_states, init_scale=1.0)
    params = og.init_params(jax.random.key(0), model, num_options, grid.num_states)
    goals = jnp.arange(num_goals) * (grid.num_states // num_goals)
    planner = og.ExtrinsicPlanner(0.01, 3, True)

    def step(params):
        return jax.value_and_grad(lambda p: og.option_gradient_objective(
            p, model, env, goals, temperature_options=0.05, planner=planner,
            method=method)[0])(params)

    return jax.jit(step), params


def median_time(fn, *args, repeats: int = 3) -> float:
    block(fn(*args))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn(*args))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def scaling(figure: str, readme) -> None:
    """Step time as S, T and K grow (factored path), in a figure and a table."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {
        "S (T = 32, K = 8)": [(side * side, (side, 32, 8)) for side in (10, 15, 20, 25, 30)],
        "T (S = 400, K = 8)": [(t, (20, t, 8)) for t in (8, 32, 128, 320)],
        "K (S = 400, T = 32)": [(k, (20, 32, k)) for k in (2, 4, 8, 16)],
    }
    rows, fig = [], plt.figure(figsize=(10, 3.4))
    for i, (label, points) in enumerate(curves.items()):
        xs, ys = [], []
        for x, args in points:
            step, params = scaled_step(*args)
            seconds = median_time(step, params)
            xs.append(x), ys.append(seconds)
            rows.append([label.split(" ")[0], x, f"{seconds * 1e3:.0f}"])
            print(label, x, f"{seconds:.3f} s", flush=True)
        ax = fig.add_subplot(1, 3, i + 1)
        ax.loglog(xs, ys, "o-")
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("step (s)" if i == 0 else "")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Option-gradient training step (value + gradient, float64, 2 CPU cores)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)
    report(markdown_table(["grows", "value", "step (ms)"], rows), readme,
           "option-gradient-scaling")


LARGE = {  # name: (map, method, dtype, variant)
    "twenty-five-rooms, factored": ("twenty-five-rooms", "factored", "float64", "default"),
    "twenty-five-rooms, sweeps": ("twenty-five-rooms", "sweeps", "float64", "default"),
    "hundred-rooms, sweeps, float64": ("hundred-rooms", "sweeps", "float64", "default"),
    "hundred-rooms, sweeps, float32": ("hundred-rooms", "sweeps", "float32", "default"),
    "hundred-rooms, sweeps + Anderson(5), float64": ("hundred-rooms", "sweeps", "float64",
                                                     "anderson"),
    "hundred-rooms, sweeps, scatter transpose, float64": ("hundred-rooms", "sweeps",
                                                          "float64", "scatter"),
}


def large_step(name: str, repeats: int) -> dict:
    """Time one `LARGE` variant's training step (32 goals, K = 8, the default settings; value
    + gradient, no test goals) in this process; returns its median and peak RSS."""
    import resource

    from optiongrad._src import goal_sweeps

    map_name, method, dtype, variant = LARGE[name]
    jax.config.update("jax_enable_x64", dtype == "float64")
    grid = og.gridworld.load_map(map_name)
    env = og.gridworld.navigation_mdp(grid, 0.9, sparse=True)
    if variant == "anderson":
        goal_sweeps.SOLVER = og.solvers.Anderson(memory=5)
    if variant == "scatter":  # drop the sources table (`replace` would rebuild it)
        object.__setattr__(env.transitions, "sources", None)
    model = og.rewards.state(grid.num_states, init_scale=1.0)
    params = og.init_params(jax.random.key(0), model, 8, grid.num_states)
    goals = jnp.sort(jax.random.choice(jax.random.key(1), grid.num_states, (32,),
                                       replace=False))
    planner = og.ExtrinsicPlanner(0.01, 3, True)
    step = jax.jit(jax.value_and_grad(lambda p: og.option_gradient_objective(
        p, model, env, goals, temperature_options=0.05, planner=planner, method=method)[0]))
    value, _ = block(step(params))
    seconds = median_time(step, params, repeats=repeats)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"name": name, "states": grid.num_states, "seconds": seconds, "rss": rss,
            "objective": float(value)}


def large(readme, repeats: int) -> None:
    """Every `LARGE` variant in a fresh process, then one table."""
    import json
    import subprocess

    rows, results = [], {}
    for name in LARGE:
        out = subprocess.run([sys.executable, __file__, "--large-variant", name,
                              "--repeats", str(repeats)], check=True, capture_output=True,
                             text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
        r = results[name]
        print(f"{name}: {r['seconds']:.2f} s, {r['rss'] / 2**30:.2f} GiB", flush=True)
    for name, r in results.items():
        reference = results.get("hundred-rooms, sweeps, float64") if "hundred" in name else \
            results["twenty-five-rooms, factored"]
        rows.append([name, f"{r['states']:,}", f"{r['seconds']:.2f}",
                     f"{reference['seconds'] / r['seconds']:.2f}×",
                     f"{r['rss'] / 2**30:.2f}", f"{r['objective']:.6g}"])
    text = (f"Training step (value + gradient) with a 32-goal batch, K = 8 options + 4 "
            f"primitives, 3 SMDP sweeps, median of {repeats} after compilation, each variant in "
            f"its own process (peak RSS of that process); {machine()}. Ratios are against "
            "the first row of the same map.\n\n"
            + markdown_table(["variant", "cells", "step (s)", "ratio", "peak RSS (GiB)",
                              "objective"], rows))
    report(text, readme, "option-gradient-large")


def sweeps_scaling(figure: str, readme) -> None:
    """Step time of the matrix-free sweeps as S grows to 10⁴ (open rooms, T = 32, K = 8),
    beside the factored path where it fits, in a figure and a table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, curves = [], {"sweeps": (20, 40, 60, 80, 100), "factored": (10, 20, 30)}
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for method, sides in curves.items():
        xs, ys = [], []
        for side in sides:
            step, params = scaled_step(side, 32, 8, method)
            seconds = median_time(step, params)
            xs.append(side * side), ys.append(seconds)
            rows.append([method, side * side, f"{seconds:.2f}"])
            print(method, side * side, f"{seconds:.3f} s", flush=True)
        ax.loglog(xs, ys, "o-", label=method)
    ax.set_xlabel("states S (open room; T = 32 goals, K = 8)")
    ax.set_ylabel("step (s)")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title("Training step, value + gradient, float64, 2 CPU cores", fontsize=9)
    fig.tight_layout()
    fig.savefig(figure, dpi=110)
    report(markdown_table(["method", "S", "step (s)"], rows), readme,
           "option-gradient-sweeps-scaling")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", default=None, help="write the table into this README")
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per path")
    parser.add_argument("--figure", default=None,
                        help="also measure how the step grows with S, T and K into this PNG")
    parser.add_argument("--sweeps-figure", default=None,
                        help="measure the matrix-free step as S grows to 10⁴ into this PNG")
    parser.add_argument("--large", action="store_true",
                        help="time the step on the large maps instead (several minutes)")
    parser.add_argument("--large-variant", default=None, choices=tuple(LARGE),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.large_variant:
        import json
        print(json.dumps(large_step(args.large_variant, args.repeats)))
        return
    if args.large:
        large(args.readme, args.repeats)
        return
    if args.sweeps_figure:
        sweeps_scaling(args.sweeps_figure, args.readme)
        return

    setup = Setup(LearnOptionsConfig())
    params = og.init_params(jax.random.key(0), setup.model, 8, setup.grid.num_states,
                            termination_init=0.1)
    steps = {"dense (0.1)": make_step(setup, dense_goal_returns),
             "factored": make_step(setup, og.goal_returns),
             "factored, shared": shared_step(setup)}
    outputs = {name: block(step(params)) for name, step in steps.items()}  # compile
    (v0, g0, t0), *others = outputs.values()
    error = max(max(abs(float(v0 - v1)), abs(float(t0 - t1)),
                    max(float(jnp.max(jnp.abs(a - b))) for a, b in
                        zip(jax.tree.leaves(g0), jax.tree.leaves(g1))))
                for v1, g1, t1 in others)
    assert error < 1e-9, error
    samples = {name: [] for name in steps}
    for _ in range(args.repeats):  # alternate, so drift hits both
        for name, step in steps.items():
            start = time.perf_counter()
            block(step(params))
            samples[name].append(time.perf_counter() - start)
    memory = {name: peak_memory(step, params) for name, step in steps.items()}
    base = statistics.median(samples["dense (0.1)"])
    rows = []
    for name in steps:
        median = statistics.median(samples[name])
        rows.append([name, fmt_ms(median), f"{base / median:.1f}×",
                     f"{memory[name] / 2**20:.0f} MiB"])
    text = (f"Four-rooms training step (value + gradient + test return), median of "
            f"{args.repeats}, float64; {machine()}. Largest difference between the paths: "
            f"{error:.1e}.\n\n"
            + markdown_table(["path", "step (ms)", "speed-up", "XLA memory"], rows))
    report(text, args.readme, "option-gradient-step")
    if args.figure:
        scaling(args.figure, args.readme)


if __name__ == "__main__":
    main()
