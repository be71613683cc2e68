"""Planning at scale: optiongrad vs plain value-iteration loops and pymdptoolbox, scaling
curves, and the memory-bandwidth bound of a sweep.

    python benchmarks/scale.py --readme README.md --figure docs/figures/scaling.png

needs the `bench` extra (`pip install ".[bench]"`: pymdptoolbox, scipy). All planners solve
the same goal task of an open `n × n` grid (sparse transitions, one successor per state-action)
with hard value iteration (max backup) from zero values to the same stopping rule
`‖Q_{k+1} − Q_k‖_∞ ≤ tol`, in float64, except pymdptoolbox, which stops on its own rule
(span of `V_{k+1} − V_k` below `ε (1 − γ)/γ`; ε is chosen to make that threshold `tol`) —
its sweep count is reported next to its time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

import optiongrad as og  # noqa: E402

TOL = 1e-6


def grid_task(n: int, discount: float, dtype=jnp.float64):
    grid = og.gridworld.GridWorld.open(n, n)
    return og.gridworld.goal_task(grid, grid.num_states - 1, discount, sparse=True, dtype=dtype)


def optiongrad_forward(mdp, tol=TOL):
    def run(m):
        plan = og.soft_value_iteration(m, 0.0, backup="max", tol=tol, max_iter=1_000_000)
        return plan.q, plan.iterations, plan.converged
    return run


def soft_forward(tau=0.1, tol=TOL, solver="iteration"):
    def run(m):
        plan = og.soft_value_iteration(m, tau, tol=tol, max_iter=1_000_000, solver=solver)
        return plan.q, plan.iterations, plan.converged
    return run


def optiongrad_gradient(mdp, tau=0.1, tol=TOL, solver="iteration"):
    def run(m):
        def objective(r):
            plan = og.soft_value_iteration(m.replace(rewards=r), tau, tol=tol, max_iter=1_000_000,
                                           solver=solver)
            return jnp.dot(m.initial, tau * jax.nn.logsumexp(plan.q / tau, axis=1))
        return jax.value_and_grad(objective)(m.rewards)
    return run


def numpy_loop(mdp, tol=TOL):
    """A plain value-iteration loop: scipy.sparse matrix-vector products, numpy max."""
    p = common.csr(mdp)
    r = np.asarray(mdp.rewards)
    gamma = float(mdp.discount)
    s, a = r.shape

    def run():
        q = np.zeros((s, a))
        for k in range(1, 1_000_000):
            q_next = r + gamma * (p @ q.max(axis=1)).reshape(s, a)
            delta = np.max(np.abs(q_next - q))
            q = q_next
            if delta <= tol:
                return q, k
        return q, k
    return run


def pymdptoolbox_vi(mdp, tol=TOL):
    import mdptoolbox.mdp

    p = common.csr(mdp)
    s, a = np.asarray(mdp.rewards).shape
    transitions = [p[np.arange(s) * a + i] for i in range(a)]
    rewards = np.asarray(mdp.rewards)
    gamma = float(mdp.discount)
    epsilon = tol * gamma / (1 - gamma)

    def run():
        vi = mdptoolbox.mdp.ValueIteration(transitions, rewards, gamma, epsilon=epsilon,
                                           max_iter=1_000_000)
        vi.run()
        return np.asarray(vi.V), vi.iter
    return run


def wall(fn, repeats=3):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def copy_bandwidth(nbytes=512 * 2**20, repeats=5) -> float:
    """Measured copy bandwidth (bytes read + written per second) with numpy."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * nbytes / best


def sweep_bytes(mdp) -> int:
    """Bytes a sparse sweep must move at least: successor indices and probabilities, Q read
    and written, V written and gathered once per state-action."""
    s, a, b = mdp.transitions.next_states.shape
    f = np.dtype(mdp.dtype).itemsize
    return s * a * b * (4 + f) + 2 * s * a * f + s * f + s * a * b * f


def comparison_table(sizes, discount, include_pymdptoolbox):
    rows = []
    for n in sizes:
        mdp = grid_task(n, discount)
        compile_s, fwd_s, (q, iters, conv) = common.time_compiled(optiongrad_forward(mdp), mdp,
                                                                  repeats=3)
        _, grad_s, _ = common.time_compiled(optiongrad_gradient(mdp), mdp, repeats=3)
        np_s, (q_np, k_np) = wall(numpy_loop(mdp), repeats=2)
        err = float(np.max(np.abs(np.asarray(q) - q_np)))
        row = [f"{n}×{n} (S={n * n:,})", f"{int(iters)}", common.fmt_ms(fwd_s),
               common.fmt_ms(grad_s), f"{common.fmt_ms(np_s)} ({k_np})",
               f"{np_s / fwd_s:.1f}×"]
        if include_pymdptoolbox:
            if n <= 100:
                pt_s, (_, k_pt) = wall(pymdptoolbox_vi(mdp), repeats=1)
                row += [f"{common.fmt_ms(pt_s)} ({k_pt})", f"{pt_s / fwd_s:.0f}×"]
            else:
                row += ["–", "–"]
        row.append(f"{err:.1e}")
        rows.append(row)
        print(" | ".join(row), flush=True)
    header = ["grid", "sweeps", "optiongrad forward (ms)", "optiongrad value + gradient (ms)",
              "numpy/scipy loop (ms, sweeps)", "speed-up vs numpy"]
    if include_pymdptoolbox:
        header += ["pymdptoolbox VI (ms, sweeps)", "speed-up vs pymdptoolbox"]
    header.append("max |Q − Q_numpy|")
    return common.markdown_table(header, rows)


def scaling(sides, discounts, bandwidth):
    per_size, rows = [], []
    for n in sides:
        mdp = grid_task(n, 0.99)
        _, fwd_s, (_, iters, _) = common.time_compiled(optiongrad_forward(mdp), mdp, repeats=2)
        per_sweep = fwd_s / int(iters)
        bound = sweep_bytes(mdp) / bandwidth
        per_size.append((n * n, fwd_s, per_sweep, bound))
        rows.append([f"{n * n:,}", f"{int(iters)}", common.fmt_ms(fwd_s),
                     f"{per_sweep * 1e3:.3g}", f"{bound * 1e3:.3g}", f"{per_sweep / bound:.1f}×"])
        print(" | ".join(rows[-1]), flush=True)
    per_gamma = []
    for gamma in discounts:
        mdp = grid_task(100, gamma)
        for solver in ("iteration", "anderson"):
            _, fwd_s, (_, iters, _) = common.time_compiled(soft_forward(solver=solver), mdp,
                                                           repeats=2)
            per_gamma.append((gamma, solver, fwd_s, int(iters)))
    table = common.markdown_table(
        ["states", "sweeps (γ = 0.99)", "forward (ms)", "per sweep (ms)",
         "bandwidth bound per sweep (ms)", "measured / bound"], rows)
    return table, per_size, per_gamma


def solver_table():
    """Plain iteration vs Anderson acceleration: forward and value + implicit gradient."""
    four_rooms = og.gridworld.four_rooms()
    cases = [
        ("100×100, logsumexp τ = 0.1, γ = 0.99, tol 1e-6", grid_task(100, 0.99), 0.1, 1e-6,
         False),
        ("300×300, logsumexp τ = 0.1, γ = 0.99, tol 1e-6", grid_task(300, 0.99), 0.1, 1e-6,
         False),
        ("100×100, max, γ = 0.99, tol 1e-6", grid_task(100, 0.99), 0.0, 1e-6, False),
        ("four rooms, 104 goals (vmap), logsumexp τ = 0.1, γ = 0.99, tol 1e-10",
         jax.vmap(lambda g: og.gridworld.goal_task(four_rooms, g, 0.99))(jnp.arange(104)),
         0.1, 1e-10, True),
    ]
    rows = []
    for name, mdp, tau, tol, batched in cases:
        backup = "max" if tau == 0.0 else "logsumexp"
        for solver in ("iteration", "anderson"):
            def fwd(m):
                plan = og.soft_value_iteration(m, tau, backup=backup, tol=tol,
                                               max_iter=1_000_000, solver=solver)
                return plan.iterations, plan.converged

            def grad(m):
                def objective(r):
                    plan = og.soft_value_iteration(m.replace(rewards=r), max(tau, 0.1), tol=tol,
                                                   max_iter=1_000_000, solver=solver)
                    return jnp.sum(m.initial[:, None] * plan.q)
                return jax.value_and_grad(objective)(m.rewards)

            if batched:
                fwd, grad = jax.vmap(fwd), jax.vmap(grad)
            _, fwd_s, (iters, conv) = common.time_compiled(fwd, mdp, repeats=2)
            if tau > 0:
                _, grad_s, _ = common.time_compiled(grad, mdp, repeats=2)
                grad_cell = f"{common.fmt_ms(grad_s)} ({grad_s / fwd_s:.2f}×)"
            else:
                grad_cell = "–"
            rows.append([name, solver, f"{int(np.max(np.asarray(iters)))}",
                         common.fmt_ms(fwd_s), grad_cell])
            print(" | ".join(rows[-1]), flush=True)
    return common.markdown_table(["problem", "solver", "sweeps (max over batch)",
                                  "forward (ms)", "value + gradient (ms, × forward)"], rows)


def plot(path, per_size, per_gamma):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    s = [p[0] for p in per_size]
    axes[0].loglog(s, [p[2] * 1e3 for p in per_size], "o-", label="measured per sweep")
    axes[0].loglog(s, [p[3] * 1e3 for p in per_size], "k--", label="bandwidth bound")
    axes[0].set_xlabel("states S (open grid, 4 actions)")
    axes[0].set_ylabel("ms per sweep")
    axes[0].legend()
    axes[0].grid(alpha=0.3, which="both")
    axes[0].set_title("time per value-iteration sweep vs S")
    for solver, style in (("iteration", "o-"), ("anderson", "s--")):
        pts = [p for p in per_gamma if p[1] == solver]
        xs = [1 / (1 - p[0]) for p in pts]
        axes[1].loglog(xs, [p[2] * 1e3 for p in pts], style, label=f"soft VI, {solver}")
        for p, x in zip(pts, xs):
            axes[1].annotate(f"{p[3]}", (x, p[2] * 1e3), fontsize=8)
    axes[1].legend(fontsize=8)
    axes[1].set_xlabel("1 / (1 − γ)")
    axes[1].set_ylabel("forward time to tol 1e-6 (ms)")
    axes[1].set_title("100×100 grid, logsumexp τ = 0.1: time vs γ\n(labels: sweeps)")
    axes[1].grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", help="write the tables into this README")
    parser.add_argument("--figure", default="docs/figures/scaling.png")
    parser.add_argument("--quick", action="store_true", help="smaller grids")
    args = parser.parse_args(argv)
    print("machine:", common.machine())
    bandwidth = copy_bandwidth()
    print(f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s")
    sides = (32, 100) if args.quick else (100, 300)
    table_a = comparison_table(sides, 0.99, include_pymdptoolbox=True)
    scale_sides = (32, 100, 316) if args.quick else (32, 100, 316, 1000)
    table_b, per_size, per_gamma = scaling(scale_sides, (0.9, 0.99, 0.999), bandwidth)
    plot(args.figure, per_size, per_gamma)
    table_c = solver_table()
    text = (f"Machine: {common.machine()}; measured copy bandwidth "
            f"{bandwidth / 1e9:.1f} GB/s.\n\n"
            f"Hard value iteration, γ = 0.99, tol {TOL:g}, float64, goal in a corner of an open "
            f"grid (sparse transitions). Gradient: value + implicit gradient of "
            f"`s0 · m_τ(Q*)` (logsumexp, τ = 0.1) with respect to the reward table.\n\n"
            f"{table_a}\n\nScaling (forward, γ = 0.99; figure `{args.figure}`):\n\n{table_b}"
            "\n\nPlain iteration vs Anderson acceleration (`solver=\"anderson\"`, memory 5); "
            "value + implicit gradient of `Σ_s s0[s] Σ_a Q*[s, a]` with respect to the reward "
            f"table (not measured for the max backup):\n\n{table_c}")
    common.report(text, args.readme, "scale")


if __name__ == "__main__":
    main()
