r"""Option families: from intrinsic rewards planned by the smooth planner, and hallway options.

Every option here but the hallway options is $\pi^k = \operatorname{softmax}(Q^*_k / \tau)$ with $Q^*_k$ the soft-value-iteration fixed point
of the environment's dynamics with an intrinsic reward `r_k`:

* **Subgoal options** (`subgoal_options`, `random_options`): `r_k` = 1 on entering a subgoal
  state `g_k`; the option terminates on entering `g_k` (β = 1 there, 0 elsewhere). Random
  options draw the subgoals uniformly without replacement.
* **Eigenoptions** (Machado, Bellemare & Bowling 2017, "A Laplacian framework for option
  discovery"): potentials `e` are eigenvectors of the graph Laplacian $L = D - W$ of the
  environment's state graph (smallest eigenvalues, the constant one skipped), each used with
  both signs; $r_k[s, a] = \mathbb{E}[e_k(s') \mid s, a] - e_k(s)$. The option terminates where no
  successor has a higher potential (a local maximum of `e_k`, where the intrinsic Q-values of
  the greedy policy are ≤ 0, as in Machado et al.). We use the combinatorial Laplacian: the
  normalised one, $D^{-1/2} L D^{-1/2}$, scales its eigenvectors by $\sqrt\deg$, which on grids puts
  spurious local maxima (early terminations) next to the walls (6–11 per eigenvector on four
  rooms, against 1–5).

Potentials are rescaled to the range [0, 1], so τ is comparable across options.

* **Covering options** (`covering_options`; Jinnai, Park, Abel & Konidaris 2019): subgoal
  options toward the two ends of the Fiedler vector of the state graph, one pair at a time, the
  graph gaining the edge between them before the next pair.

* **Hallway options** (`hallway_options`; Sutton, Precup & Singh 1999): on a grid, two per
  room (one per hallway of the room), each taking the agent by a shortest path to its hallway.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from optiongrad._src import checks
from optiongrad._src.gridworld import GridWorld, rooms_and_hallways
from optiongrad._src.mdp import MDP
from optiongrad._src.options import Options
from optiongrad._src.planning import soft_value_iteration
from optiongrad._src.transitions import SparseTransitions, expectation, to_dense


def _plan_policies(mdp: MDP, rewards, temperature, **plan_kwargs):
    r"""$\operatorname{softmax}(Q^*_k/\tau)$ for a batch of reward tables `(K, S, A)` (vmapped planner); a planner
    that does not converge raises (`throw=True`)."""
    checks.temperature(temperature, plan_kwargs.get("backup", "logsumexp"))
    if not plan_kwargs.pop("throw", True):
        raise ValueError("throw: the option families always raise when a planner fails "
                         "(their options must be concrete)")

    def plan(r):
        return soft_value_iteration(mdp.replace(rewards=r), temperature, throw=True,
                                    **plan_kwargs)

    return jax.vmap(plan)(rewards).policy


def subgoal_options(mdp: MDP, subgoals, temperature: float = 1e-3, **plan_kwargs) -> Options:
    r"""One option per subgoal state: reward 1 on entering it, terminate there.

    Args:
      mdp: the environment (its reward is ignored; its discount is the options' planning
        discount).
      subgoals: `(K,)` state indices.
      temperature: $\tau$ of the option policies.
      **plan_kwargs: passed to `soft_value_iteration`.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    subgoals = np.asarray(checks.indices(subgoals, "subgoals", mdp.num_states))
    if subgoals.size == 0:
        raise ValueError("subgoals: need at least one subgoal")
    one_hot = jnp.eye(mdp.num_states, dtype=mdp.dtype)[subgoals]  # (K, S)
    rewards = jax.vmap(lambda e: expectation(mdp.transitions, e))(one_hot)
    policy = _plan_policies(mdp, rewards, temperature, **plan_kwargs)
    return Options(policy, one_hot)


def random_options(key, mdp: MDP, num_options: int, temperature: float = 1e-3,
                   **plan_kwargs) -> Options:
    """`num_options` subgoal options with subgoals drawn uniformly without replacement
    (`key`: a `jax.random` key or an integer seed)."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.integer(num_options, "num_options", maximum=mdp.num_states)
    key = checks.random_key(key)
    subgoals = jax.random.choice(key, mdp.num_states, (num_options,), replace=False)
    return subgoal_options(mdp, np.asarray(subgoals), temperature, **plan_kwargs)


def state_graph(mdp: MDP) -> scipy.sparse.csr_matrix:
    """The state graph of `mdp`: a symmetric `(S, S)` 0/1 adjacency with an edge `s — s'` when
    some action moves `s` to `s' ≠ s` with positive probability (sparse; dense or sparse
    transitions)."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    s = mdp.num_states
    if isinstance(mdp.transitions, SparseTransitions):
        rows = np.broadcast_to(np.arange(s)[:, None, None], mdp.transitions.probs.shape)
        keep = np.asarray(mdp.transitions.probs) > 0
        rows, cols = rows[keep], np.asarray(mdp.transitions.next_states)[keep]
    else:
        rows, cols = np.nonzero(np.asarray(mdp.transitions).max(axis=1) > 0)
    edge = rows != cols
    graph = scipy.sparse.coo_matrix((np.ones(edge.sum()), (rows[edge], cols[edge])), (s, s))
    graph = (graph + graph.T).tocsr()
    graph.data[:] = 1.0
    return graph


def _laplacian_vectors(graph: scipy.sparse.csr_matrix, num: int) -> np.ndarray:
    """The `num` unit eigenvectors of $L = D - W$ after the first (smallest eigenvalues; dense
    `eigh` up to 2000 states, shift-invert Lanczos beyond), `(num, S)`, each with its
    largest-magnitude entry positive."""
    degree = np.asarray(graph.sum(axis=1)).ravel()
    if (degree == 0).any():
        raise ValueError(f"mdp: state {int(np.argmin(degree))} has no neighbour in the graph")
    laplacian = scipy.sparse.diags(degree) - graph
    if graph.shape[0] <= 2000:
        _, vectors = np.linalg.eigh(laplacian.toarray())
    else:  # shift below 0 so that L − σI is non-singular
        values, vectors = scipy.sparse.linalg.eigsh(laplacian.tocsc(), k=num + 1, sigma=-1e-3,
                                                    which="LM")
        vectors = vectors[:, np.argsort(values)]
    vectors = vectors[:, 1:num + 1].T
    signs = np.sign(vectors[np.arange(num), np.abs(vectors).argmax(1)])
    return vectors * signs[:, None]


def laplacian_eigenvectors(mdp: MDP, num: int) -> np.ndarray:
    """The `num` unit eigenvectors of the Laplacian $D - W$ of the state graph (`state_graph`)
    with the smallest eigenvalues, after the first (constant on a connected graph). Shape
    `(num, S)`; each eigenvector's sign fixed (largest-magnitude entry positive)."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.integer(num, "num", maximum=mdp.num_states - 1)
    return _laplacian_vectors(state_graph(mdp), num)


def covering_subgoals(mdp: MDP, num_options: int) -> np.ndarray:
    r"""The subgoals of covering options (Jinnai, Park, Abel & Konidaris, ICLR 2019,
    "Discovering options for exploration by minimizing cover time", Algorithm 1), `(K,)`.

    Repeat `K / 2` times: take the Fiedler vector `f` (the eigenvector of the second-smallest
    eigenvalue $\lambda_2$ of $L = D - W$) of the state graph with the edges added so far, take its
    two extreme states `argmax f` and `argmin f`, and join them by an edge — the option
    between them, which raises the algebraic connectivity $\lambda_2$ the most to first order and so
    lowers the upper bound on the expected cover time of a random walk the most. Returns the
    subgoals in order $(\operatorname{argmax} f_1, \operatorname{argmin} f_1, \operatorname{argmax} f_2, \dots)$.
    """
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.integer(num_options, "num_options", minimum=2, maximum=mdp.num_states)
    if num_options % 2:
        raise ValueError(f"num_options: expected an even number >= 2 (covering options come in "
                         f"pairs, one to each end of an edge), got {num_options}")
    graph = state_graph(mdp).tolil()
    subgoals = []
    for _ in range(num_options // 2):
        fiedler = _laplacian_vectors(graph.tocsr(), 1)[0]
        high, low = int(np.argmax(fiedler)), int(np.argmin(fiedler))
        subgoals += [high, low]
        graph[high, low] = graph[low, high] = 1.0
    return np.asarray(subgoals)


def covering_options(mdp: MDP, num_options: int, temperature: float = 1e-3,
                     **plan_kwargs) -> Options:
    """Covering options (Jinnai et al. 2019): `num_options` (even) subgoal options toward the
    two ends of each edge that `covering_subgoals` adds, planned by the same smooth planner as
    the other families (reward 1 on entering the subgoal, terminate there; initiation
    everywhere, as for `random_options`, so that every family is planned and scored alike —
    the paper's point options start only at the other end of their edge)."""
    return subgoal_options(mdp, covering_subgoals(mdp, num_options), temperature, **plan_kwargs)


def potential_options(mdp: MDP, potentials, temperature: float = 1e-3,
                      **plan_kwargs) -> Options:
    r"""Options climbing potentials `e_k (K, S)`: reward $\mathbb{E}[e_k(s')] - e_k(s)$, terminate at
    local maxima of `e_k` (no one-step successor with a higher potential)."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    potentials = checks.to_numpy(potentials, "potentials").astype(float)
    checks.finite(potentials, "potentials")
    if potentials.ndim != 2 or potentials.shape[1] != mdp.num_states or not len(potentials):
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
    `num_options / 2` leading Laplacian eigenvectors, each with both signs (`e`, $-e$)."""
    checks.integer(num_options, "num_options", minimum=2)
    if num_options % 2:
        raise ValueError(f"num_options: expected an even number >= 2, got {num_options}")
    vectors = laplacian_eigenvectors(mdp, num_options // 2)
    potentials = np.stack([vectors, -vectors], axis=1).reshape(num_options, -1)
    return potential_options(mdp, potentials, temperature, **plan_kwargs)


def _bfs_policy(grid: GridWorld, allowed: np.ndarray, target: int) -> np.ndarray:
    """Uniform over the moves that shorten the path to `target` inside `allowed` cells;
    uniform over all moves elsewhere. Shape `(S, 4)`."""
    dist = np.full(grid.num_states, np.inf)
    dist[target] = 0
    frontier = [target]
    predecessors = [[] for _ in range(grid.num_states)]
    for x in np.flatnonzero(allowed):
        for y in grid.successors[x]:
            predecessors[y].append(x)
    while frontier:
        nxt = []
        for y in frontier:
            for x in predecessors[y]:
                if dist[x] == np.inf:
                    dist[x] = dist[y] + 1
                    nxt.append(x)
        frontier = nxt
    policy = np.full((grid.num_states, 4), 0.25)
    for x in np.flatnonzero(allowed & np.isfinite(dist) & (dist > 0)):
        good = dist[grid.successors[x]] == dist[x] - 1
        policy[x] = good / good.sum()
    return policy


def hallway_options(grid: GridWorld, dtype=None):
    """The hallway options of Sutton, Precup & Singh (1999): two per room, 8 on four rooms.

    For each room and each hallway cell adjacent to it, an option that takes the agent by a
    shortest path (moves that shorten the path, ties split evenly) from any cell of the room,
    or from the room's other hallway, to that hallway. Initiation set: the room plus its other
    hallway(s). Termination: 1 on the target hallway and outside the initiation set, 0
    elsewhere. Options are ordered by room (row-major first cell), then by target hallway.
    """
    checks.instance(grid, "grid", GridWorld, "a GridWorld")
    dtype = checks.dtype(dtype)
    rooms, hallways = rooms_and_hallways(grid)
    if len(hallways) == 0:
        raise ValueError("grid: no hallway cells (free cells between two opposite walls)")
    policies, terminations, initiations = [], [], []
    for i, room in enumerate(rooms):
        in_room = np.zeros(grid.num_states, dtype=bool)
        in_room[room] = True
        doors = [h for h in hallways if in_room[grid.successors[h]].any()]
        if not doors:
            raise ValueError(f"grid: room {i} (first cell {tuple(grid.cells[room[0]])}) has no "
                             "hallway")
        for target in doors:
            initiation = in_room.copy()
            initiation[[h for h in doors if h != target]] = True
            allowed = initiation.copy()
            allowed[target] = True
            policies.append(_bfs_policy(grid, allowed, target))
            termination = (~initiation).astype(float)
            termination[target] = 1.0
            terminations.append(termination)
            initiations.append(initiation)
    return Options(jnp.asarray(np.stack(policies), dtype),
                   jnp.asarray(np.stack(terminations), dtype), np.stack(initiations))
