"""The `optiongrad` command line.

```text
optiongrad four-rooms [--out DIR] [--steps N] ...  the option-gradient experiment
optiongrad irg [--out DIR] [--steps N] ...         intrinsic-reward-gradient demonstration
optiongrad planning-time [--out DIR] ...           sweeps saved by options (Sutton et al. 1999)
```
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from typing import Optional, Sequence


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def _cell(text: str) -> tuple[int, int]:
    try:
        row, col = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (e.g. 11,11), got {text!r}")
    return row, col


def _add_common(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--float32", action="store_true",
                        help="compute in float32 instead of float64")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The `optiongrad` argument parser: sub-commands `four-rooms`, `irg`, `planning-time`."""
    parser = argparse.ArgumentParser(
        prog="optiongrad",
        description="Differentiable planning in tabular MDPs: experiments.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub_parser = functools.partial(sub.add_parser,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)

    fr = sub_parser(
        "four-rooms", help="learn options by the option gradient on four rooms (main job)",
        description="Learn K options on 80% of the four-rooms goals by the option gradient "
        "(options planned from learned intrinsic rewards, a policy over options planned with "
        "a budget of N sweeps, gradient through both planners) and compare them with "
        "primitives, hallway options, random options and eigenoptions on the held-out 20%.",
    )
    _add_common(fr, "runs/four-rooms")
    fr.add_argument("--steps", type=_nonnegative_int, default=150, help="training steps")
    fr.add_argument("--options", type=_positive_int, default=8, help="number of options K (even)")
    budget = fr.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=_positive_int, default=3,
                        help="planning budget N: sweeps of the SMDP planner from zero values")
    budget.add_argument("--converged", action="store_true",
                        help="plan the policy over options to convergence (implicit gradient)")
    fr.add_argument("--options-only", action="store_true",
                    help="plan over the options alone, without the primitive actions")
    fr.add_argument("--resume", action="store_true",
                    help="continue from OUT/checkpoint.npz (a killed run loses nothing)")
    fr.add_argument("--discount", type=float, default=0.9, help="discount γ of every task")
    fr.add_argument("--temperature-options", type=float, default=0.05,
                    help="temperature τ_o of the option policies")
    fr.add_argument("--temperature-mu", type=float, default=0.01,
                    help="temperature τ_μ of the policy over options")
    fr.add_argument("--lr", type=float, default=0.1, help="Adam learning rate")
    fr.add_argument("--reward", choices=("state", "tabular"), default="state",
                    help="intrinsic reward parametrisation")
    fr.add_argument("--fixed-termination", action="store_true",
                    help="do not learn terminations: β = 0.1 everywhere")
    fr.add_argument("--diversity", type=float, default=0.0,
                    help="weight of the option-diversity bonus")

    irg = sub_parser(
        "irg", help="learn an intrinsic reward for a bounded planner on four rooms",
        description="Intrinsic reward gradient: a bounded planner (short planning discount or "
        "a few sweeps) on the four-rooms extrinsic reward performs poorly; learning r_θ by the "
        "implicit gradient through the planner recovers near-optimal extrinsic return.",
    )
    _add_common(irg, "runs/irg")
    irg.add_argument("--steps", type=_nonnegative_int, default=300, help="training steps")
    irg.add_argument("--goal", type=_cell, default=(11, 11), help="goal cell ROW,COL")
    irg.add_argument("--discount", type=float, default=0.99, help="extrinsic discount γ")
    irg.add_argument("--plan-discount", type=float, default=0.5,
                     help="the bounded planner's discount γ_plan")
    irg.add_argument("--plan-sweeps", type=_positive_int, default=None,
                     help="bound the planner by N sweeps at γ instead of by γ_plan")
    irg.add_argument("--temperature", type=float, default=0.03, help="planner temperature τ")
    irg.add_argument("--reward", choices=("tabular", "state", "linear"), default="tabular",
                     help="intrinsic reward parametrisation")
    irg.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    irg.add_argument("--slip", type=float, default=0.0, help="probability a move slips")

    pt = sub_parser(
        "planning-time", help="value-iteration sweeps with and without options on four rooms",
        description="Sweeps of value iteration from zero values until the greedy policy is "
        "optimal / the values are within epsilon, for primitives alone and with hallway "
        "options, eigenoptions and random options (Sutton, Precup & Singh 1999; Jinnai et al. "
        "2019).",
    )
    _add_common(pt, "runs/planning-time")
    pt.add_argument("--discount", type=float, default=0.9, help="discount γ")
    pt.add_argument("--slip", type=float, default=0.0, help="probability a move slips")
    pt.add_argument("--epsilon", type=float, default=1e-6,
                    help="value tolerance of the \"values\" criterion")
    pt.add_argument("--options", type=int, default=8, help="eigen/random options (even)")
    return parser


def _setup(args) -> None:
    import jax

    jax.config.update("jax_enable_x64", not args.float32)


def _run_irg(args) -> int:
    from optiongrad.experiments.irg import IRGConfig, format_table, run_irg

    config = IRGConfig(
        goal=args.goal, discount=args.discount, plan_discount=args.plan_discount,
        plan_sweeps=args.plan_sweeps, temperature=args.temperature, reward=args.reward,
        steps=args.steps, learning_rate=args.lr, slip=args.slip, seed=args.seed,
    )
    results = run_irg(config, args.out, progress=not args.quiet)
    print(format_table(results))
    print(f"\nwrote {os.path.join(args.out, '')}"
          "{results.json, metrics.csv, irg_learning_curve.png, irg_reward.png}")
    return 0


def _run_four_rooms(args) -> int:
    from optiongrad.experiments.four_rooms import FourRoomsConfig, format_table, run_four_rooms

    config = FourRoomsConfig(
        discount=args.discount, temperature_options=args.temperature_options,
        temperature_mu=args.temperature_mu,
        planning_budget=None if args.converged else args.budget,
        include_primitives=not args.options_only, num_options=args.options, seed=args.seed,
        steps=args.steps, learning_rate=args.lr, reward=args.reward,
        learn_termination=not args.fixed_termination, diversity_weight=args.diversity,
    )
    results = run_four_rooms(config, args.out, resume=args.resume, progress=not args.quiet)
    print(format_table(results))
    print(f"\nwrote {os.path.join(args.out, '')}{{results.json, metrics.csv, options.npz, "
          "learning_curves.png, learned_options.png, methods.png}")
    return 0


def _run_planning_time(args) -> int:
    from optiongrad.experiments.planning_time import (
        PlanningTimeConfig,
        format_table,
        run_planning_time,
    )

    config = PlanningTimeConfig(discount=args.discount, slip=args.slip, epsilon=args.epsilon,
                                num_options=args.options, seed=args.seed)
    results = run_planning_time(config, args.out, progress=not args.quiet)
    print(format_table(results))
    print(f"\nwrote {os.path.join(args.out, '')}"
          "{planning_time.json, value_propagation.png, options_*.png}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `optiongrad` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup(args)
    try:
        run = {"four-rooms": _run_four_rooms, "irg": _run_irg,
               "planning-time": _run_planning_time}[args.command]
        return run(args)
    except ValueError as err:
        parser.error(str(err))
    return 2


if __name__ == "__main__":
    sys.exit(main())
