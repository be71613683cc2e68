r"""Values of policies over options in many goal tasks, and the derivative of their returns.

For the factored goal models (`GoalModels`) and a policy over options $\mu_g$ `(S, K)` in each goal
task `g`, the policy's value solves one `(S, S)` linear system per goal,

$$
v_g = (I - P^O_{\mu,g})^{-1} r^O_{\mu,g}, \qquad P^O_{\mu,g}[s] = \sum_o \mu_g[s, o] P^o_g[s], \qquad
r^O_{\mu,g}[s] = \sum_o \mu_g[s, o] r^o_g[s],
$$

and its return is $J_g = s_{0,g} \cdot v_g$. Differentiating the solve (as `jnp.linalg.solve` would)
gives a cotangent on the dense `(S, S)` matrix $P^O_{\mu,g}$ of every goal, which is then
contracted with the factors — $O(T K S^2)$ work and `(T, S, S)` memory in the backward pass, or a
second formation and factorisation of every matrix when the goals are solved in chunks. The
return has a cheaper derivative. With the adjoint $w_g = (I - P^O_{\mu,g})^{-T} s_{0,g}$ (the
discounted visits to each state from `s0_g`, obtained from the same LU factors as `v_g`) and the
one-step values of `v_g`,

$$
q_g[s, o] = r^o_g[s] + (P^o_g v_g)[s] \qquad \text{(one SMDP backup of $v_g$)},
$$

a perturbation of $\mu$, of the models and of `s0` changes the return by

$$
dJ_g = \sum_s w_g[s] \sum_o \bigl(d\mu_g[s, o]\, q_g[s, o] + \mu_g[s, o]\, dq_g[s, o]\bigr) + ds_{0,g} \cdot v_g,
$$

where `dq` is the change of the backup with the models (`v` held fixed): the derivative costs
one more (transposed) solve with the LU factors per goal in the forward pass and one SMDP
backup in the backward pass ($O(K S^2 T)$, like a planner sweep), and no `(S, S)` matrix
outlives its chunk. It is
the derivative of the direct solve ($dv = (I - P)^{-1}(dr + dP v)$, so $dJ = w^\top(dr + dP v)$)
written in the factors of $P^O_{\mu,g}$; `w_g` are the SMDP's discounted visits to each state
from `s0_g` under $\mu_g$.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp

from optiongrad._src import checks, linalg

Array = jax.Array


def default_chunk(num_states: int, num_goals: int, budget_bytes: int = 2**27) -> int:
    """Goals per chunk in `goal_values` and `goal_policy_returns`: as many `(S, S)` float64
    matrices as fit in `budget_bytes` (at least one, at most all)."""
    return int(max(1, min(num_goals, budget_bytes // (8 * num_states * num_states))))


def _by_chunks(models, mu: Array, per_goal: tuple, solve: Callable, chunk: int,
               remat: bool = False):
    r"""`solve(system, *per_goal)` for the systems $I - P^O_{\mu,g}$ of the goals, `chunk` goals
    at a time (`lax.map` over chunks; `remat`: recompute each chunk in the backward pass).
    `per_goal` are $(T, \dots)$ arrays; returns `solve`'s outputs for all `T` goals."""
    num_goals, s, _ = mu.shape
    eye = jnp.eye(s, dtype=mu.dtype)

    def chunk_solve(u, y, mu, *rest):  # u (K, S, c), y (K, c, S), mu (c, S, K), rest (c, …)
        sub = type(models)(models.base, u, y, models.rewards[:0], models.initial[:0],
                           models.ids)
        return solve(eye - sub.policy_matrix(mu), *rest)

    if chunk >= num_goals:
        return chunk_solve(models.u, models.y, mu, *per_goal)
    n = -(-num_goals // chunk)
    pad = n * chunk - num_goals

    def pieces(x, axis):  # repeat the last goal to fill the last chunk, then split
        last = jax.lax.slice_in_dim(x, x.shape[axis] - 1, None, axis=axis)
        x = jnp.concatenate([x, jnp.repeat(last, pad, axis=axis)], axis=axis)
        x = x.reshape(x.shape[:axis] + (n, chunk) + x.shape[axis + 1:])
        return jnp.moveaxis(x, axis, 0)

    body = (lambda args: chunk_solve(*args))
    out = jax.lax.map(jax.checkpoint(body) if remat else body,
                      (pieces(models.u, 2), pieces(models.y, 1), pieces(mu, 0),
                       *(pieces(x, 0) for x in per_goal)))
    return jax.tree.map(lambda x: x.reshape((n * chunk,) + x.shape[2:])[:num_goals], out)


def _chunk(models, mu: Array, chunk: Optional[int]) -> int:
    num_goals, s, _ = mu.shape
    return default_chunk(s, num_goals) if chunk is None else checks.integer(chunk, "chunk")


def goal_values(models, mu: Array, *, chunk: Optional[int] = None) -> Array:
    r"""Values $v_g = (I - P^O_{\mu,g})^{-1} r^O_{\mu,g}$ of the policies over options `mu (T, S, K)`
    (`(T, S, J)` per slot for compact models) in every goal task of `models` (`GoalModels`),
    shape `(T, S)`, one `(S, S)` solve per goal.

    The goals' solves go through `optiongrad._src.linalg` under `vmap` (no LAPACK call that
    jaxlib would split; one goal at a time at the library's sizes). When all `T` matrices
    $P^O_{\mu,g}$ would not fit in about 128 MB, they are formed `chunk` goals at a time and
    rematerialised in the backward pass (`jax.checkpoint`), so memory stays $O(\mathrm{chunk} \cdot S^2)$; `chunk` defaults to what fits (`default_chunk`). For the
    returns $s_{0,g} \cdot v_g$ use `goal_policy_returns`, whose derivative is cheaper.
    """
    r_mu = jnp.sum(mu * models.rewards, axis=-1)
    return _by_chunks(models, mu, (r_mu,), linalg.solve, _chunk(models, mu, chunk), remat=True)


def goal_policy_returns(models, mu: Array, *, chunk: Optional[int] = None) -> Array:
    r"""Returns $J_g = s_{0,g} \cdot (I - P^O_{\mu,g})^{-1} r^O_{\mu,g}$ of the policies over options
    `mu (T, S, K)` (`(T, S, J)` per slot for compact models) in every goal task of `models`
    (`GoalModels`, `s0_g = models.initial[g]`), shape `(T,)`.

    Forward: one LU factorisation per goal, `chunk` goals' matrices at a time (default: what
    fits in about 128 MB, `default_chunk`). Derivatives (forward and reverse mode) use the
    adjoint visits `w_g` from the same factors and one SMDP backup of `v_g` (module docstring),
    so neither pass keeps or recomputes an `(S, S)` matrix.
    """
    return _policy_returns(_chunk(models, mu, chunk), models, mu)


def _values_and_visits(chunk: int, models, mu: Array, visits: bool):
    """`v (T, S)` and, with `visits`, `w (T, S)`, from one LU factorisation per goal."""
    r_mu = jnp.sum(mu * models.rewards, axis=-1)

    def solve(system, r_mu, s0):
        def one(args):
            a, r, s0 = args
            factors = linalg.lu_factor(a)
            v = linalg.lu_solve(factors, r)
            return (v, linalg.lu_solve(factors, s0, trans=1)) if visits else v
        return jax.vmap(one)((system, r_mu, s0))

    return _by_chunks(models, mu, (r_mu, models.initial), solve, chunk)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _policy_returns(chunk: int, models, mu: Array) -> Array:
    values = _values_and_visits(chunk, models, mu, visits=False)
    return jnp.sum(models.initial * values, axis=-1)


@_policy_returns.defjvp
def _policy_returns_jvp(chunk, primals, tangents):
    models, mu = primals
    d_models, d_mu = tangents
    v, w = _values_and_visits(chunk, models, mu, visits=True)
    q, d_q = jax.jvp(lambda m: m.rewards + m.apply(v), (models,), (d_models,))
    d_return = (jnp.einsum("gs,gsk->g", w, d_mu * q + mu * d_q)
                + jnp.sum(d_models.initial * v, axis=-1))
    return jnp.sum(models.initial * v, axis=-1), d_return
