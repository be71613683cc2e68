"""The `optiongrad` command line.

```text
optiongrad four-rooms [--out DIR] [--steps N] ...  the option-gradient experiment (main job)
optiongrad learn-options --map PATH|NAME ...       the same on any map (four-rooms, nine-rooms,
                                                   twenty-five-rooms or an ASCII file)
optiongrad irg [--out DIR] [--steps N] ...         intrinsic-reward-gradient demonstration
optiongrad planning-time [--out DIR] ...           sweeps saved by options (Sutton et al. 1999)
```

Every flag's default comes from the experiment's config dataclass, and every flag is checked
before any work starts (an error names the flag); the output directory is checked too, and a
finished run in it is never overwritten without `--force`.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Optional, Sequence

from optiongrad.experiments import config as cfg
from optiongrad.experiments.learn_options import LearnOptionsConfig
from optiongrad.experiments.irg import IRGConfig
from optiongrad.experiments.planning_time import PlanningTimeConfig

_BUDGET = LearnOptionsConfig.__dataclass_fields__["planning_budget"].default


def _add_run_flags(parser: argparse.ArgumentParser, default_out: str, *,
                   resumable: bool = True) -> None:
    parser.add_argument("--out", default=default_out, help="output directory")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a finished (or unfinished) run in --out")
    if resumable:
        parser.add_argument("--resume", action="store_true",
                            help="continue the run in --out from its checkpoint.npz (a killed "
                            "run loses nothing)")
    parser.add_argument("--float32", action="store_true",
                        help="compute in float32 instead of float64")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The `optiongrad` argument parser: sub-commands `four-rooms`, `learn-options`, `irg`,
    `planning-time`."""
    parser = argparse.ArgumentParser(
        prog="optiongrad",
        description="Differentiable planning in tabular MDPs: experiments.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub_parser = functools.partial(sub.add_parser,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    _add_learn_options(sub_parser(
        "four-rooms", help="learn options by the option gradient on four rooms (main job)",
        description="Learn K options on 80% of the four-rooms goals by the option gradient "
        "(options planned from learned intrinsic rewards, a policy over options planned with "
        "a budget of N sweeps, gradient through both planners) and compare them with "
        "primitives, hallway options, random options, eigenoptions and covering options on "
        "the held-out 20%. The same as learn-options --map four-rooms.",
    ), "runs/four-rooms", skip=("map",))
    _add_learn_options(sub_parser(
        "learn-options", help="the four-rooms protocol on any map",
        description="The option-gradient experiment of four-rooms on any ASCII map: every "
        "free cell a goal, a seeded 80/20 split, every method scored the same way.",
    ), "runs/learn-options")

    irg = sub_parser(
        "irg", help="learn an intrinsic reward for a bounded planner on four rooms",
        description="Intrinsic reward gradient: a bounded planner (short planning discount or "
        "a few sweeps) on the four-rooms extrinsic reward performs poorly; learning r_θ by the "
        "implicit gradient through the planner recovers near-optimal extrinsic return.",
    )
    _add_run_flags(irg, "runs/irg")
    cfg.add_arguments(irg, IRGConfig)
    irg.add_argument("--plan-sweeps", type=cfg.parse_integer, dest="plan_sweeps",
                     default=None, metavar="N", help="deprecated spelling of --budget")

    pt = sub_parser(
        "planning-time", help="value-iteration sweeps with and without options on four rooms",
        description="Sweeps of value iteration from zero values until the greedy policy is "
        "optimal / the values are within epsilon, for primitives alone and with hallway "
        "options, eigenoptions and random options (Sutton, Precup & Singh 1999; Jinnai et al. "
        "2019).",
    )
    _add_run_flags(pt, "runs/planning-time", resumable=False)
    cfg.add_arguments(pt, PlanningTimeConfig)
    return parser


def _add_learn_options(parser: argparse.ArgumentParser, default_out: str, *,
                       skip: tuple = ()) -> None:
    _add_run_flags(parser, default_out)
    cfg.add_arguments(parser, LearnOptionsConfig, skip=("planning_budget", *skip))
    parser.add_argument("--budget", type=cfg.parse_integer, default=argparse.SUPPRESS,
                        metavar="N", help=f"planning budget N: sweeps of the SMDP planner from "
                        f"zero values (default: {_BUDGET})")
    parser.add_argument("--converged", action="store_true",
                        help="plan the policy over options to convergence (implicit gradient)")
    parser.add_argument("--seeds", default=None, metavar="SEEDS",
                        help="run these seeds (e.g. 0-4 or 0,3,7) into OUT/seed-<n> and write "
                        "their aggregate (summary.json, summary.png): mean and 95%% interval "
                        "of every method, paired difference learned − best baseline")
    parser.add_argument("--workers", type=cfg.parse_integer, default=None, metavar="N",
                        help="with --seeds: run this many seeds at a time, each in its own "
                        "process (default: one per CPU core, at most one per seed; 1: one "
                        "after another in this process)")
    cluster = parser.add_argument_group(
        "several processes", "JAX's multi-process runtime: give all three (the same "
        "--coordinator and --num-processes to every process), or none of them to let JAX "
        "detect a cluster (Slurm, Open MPI). The goals of each training step are split over "
        "the devices of all processes; process 0 alone writes --out.")
    cluster.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                         help="address of process 0, which the others connect to")
    cluster.add_argument("--num-processes", type=cfg.parse_integer, default=None,
                         dest="num_processes", metavar="N", help="number of processes")
    cluster.add_argument("--process-id", type=cfg.parse_integer, default=None,
                         dest="process_id", metavar="I", help="this process's index, 0 … N−1")


def _learn_options_config(args) -> LearnOptionsConfig:
    budget = getattr(args, "budget", None)
    if args.converged and budget is not None:
        raise ValueError("--converged: conflicts with --budget (a budget of sweeps, or "
                         "planning to convergence: give one)")
    if args.seeds is not None and hasattr(args, "seed"):
        raise ValueError("--seeds: conflicts with --seed; give one")
    budget = _BUDGET if budget is None else budget
    return cfg.from_args(LearnOptionsConfig, args,
                         planning_budget=None if args.converged else budget)


def _irg_config(args) -> IRGConfig:
    if args.plan_sweeps is not None:
        if hasattr(args, "planning_budget"):
            raise ValueError("--plan-sweeps: conflicts with --budget (its new spelling)")
        print("optiongrad irg: --plan-sweeps is deprecated, use --budget", file=sys.stderr)
        args.planning_budget = args.plan_sweeps
    return cfg.from_args(IRGConfig, args)


def _run(args) -> int:
    import jax

    jax.config.update("jax_enable_x64", not args.float32)
    progress, say = not args.quiet, print
    if args.command in ("four-rooms", "learn-options"):
        from optiongrad.experiments import processes, seeds
        from optiongrad.experiments.learn_options import (
            format_table,
            output_files,
            run_learn_options,
        )

        config = _learn_options_config(args)
        chosen = None if args.seeds is None else seeds.parse_seeds(args.seeds)
        if args.workers is not None and chosen is None:
            raise ValueError("--workers: only with --seeds (the seeds run in parallel)")
        if processes.initialize(args.coordinator, args.num_processes, args.process_id) > 1:
            args.workers = 1 if args.workers is None else args.workers
            if not processes.is_writer():    # process 0 reports; the others stay quiet
                progress, say = False, lambda *lines: None
        if chosen is not None:
            summary = seeds.run_seeds(config, chosen, args.out, resume=args.resume,
                                      force=args.force, progress=progress,
                                      workers=args.workers)
            say(seeds.format_summary(summary))
            names = (seeds.SUMMARY_FILE, seeds.SUMMARY_FIGURE,
                     *(f"seed-{s}/" for s in chosen))
            say(f"\nwrote {os.path.join(args.out, '')}{{{', '.join(names)}}}")
            return 0
        results = run_learn_options(config, args.out, resume=args.resume, force=args.force,
                                    progress=progress)
        files = output_files(config)
    elif args.command == "irg":
        from optiongrad.experiments.irg import FIGURES, RESULTS_FILE, format_table, run_irg

        results = run_irg(_irg_config(args), args.out, resume=args.resume, force=args.force,
                          progress=progress)
        files = (RESULTS_FILE, "metrics.csv", *FIGURES)
    else:
        from optiongrad.experiments.planning_time import (
            FAMILIES,
            RESULTS_FILE,
            format_table,
            run_planning_time,
        )

        results = run_planning_time(cfg.from_args(PlanningTimeConfig, args), args.out,
                                    force=args.force, progress=progress)
        files = (RESULTS_FILE, "value_propagation.png",
                 *(f"options_{name}.png" for name in FAMILIES))
    say(format_table(results))
    say(f"\nwrote {os.path.join(args.out, '')}{{{', '.join(files)}}}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `optiongrad` command; returns the exit status (2 for bad
    arguments, 1 for a run that failed)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    try:
        return _run(args)
    except ValueError as err:
        command.choices[args.command].error(str(err))
    except RuntimeError as err:
        line = next((x for x in str(err).splitlines() if x.strip()), type(err).__name__)
        print(f"optiongrad {args.command}: error: {line}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = "; continue with --resume" if hasattr(args, "resume") else ""
        print(f"optiongrad {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
