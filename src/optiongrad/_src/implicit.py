r"""Fixed points $x^* = f(\theta, x^*)$ and their derivatives: the one place for the IFT.

Every planner and every iterative evaluation in optiongrad is a fixed point of a contraction
$f(\theta, \cdot)$ and goes through `fixed_point`:

* **Forward** — the solver (`optiongrad.solvers`: plain iteration by default, or Anderson)
  iterates until $\Vert x_{k+1} - x_k\Vert _\infty \le \mathrm{tol} + \mathrm{rtol} \Vert x_{k+1}\Vert _\infty$, `max_iter`, or a non-finite
  iterate; the iteration count, the final residual and a result code are returned.
* **Implicit adjoint** — a custom VJP at the fixed point (implicit function theorem; Gilbert
  1992, "Automatic differentiation and iterative processes"). For a cotangent $\bar{g}$ on $x^*$,
  solve the adjoint equation $u = \bar{g} + (\partial_x f)^\top u$, then
  $\bar{\theta} = (\partial_\theta f)^\top u$, by the same kind of iteration applied to the
  transposed Jacobian (Christianson's two-phase method, 1994). When `f` is a γ-contraction in
  $\Vert \cdot \Vert_\infty$, $\Vert (\partial_x f)^\top \Vert_1 \le \gamma$, so it converges at
  rate γ for any problem size and cannot stagnate the way restarted GMRES does at γ = 0.99.
  Memory is that of one sweep, independent of the number of forward iterations.
* **Unrolled adjoint** — exactly `num_sweeps` sweeps from `init` in a `lax.scan`,
  differentiated by ordinary reverse-mode AD (memory grows with `num_sweeps`).

Failures are never a plausible number. With the implicit adjoint, the gradient is NaN when the
forward solve did not converge (the IFT holds only at the fixed point) or when the adjoint
solve does not converge; with `throw=True` either raises a `RuntimeError` naming the result
code instead, under `jit`, `vmap` and `grad` alike (`equinox.error_if`). With the unrolled
adjoint only non-finite iterates are a failure.

Error budget: stopping the forward iteration at `tol` leaves an error of order $\mathrm{tol} / (1 - \gamma)$
in $x^*$ and in the gradient.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import equinox as eqx
import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.solvers import (
    RESULTS,
    Adjoint,
    Anderson,
    Auto,
    FixedPointIteration,
    GaussSeidel,
    Implicit,
    Newton,
    Reported,
    SolverLike,
    Unrolled,
    is_failure,
    resolve,
    result_code,
)

Array = jax.Array
PyTree = Any


class FixedPointResult(eqx.Module, Reported):
    r"""Result of `fixed_point`.

    Attributes:
      value: the (approximate) fixed point $x^*$, same shape as `init`.
      iterations: number of applications of `f` (int32 scalar).
      residual: $\Vert f(\theta, x_{k-1}) - x_{k-1}\Vert _\infty$ at the last iteration.
      result: a `RESULTS` code; `converged` is `result == RESULTS.successful`.
    """

    value: Array
    iterations: Array
    residual: Array
    result: RESULTS
    LEGACY_FIELDS = ("value", "iterations", "residual", "converged")

    def value_or_nan(self) -> Array:
        """`value`, NaN where the solve failed: how the functions that return plain arrays
        report a failed inner solve."""
        return nan_where(self.failed, self.value)


class _Config(NamedTuple):
    """Static settings of one solve (hashable: the custom VJP's non-differentiable part)."""

    tol: float
    rtol: float
    max_iter: int
    solver: Any
    adjoint_rtol: float
    adjoint_max_iter: int
    adjoint_solver: Any
    adjoint_start: Any
    throw: bool


def fixed_point(
    operator: Callable[[PyTree, Array], Array],
    params: PyTree,
    init: Array,
    *,
    tol: Optional[float] = None,
    rtol: float = 0.0,
    max_iter: int = 10_000,
    solver: SolverLike = None,
    adjoint: Optional[Adjoint] = None,
    throw: bool = False,
    differentiation: Optional[str] = None,
    num_sweeps: Optional[int] = None,
    adjoint_start: Optional[Callable[[PyTree, Array, Array], Array]] = None,
    **deprecated: Any,
) -> FixedPointResult:
    r"""Solve `x = operator(params, x)` and make the solution differentiable in `params`.

    Args:
      operator: `f(params, x) -> x`, a contraction in `x`; pure. It may close over arrays
        (they are hoisted with `jax.closure_convert` and receive gradients too).
      params: pytree of arrays the fixed point depends on.
      init: starting point `x_0`, a floating array; the fixed point (and its implicit gradient)
        does not depend on it. Receives a zero cotangent with the implicit adjoint.
      tol: absolute stopping tolerance on $\Vert x_{k+1} - x_k\Vert _\infty$ (finite, ≥ 0); default 1e-10
        (float64) or 1e-5 (float32).
      rtol: relative part of the stopping rule ($\mathrm{tol} + \mathrm{rtol} \Vert x\Vert _\infty$).
      max_iter: maximum number of forward iterations (implicit adjoint only).
      solver: `og.solvers.FixedPointIteration()` (what the default `Auto()` picks here),
        `og.solvers.Anderson(...)`, or the names "iteration", "anderson".
      adjoint: `og.solvers.Implicit(...)` (default) or `og.solvers.Unrolled(num_sweeps)`.
      throw: raise a `RuntimeError` naming the result code when the solve (or, in the
        backward pass, the adjoint solve) fails, even under `jit`; otherwise a failed solve
        is reported by `result` and its gradient is NaN.
      differentiation: "implicit" or "unrolled" — the older spelling of `adjoint`.
      num_sweeps: the sweeps of "unrolled"; `num_sweeps=N` alone means `Unrolled(N)`.
      adjoint_start: `(params, x*, ḡ) -> u₀`, where the implicit adjoint's iteration starts
        (default $\bar{g}$); a hashable callable (e.g. a NamedTuple with `__call__`). The adjoint
        equation has one solution, so this changes the cost of the gradient, not its value
        (planners with structure to exploit supply one, e.g. `GaussSeidel`).
      **deprecated: `adjoint_rtol`, `adjoint_max_iter`, `memory` (see `solvers.resolve`).

    Returns:
      `FixedPointResult(value, iterations, residual, result)`.
    """
    solver, adjoint = resolve(solver, adjoint, differentiation=differentiation,
                              num_sweeps=num_sweeps, **deprecated)
    if adjoint_start is not None and not callable(adjoint_start):
        raise ValueError(f"adjoint_start: expected a function (params, x, g) -> u0, got "
                         f"{type(adjoint_start).__name__}")
    if not callable(operator):
        raise ValueError(f"operator: expected a function f(params, x), got "
                         f"{type(operator).__name__}")
    if isinstance(solver, (Newton, GaussSeidel)):
        raise ValueError(f"solver: {type(solver).__name__} needs an MDP's structure; use it "
                         "with soft_value_iteration")
    if isinstance(solver, Auto):
        solver = solver.choose()
    init = checks.as_array(init, "init")
    init = jnp.asarray(init, checks.float_dtype(init))
    checks.finite(init, "init")
    dtype = jnp.result_type(init)
    try:
        out = jax.eval_shape(operator, params, init)
    except (TypeError, ValueError) as err:
        raise ValueError(f"operator: cannot be applied to (params, init): {err}") from None
    if not isinstance(out, jax.ShapeDtypeStruct) or (out.shape, out.dtype) != (init.shape,
                                                                                dtype):
        got = (f"{out.shape} {out.dtype}" if isinstance(out, jax.ShapeDtypeStruct)
               else type(out).__name__)
        raise ValueError(f"operator: returns {got} for init of {init.shape} {dtype}; a fixed "
                         "point needs the same shape and dtype (cast init or params)")
    tol = checks.tolerance(tol, "tol")
    rtol = checks.tolerance(rtol, "rtol")
    max_iter = checks.iterations(max_iter, "max_iter")
    throw = checks.boolean(throw, "throw")
    adjoint_solver = FixedPointIteration()
    if isinstance(adjoint, Implicit):
        adjoint_solver = adjoint.solver or (
            solver if isinstance(solver, (Anderson, FixedPointIteration))
            else FixedPointIteration())
    config = _Config(
        tol=checks.default_tol(dtype) if tol is None else float(tol),
        rtol=float(rtol),
        max_iter=int(max_iter),
        solver=solver,
        adjoint_rtol=(checks.default_rtol(dtype) if getattr(adjoint, "rtol", None) is None
                      else float(adjoint.rtol)),
        adjoint_max_iter=int(getattr(adjoint, "max_iter", None) or max_iter),
        adjoint_solver=adjoint_solver,
        adjoint_start=adjoint_start,
        throw=throw,
    )
    converted, consts = jax.closure_convert(operator, params, init)
    full_params = (params, tuple(consts))

    def op(p, x):
        return converted(p[0], x, *p[1])

    if isinstance(adjoint, Unrolled):
        value, residual = _unrolled(op, full_params, init, adjoint.num_sweeps)
        iterations = jnp.asarray(adjoint.num_sweeps, jnp.int32)
        limit = RESULTS.budget_reached
    else:
        value, iterations, residual = _implicit(op, full_params, init, config)
        limit = RESULTS.max_steps_reached
    result = _result(config, value, residual, limit)
    if throw:
        value = result.error_if(value, is_failure(result))
    return FixedPointResult(value, iterations, residual, result)


def nan_where(failed: Array, value: Array) -> Array:
    """`value` with NaN where `failed` (a bool array over `value`'s leading axes) — and NaN
    gradients there too: `value` is multiplied by NaN, so every cotangent through it is NaN
    (a `jnp.where` would pass a zero cotangent instead)."""
    failed = failed.reshape(failed.shape + (1,) * (value.ndim - failed.ndim))
    return value * jnp.where(failed, jnp.nan, 1.0).astype(value.dtype)


def _result(config: _Config, x: Array, residual: Array, limit: RESULTS) -> RESULTS:
    """The result code of a solve that stopped at `x` with `residual` (`limit` when it
    stopped on its sweep count)."""
    return result_code(x, residual, config.tol + config.rtol * _max_abs(x), limit)


def _max_abs(x: Array) -> Array:
    return jnp.max(jnp.abs(x)) if x.size else jnp.zeros((), x.dtype)


def _forward(op, params, init, config: _Config):
    """The forward solve: `(x, iterations, residual)`."""
    return config.solver.iterate(functools.partial(op, params), init, tol=config.tol,
                                 rtol=config.rtol, max_iter=config.max_iter, norm=_max_abs)


def _unrolled(op, params, init, num_sweeps: int):
    def sweep(x, _):
        x_next = op(params, x)
        return x_next, _max_abs(x_next - x)

    value, residuals = jax.lax.scan(sweep, init, None, length=num_sweeps)
    return value, jax.lax.stop_gradient(residuals[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3))
def _implicit(op, params, init, config: _Config):
    return _forward(op, params, init, config)


def _implicit_fwd(op, params, init, config: _Config):
    x, k, residual = _forward(op, params, init, config)
    converged = _result(config, x, residual, RESULTS.max_steps_reached) == RESULTS.successful
    return (x, k, residual), (x, params, init, converged)


def _implicit_bwd(op, config: _Config, saved, cotangents):
    x, params, init, converged = saved
    report = _adjoint(lambda y: op(params, y), x, cotangents[0], config.adjoint_rtol,
                      config.adjoint_max_iter, config.adjoint_solver,
                      None if config.adjoint_start is None
                      else functools.partial(config.adjoint_start, params[0]))
    u, adjoint_ok = report.value, report.result == RESULTS.successful
    if config.throw:
        u = RESULTS.adjoint_failed.error_if(u, ~adjoint_ok)
    # The IFT holds only at a fixed point: an unconverged forward solve gets a NaN gradient.
    ok = adjoint_ok & converged
    _, vjp_params = jax.vjp(lambda p: op(p, x), params)
    (params_bar,) = vjp_params(u)
    params_bar = jax.tree.map(lambda b: _nan_unless(ok, b), params_bar)
    return params_bar, _nan_unless(ok, jnp.zeros_like(init))


class AdjointResult(eqx.Module, Reported):
    r"""The implicit gradient's adjoint solve $u = \bar{g} + (\partial_x f)^\top u$ at a fixed point $x^*$
    (`fixed_point_adjoint`, `og.plan_adjoint`): its cost and outcome, reported like a forward
    solve's.

    Attributes:
      value: `u`, same shape as $x^*$; NaN when the solve failed. The gradient is then
        $\bar{\theta} = (\partial_\theta f)^\top u$.
      iterations: applications of $(\partial_x f)^\top$ after the start (int32 scalar).
      residual: $\Vert u_{k+1} - u_k\Vert _1 / \Vert u_{k+1}\Vert _1$ at the last iteration.
      result: `RESULTS.successful` when $\mathrm{residual} \le \mathtt{rtol}$, else `max_steps_reached` or
        `nonfinite`.
    """

    value: Array
    iterations: Array
    residual: Array
    result: RESULTS


def _adjoint(f_x, x, g, rtol, max_iter, solver, start) -> AdjointResult:
    r"""The adjoint solve of $f_x = f(\theta, \cdot)$ at `x` for the cotangent `g`, from `start(x, g)`
    (default `g`; a start that is not finite is not used)."""
    _, vjp_x = jax.vjp(f_x, x)
    init = None
    if start is not None:
        init = start(x, g)
        init = jnp.where(jnp.all(jnp.isfinite(init)), init, g)
    u, iterations, residual = _iterate_adjoint(lambda v: vjp_x(v)[0], g, rtol, max_iter,
                                               solver, init)
    result = result_code(u, residual, jnp.asarray(rtol, residual.dtype),
                         RESULTS.max_steps_reached)
    ok = result == RESULTS.successful
    return AdjointResult(jnp.where(ok, u, jnp.nan), iterations, residual, result)


def fixed_point_adjoint(operator: Callable[[PyTree, Array], Array], params: PyTree, x: Array,
                        cotangent: Array, *, adjoint: Optional[Implicit] = None,
                        solver: SolverLike = None,
                        adjoint_start: Optional[Callable[[PyTree, Array, Array], Array]] = None,
                        max_iter: int = 10_000) -> AdjointResult:
    r"""The adjoint solve that `jax.grad` through `fixed_point(operator, params, ...)` runs at
    the fixed point `x` for the cotangent $\bar{g} = \mathtt{cotangent}$, with its report: iterate
    $u = \bar{g} + (\partial_x f)^\top u$ from $\mathtt{adjoint\_start}(\mathrm{params}, x, \bar{g})$ (default $\bar{g}$) until
    $\Vert u_{k+1} - u_k\Vert _1 \le \mathrm{rtol} \Vert u_{k+1}\Vert _1$. Arguments as in `fixed_point` (`adjoint` an
    `Implicit`, whose `rtol`, `max_iter` and `solver` apply; `solver` the forward solver,
    whose kind the adjoint iteration follows by default).

    Returns:
      `AdjointResult(value=u, iterations, residual, result)`.
    """
    adjoint = Implicit() if adjoint is None else adjoint
    if not isinstance(adjoint, Implicit):
        raise ValueError(f"adjoint: expected og.solvers.Implicit, got {adjoint!r:.60}")
    solver, _ = resolve(solver, adjoint)
    x = checks.as_array(x, "x")
    cotangent = checks.as_array(cotangent, "cotangent", dtype=x.dtype)
    checks.shape(cotangent, "cotangent", x.shape, "like x")
    dtype = jnp.result_type(x)
    rtol = checks.default_rtol(dtype) if adjoint.rtol is None else float(adjoint.rtol)
    iterate = adjoint.solver or (solver if isinstance(solver, (Anderson, FixedPointIteration))
                                 else FixedPointIteration())
    return _adjoint_compiled(operator, params, x, cotangent, rtol,
                             int(adjoint.max_iter or checks.iterations(max_iter, "max_iter")),
                             iterate, adjoint_start)


@eqx.filter_jit
def _adjoint_compiled(operator, params, x, cotangent, rtol, max_iter, solver, adjoint_start):
    """`_adjoint` compiled once per operator, shapes and settings (not on every eager call)."""
    start = None if adjoint_start is None else functools.partial(adjoint_start, params)
    return _adjoint(functools.partial(operator, params), x, cotangent, rtol, max_iter, solver,
                    start)


def _nan_unless(ok, cotangent):
    if not jnp.issubdtype(cotangent.dtype, jnp.inexact):  # float0 cotangents of integers
        return cotangent
    return jnp.where(ok, cotangent, jnp.nan)


_implicit.defvjp(_implicit_fwd, _implicit_bwd)


def _iterate_adjoint(transposed_jacobian, g, rtol, max_iter, solver, init):
    r"""$u_{k+1} = g + J^\top u_k$ from `init` (default `g`) by `solver` until
    $\Vert u_{k+1} - u_k\Vert _1 \le \mathrm{rtol} \Vert u_{k+1}\Vert _1$; returns `(u, iterations, relative residual)`."""
    solver = FixedPointIteration() if solver is None else solver

    def l1(x):
        return jnp.sum(jnp.abs(x))

    u, k, residual = solver.iterate(lambda u: g + transposed_jacobian(u),
                                    g if init is None else init, tol=0.0,
                                    rtol=rtol, max_iter=max_iter, norm=l1)
    scale = l1(u)
    return u, k, jnp.where(scale > 0, residual / jnp.where(scale > 0, scale, 1), residual)


def solve_adjoint(transposed_jacobian: Callable[[Array], Array], g: Array, *, rtol: float,
                  max_iter: int, solver=None, init: Optional[Array] = None
                  ) -> tuple[Array, Array]:
    r"""Solve $u = g + J^\top u$ by iterating $u_{k+1} = g + J^\top u_k$ from $u_0 = \mathtt{init}$ (default
    `g`).

    Converges whenever the spectral radius of `J` is below 1 (for the Bellman operators of
    logsumexp, mellowmax and max backups it is at most γ). Stops when
    $\Vert u_{k+1} - u_k\Vert _1 \le \mathrm{rtol} \Vert u_{k+1}\Vert _1$. With `solver=Anderson(...)` the iteration is
    accelerated first and finished by plain iteration from the accelerated iterate. Returns
    `(u, converged)`; `u` is NaN when it did not converge within `max_iter` iterations or
    stopped being finite.
    """
    u, _, residual = _iterate_adjoint(transposed_jacobian, g, rtol, max_iter, solver, init)
    ok = residual <= rtol
    return jnp.where(ok, u, jnp.nan), ok


def adjoint_solve(transposed_jacobian: Callable[[Array], Array], g: Array, *, rtol: float,
                  max_iter: int, solver: str = "iteration", memory: int = 5) -> Array:
    r"""optiongrad 0.1's adjoint solve, kept for its callers: $u = g + J^\top u$, NaN if it did not
    converge. (`fixed_point`'s implicit adjoint does this; use it instead.)"""
    checks.choice(solver, "solver", ("iteration", "anderson"))
    iterate = Anderson(memory=memory) if solver == "anderson" else FixedPointIteration()
    return solve_adjoint(transposed_jacobian, g, rtol=float(rtol),
                         max_iter=checks.iterations(max_iter, "max_iter"), solver=iterate)[0]
