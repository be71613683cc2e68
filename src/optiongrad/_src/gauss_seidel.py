r"""Gauss–Seidel sweeps over the level sets of a sparse MDP: a warm start for value iteration.

Plain (Jacobi) value iteration $V \leftarrow F(V)$, $F(V)[s] = m_\tau(r[s] + \gamma \sum_{s'} P[s, \cdot, s'] V[s'])$,
is slow for two reasons. A sweep moves values one transition, so it needs at least the graph
distance over which the goal changes the values (the whole diameter for `max`); and the rest
of the error shrinks by γ per sweep — with a soft backup the values of states far from the
goal carry the geometric sum $\sum_k \gamma^k \tau \log(\#\text{near-optimal actions})$, an error that is nearly
the same in every state and decays at exactly that rate.

This warm start removes both (Bertsekas & Tsitsiklis, *Parallel and Distributed Computation*,
1989, §2.6 for Gauss–Seidel value iteration; MacQueen 1966 and Porteus 1971 for the bounds):

* **Order.** States are sorted by their breadth-first distance *to* the absorbing states
  (goals): level 0 the absorbing states, level `ℓ` the states one transition from level
  $\ell - 1$; states that reach none come last. A Gauss–Seidel sweep updates the levels in that
  order, each level in windows of at most `window` states updated at once (vectorised), and
  every window reads the values the earlier windows just wrote — so one sweep carries the
  goal's value across the whole graph. Any order gives the same fixed point (`F` is a
  γ-contraction in $\Vert \cdot\Vert _\infty$, and so is every Gauss–Seidel sweep); the order sets the speed.
  Without absorbing states there is one level (block Gauss–Seidel in index order).
* **Absorbing states** (every action stays) are solved exactly: $V[s] = m_\tau(r[s])/(1 - \gamma)$,
  since $m_\tau(x + c) = m_\tau(x) + c$ for the backups allowed here.
* **Start and stop.** From $V_0 = F(0) + \gamma/(1 - \gamma) \cdot \operatorname{median}(F(0))$ — most states are far
  from any goal, and this puts their constant entropy tail at its limit at once — sweeps run
  until the *span* of the residual $d = F(V) - V$ (max − min) is at most `tol`, and the
  result is shifted by $c = (\max d + \min d) / (2 (1 - \gamma))$: $F(V + c) - (V + c) = d - (1 - \gamma)c$
  then lies within `±span/2`, the MacQueen–Porteus midpoint. The span converges faster than
  the residual itself because the constant part of the error no longer counts. Where
  rounding stalls the span above `tol` (float32 with a tolerance below the values' ulp, e.g.
  γ = 0.999 and values ≈ 140), the shift is the lower bound $c = \min d / (1 - \gamma)$ instead:
  then $F(V) \ge V$, a sub-solution from which the finishing sweeps rise monotonically to the
  float32 fixed point, as they do from zero, where from the midpoint they can cycle by an ulp
  forever.

The planner then finishes with ordinary sweeps from $Q_0 = r + \gamma P V$ (usually one), so its
result, stopping rule, report and implicit gradient are exactly those of plain iteration.
Measured on a 300×300 open grid (γ = 0.99, τ = 0.01, float32; README, Benchmarks).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._src.backups import backup, backup_policy
from optiongrad._src.checks import is_concrete
from optiongrad._src.mdp import MDP
from optiongrad._src.transitions import SparseTransitions, expectation

Array = jax.Array

MAX_RATE = 0.9
r"""The largest per-block rate whose geometric tail the adjoint start extrapolates (a factor
$\lambda/(1 - \lambda)$ of at most 9)."""

GAUSS_SEIDEL_BACKUPS = ("logsumexp", "mellowmax", "max")
"""The backups a Gauss–Seidel warm start supports: non-expansions that commute with adding a
constant (`boltzmann` is neither)."""


class Levels(NamedTuple):
    """The update order of a sparse MDP's states (numpy, made by `levels`).

    Attributes:
      order: `(S,)` the states, absorbing ones first, then by level.
      starts: `(L,)` where each window starts in `order` (the absorbing states excluded).
      width: the window width `W` (every window reads `W` entries; the last window of a level
        may overlap the next level, which only updates those states once more).
      absorbing: the number of absorbing states (the first entries of `order`).
    """

    order: np.ndarray
    starts: np.ndarray
    width: int
    absorbing: int


def levels(next_states: np.ndarray, window: int) -> Levels:
    """Breadth-first levels towards the absorbing states of a successor table
    `next_states (S, A, B)` (concrete), split into windows of at most `window` states."""
    s = next_states.shape[0]
    flat = next_states.reshape(s, -1)
    absorbing = np.all(flat == np.arange(s)[:, None], axis=1)
    level = np.full(s, -1, np.int64)
    level[absorbing] = 0
    # predecessors of every state, as a CSR table of the reversed edges
    sources = np.repeat(np.arange(s), flat.shape[1])
    by_target = np.argsort(flat.reshape(-1), kind="stable")
    begin = np.searchsorted(flat.reshape(-1)[by_target], np.arange(s + 1))
    front, depth = np.flatnonzero(absorbing), 0
    while front.size:
        counts = begin[front + 1] - begin[front]
        edges = np.repeat(begin[front] - np.cumsum(counts) + counts, counts) + np.arange(
            counts.sum())
        previous = np.unique(sources[by_target[edges]])
        front = previous[level[previous] < 0]
        depth += 1
        level[front] = depth
    level[level < 0] = depth + 1
    order = np.argsort(level, kind="stable")
    first = int(absorbing.sum())
    sizes = np.bincount(level[~absorbing] - 1) if first < s else np.zeros(0, np.int64)
    sizes = sizes[sizes > 0]
    width = int(max(1, min(window, sizes.max() if sizes.size else 1, s)))
    starts, at = [], first
    for size in sizes:
        starts.extend(range(at, at + int(size), width))
        at += int(size)
    return Levels(order, np.asarray(starts, np.int32), width, first)


def gauss_seidel_q(mdp: MDP, temperature, kind: str, tol: float, max_sweeps: int,
                   plan: Levels, check_every: int) -> tuple[Array, Array]:
    """The warm start of the module docstring: `(Q (S, A), Gauss–Seidel sweeps)`, in the
    order `plan` (`levels` of the MDP's successor table). Not differentiated."""
    mdp, temperature = jax.lax.stop_gradient((mdp, temperature))
    return _warm_start(mdp, temperature, jnp.asarray(plan.order, jnp.int32),
                       jnp.asarray(plan.starts), kind=kind, tol=tol, max_sweeps=max_sweeps,
                       width=plan.width, absorbing=plan.absorbing, check_every=check_every)


@functools.partial(jax.jit, static_argnames=("kind", "tol", "max_sweeps", "width", "absorbing",
                                             "check_every"))
def _warm_start(mdp: MDP, temperature, order: Array, starts: Array, *, kind: str, tol: float,
                max_sweeps: int, width: int, absorbing: int, check_every: int):
    s, p, gamma = mdp.num_states, mdp.transitions, mdp.discount
    # everything in the update order; successors renumbered
    nxt, probs, rewards = _rank(order)[p.next_states[order]], p.probs[order], mdp.rewards[order]

    def one_step(nxt, probs, rewards, v):  # F(V) on the rows given
        return backup(rewards + gamma * jnp.sum(probs * v[nxt], axis=-1), temperature, kind)

    def values(v):  # F(V), (S,)
        return one_step(nxt, probs, rewards, v)

    def sweep(_, v):
        def window_update(i, v):
            rows = (jax.lax.dynamic_slice_in_dim(x, starts[i], width)
                    for x in (nxt, probs, rewards))
            return jax.lax.dynamic_update_slice_in_dim(v, one_step(*rows, v), starts[i], 0)
        return jax.lax.fori_loop(0, starts.shape[0], window_update, v)

    exact = backup(rewards[:absorbing], temperature, kind) / (1 - gamma)
    f0 = values(jnp.zeros(s, rewards.dtype))
    # a sampled median (a full sort costs several sweeps), kept from XLA's constant folding
    # when the MDP is a constant of the program (folding the sort takes seconds)
    sample = jax.lax.optimization_barrier(f0[::max(1, s // 8192)])
    v0 = (f0 + gamma / (1 - gamma) * jnp.median(sample)).at[:absorbing].set(exact)
    v, k = _sweep_to_span(values, sweep, v0, gamma, tol, max_sweeps, check_every)
    v = v[_rank(order)]  # back to the MDP's numbering
    return mdp.rewards + gamma * expectation(mdp.transitions, v), k


def _sweep_to_span(values, sweep, x0, gamma, tol: float, max_sweeps: int, check_every: int):
    r"""Gauss–Seidel `sweep`s from `x0`, `check_every` at a time, until the span of the
    residual $d = \mathtt{values}(x) - x$ is at most `tol` (or stops improving), then the
    MacQueen–Porteus shift (module docstring); returns `(x, sweeps)`."""
    inf = jnp.asarray(jnp.inf, x0.dtype)

    def cond(carry):
        k, _, span, _, stalled = carry
        return (k < max_sweeps) & (span > tol) & (stalled < 4)

    def body(carry):
        k, x, _, best, stalled = carry
        x = jax.lax.fori_loop(0, check_every, sweep, x)
        d = values(x) - x
        span = jnp.max(d) - jnp.min(d)
        # rounding can keep the span above `tol` (float32, large values): stop when it has
        # not improved for four checks; the finishing sweeps then report what was reached
        stalled = jnp.where(span < best, 0, stalled + 1)
        return k + check_every, x, span, jnp.minimum(span, best), stalled

    k, x, span, _, _ = jax.lax.while_loop(cond, body,
                                          (jnp.int32(0), x0, inf, inf, jnp.int32(0)))
    d = values(x) - x
    low, high = jnp.min(d), jnp.max(d)
    # the midpoint where the span met tol (the residual is then within ±tol/2), the lower
    # bound where rounding stalled the sweeps above it (a sub-solution: the finishing sweeps
    # rise to the float32 fixed point instead of cycling by an ulp around it)
    shift = jnp.where(high - low <= tol, (low + high) / 2, low)
    return x + shift / (1 - gamma), k


def gauss_seidel_options(mdp: MDP, policy: Array, termination: Array, temperature, kind: str,
                         mask, tol: float, max_sweeps: int, plan: Levels,
                         check_every: int) -> tuple[Array, Array]:
    r"""The same warm start for the intra-option Bellman equation (`intra_option_update`):
    `(Q_O (S, K), Gauss–Seidel sweeps)`. Rows of `Q_O` are updated window by window in the
    order `plan`, reading the rows just written; $V = m_\tau(Q_O)$ over the available options
    (`mask (S, K)`) is formed for the successors each window reads. The absorbing states'
    rows (a `K`-dimensional fixed point of their own) are solved first by plain sweeps to
    `tol / 10`; the rest starts at $T(0) + \gamma/(1 - \gamma) \cdot \operatorname{median} m_\tau(T(0))$ and stops on the span
    of $T(Q) - Q$ with the lower-bound shift $\min(T(Q) - Q)/(1 - \gamma)$ ($T(Q + c) = T(Q) + \gamma c$
    holds here too), so the finishing intra-option sweeps rise to the fixed point. Not
    differentiated."""
    mdp, policy, termination, temperature = jax.lax.stop_gradient(
        (mdp, policy, termination, temperature))
    return _options_warm_start(mdp, policy, termination, temperature, mask,
                               jnp.asarray(plan.order, jnp.int32), jnp.asarray(plan.starts),
                               kind=kind, tol=tol, max_sweeps=max_sweeps, width=plan.width,
                               absorbing=plan.absorbing, check_every=check_every)


@functools.partial(jax.jit, static_argnames=("kind", "tol", "max_sweeps", "width", "absorbing",
                                             "check_every"))
def _options_warm_start(mdp, policy, termination, temperature, mask, order, starts, *,
                        kind: str, tol: float, max_sweeps: int, width: int, absorbing: int,
                        check_every: int):
    s, p, gamma = mdp.num_states, mdp.transitions, mdp.discount
    rank = _rank(order)
    nxt, probs, rewards = rank[p.next_states[order]], p.probs[order], mdp.rewards[order]
    pol, beta = jnp.swapaxes(policy, 0, 1)[order], termination.T[order]     # (S, K, A), (S, K)
    avail = None if mask is None else mask[order]

    def one_step(rows, q):  # intra_option_update on the rows given (permuted numbering)
        nxt_w, probs_w, rewards_w, pol_w = rows
        q_next = q[nxt_w]                                                 # (W, A, B, K)
        v_next = backup(q_next, temperature, kind, None if avail is None else avail[nxt_w])
        b = beta[nxt_w]
        u = b * v_next[..., None] + (1 - b) * q_next
        target = rewards_w[..., None] + gamma * jnp.sum(probs_w[..., None] * u, axis=2)
        return jnp.einsum("wka,wak->wk", pol_w, target)

    every = (nxt, probs, rewards, pol)

    def values(q):
        return one_step(every, q)

    def window(at, size, q):
        rows = tuple(jax.lax.dynamic_slice_in_dim(x, at, size) for x in every)
        return jax.lax.dynamic_update_slice_in_dim(q, one_step(rows, q), at, 0)

    def sweep(_, q):
        return jax.lax.fori_loop(0, starts.shape[0], lambda i, q: window(starts[i], width, q), q)

    q0 = values(jnp.zeros((s, pol.shape[1]), rewards.dtype))
    sample = jax.lax.optimization_barrier(
        backup(q0, temperature, kind, avail)[::max(1, s // 8192)])
    q0 = q0 + gamma / (1 - gamma) * jnp.median(sample)
    if absorbing:  # their own fixed point (they read only themselves), by plain sweeps
        def absorbing_cond(carry):
            k, _, change = carry
            return (k < max_sweeps) & (change > tol / 10)

        def absorbing_body(carry):
            k, q, _ = carry
            new = window(0, absorbing, q)
            return k + 1, new, jnp.max(jnp.abs(new[:absorbing] - q[:absorbing]))

        q0 = q0.at[:absorbing].set(0.0)
        _, q0, _ = jax.lax.while_loop(absorbing_cond, absorbing_body,
                                      (jnp.int32(0), q0, jnp.asarray(jnp.inf, q0.dtype)))
    q, k = _sweep_to_span(values, sweep, q0, gamma, tol, max_sweeps, check_every)
    return q[rank], k


class AdjointStart(NamedTuple):
    r"""Where the implicit adjoint of a Gauss–Seidel-planned $Q^*$ starts (`fixed_point`'s
    `adjoint_start`): ordered Gauss–Seidel sweeps on the adjoint equation, in the reverse
    order (values flow from the goal outwards, visits from the far states inwards).

    At $Q^*$ the adjoint equation $u = \bar{g} + (\partial_Q T)^\top u$ of $T(Q) = r + \gamma P m_\tau(Q)$ reduces to the
    states: $u = \bar{g} + \pi \odot w$ with the policy $\pi = \partial m_\tau/\partial Q$ and
    $w[s'] = \gamma \sum_{s, a} P[s, a, s'] (\bar{g}[s, a] + \pi[s, a] w[s])$, a linear system whose unknown
    `w[s']` is gathered from the states that lead to `s'` (the `sources` table). Each sweep
    solves every state's own equation for its own unknown (the diagonal, e.g. an absorbing
    state's self-loop, divided out), window by window, far states first, until
    $\Vert w_{k+1} - w_k\Vert _1 \le \mathrm{rtol} \Vert w_{k+1}\Vert _1$, `check_every` sweeps at a time.

    Where the policy is nearly uniform (far from the goal, where neighbouring values differ by
    less than τ) the visits diffuse, and the sweeps' steps $\delta_k$ shrink geometrically at a
    rate close to 1 (≈ 0.955 per sweep on a 100×100 grid at τ = 0.01). After each block the
    tail is extrapolated (Aitken's δ² process applied to the block's dominant mode):
    $\lambda = \langle\delta_k, \delta_{k-1}\rangle / \Vert \delta_{k-1}\Vert ^2$ and $w \leftarrow w + \lambda/(1 - \lambda) \delta_k$ when $0 < \lambda < 0.9$
    (`MAX_RATE`), never on the block that meets the tolerance. On 100×100 grids at γ = 0.99
    this cut the start's time 1.6–6×; with rates up to 0.99 it failed at γ = 0.999 (the
    plain adjoint iteration then needed 45 000 iterations to confirm the start, against 1),
    so slower tails are left to the sweeps. The result only starts the plain adjoint
    iteration, so the gradient is the implicit gradient of plain iteration. `params` of the
    planner are `(mdp, τ, order, starts)`, the last two from `levels`.
    """

    kind: str
    width: int
    absorbing: int
    rtol: float
    max_sweeps: int
    check_every: int

    def __call__(self, params, q: Array, g: Array) -> Array:
        mdp, temperature, order, starts = jax.lax.stop_gradient(params)
        p = mdp.transitions
        if p.sources is None:  # a hub state: no sources table, start where plain iteration does
            return g
        s, a, b = p.next_states.shape
        pi = backup_policy(q, temperature, self.kind)
        src = p.sources                                        # (S, D) flat (s, a, b) indices
        state, action = jnp.minimum(src // (a * b), s - 1), (src // b) % a
        weight = jnp.concatenate([p.probs.reshape(-1), jnp.zeros(1, p.probs.dtype)])[src]
        gamma = mdp.discount
        own = state == jnp.arange(s)[:, None]
        c = gamma * jnp.sum(weight * g[state, action], axis=1)
        flow = gamma * weight * pi[state, action]                 # (S, D)
        scale = 1.0 / (1.0 - jnp.sum(jnp.where(own, flow, 0.0), axis=1))
        flow = jnp.where(own, 0.0, flow)
        # far states first: reverse the forward order, windows mirrored
        order = order[::-1]
        rank = _rank(order)
        c, scale, flow, source = c[order], scale[order], flow[order], rank[state[order]]
        starts = jnp.maximum(s - starts - self.width, 0)[::-1]

        def update(w, at, width):  # the states at positions [at, at + width)
            cc, sc, fl, so = (jax.lax.dynamic_slice_in_dim(x, at, width)
                              for x in (c, scale, flow, source))
            new = sc * (cc + jnp.sum(fl * w[so], axis=1))
            return jax.lax.dynamic_update_slice_in_dim(w, new, at, 0)

        def sweep(_, w):
            w = jax.lax.fori_loop(0, starts.shape[0],
                                  lambda i, w: update(w, starts[i], self.width), w)
            # the absorbing states come last in this order and lie in no window
            return update(w, s - self.absorbing, self.absorbing) if self.absorbing else w

        def cond(carry):
            k, _, change, size, _ = carry
            return (k < self.max_sweeps) & (change > self.rtol * size)

        def body(carry):
            k, w, _, _, previous = carry
            new = jax.lax.fori_loop(0, self.check_every, sweep, w)
            step = new - w
            # the geometric tail: steps shrinking by λ add up to λ/(1 − λ) times the last one
            rate = jnp.vdot(step, previous) / jnp.maximum(jnp.vdot(previous, previous),
                                                         jnp.finfo(g.dtype).tiny)
            change, size = jnp.sum(jnp.abs(step)), jnp.sum(jnp.abs(new))
            # never on the last block: the result is a point the sweeps have confirmed
            usable = (rate > 0) & (rate < MAX_RATE) & (change > self.rtol * size)
            extrapolated = new + jnp.where(usable, rate / (1 - rate), 0.0) * step
            return k + self.check_every, extrapolated, change, size, step

        inf = jnp.asarray(jnp.inf, g.dtype)
        _, w, _, _, _ = jax.lax.while_loop(
            cond, body, (jnp.int32(0), c, inf, jnp.zeros_like(inf), jnp.zeros_like(c)))
        return g + pi * w[rank][:, None]


def _rank(order: Array) -> Array:
    """The inverse permutation: `_rank(order)[order[i]] = i`."""
    return jnp.zeros(order.shape[0], jnp.int32).at[order].set(
        jnp.arange(order.shape[0], dtype=jnp.int32))


def check_sparse_concrete(mdp: MDP) -> None:
    """`ValueError` unless `mdp` has `SparseTransitions` with concrete successor indices."""
    p = mdp.transitions
    if not isinstance(p, SparseTransitions):
        raise ValueError("solver: GaussSeidel needs sparse transitions (SparseTransitions); "
                         "for dense MDPs use Newton or FixedPointIteration")
    if not is_concrete(p.next_states):
        raise ValueError("solver: GaussSeidel orders the states from the successor table, "
                         "which must be concrete (close over the MDP instead of passing it "
                         "through jit/vmap, or use FixedPointIteration)")
