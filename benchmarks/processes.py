"""The four-rooms training step in 1, 2 and 4 local CPU processes on JAX's multi-process runtime
(the goals split over the processes' devices, the gradient all-reduced by gloo):

    python benchmarks/processes.py [--processes 1,2,4] [--steps 30]

Each count runs `train_options` of the default four-rooms config for `--steps` steps in that
many processes at once (localhost, a free port) and reports the median of the steps' wall
times after the first (which compiles), as process 0 measures it, with the load average before
and after. The numbers depend on how many cores are free: on a machine with fewer cores than
processes the processes share them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import textwrap

STEP = textwrap.dedent("""
    import json, statistics, sys, jax
    jax.config.update("jax_enable_x64", True)
    from optiongrad.experiments import processes
    from optiongrad.experiments.learn_options import LearnOptionsConfig, Setup, train_options

    port, count, index, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    if count > 1:
        processes.initialize(f"localhost:{port}", count, index)
    _, rows = train_options(Setup(LearnOptionsConfig(steps=steps)), progress=False)
    seconds = [r["seconds"] for r in rows[1:]]
    print(json.dumps({"median": statistics.median(seconds), "min": min(seconds),
                      "first": rows[0]["seconds"], "test_return": rows[-1]["test_return"]}))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run(count: int, steps: int) -> dict:
    """Process 0's timings of `steps` steps in `count` processes."""
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-c", STEP, str(port), str(count), str(i),
                               str(steps)], stdout=subprocess.PIPE, text=True)
             for i in range(count)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a process of {count} failed")
    return json.loads(outs[0].strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average before: {os.getloadavg()}")
    print("| processes | step (ms), median | fastest | first step (s) | held-out return |")
    print("|---|---|---|---|---|")
    for count in (int(c) for c in args.processes.split(",")):
        t = run(count, args.steps)
        print(f"| {count} | {1e3 * t['median']:.0f} | {1e3 * t['min']:.0f} | "
              f"{t['first']:.1f} | {t['test_return']:.12f} |", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
