"""The option gradient on your own map: learn options on some goals, test them on the others.

    python examples/option_gradient_custom_map.py [--steps 80] [--options 4] [--map FILE]

Each option is the soft-optimal policy π^k = softmax(Q*_k / τ_o) for its own learned intrinsic
reward r_{θ_k}, with a learned termination β_k = sigmoid(ω_k). For a goal task, the policy over
options μ is planned on the option models with a budget of N = 3 sweeps, and the task return
s0 · v_μ is differentiated with respect to every θ_k and ω_k — through the SMDP planner and
through the K intrinsic planners (implicit function theorem at their fixed points). Gradient
ascent on the mean return over the training goals learns options that make a short-sighted
planner good on held-out goals (DESIGN.md, "Option gradient").
"""

import argparse
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optiongrad as og

# w = wall. Three rooms joined by doorways; any map in this format works (--map FILE).
MAP = """\
wwwwwwwwwwwwwwwww
w    w     w    w
w    w     w    w
w          w    w
w    w          w
w    w     w    w
wwwwwwwwwwwwwwwww"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", help="file with an ASCII map (w or # = wall)")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--options", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)

    grid = og.gridworld.GridWorld.from_ascii(open(args.map).read() if args.map else MAP)
    environment = og.gridworld.navigation_mdp(grid, discount=0.9)  # dynamics, no reward
    order = np.random.default_rng(args.seed).permutation(grid.num_states)
    cut = int(0.8 * grid.num_states)
    train, test = jnp.asarray(np.sort(order[:cut])), jnp.asarray(np.sort(order[cut:]))
    print(f"{grid.num_states} cells; {train.size} training goals, {test.size} held-out goals")

    planner = og.ExtrinsicPlanner(temperature=0.01, num_sweeps=3, include_primitives=True)
    model = og.rewards.state(grid.num_states, init_scale=1.0)  # θ[s'] for entering s'
    params = og.init_params(jax.random.key(args.seed), model, args.options, grid.num_states)
    optimiser = optax.adam(0.1)
    opt_state = optimiser.init(params)

    @jax.jit
    def step(params, opt_state):
        (objective, aux), grad = jax.value_and_grad(og.option_gradient_objective, has_aux=True)(
            params, model, environment, train, temperature_options=0.05, planner=planner)
        updates, opt_state = optimiser.update(jax.tree.map(jnp.negative, grad), opt_state)
        return optax.apply_updates(params, updates), opt_state, aux["return"]

    # optimal and uniform-random returns of the held-out goal tasks, for normalisation
    _, j_star, j_rand = og.reference_returns(environment, test)

    def held_out(params, planner=planner):
        """Normalised mean return on the held-out goals: 1 optimal, 0 uniform random."""
        options = (og.primitive_options(grid.num_states, 4) if params is None else
                   og.make_options(params, model, environment, 0.05)[0])
        returns = np.asarray(og.goal_returns(options, environment, test, planner))
        return float((returns.mean() - j_rand.mean()) / (j_star.mean() - j_rand.mean()))

    initial = held_out(params)
    for t in range(args.steps):
        params, opt_state, train_return = step(params, opt_state)
        if t % 20 == 0 or t == args.steps - 1:
            print(f"step {t:3d}  mean return on the training goals {float(train_return):.4f}")
    alone = held_out(None, dataclasses.replace(planner, include_primitives=False))
    print(f"held-out normalised return with N = 3 planning sweeps: primitives alone {alone:.3f}, "
          f"+ initial options {initial:.3f}, + learned options {held_out(params):.3f}")


if __name__ == "__main__":
    main()
