"""Learning an intrinsic reward for a bounded planner (the optimal reward problem).

    python examples/intrinsic_reward.py [--steps 150] [--plan-discount 0.5]

The agent plans with soft value iteration but *myopically*: its planning discount γ_plan = 0.5
is much shorter than the task's γ = 0.99, so with the task's own reward (1 on entering the goal
in the far corner of the four rooms) it only "sees" the goal from a few cells away. We learn a
tabular reward r_θ for the same bounded planner by gradient ascent on the task return

    J(θ) = s0 · V^{π_θ}_r,   π_θ = softmax(Q_θ / τ),   Q_θ = r_θ + γ_plan P m_τ(Q_θ),

differentiating through the planner's fixed point with the implicit function theorem
(`og.planner_return`; the optimal reward problem of Singh, Lewis & Barto 2009 and Sorg, Singh &
Lewis 2010).
The learned reward is a shaped reward: the myopic planner following it is near optimal.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optiongrad as og


def arrows(grid, policy, goal):
    """Rows of text: in each cell the action `policy (S, 4)` takes with probability > 1/2,
    or `·` where it is undecided (close to uniform)."""
    policy = np.asarray(policy)
    best = np.where(policy.max(1) > 0.5, policy.argmax(1), 4)
    image = grid.values_to_image(best)
    return ["".join("#" if np.isnan(a) else "G" if grid.index[r, c] == goal
                    else "↑→↓←·"[int(a)] for c, a in enumerate(row))
            for r, row in enumerate(image)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--plan-discount", type=float, default=0.5)
    parser.add_argument("--temperature", type=float, default=0.03)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)

    grid = og.gridworld.four_rooms()
    goal = grid.state(11, 11)
    mdp = og.gridworld.goal_task(grid, goal, discount=0.99)
    j_star = float(og.expected_return(mdp, og.soft_value_iteration(mdp, 0.0, backup="max").policy))
    j_rand = float(og.expected_return(mdp, jnp.full(mdp.rewards.shape, 0.25)))

    def normalised(j):
        return (float(j) - j_rand) / (j_star - j_rand)

    model = og.rewards.tabular(grid.num_states, 4)
    theta = mdp.rewards  # start from the task's own reward
    optimiser = optax.adam(args.learning_rate)
    opt_state = optimiser.init(theta)

    def objective(theta):
        return og.planner_return(theta, model, mdp, args.temperature,
                                 plan_discount=args.plan_discount)

    @jax.jit
    def step(theta, opt_state):
        (j, plan), grad = jax.value_and_grad(objective, has_aux=True)(theta)
        updates, opt_state = optimiser.update(-grad, opt_state)
        return optax.apply_updates(theta, updates), opt_state, j, plan.converged

    before = normalised(objective(theta)[0])
    for t in range(args.steps):
        theta, opt_state, j, converged = step(theta, opt_state)
        if t % 25 == 0:
            print(f"step {t:4d}  normalised return {normalised(j):.3f}  "
                  f"planner converged {bool(converged)}")
    after = normalised(objective(theta)[0])

    print("moves of the bounded planner (· undecided), task reward | learned reward:")
    for left, right in zip(arrows(grid, objective(mdp.rewards)[1].policy, goal),
                           arrows(grid, objective(theta)[1].policy, goal)):
        print(f"  {left}   {right}")
    print(f"normalised return of the bounded planner: {before:.3f} -> {after:.3f} "
          f"(1 = optimal, 0 = uniform random)")


if __name__ == "__main__":
    main()
