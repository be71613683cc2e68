r"""Intrinsic-reward models $\theta \mapsto r_\theta$ `(S, A)`: `tabular`, `state`, `linear`, and `fit`.

    model = og.rewards.state(num_states, init_scale=1.0)   # r_θ[s, a] = Σ_s' P[s, a, s'] θ[s']
    theta = model.init(key); r = model.apply(theta, mdp)
"""

from optiongrad._src.rewards import Params, RewardModel, fit, linear, state, tabular

__all__ = ["Params", "RewardModel", "fit", "linear", "state", "tabular"]
