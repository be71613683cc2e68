"""Several seeds of the option-gradient experiment and their aggregate (DESIGN.md, "Any map").

`run_seeds(config, seeds, out_dir)` runs `learn_options` once per seed into `out_dir/seed-<n>`
(each a complete, resumable run) and writes `summary.json` and `summary.png` beside them: per
method and goal set, the mean over seeds of the normalised return with its 95% confidence
interval (Student's t with $n - 1$ degrees of freedom), and the paired difference learned −
best baseline per seed (the best baseline being the one with the highest mean held-out score)
with its interval.

With `workers = 1` the seeds run one after the other in this process and share the work that
does not depend on the seed (`learn_options.MapWork`: reference returns, the seedless baselines
and their scores), so each seed after the first costs its training and two methods' scores.
With `workers = W > 1` they run `W` at a time, each in a worker process of a
`concurrent.futures.ProcessPoolExecutor` (spawned, so that each worker starts its own JAX
runtime); a worker keeps its map's shared work for the next seed it runs. Each seed's numbers
are those of the sequential run (a seed's run depends on nothing but its config), and each
seed is still a complete, resumable run in its own directory; the workers are quiet and this
process prints a line per finished seed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
from typing import Optional, Sequence

import jax

import numpy as np
import scipy.stats

from optiongrad.experiments import processes
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


def default_workers(num_seeds: int) -> int:
    """Worker processes for `num_seeds` seeds: one per CPU core this process may run on, at
    most one per seed."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return max(1, min(num_seeds, cores))


def run_seeds(config: LearnOptionsConfig, seeds: Sequence[int], out_dir: Optional[str] = None,
              *, resume: bool = False, force: bool = False, progress: bool = True,
              workers: Optional[int] = 1) -> dict:
    """Run the experiment for every seed of `seeds` (the config's own seed is replaced) and
    return the aggregate (`summarise`); with `out_dir`, each seed's run goes to
    `out_dir/seed-<n>` and the aggregate to `summary.json` and `summary.png`. `resume`
    continues every seed's run (a finished one is only re-evaluated); `force` starts all over.
    `workers`: how many seeds run at a time, each in its own process (1: one after another in
    this process; None: `default_workers`); the results are the same either way.

    With several JAX processes (`experiments.processes`) every process calls this alike, with
    `workers = 1`: each seed runs on all of them, and process 0 alone writes.
    """
    configs = [dataclasses.replace(config, seed=int(s)) for s in seeds]
    for c in configs:
        c.validate()
    if not configs:
        raise ValueError("--seeds: no seed given")
    workers = default_workers(len(configs)) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"--workers: expected an integer >= 1, got {workers!r}")
    if workers > 1 and jax.process_count() > 1:
        raise ValueError("--workers: with several processes each seed runs on all of them, "
                         "one seed after another; use --workers 1")
    lock = contextlib.nullcontext()
    if out_dir is not None:
        names = tuple(f"seed-{c.seed}" for c in configs)
        lock = processes.first_process(lambda: prepare_output(
            out_dir, finished=SUMMARY_FILE, unfinished=names,
            outputs=(SUMMARY_FILE, SUMMARY_FIGURE, *names), resume=resume, force=force),
            f"--out {out_dir}")
    jobs = [(c, None if out_dir is None else seed_dir(out_dir, c.seed)) for c in configs]
    jobs = [(c, where, resume and where is not None and os.path.isdir(where))
            for c, where in jobs]
    with lock or contextlib.nullcontext():
        if min(workers, len(jobs)) > 1:
            runs = _in_parallel(jobs, workers, progress)
        else:
            runs, shared = {}, MapWork(configs[0])
            for c, where, resume_seed in jobs:
                if progress:
                    print(f"seed {c.seed} ({len(runs) + 1} of {len(configs)})", flush=True)
                runs[c.seed] = run_learn_options(c, where, resume=resume_seed,
                                                 progress=progress, shared=shared)
        summary = summarise(runs)
        if out_dir is not None and processes.is_writer():
            write_summary_figure(os.path.join(out_dir, SUMMARY_FIGURE), summary)
            write_json(os.path.join(out_dir, SUMMARY_FILE), summary)
    return summary


def _in_parallel(jobs: list, workers: int, progress: bool) -> dict:
    """`{seed: results}` of `jobs` (`(config, out_dir, resume)`), `workers` at a time in
    spawned worker processes; the first error stops the seeds not yet started and is raised
    once the running ones end."""
    if progress:
        print(f"seeds {[c.seed for c, _, _ in jobs]}: {min(workers, len(jobs))} at a time, "
              "each in its own process", flush=True)
    pool = concurrent.futures.ProcessPoolExecutor(
        min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker, initargs=(bool(jax.config.jax_enable_x64),))
    runs = {}
    try:
        futures = {pool.submit(_worker_run, *job): job[0].seed for job in jobs}
        for future in concurrent.futures.as_completed(futures):
            seed = futures[future]
            runs[seed] = future.result()
            if progress:
                test = runs[seed]["methods"]["learned"]["test"]["normalized_return"]
                print(f"seed {seed} done ({len(runs)} of {len(jobs)}): learned options' "
                      f"held-out normalised return {test:.3f}", flush=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return runs


def _start_worker(float64: bool) -> None:
    """A worker process computes in the precision of the process that started it."""
    jax.config.update("jax_enable_x64", float64)


_MAP_WORK: dict = {}   # a worker's shared work, per map configuration


def _worker_run(config: LearnOptionsConfig, out_dir: Optional[str], resume: bool) -> dict:
    """One seed's run in a worker process, quiet, sharing the worker's `MapWork`."""
    key = dataclasses.replace(config, seed=0, steps=0)
    if key not in _MAP_WORK:
        _MAP_WORK[key] = MapWork(config)
    return run_learn_options(config, out_dir, resume=resume, progress=False,
                             shared=_MAP_WORK[key])


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
