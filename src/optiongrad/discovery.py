"""Option families defined by intrinsic rewards and planned by the smooth planner.

Every option here is `π^k = softmax(Q*_k / τ)` with `Q*_k` the soft-value-iteration fixed point
of the environment's dynamics with an intrinsic reward `r_k`:

* **Subgoal options** (`subgoal_options`, `random_options`): `r_k` = 1 on entering a subgoal
  state `g_k`; the option terminates on entering `g_k` (β = 1 there, 0 elsewhere). Random
  options draw the subgoals uniformly without replacement.
* **Eigenoptions** (Machado, Bellemare & Bowling 2017, "A Laplacian framework for option
  discovery"): potentials `e` are eigenvectors of the graph Laplacian `L = D − W` of the
  environment's state graph (smallest eigenvalues, the constant one skipped), each used with
  both signs; `r_k[s, a] = E[e_k(s') | s, a] − e_k(s)`. The option terminates where no
  successor has a higher potential (a local maximum of `e_k`, where the intrinsic Q-values of
  the greedy policy are ≤ 0, as in Machado et al.). We use the combinatorial Laplacian: the
  normalised one, `D^{-1/2} L D^{-1/2}`, scales its eigenvectors by `√deg`, which on grids puts
  spurious local maxima (early terminations) next to the walls (6–11 per eigenvector on four
  rooms, against 1–5).

Potentials are rescaled to the range [0, 1], so τ is comparable across options.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from optiongrad.mdp import MDP
from optiongrad.options import Options
from optiongrad.planning import soft_value_iteration
from optiongrad.transitions import expectation, to_dense


def _plan_policies(mdp: MDP, rewards, temperature, **plan_kwargs):
    """`softmax(Q*_k/τ)` for a batch of reward tables `(K, S, A)` (vmapped planner)."""
    def plan(r):
        return soft_value_iteration(mdp._with(rewards=r), temperature, **plan_kwargs)

    result = jax.vmap(plan)(rewards)
    if not bool(jnp.all(result.converged)):
        raise RuntimeError("option planning did not converge; raise max_iter or tol")
    return result.policy


def subgoal_options(mdp: MDP, subgoals, temperature: float = 1e-3, **plan_kwargs) -> Options:
    """One option per subgoal state: reward 1 on entering it, terminate there.

    Args:
      mdp: the environment (its reward is ignored; its discount is the options' planning
        discount).
      subgoals: `(K,)` state indices.
      temperature: `τ` of the option policies.
      **plan_kwargs: passed to `soft_value_iteration`.
    """
    subgoals = np.asarray(subgoals, dtype=int)
    if subgoals.ndim != 1 or subgoals.min() < 0 or subgoals.max() >= mdp.num_states:
        raise ValueError(f"subgoals: expected state indices in [0, {mdp.num_states}), "
                         f"got {subgoals}")
    one_hot = jnp.eye(mdp.num_states, dtype=mdp.dtype)[subgoals]  # (K, S)
    rewards = jax.vmap(lambda e: expectation(mdp.transitions, e))(one_hot)
    policy = _plan_policies(mdp, rewards, temperature, **plan_kwargs)
    return Options(policy, one_hot)


def random_options(key, mdp: MDP, num_options: int, temperature: float = 1e-3,
                   **plan_kwargs) -> Options:
    """`num_options` subgoal options with subgoals drawn uniformly without replacement."""
    if not 1 <= num_options <= mdp.num_states:
        raise ValueError(f"num_options: expected 1..{mdp.num_states}, got {num_options}")
    key = jax.random.key(key) if isinstance(key, (int, np.integer)) else key
    subgoals = jax.random.choice(key, mdp.num_states, (num_options,), replace=False)
    return subgoal_options(mdp, np.asarray(subgoals), temperature, **plan_kwargs)


def laplacian_eigenvectors(mdp: MDP, num: int) -> np.ndarray:
    """The `num` unit eigenvectors of the Laplacian `D − W` of the state graph with the
    smallest eigenvalues, after the first (constant on a connected graph). Shape `(num, S)`.

    The graph has an edge `s — s'` (weight 1) when some action moves `s` to `s' ≠ s`;
    edges are symmetrised.
    """
    p = np.asarray(to_dense(mdp.transitions))
    adjacency = (p.max(axis=1) > 0).astype(float)
    np.fill_diagonal(adjacency, 0.0)
    adjacency = np.maximum(adjacency, adjacency.T)
    degree = adjacency.sum(1)
    if (degree == 0).any():
        raise ValueError(f"mdp: state {int(np.argmin(degree))} has no neighbour in the graph")
    _, vectors = np.linalg.eigh(np.diag(degree) - adjacency)
    if num + 1 > len(degree):
        raise ValueError(f"num: at most {len(degree) - 1} eigenvectors, got {num}")
    vectors = vectors[:, 1:num + 1].T
    # fix each eigenvector's sign (largest-magnitude entry positive) for reproducibility
    signs = np.sign(vectors[np.arange(num), np.abs(vectors).argmax(1)])
    return vectors * signs[:, None]


def potential_options(mdp: MDP, potentials, temperature: float = 1e-3,
                      **plan_kwargs) -> Options:
    """Options climbing potentials `e_k (K, S)`: reward `E[e_k(s')] − e_k(s)`, terminate at
    local maxima of `e_k` (no one-step successor with a higher potential)."""
    potentials = np.asarray(potentials, dtype=float)
    if potentials.ndim != 2 or potentials.shape[1] != mdp.num_states:
        raise ValueError(f"potentials: expected shape (K, S) with S={mdp.num_states}, "
                         f"got {potentials.shape}")
    span = potentials.max(1, keepdims=True) - potentials.min(1, keepdims=True)
    potentials = (potentials - potentials.min(1, keepdims=True)) / np.where(span > 0, span, 1.0)
    e = jnp.asarray(potentials, mdp.dtype)
    rewards = jax.vmap(lambda v: expectation(mdp.transitions, v) - v[:, None])(e)
    policy = _plan_policies(mdp, rewards, temperature, **plan_kwargs)
    p = np.asarray(to_dense(mdp.transitions))
    reachable = p.max(axis=1) > 0  # (S, S')
    best_next = np.where(reachable[None], potentials[:, None, :], -np.inf).max(-1)  # (K, S)
    termination = (best_next <= potentials + 1e-12).astype(float)
    return Options(policy, jnp.asarray(termination, mdp.dtype))


def eigenoptions(mdp: MDP, num_options: int, temperature: float = 1e-3,
                 **plan_kwargs) -> Options:
    """Machado et al. (2017) eigenoptions: `num_options` (even) options from the
    `num_options / 2` leading Laplacian eigenvectors, each with both signs (`e`, `−e`)."""
    if num_options < 2 or num_options % 2:
        raise ValueError(f"num_options: expected an even number >= 2, got {num_options}")
    vectors = laplacian_eigenvectors(mdp, num_options // 2)
    potentials = np.stack([vectors, -vectors], axis=1).reshape(num_options, -1)
    return potential_options(mdp, potentials, temperature, **plan_kwargs)
