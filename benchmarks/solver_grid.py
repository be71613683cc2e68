"""Soft value iteration's solvers across sizes, discounts and temperatures, side by side:

    pip install ".[bench]" && python benchmarks/solver_grid.py --readme README.md \
        --figure docs/figures/solver_grid.png [--sides 32,100,316,1000]

The task is a goal in the far corner of an open `side × side` grid (S = side², float32,
tol 1e-5, start state uniform), for every γ in {0.9, 0.99, 0.999} and τ in {0, 0.01, 0.1}
(τ = 0 is the hard `max` backup, otherwise logsumexp). Each cell runs, alternately in one
process:

* **plain JAX loop** — a `jax.lax.while_loop` of Bellman sweeps on the successor table until
  `‖ΔQ‖_∞ ≤ tol`, written here without optiongrad (`solvers.plain_loop`);
* **numpy/scipy loop** — the same sweeps with a scipy.sparse matrix-vector product;
* **pymdptoolbox** — `mdptoolbox.mdp.ValueIteration` (τ = 0 and S ≤ 10⁴ only: it has no soft
  backup, and larger sparse MDPs fail inside it, `PYMDPTOOLBOX_STATES`; it
  stops on its own rule, span of `V_{k+1} − V_k` below `ε (1 − γ)/γ`, with ε chosen so that
  the threshold is tol; float64);
* **optiongrad, FixedPointIteration** — plain sweeps inside optiongrad;
* **optiongrad, default** — `og.soft_value_iteration` with no `solver=`: `og.solvers.Auto()`,
  whose pick is named in the row;

and at the smallest size the same task with dense transitions (plain JAX loop on the dense
`(S, A, S)` array, and optiongrad's default, which picks `Newton` there). "value + gradient"
differentiates `initial · max_a Q*` with respect to the reward table through the default
solver (implicit adjoint), as a multiple of that solver's forward time. Loops stop at
`--cap` sweeps (`--cap-large` from 10⁶ states, and the numpy and pymdptoolbox loops at
`--seconds`); a capped row shows `> N` sweeps. Timings are medians of 3 alternating runs
when a run takes under a second, else one run, after compilation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

sys.path.insert(0, os.path.dirname(__file__))

import optiongrad as og  # noqa: E402
from common import block, csr, machine, markdown_table, report  # noqa: E402
from solvers import dense_plain_loop, plain_loop  # noqa: E402

TOL = 1e-5
DISCOUNTS = (0.9, 0.99, 0.999)
TEMPERATURES = (0.0, 0.01, 0.1)
PYMDPTOOLBOX_STATES = 10_000
"""Larger MDPs fail in pymdptoolbox 4.0b3 itself: its stochasticity check of a sparse matrix
broadcasts an `(S, 1)` row sum against `(S,)` ones into a dense `S × S` array (74 GiB at
S = 99,856)."""


def grid_task(side: int, discount: float, sparse: bool = True):
    grid = og.gridworld.GridWorld.open(side, side)
    return og.gridworld.goal_task(grid, grid.num_states - 1, discount, sparse=sparse,
                                  dtype=jnp.float32)


def numpy_loop(mdp, tau: float, seconds: float):
    """Sweeps with a scipy.sparse `(S·A) × S` matrix and numpy backups, float32."""
    from scipy.special import logsumexp

    p = csr(mdp).astype(np.float32)
    r = np.asarray(mdp.rewards)
    gamma = np.float32(mdp.discount)
    s, a = r.shape

    def run():
        q, start = np.zeros((s, a), np.float32), time.perf_counter()
        for k in range(1, 10_000_000):
            v = q.max(axis=1) if tau == 0 else tau * logsumexp(q / tau, axis=1)
            q_next = r + gamma * (p @ v.astype(np.float32)).reshape(s, a)
            delta = np.max(np.abs(q_next - q))
            q = q_next
            if delta <= TOL:
                return q, k, True
            if time.perf_counter() - start > seconds:
                return q, k, False
    return run


def pymdptoolbox_loop(mdp, seconds: float):
    import mdptoolbox.mdp

    p = csr(mdp)
    s, a = np.asarray(mdp.rewards).shape
    transitions = [p[np.arange(s) * a + i] for i in range(a)]
    rewards = np.asarray(mdp.rewards, np.float64)
    gamma = float(mdp.discount)

    def run():
        vi = mdptoolbox.mdp.ValueIteration(transitions, rewards, gamma,
                                           epsilon=TOL * gamma / (1 - gamma),
                                           max_iter=10_000_000)
        vi.max_iter = 10_000_000  # it lowers its own cap to a bound that can stop it early
        deadline = time.perf_counter() + seconds
        bellman = vi._bellmanOperator

        def timed(*args):
            if time.perf_counter() > deadline:
                vi.max_iter = vi.iter  # stop after this sweep
            return bellman(*args)
        vi._bellmanOperator = timed
        vi.run()
        return None, vi.iter, vi.iter < vi.max_iter or time.perf_counter() <= deadline
    return run


def optiongrad_runs(mdp, tau: float, solver, cap: int):
    backup = "max" if tau == 0 else "logsumexp"

    def forward():
        plan = og.soft_value_iteration(mdp, tau, backup=backup, tol=TOL, max_iter=cap,
                                       solver=solver)
        return plan.q, plan.iterations, plan.converged

    def gradient():
        def objective(rewards):
            plan = og.soft_value_iteration(mdp.replace(rewards=rewards), tau, backup=backup,
                                           tol=TOL, max_iter=cap, solver=solver)
            return jnp.dot(mdp.initial, jnp.max(plan.q, axis=1))
        return jax.value_and_grad(objective)(mdp.rewards)
    return forward, gradient


def capped_jax(run, cap):
    def wrapped():
        q, k = run()
        return q, k, k < cap
    return wrapped


def timed(fns: dict) -> dict:
    """`{name: (seconds per run, output)}`: JAX functions compiled ahead; then three
    alternating samples (one when a run takes over a second), each repeating a fast function
    until it has taken 50 ms."""
    compiled = {}
    for name, (fn, is_jax) in fns.items():
        compiled[name] = jax.jit(fn).lower().compile() if is_jax else fn
    outputs, inner = {}, {}
    for name, fn in compiled.items():
        start = time.perf_counter()
        outputs[name] = block(fn())
        first = time.perf_counter() - start
        inner[name] = 0 if first > 1.0 else max(1, int(0.05 / max(first, 1e-6)))
    samples = {name: [] for name in fns}
    for name, n in inner.items():
        if not n:  # a slow run: the first one is the measurement
            start = time.perf_counter()
            block(compiled[name]())
            samples[name].append(time.perf_counter() - start)
    for _ in range(3):
        for name, fn in compiled.items():
            if inner[name]:
                start = time.perf_counter()
                for _ in range(inner[name]):
                    block(fn())
                samples[name].append((time.perf_counter() - start) / inner[name])
    return {name: (statistics.median(samples[name]), outputs[name]) for name in fns}


def warm_start_steps(mdp, tau: float, pick) -> str:
    """How many Gauss–Seidel sweeps or Newton steps the default's warm start took."""
    from optiongrad._src.gauss_seidel import gauss_seidel_q, levels
    from optiongrad._src.newton import policy_iteration_q

    kind = "max" if tau == 0 else "logsumexp"
    t = jnp.asarray(tau, mdp.dtype)
    if isinstance(pick, og.solvers.GaussSeidel):
        order = levels(np.asarray(mdp.transitions.next_states), pick.window)
        _, k = gauss_seidel_q(mdp, t, kind, TOL, pick.max_sweeps, order, pick.check_every)
        return f"{int(k)} ordered"
    if isinstance(pick, og.solvers.Newton):
        _, k = policy_iteration_q(mdp, t, kind, jnp.zeros_like(mdp.rewards), TOL,
                                  pick.max_steps)
        return f"{int(k)} Newton"
    return "0"


def cell(side, gamma, tau, args):
    large = side * side >= 10**6
    dense = pick_dense = None
    cap = args.cap_large if large else args.cap
    mdp = grid_task(side, gamma)
    pick = og.solvers.Auto().choose(mdp, "max" if tau == 0 else "logsumexp")
    fns = {"plain JAX loop": (capped_jax(plain_loop(mdp, tau, cap), cap), True),
           "numpy/scipy loop": (numpy_loop(mdp, tau, args.seconds), False)}
    if tau == 0 and side * side <= PYMDPTOOLBOX_STATES:
        fns["pymdptoolbox"] = (pymdptoolbox_loop(mdp, args.seconds), False)
    if not large:
        fns["optiongrad, FixedPointIteration"] = (
            optiongrad_runs(mdp, tau, og.solvers.FixedPointIteration(), cap)[0], True)
    default_name = f"optiongrad, default ({type(pick).__name__})"
    forward, gradient = optiongrad_runs(mdp, tau, None, cap)
    fns[default_name] = (forward, True)
    grads = {default_name: (gradient, True)}
    if side * side <= 2048:
        dense = grid_task(side, gamma, sparse=False)
        pick_dense = og.solvers.Auto().choose(dense, "max" if tau == 0 else "logsumexp")
        fns["plain JAX loop, dense"] = (capped_jax(dense_plain_loop(dense, tau, cap), cap),
                                        True)
        dense_name = f"optiongrad, default, dense ({type(pick_dense).__name__})"
        fns[dense_name], grads[dense_name] = ((f, True) for f in
                                              optiongrad_runs(dense, tau, None, cap))
    both = timed({**fns, **{f"{name} value+grad": f for name, f in grads.items()}})
    grad_times = {name: both.pop(f"{name} value+grad") for name in grads}
    results = both
    rows = []
    for name, (seconds, out) in results.items():
        sweeps, ok = int(out[1]), bool(out[2])
        if "default" in name:
            task = dense if "dense" in name else mdp
            sweeps_text = f"{sweeps} + {warm_start_steps(task, tau, pick_dense if 'dense' in name else pick)}"
        else:
            sweeps_text = f"{sweeps}" if ok else f"> {sweeps}"
        baseline = results["plain JAX loop, dense" if "dense" in name else "plain JAX loop"][0]
        grad = grad_times.get(name, (None,))[0]
        rows.append({"S": side * side, "gamma": gamma, "tau": tau, "runner": name,
                     "sweeps": sweeps, "converged": ok, "seconds": seconds,
                     "vs_plain": baseline / seconds, "gradient_seconds": grad,
                     "sweeps_text": sweeps_text})
        print(f"S={side * side} γ={gamma} τ={tau} {name}: {sweeps_text} sweeps, "
              f"{seconds * 1e3:.1f} ms, {baseline / seconds:.2f}× plain"
              + ("" if grad is None else f", value+grad {grad / seconds:.2f}× forward"),
              flush=True)
    return rows


def total_sweeps(row) -> int:
    """Sweeps of a row, the default's Gauss–Seidel sweeps included ("1 + 20 ordered")."""
    parts = row["sweeps_text"].replace(">", "").split("+")
    ordered = sum(int(p.split()[0]) for p in parts[1:] if "ordered" in p)
    return int(parts[0].split()[0]) + ordered


def figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(DISCOUNTS), figsize=(12, 6.5), sharex=True)
    runners = sorted({r["runner"].split(" (")[0] for r in rows if "dense" not in r["runner"]})
    for col, gamma in enumerate(DISCOUNTS):
        for runner in runners:
            pts = sorted((r["S"], total_sweeps(r), r["seconds"], r["converged"]) for r in rows
                         if r["gamma"] == gamma and r["tau"] == 0.01
                         and r["runner"].split(" (")[0] == runner)
            if not pts:
                continue
            s, sweeps, seconds, ok = zip(*pts)
            for ax, y in ((axes[0, col], sweeps), (axes[1, col], seconds)):
                line, = ax.plot(s, y, "o-", label=runner)
                ax.plot([x for x, o in zip(s, ok) if not o], [v for v, o in zip(y, ok) if not o],
                        "x", color=line.get_color(), markersize=10)
        axes[0, col].set_title(f"γ = {gamma}, τ = 0.01")
        for ax in axes[:, col]:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[1, col].set_xlabel("states S (open grid, goal in a corner)")
    axes[0, 0].set_ylabel("sweeps to tol 1e-5 (default: plain + ordered; ×: capped)")
    axes[1, 0].set_ylabel("forward wall time (s)")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Soft value iteration: sweeps and time per solver (float32)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(rows) -> str:
    """One line per (S, γ, τ): the plain JAX loop's sweeps and time, every other runner as
    the plain loop's time over its own, and the default's value + gradient over its forward
    (the dense rows of the smallest size on a second line)."""
    def ratio(r):
        return f"{r['vs_plain']:.3g}×" + ("" if r["converged"] else " (capped)")

    cells = {}
    for r in rows:
        dense = "dense" in r["runner"]
        cells.setdefault((r["S"], r["gamma"], r["tau"], dense), []).append(r)
    body = []
    for (s, gamma, tau, dense), group in sorted(cells.items()):
        by = {r["runner"].split(" (")[0].replace(", dense", ""): r for r in group}
        plain, default = by["plain JAX loop"], by["optiongrad, default"]
        pick = default["runner"].split("(")[-1].rstrip(")")
        grad = default["gradient_seconds"]
        body.append([
            f"{s:,}" + (" dense" if dense else ""), f"{gamma:g}", f"{tau:g}",
            f"{plain['sweeps_text']}, {plain['seconds'] * 1e3:.3g} ms",
            ratio(by["numpy/scipy loop"]) if "numpy/scipy loop" in by else "–",
            ratio(by["pymdptoolbox"]) if "pymdptoolbox" in by else "–",
            ratio(by["optiongrad, FixedPointIteration"])
            if "optiongrad, FixedPointIteration" in by else "–",
            f"{pick}: {default['sweeps_text']}", f"**{ratio(default)}**",
            "–" if grad is None else f"{grad / default['seconds']:.2f}×"])
    return markdown_table(["S", "γ", "τ", "plain JAX loop (sweeps, time)", "numpy/scipy",
                           "pymdptoolbox", "FixedPointIteration", "default picks (sweeps)",
                           "default", "default value + gradient (× its forward)"], body)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", default=None, help="write the table into this README")
    parser.add_argument("--figure", default=None, help="write the figure to this path")
    parser.add_argument("--json", default=None, help="write every measurement to this path "
                        "after each cell; cells already in it are not measured again (resume)")
    parser.add_argument("--sides", default="32,100,316,1000")
    parser.add_argument("--cap", type=int, default=30_000)
    parser.add_argument("--cap-large", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    rows = []
    if args.json and os.path.exists(args.json):  # resume: keep the cells measured before
        with open(args.json) as f:
            rows = json.load(f)
    sides = [int(x) for x in args.sides.split(",")]
    cells = [(side, gamma, tau) for side in sides for gamma in DISCOUNTS for tau in TEMPERATURES]
    for side, gamma, tau in tqdm.tqdm(cells, desc="cells", disable=None):
        if any((r["S"], r["gamma"], r["tau"]) == (side * side, gamma, tau) for r in rows):
            continue
        rows += cell(side, gamma, tau, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    rows = [r for r in rows if int(round(r["S"] ** 0.5)) in sides]
    if args.figure:
        figure(rows, args.figure)
    text = (f"Open grids, goal in a corner, float32, tol {TOL:g}; {machine()}. Ratios are the "
            "plain JAX loop's time (dense rows: the dense plain loop's) over the runner's, "
            "from alternating runs in one process (above 1× the runner is faster); "
            "'capped': stopped at the sweep or time cap before the tolerance. Sweeps of the "
            "default: plain sweeps after its warm start + the warm start's Gauss–Seidel "
            "sweeps or Newton steps.\n\n" + table(rows))
    report(text, args.readme, "solver-grid")


if __name__ == "__main__":
    main()
