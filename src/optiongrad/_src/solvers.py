r"""Solver and adjoint objects, and the result codes every iterative solve reports.

A fixed point $x^* = f(\theta, x^*)$ is found by a **solver** and differentiated by an **adjoint**
(the split of optimistix). Both are small frozen objects, passed to every planner and to
`optiongrad.fixed_point` as `solver=` and `adjoint=`:

| object | what it does |
|---|---|
| `Auto(newton_factor=0.5)` | the default: `GaussSeidel` for sparse MDPs, `Newton` for small dense ones at high γ, plain iteration otherwise (`Auto.choose`) |
| `FixedPointIteration(check_every=1)` | $x_{k+1} = f(x_k)$; the stopping rule tested every `check_every` sweeps |
| `Anderson(memory=5)` | safeguarded type-II Anderson mixing of the last `memory` iterates (Walker & Ni 2011), finished by plain iteration if it stalls |
| `Newton(max_steps=100)` | soft policy iteration (Newton's method on the soft Bellman equation; dense MDPs, logsumexp or max) finished by chord steps, then plain sweeps to the tolerance; `soft_value_iteration` and `smdp_value_iteration` (over options) |
| `GaussSeidel(window=512, check_every=4)` | Gauss–Seidel sweeps over the states ordered by distance to the absorbing states, from a median-shifted start, then plain sweeps to the tolerance; sparse MDPs, `soft_value_iteration` and `intra_option_value_iteration` |
| `Implicit(rtol, max_iter, solver)` | gradient by the implicit function theorem at $x^*$: the adjoint equation $u = \bar{g} + (\partial_x f)^\top u$ is iterated by `solver` (default: the forward solver, or plain iteration after Newton) |
| `Unrolled(num_sweeps)` | exactly `num_sweeps` sweeps in a `lax.scan`, differentiated through them (a fixed planning budget) |

The old spellings stay: `solver="auto" | "iteration" | "anderson" | "newton" | "gauss-seidel"`,
`differentiation="implicit" | "unrolled"` with `num_sweeps=N`, and `adjoint_rtol=`,
`adjoint_max_iter=` (deprecated); `resolve` turns them into objects and refuses conflicts.

**Result codes** (`RESULTS`, an `equinox.Enumeration` as in optimistix): every iterative result
carries `result`; `result == RESULTS.successful` is its `converged`.

* `successful` — the residual met the tolerance;
* `max_steps_reached` — the iteration limit came first: a failure;
* `nonfinite` — an iterate stopped being finite (NaN or inf): a failure;
* `adjoint_failed` — the implicit gradient's adjoint solve did not converge (raised from the
  backward pass with `throw=True`; otherwise the gradient is NaN): a failure;
* `budget_reached` — with `Unrolled`, the `num_sweeps` sweeps ended before the residual met
  the tolerance: the computation asked for (a planning budget), not a failure.

`converged` is `result == successful`; `failed` is any of the three failure codes. A failed
solve never passes as a plausible number: its gradient is NaN, the functions that return plain
arrays return NaN, and with `throw=True` it raises a `RuntimeError` naming the code.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Callable, NamedTuple, Optional, Union

import equinox as eqx
import jax
import jax.numpy as jnp

from optiongrad._src import checks, linalg
from optiongrad._src.gauss_seidel import GAUSS_SEIDEL_BACKUPS
from optiongrad._src.newton import NEWTON_BACKUPS

Array = jax.Array


class RESULTS(eqx.Enumeration):
    """What an iterative solve ended with (see the module docstring)."""

    __module__ = "optiongrad"  # shown as optiongrad.RESULTS<...>

    successful = "converged: the residual met the tolerance"
    max_steps_reached = ("the iteration limit was reached before the residual met the "
                         "tolerance (raise max_iter, or loosen tol)")
    nonfinite = "the iterates stopped being finite (NaN or inf)"
    adjoint_failed = ("the adjoint solve of the implicit gradient did not converge (raise the "
                      "adjoint's max_iter, or loosen its rtol)")
    budget_reached = ("the fixed budget of sweeps (Unrolled) ended before the residual met the "
                      "tolerance: the computation asked for, not a failure")


def result_code(value: Array, residual: Array, threshold, limit: RESULTS) -> RESULTS:
    r"""`nonfinite` if `value` or `residual` is not finite, else `successful` if
    $\mathrm{residual} \le \mathtt{threshold}$, else `limit` (`max_steps_reached` or `budget_reached`)."""
    finite = jnp.isfinite(residual) & jnp.all(jnp.isfinite(value))
    converged = residual <= threshold
    return RESULTS.where(~finite, RESULTS.nonfinite,
                         RESULTS.where(converged, RESULTS.successful, limit))


def is_failure(result: RESULTS) -> Array:
    """Whether `result` is a failure (`max_steps_reached`, `nonfinite`, `adjoint_failed`)."""
    return (result != RESULTS.successful) & (result != RESULTS.budget_reached)


class Reported:
    """Mixin of the result containers: `converged` and `failed` from their `result` code, and
    optiongrad 0.1's tuple layout (`LEGACY_FIELDS`, with `converged` last) for unpacking and
    indexing, with a DeprecationWarning."""

    result: RESULTS
    LEGACY_FIELDS: tuple = ()

    def _legacy(self) -> tuple:
        warnings.warn(f"{type(self).__name__} is no longer a tuple; use its attributes "
                      f"({', '.join(self.LEGACY_FIELDS)})", DeprecationWarning, stacklevel=3)
        return tuple(getattr(self, name) for name in self.LEGACY_FIELDS)

    def __iter__(self):
        return iter(self._legacy())

    def __getitem__(self, index):
        return self._legacy()[index]

    def __len__(self):
        return len(self._legacy())

    @property
    def converged(self) -> Array:
        """`result == RESULTS.successful`: the residual met the tolerance (bool array)."""
        return self.result == RESULTS.successful

    @property
    def failed(self) -> Array:
        """The solve failed (iteration limit, non-finite values; bool array). Gradients
        through a failed solve are NaN."""
        return is_failure(self.result)


# -- solvers ------------------------------------------------------------------------------------


def _threshold(tol: float, rtol: float, norm, x) -> Array:
    r"""The stopping threshold $\mathrm{tol} + \mathrm{rtol} \cdot \operatorname{norm}(x)$; `rtol` is a Python float, so with
    rtol = 0 no pass over `x` is spent on `norm(x)`."""
    return tol + rtol * norm(x) if rtol else jnp.asarray(tol, x.dtype)


def iterate_plain(fn, x0, residual0, tol, rtol, max_iter, norm, check_every: int = 1):
    r"""$x \leftarrow fn(x)$ from `x0` until $\operatorname{norm}(x_{k+1} - x_k) \le \mathrm{tol} + \mathrm{rtol} \cdot \operatorname{norm}(x_{k+1})$,
    `max_iter` sweeps, or a non-finite residual; `residual0` is the residual of `x0` (inf if
    unknown; if it already meets the rule, no sweep is done). The rule is tested after every
    `check_every`-th sweep (the residual is that sweep's), so up to $\mathtt{check\_every} - 1$ sweeps
    more than needed, and at most $\mathtt{max\_iter} + \mathtt{check\_every} - 1$. Returns
    `(x, sweeps, residual)`."""

    def cond(carry):
        k, x, residual = carry
        return (k < max_iter) & (residual > _threshold(tol, rtol, norm, x))

    def body(carry):
        k, x, _ = carry
        for _ in range(check_every - 1):
            x = fn(x)
        x_next = fn(x)
        return k + check_every, x_next, norm(x_next - x)

    k, x, residual = jax.lax.while_loop(cond, body, (jnp.int32(0), x0, residual0))
    return x, k, residual


@dataclasses.dataclass(frozen=True)
class FixedPointIteration:
    r"""Plain fixed-point iteration $x_{k+1} = f(x_k)$: for a γ-contraction, the error shrinks
    by γ per sweep (Banach).

    Attributes:
      check_every: test the stopping rule after every `check_every`-th sweep only (default
        1). Each test is a reduction over `x`, which on CPU can cost as much as a sparse
        sweep itself (10⁴ states × 384 columns: 4–5 ms each, measured); testing every few
        sweeps trades at most $\mathtt{check\_every} - 1$ extra sweeps for that time.
    """

    check_every: int = 1

    def __post_init__(self):
        object.__setattr__(self, "check_every",
                           checks.integer(self.check_every, "check_every"))

    def iterate(self, fn: Callable[[Array], Array], x0: Array, *, tol: float, rtol: float,
                max_iter: int, norm) -> tuple[Array, Array, Array]:
        """Iterate `fn` from `x0`; returns `(x, evaluations of fn, last residual)`."""
        inf = jnp.asarray(jnp.inf, jnp.result_type(x0))
        return iterate_plain(fn, x0, inf, tol, rtol, max_iter, norm, self.check_every)


@dataclasses.dataclass(frozen=True)
class Anderson:
    r"""Safeguarded type-II Anderson acceleration (Anderson 1965; Walker & Ni 2011).

    Keeps the last `memory` differences of images $\Delta F$ and residuals $\Delta R$ ($r = f(x) - x$) and
    steps to $x^+ = f(x) - \Delta F c$ with $c = \operatorname{argmin} \Vert r - \Delta R c\Vert _2$ (normal equations with a tiny
    Tikhonov term). If the residual's 2-norm more than doubles the history is forgotten (the
    next step is plain); if the best residual has not improved for $\mathtt{patience} \cdot \mathtt{memory}$ steps
    the acceleration stops and plain iteration finishes from where it got. Same fixed point,
    stopping rule and gradient as plain iteration. Attributes: `memory` ($m \ge 1$),
    `patience` (≥ 1).
    """

    memory: int = 5
    patience: int = 20

    def __post_init__(self):
        object.__setattr__(self, "memory", checks.integer(self.memory, "memory", maximum=1024))
        object.__setattr__(self, "patience", checks.integer(self.patience, "patience"))

    def iterate(self, fn, x0, *, tol, rtol, max_iter, norm):
        """Accelerated, then plain; returns `(x, evaluations of fn, last residual)`."""
        x, k, residual = _anderson(fn, x0, tol, rtol, max_iter, self.memory,
                                   self.patience * self.memory, norm)
        x, k_plain, residual = iterate_plain(fn, x, residual, tol, rtol, max_iter - k, norm)
        return x, k + k_plain, residual


@dataclasses.dataclass(frozen=True)
class Newton:
    r"""Soft policy iteration, which is Newton's method on the soft Bellman equation
    (Puterman & Brumelle 1979; Haarnoja et al. 2018), as a warm start: at most `max_steps`
    Newton steps, each one LU factorisation of $I - \gamma P_\pi$, from the fourth on followed by
    chord steps that reuse it (`newton.policy_iteration_q`), then plain sweeps to the tolerance
    (so the result, its report and its gradient are those of plain iteration; `iterations`
    counts the sweeps).
    For `soft_value_iteration` on dense MDPs and `smdp_value_iteration` (option models), with
    the logsumexp or max backup."""

    max_steps: int = 100

    def __post_init__(self):
        object.__setattr__(self, "max_steps", checks.iterations(self.max_steps, "max_steps"))



@dataclasses.dataclass(frozen=True)
class GaussSeidel:
    """Gauss–Seidel value iteration as a warm start (`optiongrad._src.gauss_seidel`): the
    states ordered by their breadth-first distance to the absorbing states, each level
    updated in windows of at most `window` states that read the values just written, from a
    start shifted by the median one-step value, until the span of the residual is at most
    `tol`; then plain sweeps to the tolerance, so the result, its report and its gradient are
    those of plain iteration (`iterations` counts those sweeps). For `soft_value_iteration` and
    `intra_option_value_iteration` on sparse MDPs (concrete successor tables) with the
    logsumexp, mellowmax or max backup.

    Attributes:
      window: most states updated at once (default 512).
      check_every: Gauss–Seidel sweeps between two tests of the span (default 4; each test
        costs a plain sweep).
      max_sweeps: cap on the Gauss–Seidel sweeps (default 10 000).
    """

    window: int = 512
    check_every: int = 4
    max_sweeps: int = 10_000

    def __post_init__(self):
        object.__setattr__(self, "window", checks.integer(self.window, "window"))
        object.__setattr__(self, "check_every",
                           checks.integer(self.check_every, "check_every"))
        object.__setattr__(self, "max_sweeps",
                           checks.iterations(self.max_sweeps, "max_sweeps"))


@dataclasses.dataclass(frozen=True)
class Auto:
    r"""The default solver: picks one of the others for the problem at hand (`choose`).

    For `soft_value_iteration` with the implicit adjoint:

    * **sparse** transitions with a concrete successor table (the MDP is not a `jit`/`vmap`
      argument) and a logsumexp, mellowmax or max backup → `GaussSeidel()`;
    * **dense** transitions, the logsumexp backup and $S \le \mathtt{newton\_factor} \cdot n$,
      where $n = \log(\mathrm{tol} (1 - \gamma)) / \log \gamma$ is the number of plain sweeps the
      γ-rate tail needs → `Newton()`. A factorisation costs $O(S^3)$, a plain sweep $O(S^2 A)$;
      measured on this project's CPU runs, Newton's four or so factorisations beat the plain
      sweeps up to about $S \approx 0.5 n$ (README, "Choosing a solver"). A discount traced
      under `jit` (MDPs built inside the compiled function, e.g. goal tasks under `vmap`) is
      only known at run time: the rule is then evaluated there (`newton_pays`, a `lax.cond`
      around the Newton steps).
      With the max backup plain iteration needs only as many sweeps as the goal is far away
      on deterministic tasks, so it stays plain;
    * otherwise → `FixedPointIteration()`, whose implicit adjoint on a small dense MDP starts
      from one direct solve (`direct_adjoint`).

    `smdp_value_iteration` applies the dense rule to the option models (`choose_options`);
    every other fixed point (`intra_option_value_iteration`, `fixed_point`, the evaluations)
    → `FixedPointIteration()`. The pick never changes the
    fixed point, the stopping rule or the gradient: every solver finishes with plain sweeps.

    Attributes:
      newton_factor: Newton plans dense MDPs of at most $\mathtt{newton\_factor} \cdot n$ states
        (default 0.5; 0 never picks Newton).
    """

    newton_factor: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "newton_factor",
                           checks.number(self.newton_factor, "newton_factor", low=0.0))

    def choose(self, mdp=None, backup: str = "logsumexp",
               adjoint: Optional["Adjoint"] = None, tol: Optional[float] = None) -> "Solver":
        """The solver `soft_value_iteration(mdp, backup=backup, adjoint=adjoint, tol=tol)`
        uses (`mdp=None`: any other fixed point, i.e. plain iteration). With a traced
        discount (an MDP built inside `jit`) the dense rule cannot be evaluated here: this
        returns `Newton()`, and the planner runs its steps only when `newton_pays` holds for
        the discount's value (a `lax.cond`; plain sweeps from `init` otherwise)."""
        if mdp is None or not isinstance(adjoint or Implicit(), Implicit):
            return FixedPointIteration()
        if mdp.is_sparse:
            if (backup in GAUSS_SEIDEL_BACKUPS
                    and checks.is_concrete(mdp.transitions.next_states)):
                return GaussSeidel()
        elif backup == "logsumexp":
            if not checks.is_concrete(mdp.discount):
                return Newton()
            return self._newton_or_plain(mdp.num_states, float(mdp.discount), tol, mdp.dtype)
        return FixedPointIteration()

    def choose_options(self, transitions, backup: str = "logsumexp",
                       adjoint: Optional["Adjoint"] = None,
                       tol: Optional[float] = None) -> "Solver":
        r"""The solver `smdp_value_iteration` uses for option models $P^O$ `(K, S, S)`: `Newton`
        under the rule of `choose` for dense MDPs, with the largest row sum $\rho$ of $P^O$ (at
        most γ) as the rate, when the models are concrete and the backup is logsumexp; plain
        iteration otherwise (e.g. models that depend on traced option parameters)."""
        if (backup != "logsumexp" or not isinstance(adjoint or Implicit(), Implicit)
                or not checks.is_concrete(transitions)):
            return FixedPointIteration()
        transitions = jnp.asarray(transitions)
        rho = float(jnp.max(jnp.sum(transitions, axis=-1))) if transitions.size else 0.0
        return self._newton_or_plain(transitions.shape[-1], rho, tol, transitions.dtype)

    def newton_pays(self, states: int, rate, tol: Optional[float], dtype):
        r"""$\mathrm{states} \le \mathtt{newton\_factor} \cdot \log(\mathrm{tol}\,(1 - \rho)) /
        \log \rho$ with $\rho$ = `rate`: whether `Newton` beats plain sweeps on a dense problem
        of `states` states contracting at `rate` (γ, or the largest row sum of option models). A Python bool for a concrete `rate`, a traced one
        otherwise (then the planner decides at run time)."""
        tol = checks.default_tol(dtype) if tol is None else tol
        return states <= self.newton_factor * _sweeps(rate, tol, shrink=True)

    def _newton_or_plain(self, states: int, rate: float, tol, dtype) -> "Solver":
        return Newton() if self.newton_pays(states, rate, tol, dtype) else FixedPointIteration()

    def direct_adjoint(self, mdp, backup: str = "logsumexp",
                       adjoint: Optional["Adjoint"] = None):
        r"""Whether the implicit adjoint of plain iteration on `mdp` starts from one direct
        $S \times S$ solve (`newton.DirectAdjointStart`): for dense MDPs with the logsumexp or
        max backup and $S \le 7 \cdot \mathtt{newton\_factor} \cdot n$, where
        $n = \log(\mathrm{rtol}) / \log \gamma$ is the number of adjoint iterations the γ-rate
        needs (one solve where Newton's forward makes about four factorisations). With the max
        backup the forward needs only the goal's distance in sweeps, but the adjoint's mass
        sits in the absorbing goal and decays by γ per iteration, so this start is what makes
        its gradient cheap. A traced bool for a traced discount."""
        rule = self.direct_adjoint_rule(mdp, backup, adjoint)
        return False if rule is None else rule(mdp.num_states, mdp.discount)

    def direct_adjoint_rule(self, mdp, backup: str = "logsumexp",
                            adjoint: Optional["Adjoint"] = None) -> Optional["DirectAdjointRule"]:
        r"""The rule of `direct_adjoint` as a function of $(S, \gamma)$, or None where the
        direct start does not apply (sparse MDPs, other backups, other adjoints)."""
        if (mdp is None or mdp.is_sparse or backup not in NEWTON_BACKUPS
                or not isinstance(adjoint or Implicit(), Implicit)):
            return None
        rtol = getattr(adjoint, "rtol", None) or checks.default_rtol(mdp.dtype)
        return DirectAdjointRule(7 * self.newton_factor, rtol)


class DirectAdjointRule(NamedTuple):
    r"""$S \le \mathrm{limit} \cdot \log(\mathrm{rtol}) / \log \gamma$ (`Auto.direct_adjoint`),
    hashable, so that an adjoint start can carry it and evaluate it on a discount known only
    at run time."""

    limit: float
    rtol: float

    def __call__(self, states: int, gamma):
        return states <= self.limit * _sweeps(gamma, self.rtol)


def _sweeps(gamma, tol: float, shrink: bool = False):
    r"""$\log(\mathrm{tol}) / \log \gamma$: the sweeps a γ-rate iteration needs to shrink its
    error by `tol` ($\mathrm{tol} (1 - \gamma)$ with `shrink`: a value error of `tol` from a
    step of that size); 0 unless $0 < \gamma < 1$. Python arithmetic for a concrete γ, `jnp`
    for a traced one."""
    if checks.is_concrete(gamma):
        gamma = float(gamma)
        target = tol * (1 - gamma) if shrink else tol
        return (math.log(max(target, 1e-300)) / math.log(gamma) if 0 < gamma < 1 else 0.0)
    target = tol * (1 - gamma) if shrink else jnp.asarray(tol, gamma.dtype)
    inside = (gamma > 0) & (gamma < 1)
    safe = jnp.where(inside, gamma, 0.5)
    return jnp.where(inside, jnp.log(jnp.maximum(target, 1e-30)) / jnp.log(safe), 0.0)


Solver = Union[FixedPointIteration, Anderson, Newton, GaussSeidel]
SolverLike = Union[Solver, Auto, str, None]
SOLVER_NAMES = {"auto": Auto, "iteration": FixedPointIteration, "anderson": Anderson,
                "newton": Newton, "gauss-seidel": GaussSeidel}


# -- adjoints -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Implicit:
    r"""Gradients by the implicit function theorem at the fixed point.

    For a cotangent $\bar{g}$ on $x^*$, the adjoint equation $u = \bar{g} + (\partial_x f)^\top u$ is solved by
    `solver` from $u_0 = \bar{g}$ (Christianson's two-phase method, 1994: for a γ-contraction in
    $\Vert \cdot\Vert _\infty$, $\Vert (\partial_x f)^\top\Vert _1 \le \gamma$, so it converges at rate γ for any problem size), stopping at
    $\Vert u_{k+1} - u_k\Vert _1 \le \mathrm{rtol} \Vert u_{k+1}\Vert _1$; then $\bar{\theta} = (\partial_\theta f)^\top u$.

    Attributes:
      rtol: relative tolerance; default 1e-12 (float64) or 1e-6 (float32).
      max_iter: iteration cap; default the forward solve's `max_iter`.
      solver: how the adjoint equation is iterated (`FixedPointIteration` or `Anderson`);
        default: the forward solver when it is one of these, plain iteration otherwise.
    """

    rtol: Optional[float] = None
    max_iter: Optional[int] = None
    solver: Optional[Union[FixedPointIteration, Anderson]] = None

    def __post_init__(self):
        object.__setattr__(self, "rtol", checks.tolerance(self.rtol, "rtol"))
        object.__setattr__(self, "max_iter",
                           checks.iterations(self.max_iter, "max_iter", allow_none=True))
        if self.solver is not None and not isinstance(self.solver,
                                                      (FixedPointIteration, Anderson)):
            raise ValueError(f"solver: the adjoint is iterated by FixedPointIteration or "
                             f"Anderson, got {self.solver!r}")


@dataclasses.dataclass(frozen=True)
class Unrolled:
    """Exactly `num_sweeps` sweeps from the initial point in a `lax.scan`, differentiated by
    ordinary reverse-mode AD (memory grows with `num_sweeps`). A fixed planning budget."""

    num_sweeps: int

    def __post_init__(self):
        object.__setattr__(self, "num_sweeps", checks.iterations(self.num_sweeps, "num_sweeps"))


Adjoint = Union[Implicit, Unrolled]


def resolve(solver: SolverLike = None, adjoint: Optional[Adjoint] = None, *,
            differentiation: Optional[str] = None, num_sweeps: Optional[int] = None,
            **deprecated) -> tuple[Solver, Adjoint]:
    """Turn the planners' solver arguments into `(solver, adjoint)` objects.

    Accepts the objects, the string `solver` names, `differentiation` with `num_sweeps` (a
    budget `num_sweeps=N` alone means `Unrolled(N)`), and the deprecated `adjoint_rtol`,
    `adjoint_max_iter` and `memory` keywords; raises `ValueError` on conflicting or unknown
    arguments.
    """
    unknown = set(deprecated) - {"adjoint_rtol", "adjoint_max_iter", "memory"}
    if unknown:
        raise TypeError(f"unexpected keyword argument {sorted(unknown)[0]!r}")
    given = {k: v for k, v in deprecated.items() if v is not None}
    checks.tolerance(given.get("adjoint_rtol"), "adjoint_rtol")
    checks.iterations(given.get("adjoint_max_iter"), "adjoint_max_iter", allow_none=True)
    checks.integer(given.get("memory"), "memory", allow_none=True)
    if given:
        warnings.warn(f"{', '.join(sorted(given))}: deprecated; pass "
                      "adjoint=og.solvers.Implicit(rtol=..., max_iter=...) or "
                      "solver=og.solvers.Anderson(memory=...)", DeprecationWarning, stacklevel=3)
    if solver is None:
        solver = Auto()
    elif isinstance(solver, str):
        checks.choice(solver, "solver", tuple(SOLVER_NAMES))
        solver = SOLVER_NAMES[solver]()
    elif not isinstance(solver, (Auto, FixedPointIteration, Anderson, Newton, GaussSeidel)):
        raise ValueError(f"solver: expected a name in {tuple(SOLVER_NAMES)} or an "
                         f"og.solvers object, got {solver!r:.60}")
    if "memory" in given:
        if not isinstance(solver, Anderson):
            raise ValueError("memory: only used by the Anderson solver")
        solver = Anderson(memory=given["memory"], patience=solver.patience)
    if differentiation is not None:
        checks.choice(differentiation, "differentiation", ("implicit", "unrolled"))
    checks.iterations(num_sweeps, "num_sweeps", allow_none=True)
    if adjoint is not None:
        if not isinstance(adjoint, (Implicit, Unrolled)):
            raise ValueError(f"adjoint: expected og.solvers.Implicit or og.solvers.Unrolled, "
                             f"got {adjoint!r:.60}")
        spelled = [k for k, v in (("differentiation", differentiation),
                                  ("num_sweeps", num_sweeps)) if v is not None]
        spelled += [k for k in ("adjoint_rtol", "adjoint_max_iter") if k in given]
        if spelled:
            raise ValueError(f"{spelled[0]}: conflicts with adjoint={adjoint!r}; give one")
        return solver, adjoint
    if differentiation == "unrolled" or (differentiation is None and num_sweeps is not None):
        if num_sweeps is None:
            raise ValueError("num_sweeps: differentiation='unrolled' needs num_sweeps")
        extra = [k for k in ("adjoint_rtol", "adjoint_max_iter") if k in given]
        if extra:
            raise ValueError(f"{extra[0]}: only used with the implicit adjoint")
        return solver, Unrolled(num_sweeps)
    if num_sweeps is not None:
        raise ValueError("num_sweeps: only used with differentiation='unrolled' (got "
                         f"num_sweeps={num_sweeps!r} with differentiation='implicit')")
    return solver, Implicit(rtol=given.get("adjoint_rtol"),
                            max_iter=given.get("adjoint_max_iter"))


# -- Anderson ---------------------------------------------------------------------------------


def _anderson(fn, init, tol, rtol, max_iter, memory, patience, norm):
    r"""The accelerated phase of `Anderson.iterate`. $\Delta R \Delta R^\top$ is updated one row at a time.
    Returns `(fn(x_final), evaluations of fn, final residual norm)`, like the plain iteration
    (whose value is also the image of the last iterate)."""
    shape, dtype = init.shape, init.dtype
    n = init.size
    f0 = fn(init).reshape(-1)
    r0 = f0 - init.reshape(-1)
    zeros = jnp.zeros((memory, n), dtype)
    eps = jnp.asarray(jnp.finfo(dtype).eps, dtype)

    def cond(carry):
        k, _, f, _, residual, best, stall, *_ = carry
        return ((k < max_iter) & (residual > _threshold(tol, rtol, norm, f))
                & (stall < patience))

    def body(carry):
        k, x, f, r, residual, best, stall, d_f, d_r, gram, count, slot = carry
        mask = jnp.arange(memory) < count
        reg = eps * 1e3 * (jnp.trace(gram) + 1.0)
        system = jnp.where(mask[:, None] & mask[None, :], gram, 0.0) + jnp.diag(
            jnp.where(mask, reg, 1.0))
        coef = linalg.solve(system, jnp.where(mask, d_r @ r, 0.0))
        x_new = f - coef @ d_f
        f_new = fn(x_new.reshape(shape)).reshape(-1)
        r_new = f_new - x_new
        res_new = norm(r_new)
        grew = ~(jnp.vdot(r_new, r_new) <= 4.0 * jnp.vdot(r, r))
        # Store the newest differences in `slot` and update that row/column of ΔR ΔRᵀ.
        d_f = d_f.at[slot].set(f_new - f)
        d_r = d_r.at[slot].set(r_new - r)
        row = d_r @ d_r[slot]
        gram = gram.at[slot, :].set(row).at[:, slot].set(row)
        count = jnp.where(grew, 0, jnp.minimum(count + 1, memory))
        slot = jnp.where(grew, 0, (slot + 1) % memory)
        improved = res_new < best
        return (k + 1, x_new, f_new, r_new, res_new, jnp.minimum(best, res_new),
                jnp.where(improved, 0, stall + 1), d_f, d_r, gram, count, slot)

    res0 = norm(r0)
    start = (jnp.int32(1), init.reshape(-1), f0, r0, res0, res0, jnp.int32(0), zeros, zeros,
             jnp.zeros((memory, memory), dtype), jnp.int32(0), jnp.int32(0))
    k, _, f, _, residual, *_ = jax.lax.while_loop(cond, body, start)
    return f.reshape(shape), k, residual
