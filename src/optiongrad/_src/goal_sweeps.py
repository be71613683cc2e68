r"""Returns of options in many goal tasks, matrix-free: intra-option sweeps over sparse dynamics.

The factored goal models (`goal_models`) keep `(K, S, S)` option models, which stops at a few
thousand states. Here no option model is formed: everything a planner over options needs is
the action of an option model on a vector, and each such action is the fixed point of
intra-option sweeps (Sutton, Precup & Singh 1999, section 3) in the goal task itself. With
$P^g$ the goal task's dynamics (`goal_task`: `g` absorbing, reward 1 on entering it) and, per
option, $P_\pi = \sum_a \pi[s, a] P^g[s, a]$, $\Lambda = \operatorname{diag}(1 - \beta)$, $A = I - \gamma P_\pi \Lambda$:

$$
\begin{aligned}
\text{reward model} && r^o_g &= A^{-1} r_\pi && \text{(the sweep with $V = 0$)} \\
\text{applied model} && P^o_g v &= A^{-1} \gamma P_\pi (\beta \odot v) && \text{(the sweep with $r = 0$)} \\
\text{evaluation} && v_\mu &= \sum_o \mu_o \odot U_o, \quad U_o = r_\pi + \gamma P_\pi (\Lambda U_o + \beta \odot v_\mu)
\end{aligned}
$$

so `N` SMDP sweeps from zero values, $Q \leftarrow R + P^O m_\tau(Q)$, cost `N + 1` matrix-free solves of
all options at once (the reward models and one per sweep), and the planned policy
$\mu = \operatorname{softmax}(Q/\tau)$ is scored by one more. Each solve is a `fixed_point` (implicit gradient) over
`(S, B, K)` arrays — `B` goals, `K` options — whose sweep is one gather of each state's
successors (`policy_expectation`; its transpose is a gather too), `O(K S A n B)` with `n`
successors per state-action pair; memory is `O(K S B)`, so a map's size is limited by time, not
memory. Options with $\beta \equiv 1$ (primitives) are exact after one sweep and are not iterated.
Batches of goals are taken one after the other (`lax.map`).

These equal the factored and the dense per-goal models' returns to the solves' tolerance
(`tests/test_goal_sweeps.py`); use them when `(K, S, S)` does not fit or for sparse maps of
more than a few thousand states.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.backups import BACKUPS, backup_policy
from optiongrad._src.backups import backup as backup_values
from optiongrad._src.implicit import fixed_point, nan_where
from optiongrad._src.mdp import MDP
from optiongrad._src.options import Options, check_terminating
from optiongrad._src.planning import initiation_mask
from optiongrad._src.solvers import RESULTS, FixedPointIteration, Implicit, is_failure
from optiongrad._src.transitions import policy_expectation, probabilities_to

Array = jax.Array

# Every solve here is a plain γ-contraction of many columns; the stopping rule is tested every
# 8th sweep, forward and adjoint (`FixedPointIteration.check_every`).
SOLVER = FixedPointIteration(check_every=8)


def _adjoint(dtype) -> Implicit:
    """The adjoints of these solves stop at the forward solves' default tolerance (1e-10 in
    float64, relative), not the library's stricter default (1e-12)."""
    return Implicit(rtol=checks.default_tol(dtype))


def _update(mdp: MDP, goals: Array, reward: Optional[Array], policy: Array,
            termination: Array, z: Array, value: Array) -> Array:
    r"""One intra-option backup in the goal tasks `goals (B,)` at once, `(S, B, K)`:

        z[s, b, o] ← Σ_a π^o[s, a] (r^g[s, a] + γ Σ_s' P^g[s, a, s'] (β^o[s'] v[s', b]
                                                                  + (1 − β^o[s']) z[s', b, o]))

    with `g = goals[b]`, the environment's `P` shared by every goal ($P^g$ differs from it
    only in row `g`, which is set afterwards: absorbing, no reward), the options' expected
    rewards $\mathtt{reward}[s, b, o] = \sum_a \pi^o[s, a] r^g[s, a]$ (`(S, B, K)`, None: no reward) with
    $r^g[s, a] = P[s, a, g]$, `z (S, B, K)` and `value (S, B)`."""
    beta = termination.T[:, None, :]                                  # (S, 1, K)
    u = beta * value[:, :, None] + (1.0 - beta) * z                   # (S, B, K)
    out = mdp.discount * policy_expectation(mdp.transitions, policy, u)
    if reward is not None:
        out = out + reward
    index = jnp.arange(goals.shape[0])
    at_goal = jnp.sum(policy[:, goals, :], axis=-1).T * mdp.discount * u[goals, index]
    return out.at[goals, index].set(at_goal)                          # row g: absorbing


def _solve(mdp, goals, reward, policy, termination, value, init, *, tol, max_iter, mu=None):
    r"""The fixed point of `_update` from `init (S, B, K)` with the terminal values
    `value (S, B)`, or, if `value` is None, $V = \sum_o \mu[:, :, o] z[:, :, o]$ for `mu (S, B, K)`:
    a policy evaluation."""

    def operator(params, z):
        mdp, reward, policy, termination, value, mu = params
        terminal = jnp.sum(mu * z, axis=-1) if value is None else value
        return _update(mdp, goals, reward, policy, termination, z, terminal)

    return fixed_point(operator, (mdp, reward, policy, termination, value, mu), init, tol=tol,
                       max_iter=max_iter, solver=SOLVER, adjoint=_adjoint(init.dtype))


def _first_failure(results) -> RESULTS:
    result = results[-1]
    for earlier in reversed(results[:-1]):
        result = RESULTS.where(is_failure(earlier), earlier, result)
    return result


def _batch_returns(mdp: MDP, policy, termination, mask, tau, goals, *, num_sweeps, backup,
                   tol, max_iter, exact):
    """Returns `(B,)` and one `RESULTS` code for the goal batch `goals (B,)`."""
    s, b, k = mdp.num_states, goals.shape[0], policy.shape[0]
    enter = probabilities_to(mdp.transitions, goals)
    enter = enter.at[goals, :, jnp.arange(b)].set(0.0).astype(mdp.dtype)    # r^g (S, A, B)
    reward = jnp.sum(jnp.moveaxis(policy, 0, -1)[:, :, None, :] * enter[..., None], axis=1)
    mask = None if mask is None else jnp.broadcast_to(mask[:, None, :], (s, b, k))
    zeros = jnp.zeros((s, b, k), mdp.dtype)
    solves = dict(tol=None, max_iter=max_iter)  # the models' and evaluation's solves
    if num_sweeps is None:   # plan to convergence: z ← update(z, V = m_τ(z))
        def bellman(params, z):
            mdp, reward, policy, termination, tau = params
            return _update(mdp, goals, reward, policy, termination, z,
                           backup_values(z, tau, backup, mask))

        plan = fixed_point(bellman, (mdp, reward, policy, termination, tau), zeros,
                           solver=SOLVER, adjoint=_adjoint(zeros.dtype), tol=tol,
                           max_iter=max_iter)
        q, results = plan.value, [plan.result]
    else:                    # N SMDP sweeps from zero values: Q ← R + P^O m_τ(Q)
        # Options with β ≡ 1 (the last `exact`, e.g. primitives) are exact after one sweep
        # from zero: only the others' models are iterated.
        n = k - exact
        zero_values = jnp.zeros((s, b), mdp.dtype)

        def models(reward, value):  # (R^O or P^O v (S, B, K), RESULTS)
            parts, result = [], RESULTS.successful
            part = (lambda r, cut: None if r is None else r[..., cut])  # noqa: E731
            if n:
                solved = _solve(mdp, goals, part(reward, slice(None, n)), policy[:n],
                                termination[:n], value, zeros[..., :n], **solves)
                parts, result = [solved.value], solved.result
            if exact:
                parts.append(_update(mdp, goals, part(reward, slice(n, None)), policy[n:],
                                     termination[n:], zeros[..., n:], value))
            return jnp.concatenate(parts, axis=-1), result

        rewards, result = models(reward, zero_values)
        # zero values, but not a compile-time constant: XLA would spend seconds folding m_τ(0)
        q, results = 0.0 * rewards, [result]
        for _ in range(num_sweeps):
            applied, result = models(None, backup_values(q, tau, backup, mask))
            q, results = rewards + applied, results + [result]
    mu = backup_policy(q, tau, backup, mask)
    evaluation = _solve(mdp, goals, reward, policy, termination, None, zeros, mu=mu, **solves)
    values = jnp.sum(mu * evaluation.value, axis=-1)                  # (S, B)
    others = jnp.arange(s)[:, None] != goals[None, :]
    returns = jnp.sum(jnp.where(others, values, 0.0), axis=0) / (s - 1)
    return returns, _first_failure(results + [evaluation.result])


def sweep_goal_returns(mdp: MDP, options: Options, goals: Array, temperature, *,
                       num_sweeps: Optional[int] = 3, backup: str = "logsumexp",
                       tol: Optional[float] = None, max_iter: int = 10_000,
                       batch_size: Optional[int] = None, exact: int = 0
                       ) -> tuple[Array, Array]:
    r"""Returns $s_{0,g} \cdot v_{\mu_g}$ of the policy over `options` planned in each goal task of
    `goals (T,)`, shape `(T,)`, matrix-free (module docstring), and each goal's `RESULTS` code.

    $\mu_g = \operatorname{softmax}(Q_g/\tau)$ with `Q_g` after `num_sweeps` SMDP sweeps from zero values
    (unrolled over the sweeps, each sweep's option models by an implicit solve), or at
    convergence of the intra-option planner with `num_sweeps=None`. The same returns as
    `goal_model_returns(goal_models(mdp, options, goals), …)` and as
    `hierarchical_return(options, goal_task(mdp, g), …)`, without `(K, S, S)` memory.

    Args:
      mdp: the environment (dense or, for large maps, sparse transitions); its reward and
        `s0` are not used (each goal task has its own).
      options: `K` options (primitives appended already, if wanted); initiation sets are
        honoured by the planner.
      goals: `(T,)` goal states.
      temperature: $\tau > 0$ of the policy over options; backup: the SMDP backup.
      num_sweeps: the planning budget `N`, or None (plan to convergence).
      tol: the planner's tolerance with `num_sweeps=None` (as in `goal_model_returns`); the
        option-model and evaluation solves always stop at the dtype's default (`fixed_point`).
      max_iter: the iteration limit of every solve.
      batch_size: goals per batch (default all; smaller bounds memory at $O(\mathrm{batch} \cdot K S)$).
      exact: the last `exact` options terminate everywhere ($\beta \equiv 1$, e.g. the primitives of
        `with_primitives`), so their models are exact after one sweep and are not iterated
        (checked when the terminations are concrete).

    Returns:
      `(returns (T,), result (T,))`; a goal whose solves failed has a NaN return.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.instance(options, "options", Options, "an optiongrad.Options")
    options.check_mdp(mdp)
    checks.choice(backup, "backup", BACKUPS)
    checks.temperature(temperature, backup)
    num_sweeps = checks.iterations(num_sweeps, "num_sweeps", allow_none=True)
    checks.tolerance(tol, "tol")
    max_iter = checks.iterations(max_iter, "max_iter")
    goals = jnp.asarray(checks.indices(goals, "goals", mdp.num_states), jnp.int32)
    if mdp.num_states < 2:
        raise ValueError(f"mdp: a goal task needs at least 2 states, got {mdp.num_states}")
    if batch_size is not None:
        batch_size = checks.integer(batch_size, "batch_size")
    exact = check_terminating(options, exact)
    k, s = options.num_options, mdp.num_states
    mask = initiation_mask(options.initiation, k, s)
    policy = options.policy.astype(mdp.dtype)
    termination = options.termination.astype(mdp.dtype)
    tau = jnp.asarray(temperature, mdp.dtype)

    def batch(goals):
        returns, result = _batch_returns(mdp, policy, termination, mask, tau, goals,
                                         num_sweeps=num_sweeps, backup=backup, tol=tol,
                                         max_iter=max_iter, exact=exact)
        codes = jax.tree.map(lambda c: jnp.broadcast_to(c, goals.shape), result)
        return nan_where(is_failure(result), returns), codes

    t = goals.shape[0]
    if batch_size is None or batch_size >= t:
        return batch(goals)
    n = -(-t // batch_size)
    padded = jnp.concatenate([goals, jnp.full((n * batch_size - t,), goals[-1])])
    out = jax.lax.map(batch, padded.reshape(n, batch_size))
    return jax.tree.map(lambda x: x.reshape(-1)[:t], out)
