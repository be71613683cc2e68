"""Every benchmark in one run, written into the README (needs the `bench` extra):

    pip install ".[bench]" && python benchmarks/run_all.py

Runs `core.py` (planner and gradient times, implicit vs unrolled memory), `scale.py`
(large grids vs numpy/scipy and pymdptoolbox, scaling curves, bandwidth bound, solvers) and
`solvers.py` (soft value iteration's solvers against a plain while_loop on a 300×300 grid and
the 104 four-rooms goals), `solver_grid.py` (every solver against the plain JAX loop, a
numpy/scipy loop and pymdptoolbox across S = 10³…10⁶, γ and τ; about 40 minutes) and
`option_gradient.py` (the option gradient's training step: dense vs factored goal models, and
its growth with S, T, K). About an hour on 2 cores. Never part of the test suite.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import core  # noqa: E402
import option_gradient  # noqa: E402
import scale  # noqa: E402
import solver_grid  # noqa: E402
import solvers  # noqa: E402

if __name__ == "__main__":
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    figure = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "figures",
                          "scaling.png")
    core.main(["--readme", readme])
    scale.main(["--readme", readme, "--figure", figure])
    solvers.main(["--readme", readme])
    solver_grid.main(["--readme", readme, "--figure",
                      os.path.join(os.path.dirname(figure), "solver_grid.png")])
    option_gradient.main(["--readme", readme, "--figure", os.path.join(
        os.path.dirname(figure), "option_gradient_scaling.png")])
