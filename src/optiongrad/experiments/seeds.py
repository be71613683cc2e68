"""Several seeds of the option-gradient experiment and their aggregate (DESIGN.md, "Any map").

`run_seeds(config, seeds, out_dir)` runs `learn_options` once per seed into `out_dir/seed-<n>`
(each a complete, resumable run) and writes `summary.json` and `summary.png` beside them: per
method and goal set, the mean over seeds of the normalised return with its 95% confidence
interval (Student's t with $n - 1$ degrees of freedom), and the paired difference learned −
best baseline per seed (the best baseline being the one with the highest mean held-out score)
with its interval. Seeds run one after the other in this process and share the work that does
not depend on the seed (`learn_options.MapWork`: reference returns, the seedless baselines and
their scores), so each seed after the first costs its training and two methods' scores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Optional, Sequence

import numpy as np
import scipy.stats

from optiongrad.experiments.io import prepare_output, save_figure, write_json
from optiongrad.experiments.learn_options import LearnOptionsConfig, MapWork, run_learn_options

SUMMARY_FILE = "summary.json"
SUMMARY_FIGURE = "summary.png"


def parse_seeds(text: str) -> tuple[int, ...]:
    """`"0-4"` → `(0, 1, 2, 3, 4)`; `"0,3,7"` → `(0, 3, 7)`; ranges and lists mix
    (`"0-2,9"`). Raises `ValueError` naming `--seeds`."""
    seeds = []
    try:
        for part in str(text).split(","):
            low, dash, high = part.strip().partition("-")
            first, last = int(low), int(high) if dash else int(low)
            if last < first:
                raise ValueError
            seeds.extend(range(first, last + 1))
    except ValueError:
        raise ValueError(f"--seeds: expected seeds such as 0-4 or 0,3,7 (non-negative, ranges "
                         f"increasing), got {text!r}") from None
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds: a seed is repeated in {text!r}")
    return tuple(seeds)


def seed_dir(out_dir: str, seed: int) -> str:
    """The output directory of one seed's run: `out_dir/seed-<seed>`."""
    return os.path.join(out_dir, f"seed-{seed}")


def run_seeds(config: LearnOptionsConfig, seeds: Sequence[int], out_dir: Optional[str] = None,
              *, resume: bool = False, force: bool = False, progress: bool = True) -> dict:
    """Run the experiment for every seed of `seeds` (the config's own seed is replaced) and
    return the aggregate (`summarise`); with `out_dir`, each seed's run goes to
    `out_dir/seed-<n>` and the aggregate to `summary.json` and `summary.png`. `resume`
    continues every seed's run (a finished one is only re-evaluated); `force` starts all over.
    """
    configs = [dataclasses.replace(config, seed=int(s)) for s in seeds]
    for c in configs:
        c.validate()
    if not configs:
        raise ValueError("--seeds: no seed given")
    lock = contextlib.nullcontext()
    if out_dir is not None:
        names = tuple(f"seed-{c.seed}" for c in configs)
        lock = prepare_output(out_dir, finished=SUMMARY_FILE, unfinished=names,
                              outputs=(SUMMARY_FILE, SUMMARY_FIGURE, *names), resume=resume,
                              force=force)
    with lock:
        runs, shared = {}, MapWork(configs[0])
        for c in configs:
            if progress:
                print(f"seed {c.seed} ({len(runs) + 1} of {len(configs)})", flush=True)
            where = None if out_dir is None else seed_dir(out_dir, c.seed)
            runs[c.seed] = run_learn_options(
                c, where, resume=resume and where is not None and os.path.isdir(where),
                progress=progress, shared=shared)
        summary = summarise(runs)
        if out_dir is not None:
            write_summary_figure(os.path.join(out_dir, SUMMARY_FIGURE), summary)
            write_json(os.path.join(out_dir, SUMMARY_FILE), summary)
    return summary


def interval(values: Sequence[float], level: float = 0.95) -> dict:
    """Mean and the `level` confidence interval of the mean (Student's t), as a dict with
    `mean`, `low`, `high`, `std` (sample) and `n`. One value gives an interval of zero width
    and says so (`std` None)."""
    x = np.asarray(values, float)
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "low": mean, "high": mean, "std": None, "n": int(x.size)}
    std = float(x.std(ddof=1))
    half = float(scipy.stats.t.ppf(0.5 + level / 2, x.size - 1) * std / np.sqrt(x.size))
    return {"mean": mean, "low": mean - half, "high": mean + half, "std": std, "n": int(x.size)}


def summarise(runs: dict) -> dict:
    """The aggregate of `{seed: results}`: per method and set the normalised return's mean and
    95% interval; the paired difference learned − best baseline (held-out goals, and train)."""
    seeds = sorted(runs)
    first = runs[seeds[0]]
    methods = list(first["methods"])
    scores = {m: {s: [runs[k]["methods"][m][s]["normalized_return"] for k in seeds]
                  for s in ("train", "test")} for m in methods}
    baselines = [m for m in methods if m != "learned"]
    best = max(baselines, key=lambda m: np.mean(scores[m]["test"]))
    paired = {s: interval(np.subtract(scores["learned"][s], scores[best][s]))
              for s in ("train", "test")}
    gap = interval(np.subtract(scores["learned"]["train"], scores["learned"]["test"]))
    return {
        "seeds": seeds,
        "config": {k: v for k, v in first["config"].items() if k != "seed"},
        "methods": {m: {s: {**interval(scores[m][s]), "values": scores[m][s]}
                        for s in ("train", "test")} for m in methods},
        "best_baseline": best,
        "paired_difference": {"learned_minus": best, **paired},
        "learned_beats_every_baseline_on_every_seed": bool(all(
            runs[k]["methods"]["learned"]["test"]["normalized_return"]
            > max(runs[k]["methods"][m]["test"]["normalized_return"] for m in baselines)
            for k in seeds)),
        "train_test_gap": gap,
    }


def format_summary(summary: dict) -> str:
    """The aggregate as aligned text: mean [95% interval] per method and set."""
    c = summary["config"]
    lines = [f"map: {c['map']}, seeds {summary['seeds']}, normalised return: mean [95% CI]",
             f"{'method':<13} {'train':>24} {'test (held out)':>24}", "-" * 63]
    for name, m in summary["methods"].items():
        cells = [f"{m[s]['mean']:.3f} [{m[s]['low']:.3f}, {m[s]['high']:.3f}]"
                 for s in ("train", "test")]
        lines.append(f"{name:<13} {cells[0]:>24} {cells[1]:>24}")
    d = summary["paired_difference"]["test"]
    lines.append(f"learned − {summary['best_baseline']} (held out, paired): {d['mean']:+.3f} "
                 f"[{d['low']:+.3f}, {d['high']:+.3f}]; learned best on every seed: "
                 f"{summary['learned_beats_every_baseline_on_every_seed']}")
    g = summary["train_test_gap"]
    lines.append(f"learned train − test gap: {g['mean']:.3f} [{g['low']:.3f}, {g['high']:.3f}]")
    return "\n".join(lines)


def write_summary_figure(path: str, summary: dict) -> None:
    """Bars of every method's held-out normalised return (mean, 95% interval, each seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optiongrad.experiments.figures import COLOURS

    names = list(summary["methods"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, name in enumerate(names):
        m = summary["methods"][name]["test"]
        ax.bar(i, m["mean"], color=COLOURS.get(name, "C9"), edgecolor="black",
               yerr=[[m["mean"] - m["low"]], [m["high"] - m["mean"]]], capsize=4)
        ax.plot(np.full(len(m["values"]), i), m["values"], "k.", ms=4)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("normalised return, held-out goals")
    ax.set_title(f"{summary['config']['map']}: mean and 95% interval over seeds "
                 f"{summary['seeds']} (dots: each seed)", fontsize=9)
    ax.axhline(0, color="black", lw=0.8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
