"""Independent dense numpy references used by the tests (no optiongrad code inside)."""

import numpy as np


def random_mdp(rng, num_states, num_actions, discount=0.9, sparse_rows=False):
    """Dense random `P (S, A, S)`, `r (S, A)`, `s0 (S,)` with numpy."""
    p = rng.random((num_states, num_actions, num_states))
    if sparse_rows:
        p *= rng.random(p.shape) < 0.4
        p[..., 0] += 1e-3
    p /= p.sum(-1, keepdims=True)
    r = rng.normal(size=(num_states, num_actions))
    s0 = rng.random(num_states)
    return p, r, discount, s0 / s0.sum()


def logsumexp(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def softmax(x, axis=-1):
    z = np.exp(x - x.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def backup(q, tau, kind):
    if kind == "logsumexp":
        return tau * logsumexp(q / tau)
    if kind == "mellowmax":
        return tau * logsumexp(q / tau) - tau * np.log(q.shape[-1])
    if kind == "boltzmann":
        return (softmax(q / tau) * q).sum(-1)
    if kind == "max":
        return q.max(-1)
    raise ValueError(kind)


def policy(q, tau, kind):
    if kind == "max":
        best = (q == q.max(-1, keepdims=True)).astype(float)
        return best / best.sum(-1, keepdims=True)
    return softmax(q / tau)


def soft_value_iteration(p, r, gamma, tau, kind="logsumexp", tol=1e-13, max_iter=200_000):
    q = np.zeros_like(r)
    for _ in range(max_iter):
        q_next = r + gamma * p @ backup(q, tau, kind)
        if np.abs(q_next - q).max() <= tol:
            return q_next
        q = q_next
    raise RuntimeError("reference soft VI did not converge")


def sweeps(p, r, gamma, tau, kind, n):
    q = np.zeros_like(r)
    for _ in range(n):
        q = r + gamma * p @ backup(q, tau, kind)
    return q


def p_pi(p, pi):
    return np.einsum("sa,sat->st", pi, p)


def evaluate(p, r, gamma, pi):
    s = r.shape[0]
    return np.linalg.solve(np.eye(s) - gamma * p_pi(p, pi), (pi * r).sum(-1))


def q_values(p, r, gamma, pi):
    return r + gamma * p @ evaluate(p, r, gamma, pi)


def occupancy(p, s0, gamma, pi):
    s = s0.shape[0]
    return np.linalg.solve((np.eye(s) - gamma * p_pi(p, pi)).T, s0)


def policy_iteration(p, r, gamma, max_iter=10_000):
    """Howard's policy iteration: exact optimal values and a greedy optimal policy."""
    s, a = r.shape
    actions = np.zeros(s, dtype=int)
    for _ in range(max_iter):
        pi = np.eye(a)[actions]
        v = evaluate(p, r, gamma, pi)
        q = r + gamma * p @ v
        best = q.argmax(-1)
        keep = q[np.arange(s), actions] >= q[np.arange(s), best] - 1e-12
        new = np.where(keep, actions, best)
        if np.array_equal(new, actions):
            return v, q, pi
        actions = new
    raise RuntimeError("policy iteration did not converge")


def irg_gradient(p, r, gamma, s0, theta, tau, gamma_plan=None):
    """DESIGN.md's closed form: dJ/dθ = (I − γ_p M)^{-T} g_Q for tabular r_θ = θ, logsumexp."""
    gamma_plan = gamma if gamma_plan is None else gamma_plan
    q_star = soft_value_iteration(p, theta, gamma_plan, tau)
    pi = softmax(q_star / tau)
    d = occupancy(p, s0, gamma, pi)
    q = q_values(p, r, gamma, pi)
    v = evaluate(p, r, gamma, pi)
    g_q = d[:, None] * pi * (q - v[:, None]) / tau
    s, a = r.shape
    m = (p[:, :, :, None] * pi[None, None]).reshape(s * a, s * a)
    return np.linalg.solve((np.eye(s * a) - gamma_plan * m).T, g_q.reshape(-1)).reshape(s, a)


def grid_distances(walls, goal_cell):
    """BFS shortest-path lengths (in moves) from every free cell to `goal_cell`."""
    from collections import deque

    h, w = walls.shape
    dist = np.full((h, w), np.inf)
    dist[goal_cell] = 0
    queue = deque([goal_cell])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((-1, 0), (0, 1), (1, 0), (0, -1)):
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and not walls[nr, nc] and dist[nr, nc] == np.inf:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


def bellman_adjoint(p, pi, gamma, g):
    """`u = (I − Jᵀ)^{-1} ḡ` with `J[(s, a), (s', a')] = γ P[s, a, s'] π[s', a']`, the Jacobian of
    `Q ↦ r + γ P m_τ(Q)` at a point where `∂m_τ/∂Q = π`; `u` is `(S, A)`."""
    s, a = pi.shape
    jac = gamma * (p[:, :, :, None] * pi[None, None]).reshape(s * a, s * a)
    return np.linalg.solve(np.eye(s * a) - jac.T, np.asarray(g).reshape(-1)).reshape(s, a)
