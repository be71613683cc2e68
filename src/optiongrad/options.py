"""Options, option models and call-and-return hierarchical policies.

An option `o = (π^o, β^o)` with an initiation set `I^o ⊆ S` (DESIGN.md, "Options"): once
started in `s ∈ I^o` it acts with `π^o`, and on entering `s'` it terminates with probability
`β^o[s']`; it always runs at least one step. Its model is the λ-model of `π^o` with `λ = 1 − β^o`
(`optiongrad.multistep`):

    r^o = (I − γ P_{π^o} Λ^o)^{-1} r_{π^o}                  (S,)    batched: (S, K)
    P^o = γ (I − γ P_{π^o} Λ^o)^{-1} P_{π^o} B^o            (S, S)  batched: (K, S, S)

A primitive action `a` is the option (one-hot `a`, `β ≡ 1`): `r^o = r[:, a]`, `P^o = γ P[:, a, :]`.

A policy over options `μ (S, K)` (zero outside initiation sets) executed call-and-return has value

    v_μ = (I − P^O_μ)^{-1} r^O_μ,  P^O_μ[s, s'] = Σ_o μ[s, o] P^o[s, s'],  r^O_μ[s] = Σ_o μ[s, o] r^o[s]

(`smdp_policy_evaluation`). Two independent computations of the same number are provided: the
flattened (state, active option) Markov chain of the primitive MDP (`flat_policy_evaluation`),
and Monte Carlo rollouts (`rollout`, `sample_returns`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad._checks import check_distribution_rows, check_finite, is_concrete
from optiongrad._pytree import ValidatedPytree
from optiongrad.implicit import fixed_point
from optiongrad.mdp import MDP
from optiongrad.multistep import lambda_model
from optiongrad.transitions import SparseTransitions, expectation, policy_matrix

Array = jax.Array

@jax.tree_util.register_pytree_node_class
@dataclasses.dataclass(frozen=True, eq=False, init=False)
class Options(ValidatedPytree):
    """A set of `K` options as a pytree.

    Args:
      policy: `(K, S, A)` option policies `π^o[s, a]`, rows summing to 1.
      termination: `(K, S)` `β^o[s'] ∈ [0, 1]`, probability of terminating on entering `s'`.
      initiation: optional `(K, S)` bool, `I^o`; None means every option is available everywhere.

    Built from concrete arrays it is validated and raises `ValueError` naming the field; built
    from tracers only shapes are checked.
    """

    policy: Array
    termination: Array
    initiation: Optional[Array]
    _fields = ("policy", "termination", "initiation")

    def __init__(self, policy, termination, initiation=None):
        if is_concrete(policy):
            policy = jnp.asarray(policy)
            if not jnp.issubdtype(policy.dtype, jnp.floating):
                policy = policy.astype(jnp.result_type(float))
        if jnp.ndim(policy) != 3:
            raise ValueError(f"policy: expected shape (K, S, A), got {jnp.shape(policy)}")
        k, s, _ = jnp.shape(policy)
        termination = jnp.asarray(termination, policy.dtype) if is_concrete(termination) \
            else termination
        if jnp.shape(termination) != (k, s):
            raise ValueError(f"termination: expected shape (K, S) = ({k}, {s}), "
                             f"got {jnp.shape(termination)}")
        if initiation is not None:
            if is_concrete(initiation):
                initiation = np.asarray(initiation)
                if initiation.dtype != np.bool_:
                    raise ValueError(f"initiation: expected a bool array, got {initiation.dtype}")
                initiation = jnp.asarray(initiation)
            if jnp.shape(initiation) != (k, s):
                raise ValueError(f"initiation: expected shape (K, S) = ({k}, {s}), "
                                 f"got {jnp.shape(initiation)}")
        if is_concrete(policy):
            check_distribution_rows(np.asarray(policy), "policy", "(o, s)")
        if is_concrete(termination):
            check_finite(termination, "termination")
            beta = np.asarray(termination)
            if beta.min(initial=0.0) < 0.0 or beta.max(initial=0.0) > 1.0:
                bad = np.argwhere((beta < 0) | (beta > 1))[0]
                raise ValueError(f"termination: {beta[tuple(bad)]} at (o, s) = "
                                 f"{tuple(int(i) for i in bad)} is outside [0, 1]")
        self._set(policy, termination, initiation)

    @property
    def num_options(self) -> int:
        return self.policy.shape[0]

    @property
    def num_states(self) -> int:
        return self.policy.shape[1]

    @property
    def num_actions(self) -> int:
        return self.policy.shape[2]

    def initiation_mask(self) -> Array:
        """`(K, S)` bool; all True when no initiation sets were given."""
        if self.initiation is None:
            return jnp.ones(self.termination.shape, dtype=bool)
        return self.initiation

    def __repr__(self) -> str:
        return f"Options(K={self.num_options}, S={self.num_states}, A={self.num_actions})"


def primitive_options(num_states: int, num_actions: int, dtype=None) -> Options:
    """The `A` primitive actions as options: one-hot policies, `β ≡ 1`, available everywhere."""
    dtype = jnp.result_type(float) if dtype is None else dtype
    policy = jnp.broadcast_to(jnp.eye(num_actions, dtype=dtype)[:, None, :],
                              (num_actions, num_states, num_actions))
    return Options(policy, jnp.ones((num_actions, num_states), dtype))


def concatenate(*option_sets: Options) -> Options:
    """One `Options` holding all options of `option_sets`, in order."""
    if not option_sets:
        raise ValueError("option_sets: need at least one set of options")
    shapes = {o.policy.shape[1:] for o in option_sets}
    if len(shapes) != 1:
        raise ValueError(f"option_sets: (S, A) must agree, got {sorted(shapes)}")
    dtype = jnp.result_type(*(o.policy for o in option_sets))
    policy = jnp.concatenate([o.policy.astype(dtype) for o in option_sets])
    termination = jnp.concatenate([o.termination.astype(dtype) for o in option_sets])
    initiation = None
    if any(o.initiation is not None for o in option_sets):
        initiation = jnp.concatenate([o.initiation_mask() for o in option_sets])
    return Options._unchecked(policy, termination, initiation)


def with_primitives(options: Options) -> Options:
    """`options` followed by the primitive actions ("options + primitives")."""
    return concatenate(options, primitive_options(options.num_states, options.num_actions,
                                                  options.policy.dtype))


def option_models(mdp: MDP, options: Options) -> tuple[Array, Array]:
    """Option models `(reward (S, K), transition (K, S, S))` with the MDP's reward.

    Batched over options with `vmap` of `optiongrad.multistep.lambda_model` (`λ = 1 − β^o`).
    Differentiable in the MDP and in the options' policies and terminations.
    """
    if options.policy.shape[1:] != (mdp.num_states, mdp.num_actions):
        raise ValueError(f"options: policies have (S, A) = {options.policy.shape[1:]}, "
                         f"the MDP has ({mdp.num_states}, {mdp.num_actions})")
    reward, transition = jax.vmap(lambda pi, beta: lambda_model(mdp, pi, 1.0 - beta))(
        options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype))
    return reward.T, transition


def smdp_policy_evaluation(reward: Array, transition: Array, mu: Array) -> Array:
    """Value `v_μ = (I − P^O_μ)^{-1} r^O_μ` of a call-and-return policy over options, `(S,)`.

    Args:
      reward: `(S, K)` option reward models; transition: `(K, S, S)` option transition models;
      mu: `(S, K)` policy over options.
    """
    reward, transition, mu = jnp.asarray(reward), jnp.asarray(transition), jnp.asarray(mu)
    s, k = reward.shape
    if transition.shape != (k, s, s) or mu.shape != (s, k):
        raise ValueError(f"reward (S, K) = {reward.shape}, transition (K, S, S) = "
                         f"{transition.shape} and mu (S, K) = {mu.shape} do not agree")
    r_mu = jnp.sum(mu * reward, axis=1)
    p_mu = jnp.einsum("sk,kst->st", mu, transition)
    return jnp.linalg.solve(jnp.eye(s, dtype=reward.dtype) - p_mu, r_mu)


def intra_option_update(mdp: MDP, policy: Array, termination: Array, q: Array,
                        value: Array) -> Array:
    """One intra-option backup (Sutton, Precup & Singh 1999, section 3), `(S, K)`:

        Q[s, o] ← Σ_a π^o[s, a] (r[s, a] + γ Σ_s' P[s, a, s'] (β^o[s'] V[s']
                                                                + (1 − β^o[s']) Q[s', o]))

    with `policy (K, S, A)`, `termination (K, S)`, `q (S, K)` and the value on termination
    `value (S,)`. Matrix-free: `O(K S A B)` with sparse transitions."""
    beta = termination.T
    u = beta * value[:, None] + (1.0 - beta) * q
    target = mdp.rewards[:, :, None] + mdp.discount * expectation(mdp.transitions, u)
    return jnp.einsum("ksa,sak->sk", policy, target)


def apply_option_models(mdp: MDP, options: Options, v: Array, *, tol: Optional[float] = None,
                        max_iter: int = 100_000) -> tuple[Array, Array]:
    """Option models applied to a vector without forming them: `(r^O (S, K), P^O v (S, K))`.

    Both are `D_o w` with `D_o = (I − γ P_{π^o} Λ^o)^{-1}`, `w = r_{π^o}` and
    `w = γ P_{π^o} (β^o ⊙ v)`; `z = D_o w` is the fixed point of
    `z ← w + γ P_{π^o} ((1 − β^o) ⊙ z)` — `intra_option_update` with the MDP's reward and
    value 0 on termination, or with reward 0 and value `v` — a γ-contraction solved by
    `fixed_point` (implicit gradient) with sparse or dense transitions in `O(K S A B)` per
    sweep. Equal to
    `option_models(mdp, options)` followed by `P^o @ v`, which needs `(K, S, S)` memory.
    """
    s = options.num_states
    v = jnp.asarray(v, mdp.dtype)
    if v.shape != (s,):
        raise ValueError(f"v: expected shape (S,) = ({s},), got {v.shape}")
    # Both are intra-option fixed points: the reward model with the MDP's reward and no value
    # on termination, `P^O v` with zero reward and value `v` on termination.
    rewards = jnp.stack([mdp.rewards, jnp.zeros_like(mdp.rewards)])
    values = jnp.stack([jnp.zeros_like(v), v])

    def operator(params, z):
        mdp, policy, termination, rewards, values = params
        return jax.vmap(lambda r, value, q: intra_option_update(
            mdp._with(rewards=r), policy, termination, q, value))(rewards, values, z)

    params = (mdp, options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype),
              rewards, values)
    z = fixed_point(operator, params, jnp.zeros((2, s, options.num_options), mdp.dtype),
                    tol=tol, max_iter=max_iter).value
    return z[0], z[1]


def intra_option_policy_evaluation(mdp: MDP, options: Options, mu: Array, *,
                                   tol: Optional[float] = None, max_iter: int = 100_000) -> Array:
    """Value `v_μ (S,)` of the call-and-return policy over options `μ (S, K)`, matrix-free.

    The fixed point of `Q ← intra_option_update(Q, V = Σ_o μ[:, o] Q[:, o])` (iterated to
    `tol`, differentiable by the implicit function theorem); equal to
    `smdp_policy_evaluation(*option_models(mdp, options), mu)` without forming the
    `(K, S, S)` option models, so it works for large sparse MDPs.
    """
    k, s, _ = options.policy.shape
    mu = jnp.asarray(mu, mdp.dtype)
    if mu.shape != (s, k):
        raise ValueError(f"mu: expected shape (S, K) = ({s}, {k}), got {mu.shape}")

    def operator(params, q):
        mdp, policy, termination, mu = params
        return intra_option_update(mdp, policy, termination, q, jnp.sum(mu * q, axis=1))

    params = (mdp, options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype), mu)
    q = fixed_point(operator, params, jnp.zeros((s, k), mdp.dtype), tol=tol,
                    max_iter=max_iter).value
    return jnp.sum(mu * q, axis=1)


def flat_policy_evaluation(mdp: MDP, options: Options, mu: Array) -> Array:
    """`v_μ (S,)` computed on the flattened (state, active option) chain of the primitive MDP.

    Chain state `(s, o)`: option `o` is in control at `s`. It acts `a ~ π^o[s]`, collects
    `r[s, a]`, moves to `s' ~ P[s, a]`, and there terminates with probability `β^o[s']` (then
    `o' ~ μ[s']`) or continues. With `P_o = P_{π^o}`:

        V[(s, o)] = r_{π^o}[s] + γ Σ_s' P_o[s, s'] (β^o[s'] Σ_o' μ[s', o'] V[(s', o')]
                                                   + (1 − β^o[s']) V[(s', o)])
        v_μ[s]    = Σ_o μ[s, o] V[(s, o)]

    An independent check of `smdp_policy_evaluation(*option_models(mdp, options), mu)`; dense
    `(S·K) × (S·K)` solve, so for small problems.
    """
    mu = jnp.asarray(mu, mdp.dtype)
    k, s = options.num_options, mdp.num_states
    pi, beta = options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype)
    p_o = jax.vmap(lambda p: policy_matrix(mdp.transitions, p))(pi)  # (K, S, S)
    r_o = jnp.einsum("ksa,sa->ks", pi, mdp.rewards)  # (K, S)
    # M[(o, s), (o', s')] = γ P_o[s, s'] (β^o[s'] μ[s', o'] + (1 − β^o[s']) δ_oo')
    switch = p_o * beta[:, None, :]  # (K, S, S')
    stay = p_o * (1.0 - beta)[:, None, :]
    m = jnp.einsum("kst,tj->ksjt", switch, mu) + jnp.einsum(
        "kst,kj->ksjt", stay, jnp.eye(k, dtype=mdp.dtype))
    m = mdp.discount * m.reshape(k * s, k * s)
    values = jnp.linalg.solve(jnp.eye(k * s, dtype=mdp.dtype) - m, r_o.reshape(-1))
    return jnp.sum(mu * values.reshape(k, s).T, axis=1)


class Trajectory(NamedTuple):
    """One call-and-return episode of `horizon` steps (arrays of shape `(horizon,)`).

    `option[t]` is the option in control at step `t`, `started[t]` whether it was chosen at
    step `t`; `reward[t] = r[state[t], action[t]]`; `terminated[t]` whether the option terminated
    on entering `state[t + 1]`; `discounted_return = Σ_t γ^t reward[t]`.
    """

    state: Array
    option: Array
    started: Array
    action: Array
    reward: Array
    terminated: Array
    discounted_return: Array


def _next_state(key, transitions, s, a):
    if isinstance(transitions, SparseTransitions):
        b = jax.random.categorical(key, jnp.log(transitions.probs[s, a]))
        return transitions.next_states[s, a, b]
    return jax.random.categorical(key, jnp.log(transitions[s, a]))


def rollout(key, mdp: MDP, options: Options, mu: Array, horizon: int,
            start: Optional[Array] = None) -> Trajectory:
    """Run the call-and-return policy `μ` over `options` for `horizon` steps.

    Args:
      key: `jax.random` key. mdp, options: the primitive MDP and the options.
      mu: `(S, K)` policy over options. horizon: number of primitive steps (static).
      start: initial state; drawn from `mdp.initial` when None.

    `vmap` over keys for many episodes (`sample_returns`). The truncated return misses at most
    `γ^horizon max|r| / (1 − γ)`.
    """
    mu = jnp.asarray(mu, mdp.dtype)
    log_mu = jnp.log(mu)
    log_pi = jnp.log(options.policy.astype(mdp.dtype))
    beta = options.termination.astype(mdp.dtype)
    key, k0 = jax.random.split(key)
    s0 = jax.random.categorical(k0, jnp.log(mdp.initial)) if start is None else jnp.asarray(start)

    def step(carry, key):
        s, o, need_option = carry
        k_o, k_a, k_s, k_b = jax.random.split(key, 4)
        o = jnp.where(need_option, jax.random.categorical(k_o, log_mu[s]), o).astype(jnp.int32)
        a = jax.random.categorical(k_a, log_pi[o, s])
        s_next = _next_state(k_s, mdp.transitions, s, a).astype(jnp.int32)
        terminated = jax.random.uniform(k_b, dtype=mdp.dtype) < beta[o, s_next]
        out = (s, o, need_option, a, mdp.rewards[s, a], terminated)
        return (s_next, o, terminated), out

    init = (jnp.asarray(s0, jnp.int32), jnp.int32(0), jnp.asarray(True))
    _, (states, opts, started, actions, rewards, terminated) = jax.lax.scan(
        step, init, jax.random.split(key, horizon))
    discounts = mdp.discount ** jnp.arange(horizon, dtype=mdp.dtype)
    return Trajectory(states, opts, started, actions, rewards, terminated,
                      jnp.sum(discounts * rewards))


@functools.partial(jax.jit, static_argnames=("num_episodes", "horizon"))
def sample_returns(key, mdp: MDP, options: Options, mu: Array, num_episodes: int,
                   horizon: int) -> Array:
    """Discounted returns of `num_episodes` independent rollouts, shape `(num_episodes,)`."""
    keys = jax.random.split(key, num_episodes)
    return jax.vmap(lambda k: rollout(k, mdp, options, mu, horizon).discounted_return)(keys)
