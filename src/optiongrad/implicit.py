"""Fixed points `x* = f(θ, x*)` and their derivatives: the one place for the IFT.

Every planner and every iterative evaluation in optiongrad is a fixed point of a contraction
`f(θ, ·)` and goes through `fixed_point`:

* **Forward** — iterate `x_{k+1} = f(θ, x_k)` until `‖x_{k+1} − x_k‖_∞ ≤ tol + rtol ‖x_{k+1}‖_∞`
  or `max_iter`; the iteration count, the final residual and a `converged` flag are returned.
* **differentiation="implicit"** — a custom VJP at the fixed point (implicit function theorem;
  Gilbert 1992, "Automatic differentiation and iterative processes"). For a cotangent `ḡ` on
  `x*`, solve the adjoint equation

      u = ḡ + (∂_x f)ᵀ u,        then   θ̄ = (∂_θ f)ᵀ u.

  The adjoint is solved by Christianson's two-phase method (1994): the same fixed-point
  iteration, applied to the transposed Jacobian. When `f` is a γ-contraction in `‖·‖_∞`,
  `‖(∂_x f)ᵀ‖_1 ≤ γ`, so the adjoint iteration converges at rate γ for any problem size; it
  needs no restart parameter and cannot stagnate the way restarted GMRES does at γ = 0.99.
  Memory is that of one sweep, independent of the number of forward iterations. If the adjoint
  iteration does not reach its tolerance within `adjoint_max_iter`, the gradient is NaN — a
  failed solve is never returned as a plausible number.
* **solver="anderson"** — the forward iteration and the adjoint solve are accelerated by
  Anderson mixing (Anderson 1965; Walker & Ni 2011, type II, memory `m`): the next iterate is
  the combination `Σ_i α_i f(x_{k−i})` of the last `m + 1` images whose residuals
  `f(x) − x` combine to the least-squares smallest one (`Σ α_i = 1`). It is safeguarded: the
  history is dropped and a plain step taken whenever the residual grows. Same fixed point,
  same stopping rule and the same gradient (the IFT does not care how `x*` was found); the
  adjoint falls back to the plain iteration if the accelerated one has not converged, so a
  gradient is never lost. Worth it where plain iteration is slow (high γ, smooth backups);
  with the hard `max` backup on deterministic problems plain iteration already converges in a
  number of sweeps close to the diameter of the state graph.
* **differentiation="unrolled"** — exactly `num_sweeps` sweeps from `init` in a `lax.scan`,
  differentiated by ordinary reverse-mode AD (memory grows with `num_sweeps`).

Error budget: stopping the forward iteration at `tol` leaves an error of order `tol / (1 − γ)`
in `x*` and in the gradient.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from optiongrad._checks import check_choice, check_positive_int, default_rtol, default_tol

Array = jax.Array
PyTree = Any

DIFFERENTIATION = ("implicit", "unrolled")
SOLVERS = ("iteration", "anderson")


class FixedPointResult(NamedTuple):
    """Result of `fixed_point`.

    Attributes:
      value: the (approximate) fixed point `x*`, same shape as `init`.
      iterations: number of applications of `f` (int32 scalar).
      residual: `‖f(θ, x_{k−1}) − x_{k−1}‖_∞` at the last iteration.
      converged: whether `residual ≤ tol + rtol ‖x‖_∞`.
    """

    value: Array
    iterations: Array
    residual: Array
    converged: Array


class _Config(NamedTuple):
    tol: float
    rtol: float
    max_iter: int
    adjoint_rtol: float
    adjoint_max_iter: int
    solver: str = "iteration"
    memory: int = 5


def fixed_point(
    operator: Callable[[PyTree, Array], Array],
    params: PyTree,
    init: Array,
    *,
    tol: Optional[float] = None,
    rtol: float = 0.0,
    max_iter: int = 10_000,
    differentiation: str = "implicit",
    num_sweeps: Optional[int] = None,
    adjoint_rtol: Optional[float] = None,
    adjoint_max_iter: Optional[int] = None,
    solver: str = "iteration",
    memory: int = 5,
) -> FixedPointResult:
    """Solve `x = operator(params, x)` and make the solution differentiable in `params`.

    Args:
      operator: `f(params, x) -> x`, a contraction in `x`; pure. It may close over arrays
        (they are hoisted with `jax.closure_convert` and receive gradients too).
      params: pytree of arrays the fixed point depends on.
      init: starting point `x_0`; the fixed point (and its implicit gradient) does not
        depend on it. Receives a zero cotangent under "implicit".
      tol: absolute stopping tolerance on `‖x_{k+1} − x_k‖_∞`; default 1e-10 (float64) or
        1e-5 (float32).
      rtol: relative part of the stopping rule (`tol + rtol ‖x‖_∞`).
      max_iter: maximum number of forward iterations ("implicit" only).
      differentiation: "implicit" (IFT custom VJP) or "unrolled" (`lax.scan`).
      num_sweeps: number of sweeps, required with "unrolled".
      adjoint_rtol: relative tolerance of the adjoint iteration, `‖u_{k+1} − u_k‖_1 ≤
        adjoint_rtol ‖u_{k+1}‖_1`; default 1e-12 (float64) or 1e-6 (float32).
      adjoint_max_iter: iteration cap for the adjoint solve; default `max_iter`.
      solver: "iteration" (plain fixed-point iteration) or "anderson" (Anderson-accelerated
        forward iteration and adjoint solve; "implicit" only).
      memory: Anderson history length `m`.

    Returns:
      `FixedPointResult(value, iterations, residual, converged)`.
    """
    check_choice(differentiation, "differentiation", DIFFERENTIATION)
    check_choice(solver, "solver", SOLVERS)
    check_positive_int(memory, "memory")
    dtype = jnp.result_type(init)
    if differentiation == "unrolled":
        check_positive_int(num_sweeps, "num_sweeps")
    elif num_sweeps is not None:
        raise ValueError(
            "num_sweeps: only used with differentiation='unrolled' "
            f"(got num_sweeps={num_sweeps!r} with differentiation='implicit')"
        )
    check_positive_int(max_iter, "max_iter")
    check_positive_int(adjoint_max_iter, "adjoint_max_iter", allow_none=True)
    config = _Config(
        tol=default_tol(dtype) if tol is None else float(tol),
        rtol=float(rtol),
        max_iter=int(max_iter),
        adjoint_rtol=default_rtol(dtype) if adjoint_rtol is None else float(adjoint_rtol),
        adjoint_max_iter=int(max_iter if adjoint_max_iter is None else adjoint_max_iter),
        solver=solver,
        memory=int(memory),
    )
    if config.tol < 0 or config.rtol < 0 or config.adjoint_rtol < 0:
        raise ValueError("tol, rtol and adjoint_rtol must be >= 0")
    converted, consts = jax.closure_convert(operator, params, init)
    full_params = (params, tuple(consts))

    def op(p, x):
        return converted(p[0], x, *p[1])

    if differentiation == "unrolled":
        value, residual = _unrolled(op, full_params, init, num_sweeps)
        iterations = jnp.asarray(num_sweeps, jnp.int32)
    else:
        value, iterations, residual = _implicit(op, full_params, init, config)
    threshold = config.tol + config.rtol * _max_abs(value)
    return FixedPointResult(value, iterations, residual, residual <= threshold)


def _max_abs(x: Array) -> Array:
    return jnp.max(jnp.abs(x)) if x.size else jnp.zeros((), x.dtype)


def _iterate(op, params, init, config: _Config):
    """Forward phase: `x_{k+1} = f(x_k)` until the residual is small (or not finite); with
    Anderson, accelerated first and finished by plain sweeps if the acceleration stalled."""
    fn = functools.partial(op, params)
    inf = jnp.asarray(jnp.inf, jnp.result_type(init))
    if config.solver != "anderson":
        return _solve_plain(fn, init, inf, config.tol, config.rtol, config.max_iter, _max_abs)
    x, k, residual = _anderson(fn, init, config.tol, config.rtol, config.max_iter,
                               config.memory, norm=_max_abs)
    x, k_plain, residual = _solve_plain(fn, x, residual, config.tol, config.rtol,
                                        config.max_iter - k, _max_abs)
    return x, k + k_plain, residual


def _threshold(tol: float, rtol: float, norm, x) -> Array:
    """The stopping threshold `tol + rtol · norm(x)`; `rtol` is a Python float, so with
    rtol = 0 no pass over `x` is spent on `norm(x)`."""
    return tol + rtol * norm(x) if rtol else jnp.asarray(tol, x.dtype)


def _solve_plain(fn, x0, residual0, tol, rtol, max_iter, norm):
    """`x ← fn(x)` from `x0` until `norm(x_{k+1} − x_k) ≤ tol + rtol · norm(x_{k+1})` or
    `max_iter` sweeps; `residual0` is the residual of `x0` (inf if unknown; if it already
    meets the rule, no sweep is done). Returns `(x, sweeps, residual)`."""

    def cond(carry):
        k, x, residual = carry
        return (k < max_iter) & (residual > _threshold(tol, rtol, norm, x))

    def body(carry):
        k, x, _ = carry
        x_next = fn(x)
        return k + 1, x_next, norm(x_next - x)

    k, x, residual = jax.lax.while_loop(cond, body, (jnp.int32(0), x0, residual0))
    return x, k, residual


def _unrolled(op, params, init, num_sweeps: int):
    def sweep(x, _):
        x_next = op(params, x)
        return x_next, _max_abs(x_next - x)

    value, residuals = jax.lax.scan(sweep, init, None, length=num_sweeps)
    return value, jax.lax.stop_gradient(residuals[-1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 3))
def _implicit(op, params, init, config: _Config):
    return _iterate(op, params, init, config)


def _implicit_fwd(op, params, init, config: _Config):
    x, k, residual = _iterate(op, params, init, config)
    return (x, k, residual), (x, params, init)


def _implicit_bwd(op, config: _Config, saved, cotangents):
    x, params, init = saved
    g = cotangents[0]
    _, vjp_x = jax.vjp(lambda y: op(params, y), x)
    u = adjoint_solve(
        lambda v: vjp_x(v)[0], g, rtol=config.adjoint_rtol, max_iter=config.adjoint_max_iter,
        solver=config.solver, memory=config.memory,
    )
    _, vjp_params = jax.vjp(lambda p: op(p, x), params)
    (params_bar,) = vjp_params(u)
    return params_bar, jnp.zeros_like(init)


_implicit.defvjp(_implicit_fwd, _implicit_bwd)


def adjoint_solve(
    transposed_jacobian: Callable[[Array], Array],
    g: Array,
    *,
    rtol: float,
    max_iter: int,
    solver: str = "iteration",
    memory: int = 5,
) -> Array:
    """Solve `u = g + Jᵀ u` by the iteration `u_{k+1} = g + Jᵀ u_k` from `u_0 = g`.

    Converges whenever the spectral radius of `J` is below 1 (for the Bellman operators of
    logsumexp, mellowmax and max backups it is at most γ). Stops when
    `‖u_{k+1} − u_k‖_1 ≤ rtol ‖u_{k+1}‖_1`; returns NaN if that does not happen within
    `max_iter` iterations or the iterates stop being finite. With `solver="anderson"` the
    iteration is Anderson-accelerated first and the plain iteration, from the accelerated
    iterate, finishes the job when the accelerated one did not converge.
    """
    def l1(x):
        return jnp.sum(jnp.abs(x))

    def step(u):
        return g + transposed_jacobian(u)

    u, residual = g, jnp.asarray(jnp.inf, g.dtype)
    if solver == "anderson":
        u, k, residual = _anderson(step, g, 0.0, rtol, max_iter, memory, norm=l1)
        max_iter = max_iter - k
    u, _, residual = _solve_plain(step, u, residual, 0.0, rtol, max_iter, l1)
    return jnp.where(residual <= rtol * l1(u), u, jnp.nan)


def _anderson(fn, init, tol, rtol, max_iter, memory, *, norm):
    """Safeguarded type-II Anderson acceleration of `x ← fn(x)` (Walker & Ni 2011).

    Keeps the last `memory` differences of images `ΔF` and residuals `ΔR` (`r = fn(x) − x`),
    and steps to `x⁺ = fn(x) − ΔF γ` with `γ = argmin ‖r − ΔR γ‖₂` (normal equations with a
    tiny Tikhonov term; `ΔR ΔRᵀ` is updated one row at a time). Safeguards: if the residual's
    2-norm more than doubles, the history is forgotten (only entries `< count` are used, so
    the next step is the plain `x⁺ = fn(x)`); if the best residual has not
    improved for `20 · memory` steps, it stops, unconverged (callers finish with the plain
    iteration). Stops when `norm(fn(x) − x) ≤ tol + rtol · norm(fn(x))`.

    Returns `(fn(x_final), evaluations of fn, final residual norm)`, like the plain iteration
    (whose value is also the image of the last iterate).
    """
    shape, dtype = init.shape, init.dtype
    n = init.size
    f0 = fn(init).reshape(-1)
    r0 = f0 - init.reshape(-1)
    zeros = jnp.zeros((memory, n), dtype)
    eps = jnp.asarray(jnp.finfo(dtype).eps, dtype)
    patience = 20 * memory

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
        coef = jnp.linalg.solve(system, jnp.where(mask, d_r @ r, 0.0))
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
