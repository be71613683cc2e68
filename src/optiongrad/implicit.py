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

    Returns:
      `FixedPointResult(value, iterations, residual, converged)`.
    """
    check_choice(differentiation, "differentiation", DIFFERENTIATION)
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
    """Forward phase: `x_{k+1} = f(x_k)` until the residual is small (or not finite)."""

    def cond(carry):
        k, x, residual = carry
        return (k < config.max_iter) & (residual > config.tol + config.rtol * _max_abs(x))

    def body(carry):
        k, x, _ = carry
        x_next = op(params, x)
        return k + 1, x_next, _max_abs(x_next - x)

    inf = jnp.asarray(jnp.inf, jnp.result_type(init))
    k, x, residual = jax.lax.while_loop(cond, body, (jnp.int32(0), init, inf))
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
        lambda v: vjp_x(v)[0], g, rtol=config.adjoint_rtol, max_iter=config.adjoint_max_iter
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
) -> Array:
    """Solve `u = g + Jᵀ u` by the iteration `u_{k+1} = g + Jᵀ u_k` from `u_0 = g`.

    Converges whenever the spectral radius of `J` is below 1 (for the Bellman operators of
    logsumexp, mellowmax and max backups it is at most γ). Stops when
    `‖u_{k+1} − u_k‖_1 ≤ rtol ‖u_{k+1}‖_1`; returns NaN if that does not happen within
    `max_iter` iterations or the iterates stop being finite.
    """

    def cond(carry):
        k, _, delta, scale = carry
        return (k < max_iter) & (delta > rtol * scale)

    def body(carry):
        k, u, _, _ = carry
        u_next = g + transposed_jacobian(u)
        return k + 1, u_next, jnp.sum(jnp.abs(u_next - u)), jnp.sum(jnp.abs(u_next))

    inf, zero = jnp.asarray(jnp.inf, g.dtype), jnp.zeros((), g.dtype)
    _, u, delta, scale = jax.lax.while_loop(cond, body, (jnp.int32(0), g, inf, zero))
    converged = delta <= rtol * scale
    return jnp.where(converged, u, jnp.nan)
