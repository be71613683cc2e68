r"""Monte Carlo episodes of call-and-return policies over options.

`rollout` runs $\mu$ `(S, K)` over `options` for a fixed number of primitive steps (a `lax.scan`);
`sample_returns` `vmap`s it over keys. The mean discounted return of episodes from `s0` is the
value $s_0 \cdot v_\mu$ of `hierarchical.smdp_policy_evaluation` (an independent check of it, and how
the options are run in an episode).
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.hierarchical import check_mu
from optiongrad._src.mdp import MDP
from optiongrad._src.option_models import check_mdp_and_options
from optiongrad._src.options import Options
from optiongrad._src.transitions import SparseTransitions

Array = jax.Array


class Trajectory(NamedTuple):
    r"""One call-and-return episode of `horizon` steps (arrays of shape `(horizon,)`).

    `option[t]` is the option in control at step `t`, `started[t]` whether it was chosen at
    step `t`; `reward[t] = r[state[t], action[t]]`; `terminated[t]` whether the option terminated
    on entering `state[t + 1]`; $\mathtt{discounted\_return} = \sum_t \gamma^t \mathtt{reward}[t]$.
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


def _check(key, mdp, options, mu, horizon):
    key = checks.random_key(key)
    check_mdp_and_options(mdp, options)
    mu = check_mu(mu, options, mdp.dtype)
    checks.integer(horizon, "horizon")
    return key, mu


def rollout(key, mdp: MDP, options: Options, mu: Array, horizon: int,
            start: Optional[Array] = None) -> Trajectory:
    r"""Run the call-and-return policy $\mu$ over `options` for `horizon` steps.

    Args:
      key: `jax.random` key (or an integer seed). mdp, options: the primitive MDP and the
        options.
      mu: `(S, K)` policy over options (zero outside initiation sets).
      horizon: number of primitive steps (static).
      start: initial state index; drawn from `mdp.initial` when None.

    `vmap` over keys for many episodes (`sample_returns`). The truncated return misses at most
    $\gamma^{\mathrm{horizon}} \max\vert r\vert / (1 - \gamma)$.
    """
    key, mu = _check(key, mdp, options, mu, horizon)
    if start is not None:
        start = checks.indices(start, "start", mdp.num_states, scalar=True)
    return _rollout(key, mdp, options, mu, horizon, start)


def _rollout(key, mdp, options, mu, horizon, start):
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


def sample_returns(key, mdp: MDP, options: Options, mu: Array, num_episodes: int,
                   horizon: int) -> Array:
    """Discounted returns of `num_episodes` independent rollouts from `s0`, shape
    `(num_episodes,)`; arguments as in `rollout`."""
    key, mu = _check(key, mdp, options, mu, horizon)
    checks.integer(num_episodes, "num_episodes")
    return _sample(key, mdp, options, mu, num_episodes, horizon)


@functools.partial(jax.jit, static_argnames=("num_episodes", "horizon"))
def _sample(key, mdp, options, mu, num_episodes, horizon):
    keys = jax.random.split(key, num_episodes)
    return jax.vmap(lambda k: _rollout(k, mdp, options, mu, horizon, None).discounted_return)(
        keys)
