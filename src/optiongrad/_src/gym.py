r"""Gymnasium both ways: toy-text environments to `MDP`, and `MDP`s (with options) to `gymnasium.Env`.

**From gymnasium.** Toy-text environments (FrozenLake, CliffWalking, Taxi, …) expose their
dynamics as a table `env.unwrapped.P[s][a] = [(p, s', r, terminated), …]`. `from_gymnasium`
turns it into the discounted MDP whose values are the environment's expected discounted returns.
An episode ends on a `terminated` transition; the MDP represents that with one extra *absorbing*
state `⊥ = S_env` (the last index): a terminating transition `(p, s', r, True)` goes to `⊥`
with its reward `r`, and `⊥` loops on itself with zero reward, so nothing is earned after
termination:

$$
\begin{aligned}
P[s, a, s'] &= \sum_{(p, s', r, \mathrm{False}) \in P_{\mathrm{env}}[s][a]} p, &
P[s, a, \bot] &= \sum_{(p, \cdot, r, \mathrm{True})} p, \\
r[s, a] &= \sum_{(p, s', r, d) \in P_{\mathrm{env}}[s][a]} p\, r, &
P[\bot, a, \bot] &= 1, \quad r[\bot, a] = 0.
\end{aligned}
$$

Then $V_\pi(s) = \mathbb{E}_\pi[\sum_{t < T} \gamma^t R_{t+1} \mid S_0 = s]$ with `T` the termination time, for any
policy $\pi$ `(S_env + 1, A)`; the value of `⊥` is 0. Only the expected reward is kept (the MDP is
exact for expected returns, not for their variance). Time limits (`TimeLimit`) are not part of
the dynamics: the MDP is the untruncated environment.

**To gymnasium.** `TabularEnv(mdp)` samples the MDP: $s_0 \sim s_0$, $s' \sim P[s, a, \cdot]$, reward
`r[s, a]`. An episode terminates on entering a terminal state, by default every state that is
absorbing with zero reward (the goal of `gridworld.goal_task`, the `⊥` of `from_gymnasium`), so
the mean discounted return of episodes from `s` is $V_\pi(s)$. `OptionsEnv(mdp, options)` has one
action per option and executes it call-and-return: $\pi^o$ acts until $\beta^o$ terminates it on
entering a state (at least one step), and the step returns the option's discounted reward
$\sum_{t<\tau} \gamma^t r_t$ with $\gamma^\tau$ in `info["discount"]`, so $\sum_k (\Pi_{j<k} \gamma^{\tau_j}) R_k$ is the
return whose mean is the SMDP value $v_\mu$ of `smdp_policy_evaluation` (Sutton, Precup &
Singh 1999, sec. 3).

`TabularEnv` also exposes the toy-text interface (`P`, `initial_state_distrib`), so
`from_gymnasium(TabularEnv(mdp))` recovers `mdp` with one more state: transitions into
`mdp`'s terminal states become terminating ones into `⊥`, and all values stay the same.
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium
import jax.numpy as jnp
import numpy as np

from optiongrad._src import checks
from optiongrad._src.mdp import MDP
from optiongrad._src.options import Options
from optiongrad._src.transitions import SparseTransitions

#: Environments with more states than this give sparse transitions by default.
SPARSE_THRESHOLD = 1000
#: Registered ids: `gymnasium.make(TABULAR_ID, mdp=mdp)`, `gymnasium.make(OPTIONS_ID, mdp=mdp,
#: options=options)` (with `max_episode_steps=` for a time limit).
TABULAR_ID = "optiongrad/Tabular-v0"
OPTIONS_ID = "optiongrad/Options-v0"


# -- from gymnasium ----------------------------------------------------------------------------


def _discrete_size(space, name: str) -> int:
    if not isinstance(space, gymnasium.spaces.Discrete) or int(space.start) != 0:
        raise ValueError(f"env: {name} must be gymnasium.spaces.Discrete(n) starting at 0, "
                         f"got {space}")
    return int(space.n)


def _transition_table(env) -> tuple[Any, dict, int, int]:
    """`(unwrapped env, P, S_env, A)` of a toy-text environment; clear errors otherwise."""
    base = getattr(env, "unwrapped", env)
    table = getattr(base, "P", None)
    if not isinstance(table, dict):
        raise ValueError(
            f"env: {type(base).__name__} has no toy-text transition table `unwrapped.P` "
            "(a dict P[s][a] = [(prob, next_state, reward, terminated), ...])")
    num_states = _discrete_size(getattr(base, "observation_space", None), "observation_space")
    num_actions = _discrete_size(getattr(base, "action_space", None), "action_space")
    missing = [s for s in range(num_states) if s not in table]
    if missing:
        raise ValueError(f"env: P has no entry for state {missing[0]} "
                         f"(observation_space has {num_states} states)")
    return base, table, num_states, num_actions


def _successors(table, num_states: int, num_actions: int):
    """Per `(s, a)` the list of `(next, prob, reward·prob)`, terminal moves sent to `⊥`."""
    absorbing = num_states
    rows = []
    for s in range(num_states):
        for a in range(num_actions):
            outcomes = table[s].get(a) if isinstance(table[s], dict) else None
            if not outcomes:
                raise ValueError(f"env: P[{s}][{a}] is missing or empty")
            row = []
            for item in outcomes:
                p, nxt, r, done = _outcome(item, f"P[{s}][{a}]")
                if not 0 <= nxt < num_states:
                    raise ValueError(f"env: P[{s}][{a}] next state {nxt} is outside "
                                     f"[0, {num_states})")
                row.append((absorbing if done else nxt, p, p * r))
            total = sum(p for _, p, _ in row)
            if abs(total - 1.0) > 1e-6:
                raise ValueError(f"env: probabilities of P[{s}][{a}] sum to {total}, not 1")
            rows.append(row)
    return rows


def _outcome(item, where: str) -> tuple[float, int, float, bool]:
    """One toy-text outcome `(prob, next_state, reward, terminated)`, checked."""
    if not isinstance(item, (tuple, list)) or len(item) != 4:
        raise ValueError(f"env: {where} entry {item!r:.60} is not "
                         "(prob, next_state, reward, terminated)")
    p, nxt, r, done = item
    real = (int, float, np.integer, np.floating)
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, real) or not 0.0 <= p <= 1.0:
        raise ValueError(f"env: {where} entry {item!r:.60} has a probability outside [0, 1]")
    if isinstance(nxt, (bool, np.bool_)) or not isinstance(nxt, (int, np.integer)):
        raise ValueError(f"env: {where} entry {item!r:.60} has a next state that is not an "
                         "integer")
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, real) or not np.isfinite(r):
        raise ValueError(f"env: {where} entry {item!r:.60} has a reward that is not a finite "
                         "real number")
    if not isinstance(done, (bool, np.bool_)):
        raise ValueError(f"env: {where} entry {item!r:.60} has a terminated flag that is not "
                         "a bool")
    return float(p), int(nxt), float(r), bool(done)


def from_gymnasium(
    env,
    discount=0.99,
    *,
    initial=None,
    sparse: Optional[bool] = None,
    dtype=None,
) -> MDP:
    r"""The discounted `MDP` of a gymnasium environment with a toy-text transition table.

    Args:
      env: a `gymnasium.Env` (wrappers are looked through) whose `unwrapped.P[s][a]` lists
        `(prob, next_state, reward, terminated)`, with `Discrete` observation and action spaces:
        FrozenLake, CliffWalking, Taxi, or `TabularEnv`.
      discount: $\gamma \in [0, 1)$; gymnasium environments do not define one.
      initial: `(S_env,)` initial distribution; default `unwrapped.initial_state_distrib`
        (uniform when the environment has none).
      sparse: `SparseTransitions` (True), dense (False), or by size (None: sparse when
        `S_env + 1 > 1000`).
      dtype: floating dtype (default: JAX's default float).

    Returns:
      An `MDP` with `S = S_env + 1` states, `P (S, A, S)`, `r (S, A)` as in the module
      docstring: state `S_env` (the last) is the absorbing termination state `⊥` with zero
      reward, and `s0[⊥] = 0`.

    Raises:
      ValueError: `env` has no table, non-`Discrete` spaces, a malformed or unnormalised
        entry, or `initial` has the wrong shape or is not a distribution.
    """
    base, table, num_states, num_actions = _transition_table(env)
    rows = _successors(table, num_states, num_actions)
    size = num_states + 1
    width = max(len(row) for row in rows)
    next_states = np.full((size, num_actions, width), num_states, np.int64)
    probs = np.zeros((size, num_actions, width))
    probs[num_states, :, 0] = 1.0
    rewards = np.zeros((size, num_actions))
    for i, row in enumerate(rows):
        s, a = divmod(i, num_actions)
        for b, (nxt, p, pr) in enumerate(row):
            next_states[s, a, b], probs[s, a, b] = nxt, p
            rewards[s, a] += pr
    if initial is None:
        initial = getattr(base, "initial_state_distrib", None)
    if initial is None:
        initial = np.full(num_states, 1.0 / num_states)
    initial = checks.to_numpy(initial, "initial").astype(np.float64)
    if initial.shape != (num_states,):
        raise ValueError(f"initial: expected shape (S_env,) = ({num_states},), "
                         f"got {initial.shape}")
    checks.number(discount, "discount", low=0.0, high=1.0, high_open=True)
    dtype = checks.dtype(dtype)
    if sparse is not None:
        checks.boolean(sparse, "sparse")
    transitions = SparseTransitions(next_states, jnp.asarray(probs, dtype))
    if not (size > SPARSE_THRESHOLD if sparse is None else sparse):
        transitions = transitions.todense()
    return MDP(transitions, jnp.asarray(rewards, dtype), jnp.asarray(discount, dtype),
               jnp.asarray(np.append(initial, 0.0), dtype))


# -- to gymnasium ------------------------------------------------------------------------------


def _host_dynamics(mdp: MDP):
    """`(next_states, cumulative probs, probs)`, each `(S, A, B)` (B = S when dense), float64
    numpy on the host, for sampling."""
    if isinstance(mdp.transitions, SparseTransitions):
        next_states = np.asarray(mdp.transitions.next_states)
        probs = np.asarray(mdp.transitions.probs, np.float64)
    else:
        probs = np.asarray(mdp.transitions, np.float64)
        next_states = np.broadcast_to(np.arange(mdp.num_states), probs.shape)
    return next_states, np.cumsum(probs, axis=-1), probs


def absorbing_states(mdp: MDP) -> np.ndarray:
    """`(S,)` bool: states that every action keeps in place with probability 1 and reward 0."""
    _check_mdp(mdp)
    next_states, _, probs = _host_dynamics(mdp)
    return _absorbing(next_states, probs, np.asarray(mdp.rewards, np.float64))


def _absorbing(next_states: np.ndarray, probs: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    s = np.arange(rewards.shape[0])[:, None, None]
    stay = np.where(next_states == s, probs, 0.0).sum(-1)
    return np.all(np.isclose(stay, 1.0) & (rewards == 0.0), axis=1)


def _check_mdp(mdp) -> None:
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")


class TabularEnv(gymnasium.Env):
    r"""A tabular `MDP` as a `gymnasium.Env` (observations and actions are indices).

    `reset` draws `s_0 ~ mdp.initial`; `step(a)` draws $s' \sim P[s, a, \cdot]$ and returns
    `(s', r[s, a], terminated, False, {"prob": P[s, a, s']})`, terminated when `s'` is a
    terminal state. The mean discounted return $\sum_t \gamma^t R_{t+1}$ of episodes is $s_0 \cdot V_\pi$.

    Args:
      mdp: the `MDP` (dense or sparse; its arrays are copied to the host once).
      terminal: `(S,)` bool, states whose entry ends the episode; default `absorbing_states(mdp)`
        (absorbing with zero reward, so termination loses no reward).
      render_mode: None or "ansi" (a one-line text description of the state).

    There is no time limit; wrap with `gymnasium.wrappers.TimeLimit` for one. `P` and
    `initial_state_distrib` are the toy-text view of the dynamics (`from_gymnasium` reads them).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, mdp: MDP, *, terminal=None, render_mode: Optional[str] = None):
        _check_mdp(mdp)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode: expected None or 'ansi', got {render_mode!r}")
        self.mdp = mdp
        self.render_mode = render_mode
        self._next, self._cumulative, self._probs = _host_dynamics(mdp)
        self._rewards = np.asarray(mdp.rewards, np.float64)
        self.initial_state_distrib = np.asarray(mdp.initial, np.float64)
        self._initial_cumulative = np.cumsum(self.initial_state_distrib)
        if terminal is None:
            terminal = _absorbing(self._next, self._probs, self._rewards)
        terminal = checks.to_numpy(terminal, "terminal", kind="bool")
        if terminal.shape != (mdp.num_states,):
            raise ValueError(f"terminal: expected a bool array of shape (S,) = "
                             f"({mdp.num_states},), got {terminal.dtype} {terminal.shape}")
        self.terminal = terminal
        self.observation_space = gymnasium.spaces.Discrete(mdp.num_states)
        self.action_space = gymnasium.spaces.Discrete(mdp.num_actions)
        self.state = 0
        self._table = None

    def _draw(self, cumulative: np.ndarray) -> int:
        u = self.np_random.random() * cumulative[-1]
        return int(min(np.searchsorted(cumulative, u, side="right"), cumulative.size - 1))

    def _move(self, s: int, a: int) -> tuple[int, float, float]:
        """One primitive step from `s` with `a`: `(s', r[s, a], P[s, a, s'])`."""
        b = self._draw(self._cumulative[s, a])
        nxt = int(self._next[s, a, b])
        prob = float(self._probs[s, a][self._next[s, a] == nxt].sum())
        return nxt, float(self._rewards[s, a]), prob

    def _check_action(self, action) -> int:
        if isinstance(action, (bool, np.bool_)) or not self.action_space.contains(action):
            raise ValueError(f"action: {action!r} is not in {self.action_space}")
        return int(action)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        """Draw `s_0 ~ mdp.initial` (seeding `np_random` when `seed` is given); returns
        `(s_0, {"prob": s0[s_0]})`. `options` is accepted for the gymnasium API and unused."""
        super().reset(seed=seed)
        self.state = self._draw(self._initial_cumulative)
        return self.state, {"prob": float(self.initial_state_distrib[self.state])}

    def step(self, action):
        r"""Draw $s' \sim P[s, \mathrm{action}, \cdot]$; returns `(s', r[s, action], s' terminal, False,
        {"prob": P[s, action, s']})`."""
        a = self._check_action(action)
        self.state, reward, prob = self._move(self.state, a)
        return self.state, reward, bool(self.terminal[self.state]), False, {"prob": prob}

    def render(self) -> Optional[str]:
        """With `render_mode="ansi"`, the current state as one line of text; else None."""
        if self.render_mode == "ansi":
            return f"state {self.state}{' (terminal)' if self.terminal[self.state] else ''}\n"
        return None

    @property
    def P(self) -> dict:
        r"""Toy-text table `P[s][a] = [(prob, next_state, r[s, a], terminated), …]`."""
        if self._table is None:
            self._table = {
                s: {a: [(float(p), int(n), float(self._rewards[s, a]), bool(self.terminal[n]))
                        for n, p in zip(self._next[s, a], self._probs[s, a]) if p > 0]
                    for a in range(self.mdp.num_actions)}
                for s in range(self.mdp.num_states)}
        return self._table


class OptionsEnv(TabularEnv):
    r"""`mdp` with `options` as actions, each executed call-and-return.

    `step(o)` runs option `o` from the current state $s \in I^o$: repeat $a \sim \pi^o[s]$,
    $s' \sim P[s, a]$, until `s'` is terminal or $\beta^o[s']$ ends the option (it runs at least one
    step). It returns the next state, the option's discounted reward $\sum_{t<\tau} \gamma^t r_t$, and
    `info` with `"duration"` ($\tau$ steps), `"discount"` ($\gamma^\tau$) and `"action_mask"` (`(K,)` int8,
    the options available at `s'`). The mean of $\sum_k (\prod_{j<k} \gamma^{\tau_j}) R_k$ over episodes of a policy over options $\mu$ is
    $s_0 \cdot v_\mu$ (`smdp_policy_evaluation` with `option_models(mdp, options)`).

    Args:
      mdp: the primitive `MDP`. options: `Options` over its states and actions.
      terminal, render_mode: as for `TabularEnv`.
      max_option_steps: an option still running after this many primitive steps is cut off
        and the episode truncated (an option with $\beta \equiv 0$ that never reaches a terminal state
        would otherwise never return).

    Raises `ValueError` when a step picks an option unavailable in the current state.
    """

    def __init__(self, mdp: MDP, options: Options, *, terminal=None,
                 render_mode: Optional[str] = None, max_option_steps: int = 100_000):
        super().__init__(mdp, terminal=terminal, render_mode=render_mode)
        checks.instance(options, "options", Options, "an optiongrad.Options")
        options.check_mdp(mdp)
        checks.integer(max_option_steps, "max_option_steps")
        self.options = options
        self.max_option_steps = max_option_steps
        self._policy_cumulative = np.cumsum(np.asarray(options.policy, np.float64), axis=-1)
        self._termination = np.asarray(options.termination, np.float64)
        self._initiation = np.asarray(options.initiation_mask())
        self.action_space = gymnasium.spaces.Discrete(options.num_options)
        self._discount = float(mdp.discount)

    @property
    def P(self) -> dict:
        """Not defined: the actions are options, whose outcomes are multi-step."""
        raise AttributeError("OptionsEnv has no one-step transition table; use "
                             "optiongrad.option_models(env.mdp, env.options)")

    def action_mask(self, state: Optional[int] = None) -> np.ndarray:
        """`(K,)` int8: 1 where the option can be started in `state` (default: current)."""
        if state is not None:
            state = int(checks.indices(state, "state", self.mdp.num_states, scalar=True))
        return self._initiation[:, self.state if state is None else state].astype(np.int8)

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        """As `TabularEnv.reset`, with `info["action_mask"]`, the options available at `s_0`."""
        state, info = super().reset(seed=seed, options=options)
        return state, {**info, "action_mask": self.action_mask()}

    def step(self, action):
        """Run option `action` call-and-return from the current state (see the class)."""
        o = self._check_action(action)
        if not self._initiation[o, self.state]:
            raise ValueError(f"action: option {o} cannot be started in state {self.state} "
                             "(outside its initiation set; see info['action_mask'])")
        total, scale, steps = 0.0, 1.0, 0
        while True:
            a = self._draw(self._policy_cumulative[o, self.state])
            self.state, reward, _ = self._move(self.state, a)
            total += scale * reward
            scale *= self._discount
            steps += 1
            terminated = bool(self.terminal[self.state])
            if terminated or self.np_random.random() < self._termination[o, self.state]:
                truncated = False
                break
            if steps >= self.max_option_steps:
                truncated = True
                break
        info: dict[str, Any] = {"duration": steps, "discount": scale,
                                "action_mask": self.action_mask()}
        return self.state, total, terminated, truncated, info


for _id, _entry in ((TABULAR_ID, TabularEnv), (OPTIONS_ID, OptionsEnv)):
    if _id not in gymnasium.registry:
        gymnasium.register(_id, entry_point=_entry, disable_env_checker=True)
