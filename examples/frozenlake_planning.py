"""Planning on gymnasium's FrozenLake: optimal and smooth plans, a gradient, and a check.

    python examples/frozenlake_planning.py [--map 8x8] [--temperature 0.05] [--episodes 2000]

1. `og.from_gymnasium` turns the toy-text table into an `MDP` (falling in a hole or reaching
   the goal terminates: one extra absorbing state with zero reward).
2. Hard value iteration gives the optimal policy; soft value iteration (logsumexp backup,
   temperature τ) gives a smooth policy that is a differentiable function of the reward.
3. `jax.grad` of the smooth planner's return with respect to the reward table — exact, by the
   implicit function theorem at the Bellman fixed point — says which reward would change the
   plan's return most.
4. Both policies are run in the gymnasium environment itself: the mean discounted return agrees
   with the value the library predicts, within its confidence interval.
"""

import argparse

import gymnasium
import jax
import numpy as np

import optiongrad as og

ARROWS = "←↓→↑"  # FrozenLake's actions: 0 left, 1 down, 2 right, 3 up


def simulate(env, policy, discount, episodes, seed):
    """Mean and standard error of the discounted return of `policy` run in `env`."""
    rng = np.random.default_rng(seed)
    returns = []
    state, _ = env.reset(seed=seed)
    for _ in range(episodes):
        total, scale, done = 0.0, 1.0, False
        while not done:
            action = rng.choice(policy.shape[1], p=policy[state])
            state, reward, terminated, truncated, _ = env.step(action)
            total, scale, done = total + scale * reward, scale * discount, terminated or truncated
        returns.append(total)
        state, _ = env.reset()
    return np.mean(returns), np.std(returns, ddof=1) / np.sqrt(episodes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--map", default="4x4", choices=["4x4", "8x8"])
    parser.add_argument("--discount", type=float, default=0.95)
    parser.add_argument("--temperature", type=float, default=0.005)
    parser.add_argument("--episodes", type=int, default=2000)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)

    env = gymnasium.make("FrozenLake-v1", map_name=args.map, max_episode_steps=100_000)
    mdp = og.from_gymnasium(env, args.discount)
    print(mdp, "(the last state is the absorbing end of an episode)")

    optimal = og.soft_value_iteration(mdp, 0.0, backup="max")
    smooth = og.soft_value_iteration(mdp, args.temperature)
    print(f"hard VI: {int(optimal.iterations)} sweeps, converged={bool(optimal.converged)}; "
          f"soft VI (τ={args.temperature}): {int(smooth.iterations)} sweeps")

    desc = env.unwrapped.desc.astype(str)
    greedy = np.asarray(optimal.policy[:-1].argmax(1)).reshape(desc.shape)
    for row_cells, row_actions in zip(desc, greedy):
        print("  " + " ".join(c if c in "HG" else ARROWS[a] for c, a in zip(row_cells, row_actions)))

    def smooth_return(rewards):
        policy = og.soft_value_iteration(mdp.replace(rewards=rewards), args.temperature).policy
        return og.expected_return(mdp, policy)

    grad = np.asarray(jax.grad(smooth_return)(mdp.rewards))
    s, a = np.unravel_index(np.abs(grad[:-1]).argmax(), grad[:-1].shape)
    print(f"∂J/∂r is largest at state {s} (row {s // desc.shape[1]}, col {s % desc.shape[1]}), "
          f"action {ARROWS[a]}: {grad[s, a]:+.4f}")

    for name, plan in (("optimal", optimal), ("smooth", smooth)):
        predicted = float(og.expected_return(mdp, plan.policy))
        mean, stderr = simulate(env, np.asarray(plan.policy), args.discount, args.episodes, seed=0)
        print(f"{name}: predicted {predicted:.4f}, gymnasium {mean:.4f} ± {stderr:.4f} "
              f"(z = {(mean - predicted) / stderr:+.2f})")


if __name__ == "__main__":
    main()
