"""Figures of the option-gradient experiment: learning curves, learned options, every method."""

from __future__ import annotations

import os

import numpy as np

from optiongrad.experiments.io import save_figure

COLOURS = {"learned": "C3", "primitives": "C7", "hallway": "C0", "random": "C2",
           "eigenoptions": "C1", "covering": "C4"}


def write_figures(out_dir: str, setup, results: dict, rows: list, learned) -> None:
    """`learning_curves.png`, `learned_options.png` and `methods.png` into `out_dir`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optiongrad import plotting

    methods = results["methods"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if rows:
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["train_normalized"] for r in rows], color="C3", label="learned: train")
        scored = [r for r in rows if r["test_normalized"] is not None]
        ax.plot([r["step"] for r in scored], [r["test_normalized"] for r in scored],
                color="C3", ls="--", marker="." if len(scored) < len(rows) else None,
                label="learned: test (held out)")
    for name in (n for n in methods if n != "learned"):
        ax.axhline(methods[name]["test"]["normalized_return"], color=COLOURS[name], ls=":",
                   label=f"{name}: test")
    ax.set_xlabel("Adam updates")
    ax.set_ylabel("normalised return")
    ax.set_title(_regime(results))
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, os.path.join(out_dir, "learning_curves.png"), dpi=120)
    plt.close(fig)

    fig = plotting.plot_options(setup.grid, learned, title="learned options: policy (arrows), "
                                "termination β (red)")
    save_figure(fig, os.path.join(out_dir, "learned_options.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    names = list(methods)
    regimes = [(_regime(results), methods),
               (_regime({"config": {**results["config"], "include_primitives":
                                    results["other_regime"]["include_primitives"]}}),
                results["other_regime"]["methods"])]
    width = 0.38
    x = np.arange(len(names))
    for i, (label, scores) in enumerate(regimes):
        values = [scores[n]["test"]["normalized_return"] for n in names]
        bars = ax.bar(x + (i - 0.5) * width, values, width, label=label,
                      color=[COLOURS[n] for n in names], alpha=1.0 if i == 0 else 0.45,
                      edgecolor="black")
        for b, v in zip(bars, values):
            ax.text(b.get_x() + b.get_width() / 2, max(v, 0) + 0.01, f"{v:.2f}", ha="center",
                    fontsize=7)
    ax.set_xticks(x, names)
    ax.set_ylabel("normalised return, held-out goals")
    ax.set_title(f"{results['config']['map']}: every method on the "
                 f"{len(results['split']['test'])} held-out goals\n"
                 "(solid: " + regimes[0][0] + "; faded: " + regimes[1][0] + ")", fontsize=9)
    ax.axhline(0, color="black", lw=0.8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, os.path.join(out_dir, "methods.png"), dpi=120)
    plt.close(fig)


def regime_name(include_primitives: bool) -> str:
    """"options + primitives" or "options only" (tables, figures, progress bars)."""
    return "options + primitives" if include_primitives else "options only"


def _regime(results: dict) -> str:
    c = results["config"]
    budget = "converged" if c["planning_budget"] is None else f"N={c['planning_budget']}"
    return f"{regime_name(c['include_primitives'])}, {budget}"
