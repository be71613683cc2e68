r"""Option models of many goal tasks at once, factored: never `(T, K, S, S)` in memory.

In the goal task `g` of an environment (`goal_task`: `g` absorbing, reward 1 on entering it)
only row `g` of the dynamics changes, so an option's model there is the environment's plus a
rank-one term (Sherman & Morrison 1950). With $P_\pi$, $\Lambda = \operatorname{diag}(1 - \beta)$, $B = \operatorname{diag}(\beta)$ of an
option in the environment,

$$
\begin{aligned}
A &= I - \gamma P_\pi \Lambda, \quad M = A^{-1}, \quad D = I - P_\pi
  && \text{(row $g$ of $D$: $d_g = e_g - P_\pi[g]$)} \\
A_g &= A - e_g w_g^\top, \quad w_g = \gamma \Lambda d_g && \text{(only row $g$ of $P_\pi$ changes)} \\
z_g^\top &= w_g^\top M, \quad c_g = 1 - z_g[g], \quad u_g = M[:, g] \\
M_g &= A_g^{-1} = M + u_g z_g^\top / c_g && \text{(Sherman–Morrison)} \\
P^o_g &= \gamma M_g P^g_\pi B = P^o + u_g y_g^\top, \quad y_g = \gamma \beta \odot (d_g + P_\pi^\top z_g) / c_g \\
r^o_g &= M_g q_g = M q_g + u_g (z_g \cdot q_g) / c_g, \quad q_g = P_\pi[:, g] \text{ with entry $g$ set to 0}
\end{aligned}
$$

where $P^o = \gamma M P_\pi B$ is the option's model in the environment; `M` itself is never formed
(two solves with `A` and $A^\top$ per option give $P^o$, `u`, `M q` and `z`). For a batch
of `T` goals `GoalModels` holds $P^O$ `(K, S, S)`, `u (K, S, T)`, `y (K, T, S)` and the rewards
`(T, S, K)`: memory $O(K S^2 + T K S)$. Everything a planner over options needs is then a matrix
product over all goals at once:

* SMDP sweep: $(P^O_g v_g)[s, o] = (P^o v_g)[s] + u_{o,g}[s] \, (y_{o,g} \cdot v_g)$ — one
  $(K S, S) \times (S, T)$ product plus $T K S$ rank-one terms;
* evaluation: $P^O_{\mu,g} = \sum_o \mu_g[:, o] \odot P^o + \sum_o (\mu_g[:, o] \odot u_{o,g})\, y_{o,g}^\top$,
  $v_g = (I - P^O_{\mu,g})^{-1} r^O_{\mu,g}$ — an `(S, S)` solve per goal, done in chunks of
  goals so that memory stays $O(\mathrm{chunk} \cdot S^2)$.

One LU factorisation per option serves all goals ($O(K S^3 + T K S^2)$), and the gradients of all
of it flow through the factors, not through a `(T, K, S, S)` tensor.

Options that may start in few states (hallway options: a room and its doorways) waste most of
`(K, S, S)`: rows where an option is not available are masked out of every planner. With an
`OptionTable` (`option_table(initiation)`) the models keep, per state `s`, only the $J \le K$
options available in `s` — $P^O$ `(S, J, S)`, `u (S, J, T)`, rewards `(T, S, J)` — and the
planners work on these slots (`Q (T, S, J)`, empty slots masked): a sweep costs $O(T S^2 J)$
instead of $O(T S^2 K)$ and the planners' memory is `O(T S J)` (84 hallway options on
twenty-five rooms: `J = 10`).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import equinox as eqx
import numpy as np

from optiongrad._src import checks, linalg
from optiongrad._src.backups import BACKUPS, backup_policy
from optiongrad._src.backups import backup as backup_values
from optiongrad._src.goal_values import goal_policy_returns
from optiongrad._src.implicit import fixed_point, nan_where
from optiongrad._src.mdp import MDP
from optiongrad._src.options import Options, check_terminating
from optiongrad._src.planning import initiation_mask
from optiongrad._src.transitions import policy_matrix

Array = jax.Array


class OptionTable(NamedTuple):
    r"""Which options may start where, for the compact layout of `GoalModels` (made by
    `option_table` from a concrete initiation mask).

    Attributes:
      rows: `(K, R)` the states where each option may start (padded with state 0), `R` the
        largest initiation set.
      slots: `(K, R)` where each of those rows goes in the flattened $(S\cdot J)$ slots ($S\cdot J$: a
        padding row, dropped), `J` the most options available in one state.
      ids: `(S, J)` the option in each slot (`K`: an empty slot).
    """

    rows: Array
    slots: Array
    ids: Array


def option_table(initiation) -> OptionTable:
    """The `OptionTable` of an initiation mask `(K, S)` bool (a concrete array, not a tracer)."""
    init = np.asarray(initiation, bool)
    checks.shape(init, "initiation", (init.shape[0], init.shape[-1]), "(K, S)")
    k, s = init.shape
    r, j = max(1, int(init.sum(1).max())), max(1, int(init.sum(0).max()))
    rows, slots = np.zeros((k, r), np.int32), np.full((k, r), s * j, np.int32)
    ids, used = np.full((s, j), k, np.int32), np.zeros(s, np.int64)
    for o in range(k):
        states = np.flatnonzero(init[o])
        rows[o, :states.size] = states
        slots[o, :states.size] = states * j + used[states]
        ids[states, used[states]] = o
        used[states] += 1
    return OptionTable(jnp.asarray(rows), jnp.asarray(slots), jnp.asarray(ids))


class GoalModels(eqx.Module):
    r"""The option models of `K` options in `T` goal tasks of one environment, factored.

    Attributes:
      base: `(K, S, S)` $P^o$, the options' transition models in the environment; with
        `ids`, `(S, J, S)`: row `s` of the model of option `ids[s, j]`.
      u: `(K, S, T)` $u_{o,g} = M_o[:, g]$; with `ids`, `(S, J, T)` (the same rows).
      y: `(K, T, S)` $y_{o,g}$: $P^o_g = P^o + u_{o,g} y_{o,g}^\top$.
      rewards: `(T, S, K)` the reward models $r^o_g$; with `ids`, `(T, S, J)`.
      initial: `(T, S)` each task's `s0` (uniform over the states other than its goal).
      ids: `None`, or `(S, J)` the option in each slot of each state (`K`: an empty slot), for
        the compact layout (`OptionTable`): everything indexed by options is then indexed by
        slots, and the planners mask the empty ones.
    """

    base: Array
    u: Array
    y: Array
    rewards: Array
    initial: Array
    ids: Optional[Array] = None

    @property
    def num_goals(self) -> int:
        return self.rewards.shape[0]

    def available(self) -> Optional[Array]:
        """`(S, J)` bool, the occupied slots of the compact layout (None in the full one)."""
        return None if self.ids is None else self.ids < self.y.shape[0]

    def _to_options(self, slots: Array) -> Array:
        """`(T, S, J)` per slot → `(T, S, K)` per option (zero where not available)."""
        t, s, _ = slots.shape
        k = self.y.shape[0]
        full = jnp.zeros((t, s, k + 1), slots.dtype)
        return full.at[:, jnp.arange(s)[:, None], self.ids].set(slots)[..., :k]

    def to_slots(self, x: Array) -> Array:
        """`(T, S, K)` per option → `(T, S, J)` per slot of the compact layout (zero in empty
        slots)."""
        padded = jnp.concatenate([x, jnp.zeros(x.shape[:2] + (1,), x.dtype)], axis=-1)
        return jnp.take_along_axis(padded, self.ids[None], axis=2)

    def apply(self, values: Array) -> Array:
        """$(P^O_g v_g)[s, o]$ for values `v (T, S)`, shape `(T, S, K)` (`(T, S, J)` per slot
        in the compact layout)."""
        rank_one = jnp.einsum("kgt,gt->kg", self.y, values)
        if self.ids is None:
            base = jnp.einsum("kst,gt->gsk", self.base, values)
            return base + jnp.einsum("ksg,kg->gsk", self.u, rank_one)
        rank_one = jnp.concatenate([rank_one, jnp.zeros_like(rank_one[:1])])[self.ids]
        slots = jnp.einsum("sjt,gt->gsj", self.base, values)
        return slots + jnp.transpose(self.u * rank_one, (2, 0, 1))

    def policy_matrix(self, mu: Array) -> Array:
        r"""$P^O_{\mu,g}[s, s'] = \sum_o \mu_g[s, o] P^o_g[s, s']$ for `mu (T, S, K)` (`(T, S, J)` per
        slot in the compact layout), `(T, S, S)`."""
        # Written as broadcast products summed over the options rather than as `einsum`s:
        # XLA then fuses each into one pass over the `(T, S, S)` output, where the batched
        # small-K matrix products were 1.4–2.4× slower (measured at S = 453, K = 12); the
        # sums run in the same order (the same bits, measured on the full layout).
        if self.ids is None:
            base = jnp.sum(mu[..., None] * jnp.transpose(self.base, (1, 0, 2))[None], axis=2)
            weighted = mu * jnp.transpose(self.u, (2, 1, 0))            # (T, S, K)
        else:
            base = jnp.sum(mu[..., None] * self.base[None], axis=2)
            weighted = self._to_options(mu * jnp.transpose(self.u, (2, 0, 1)))
        rank_one = jnp.transpose(self.y, (1, 0, 2))[:, None]            # (T, 1, K, S)
        return base + jnp.sum(weighted[..., None] * rank_one, axis=2)

    def transitions(self) -> Array:
        """The dense `(T, K, S, S)` models (for tests and small problems only)."""
        base, u = self.base, self.u
        if self.ids is not None:
            k, s = self.y.shape[0], self.base.shape[0]
            rows = jnp.arange(s)[:, None]
            base = jnp.zeros((k + 1, s, s), base.dtype).at[self.ids, rows].set(base)[:k]
            u = jnp.zeros((k + 1,) + u.shape[::2], u.dtype).at[self.ids, rows].set(u)[:k]
        return base[None] + jnp.einsum("ksg,kgt->gkst", u, self.y)

    def take(self, index) -> "GoalModels":
        """The models of the goals `index` (an index or slice into the goal axis)."""
        return GoalModels(self.base, self.u[:, :, index], self.y[:, index],
                          self.rewards[index], self.initial[index], self.ids)


def _option_factors(mdp: MDP, policy: Array, termination: Array, goals: Array):
    r"""Per option and goals `G (T,)`: $P^o$ `(S, S)`, `u (S, T)`, `y (T, S)`, `r (S, T)` (column
    `t` is the reward model in goal task `G[t]`), from two solves with $A = I - \gamma P_\pi \Lambda$."""
    gamma = mdp.discount
    s, t = mdp.num_states, goals.shape[0]
    eye = jnp.eye(s, dtype=mdp.dtype)
    p_pi = policy_matrix(mdp.transitions, policy)
    stay = 1.0 - termination
    a = eye - gamma * p_pi * stay[None, :]
    index = jnp.arange(t)
    q = p_pi[:, goals].at[goals, index].set(0.0)                     # q_g: P_π[:, g], g ↦ 0
    # One solve for M P_π (the base model) and u_g = M e_g, so M q_g = (M P_π)[:, g] − u_g
    # P_π[g, g]; one (transposed) solve for the rows z_g.
    x = linalg.solve(a, jnp.concatenate([p_pi, eye[:, goals]], axis=1))
    base = gamma * x[:, :s] * termination[None, :]
    u = x[:, s:]
    m_q = x[:, goals] - u * p_pi[goals, goals][None, :]
    # `P^g_π[g] = (Σ_a π[g, a]) e_g`: the row sum (1 on the simplex) keeps derivatives off the
    # simplex identical to those of `option_models(goal_task(g))`.
    d = jnp.sum(policy, axis=-1)[goals, None] * eye[goals] - p_pi[goals]   # rows d_g
    z = gamma * linalg.solve(a.T, (d * stay[None, :]).T).T            # z_g = γ (d_g λ)ᵀ M
    c = 1.0 - z[index, goals]
    y = gamma * (d + z @ p_pi) * termination[None, :] / c[:, None]
    zq = jnp.sum(z * q.T, axis=1)                                    # z_g · q_g
    return base, u, y, m_q + u * (zq / c)[None, :]


def _terminating_factors(mdp: MDP, policy: Array, termination: Array, goals: Array):
    r"""`_option_factors` of an option with $\beta \equiv 1$ (`termination` is not read): `A = I`,
    $z_g = 0$, so $P^o = \gamma P_\pi$, $u_g = e_g$, $y_g = \gamma d_g$, $r^o_g = q_g$ — no solve."""
    s, t = mdp.num_states, goals.shape[0]
    eye = jnp.eye(s, dtype=mdp.dtype)
    p_pi = policy_matrix(mdp.transitions, policy)
    index = jnp.arange(t)
    q = p_pi[:, goals].at[goals, index].set(0.0)
    d = jnp.sum(policy, axis=-1)[goals, None] * eye[goals] - p_pi[goals]
    return mdp.discount * p_pi, eye[:, goals], mdp.discount * d, q


def goal_models(mdp: MDP, options: Options, goals: Array,
                table: Optional[OptionTable] = None, *, exact: int = 0) -> GoalModels:
    r"""The factored option models of `options` in the goal tasks `goals (T,)` of the
    environment `mdp` (dense or sparse transitions; $P_\pi$ is formed densely, so this is for
    `S` up to a few thousand). Equal to `option_models(goal_task(mdp, g), options)` for each
    goal, to rounding, and differentiable in the options. With `table`
    (`option_table(options.initiation)`) only the rows of each option's initiation set are
    kept, one slot per available option and state (the compact layout); the planners then
    work on the slots and mask the empty ones themselves. The last `exact` options must
    terminate everywhere ($\beta \equiv 1$, e.g. the primitives appended by `with_primitives`; checked
    when concrete): their models are written down without a solve, and their terminations
    are taken as the constant 1 (no derivative with respect to them)."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.instance(options, "options", Options, "an optiongrad.Options")
    options.check_mdp(mdp)
    goals = jnp.asarray(checks.indices(goals, "goals", mdp.num_states), jnp.int32)
    if mdp.num_states < 2:
        raise ValueError(f"mdp: a goal task needs at least 2 states, got {mdp.num_states}")
    exact = check_terminating(options, exact)
    # one option at a time (`lax.map`): the unbatched LAPACK kernels are faster than the
    # batched ones on CPU (measured; jax#36927)
    s, t, k = mdp.num_states, goals.shape[0], options.num_options
    others = jnp.arange(s)[None, :] != goals[:, None]
    initial = jnp.where(others, 1.0 / (s - 1), 0.0).astype(mdp.dtype)
    options = (options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype))
    kinds = [(f, slice(a, b)) for f, a, b in ((_option_factors, 0, k - exact),
                                              (_terminating_factors, k - exact, k)) if b > a]
    if table is None:
        parts = [jax.lax.map(lambda pb: f(mdp, *pb, goals), tuple(x[part] for x in options))
                 for f, part in kinds]
        base, u, y, r = (jnp.concatenate(xs) for xs in zip(*parts))
        return GoalModels(base, u, y, jnp.transpose(r, (2, 1, 0)), initial)
    _check_table(table, k, s)
    j = table.ids.shape[1]
    kept = tuple(jnp.zeros((s * j, n), mdp.dtype) for n in (s, t, t))
    ys = []
    for f, part in kinds:
        def option(kept, args, f=f):  # write the option's available rows into their slots
            policy, termination, rows, slots = args
            base, u, y, r = f(mdp, policy, termination, goals)
            kept = tuple(x.at[slots].set(new[rows], mode="drop")
                         for x, new in zip(kept, (base, u, r)))
            return kept, y

        kept, y = jax.lax.scan(option, kept, (*(x[part] for x in options),
                                              table.rows[part], table.slots[part]))
        ys.append(y)
    base, u, r = kept
    return GoalModels(base.reshape(s, j, s), u.reshape(s, j, t), jnp.concatenate(ys),
                      jnp.transpose(r.reshape(s, j, t), (2, 0, 1)), initial, table.ids)


def goal_mask(models: GoalModels, initiation: Optional[Array]) -> Optional[Array]:
    """The `(T, S, K)` mask of available options for the planners over `models`, from the
    initiation sets `(K, S)` (None: every option everywhere); compact models carry their own
    (`(T, S, J)`, the occupied slots) and need none."""
    t, s, k = models.rewards.shape
    mask = (models.available()[None] if models.ids is not None
            else initiation_mask(initiation, k, s))
    return None if mask is None else jnp.broadcast_to(mask, (t, s, k))


def _check_table(table: OptionTable, num_options: int, num_states: int) -> None:
    if not isinstance(table, OptionTable):
        raise ValueError(f"table: expected an OptionTable (option_table(initiation)), got "
                         f"{type(table).__name__}")
    k, s = table.rows.shape[0], table.ids.shape[0]
    if (k, s) != (num_options, num_states):
        raise ValueError(f"table: made for {k} options and {s} states, the options are "
                         f"{num_options} on {num_states} states")


def goal_model_returns(models: GoalModels, temperature, *, num_sweeps: Optional[int] = 3,
                       backup: str = "logsumexp", tol: Optional[float] = None,
                       initiation: Optional[Array] = None,
                       chunk: Optional[int] = None) -> tuple[Array, Array]:
    r"""Returns $s_{0,g} \cdot v_{\mu_g}$ in every goal task of `models`, shape `(T,)`, where
    $\mu_g = \operatorname{softmax}(Q_g/\tau)$ is planned by smooth SMDP planning over the factored models, all
    goals at once: $Q \leftarrow R + P^O m_\tau(Q)$ for `num_sweeps` sweeps from zero values (unrolled
    gradient) or, with `num_sweeps=None`, to convergence (implicit gradient; one joint solve:
    if it fails every return is NaN). `initiation (K, S)` restricts the options available in
    each state (compact models carry their own: it is not needed). Also returns the planner's
    `RESULTS` code."""
    t, s, k = models.rewards.shape
    checks.choice(backup, "backup", BACKUPS)
    checks.temperature(temperature, backup)
    mask = goal_mask(models, initiation)
    tau = jnp.asarray(temperature, models.rewards.dtype)

    def bellman(params, q):
        models, tau = params
        return models.rewards + models.apply(backup_values(q, tau, backup, mask))

    solved = fixed_point(bellman, (models, tau), jnp.zeros((t, s, k), models.rewards.dtype),
                         tol=tol, num_sweeps=num_sweeps)
    mu = backup_policy(jnp.where(solved.failed, 0.0, solved.value), tau, backup, mask)
    returns = goal_policy_returns(models, mu, chunk=chunk)
    return nan_where(solved.failed, returns), solved.result
