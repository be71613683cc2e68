r"""Option models: the reward and transition models of options, formed or applied.

An option's model is the λ-model (`multistep`) of its policy with continuation
$\lambda = 1 - \beta^o$ (DESIGN.md, "Options"):

$$
\begin{aligned}
r^o &= (I - \gamma P_{\pi^o} \Lambda^o)^{-1} r_{\pi^o} && (S,) \text{ per option, batched: } (S, K) \\
P^o &= \gamma (I - \gamma P_{\pi^o} \Lambda^o)^{-1} P_{\pi^o} B^o && (S, S) \text{ per option, batched: } (K, S, S)
\end{aligned}
$$

A primitive action `a` has $r^o = r[:, a]$, $P^o = \gamma P[:, a, :]$. `option_models` forms them;
`apply_option_models` applies them to a vector without forming them (large sparse MDPs), through
the intra-option Bellman equation (`intra_option_update`).
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

from optiongrad._src import checks
from optiongrad._src.implicit import fixed_point
from optiongrad._src.mdp import MDP
from optiongrad._src.multistep import lambda_model
from optiongrad._src.options import Options
from optiongrad._src.transitions import expectation

Array = jax.Array


def check_mdp_and_options(mdp, options) -> None:
    """Both arguments have the right type and agree in `(S, A)`."""
    checks.instance(mdp, "mdp", MDP, "an optiongrad.MDP")
    checks.instance(options, "options", Options, "an optiongrad.Options")
    options.check_mdp(mdp)


def option_models(mdp: MDP, options: Options) -> tuple[Array, Array]:
    r"""Option models `(rewards (S, K), transitions (K, S, S))` with the MDP's reward.

    Batched over options with `vmap` of `lambda_model` ($\lambda = 1 - \beta^o$); $\gamma$ is inside the
    transition models, whose rows sum to at most γ. Differentiable in the MDP and in the
    options' policies and terminations.
    """
    check_mdp_and_options(mdp, options)
    rewards, transitions = jax.vmap(lambda pi, beta: lambda_model(mdp, pi, 1.0 - beta))(
        options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype))
    return rewards.T, transitions


def intra_option_update(mdp: MDP, policy: Array, termination: Array, q: Array,
                        value: Array) -> Array:
    """One intra-option backup (Sutton, Precup & Singh 1999, section 3), `(S, K)`:

        Q[s, o] ← Σ_a π^o[s, a] (r[s, a] + γ Σ_s' P[s, a, s'] (β^o[s'] V[s']
                                                                + (1 − β^o[s']) Q[s', o]))

    with `policy (K, S, A)`, `termination (K, S)`, `q (S, K)` and the value on termination
    `value (S,)`. Matrix-free: `O(K S A B)` with sparse transitions. The building block of the
    matrix-free planners and evaluations (no argument checks: it runs inside their loops)."""
    beta = termination.T
    u = beta * value[:, None] + (1.0 - beta) * q
    target = mdp.rewards[:, :, None] + mdp.discount * expectation(mdp.transitions, u)
    return jnp.einsum("ksa,sak->sk", policy, target)


def apply_option_models(mdp: MDP, options: Options, v: Array, *, tol: Optional[float] = None,
                        max_iter: int = 100_000, throw: bool = False) -> tuple[Array, Array]:
    r"""Option models applied to a vector without forming them: $(r^O (S, K), P^O v (S, K))$.

    Both are `D_o w` with $D_o = (I - \gamma P_{\pi^o} \Lambda^o)^{-1}$, $w = r_{\pi^o}$ and
    $w = \gamma P_{\pi^o} (\beta^o \odot v)$; $z = D_o w$ is the fixed point of
    $z \leftarrow w + \gamma P_{\pi^o} ((1 - \beta^o) \odot z)$ — `intra_option_update` with the MDP's reward and
    value 0 on termination, or with reward 0 and value `v` — a γ-contraction solved by
    `fixed_point` (implicit gradient) with sparse or dense transitions in `O(K S A B)` per
    sweep. Equal to `option_models(mdp, options)` followed by `P^o @ v`, which needs
    `(K, S, S)` memory.

    Args:
      mdp: the MDP; options: `K` options for it; v: `(S,)` values.
      tol, max_iter: the solve's stopping rule (see `fixed_point`).
      throw: raise a `RuntimeError` if the solve fails; otherwise both outputs are NaN then.
    """
    check_mdp_and_options(mdp, options)
    s = options.num_states
    v = checks.as_array(v, "v", dtype=mdp.dtype)
    checks.shape(v, "v", (s,), "(S,)")
    checks.finite(v, "v")
    # Both are intra-option fixed points: the reward model with the MDP's reward and no value
    # on termination, `P^O v` with zero reward and value `v` on termination.
    rewards = jnp.stack([mdp.rewards, jnp.zeros_like(mdp.rewards)])
    values = jnp.stack([jnp.zeros_like(v), v])

    def operator(params, z):
        mdp, policy, termination, rewards, values = params
        return jax.vmap(lambda r, value, q: intra_option_update(
            mdp.replace(rewards=r), policy, termination, q, value))(rewards, values, z)

    params = (mdp, options.policy.astype(mdp.dtype), options.termination.astype(mdp.dtype),
              rewards, values)
    solved = fixed_point(operator, params, jnp.zeros((2, s, options.num_options), mdp.dtype),
                         tol=tol, max_iter=max_iter, throw=throw)
    z = solved.value_or_nan()
    return z[0], z[1]

