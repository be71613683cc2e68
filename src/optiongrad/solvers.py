"""How fixed points are solved and differentiated, and the result codes of every solve.

    og.soft_value_iteration(mdp, 0.1, solver=og.solvers.Anderson(memory=5))
    og.soft_value_iteration(mdp, 0.1, adjoint=og.solvers.Unrolled(num_sweeps=3))
    plan.result == og.RESULTS.successful        # plan.converged

Solvers: `Auto` (default: picks one of the others for the problem), `FixedPointIteration`,
`Anderson`, `Newton`, `GaussSeidel`. Adjoints: `Implicit` (default),
`Unrolled`. Result codes: `RESULTS`.
"""

from optiongrad._src.solvers import (
    RESULTS,
    Anderson,
    Auto,
    FixedPointIteration,
    GaussSeidel,
    Implicit,
    Newton,
    Unrolled,
)

__all__ = ["RESULTS", "Anderson", "Auto", "FixedPointIteration", "GaussSeidel", "Implicit", "Newton", "Unrolled"]
