"""Hallway options in the four rooms (Sutton, Precup & Singh 1999): models, planning, execution.

    python examples/hallway_options.py [--episodes 2000]

1. The 8 hallway options (each takes the agent from anywhere in a room to one of its two
   hallways) are built from the grid; with the 4 primitive actions they make 12 options.
2. Their option models — the multi-step reward `r^o (S,)` and discounted transition
   `P^o (S, S)` of each option, λ-models with λ = 1 − β — turn the task into an SMDP, which soft
   value iteration plans over exactly as over primitive actions.
3. Planning time: with the hallway options, value iteration finds the optimal policy for a
   hallway goal in far fewer sweeps than with primitive actions only (2 vs 13 on the
   deterministic grid; the gain shrinks when moves slip).
4. The planned policy over options is executed call-and-return in `og.OptionsEnv`, a
   `gymnasium.Env` whose actions are the options: its mean return is the SMDP value.
"""

import argparse

import jax
import numpy as np

import optiongrad as og


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--discount", type=float, default=0.9)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)

    grid = og.gridworld.four_rooms(slip=1 / 3)  # 2/3 the intended move, 1/9 each other one
    goal = grid.state(7, 9)                      # the hallway between the two right rooms
    mdp = og.gridworld.goal_task(grid, goal, args.discount)
    options = og.with_primitives(og.gridworld.hallway_options(grid))
    print(f"{mdp}; {options}")

    rewards, transitions = og.option_models(mdp, options)  # (S, K), (K, S, S)
    plan = og.smdp_value_iteration(rewards, transitions, 0.01, initiation=options.initiation)
    mu = plan.policy                                         # (S, K), zero outside I^o
    value = og.smdp_policy_evaluation(rewards, transitions, mu)
    optimal = og.soft_value_iteration(mdp, 0.0, backup="max")
    print(f"return of the policy over options {float(mdp.initial @ value):.4f}, "
          f"optimal {float(mdp.initial @ optimal.q.max(1)):.4f}")

    for slip in (0.0, 1 / 3):
        g = og.gridworld.four_rooms(slip=slip)
        task = og.gridworld.goal_task(g, goal, args.discount)
        with_options = int(og.planning_sweeps(task, og.gridworld.hallway_options(g)))
        print(f"slip {slip:.2f}: value iteration sweeps until the greedy policy is optimal: "
              f"{with_options} with hallway options, {int(og.planning_sweeps(task))} with "
              "primitive actions only")

    env = og.OptionsEnv(mdp, options)
    rng = np.random.default_rng(0)
    mu = np.asarray(mu)
    returns, durations, hallway_calls = [], [], []
    state, info = env.reset(seed=0)
    for _ in range(args.episodes):
        total, scale, done = 0.0, 1.0, False
        while not done:
            option = rng.choice(options.num_options, p=mu[state])
            state, reward_o, terminated, truncated, info = env.step(option)
            total += scale * reward_o
            scale *= info["discount"]
            durations.append(info["duration"])
            hallway_calls.append(option < options.num_options - mdp.num_actions)
            done = terminated or truncated
        returns.append(total)
        state, info = env.reset()
    stderr = np.std(returns, ddof=1) / np.sqrt(args.episodes)
    print(f"OptionsEnv: mean return {np.mean(returns):.4f} ± {stderr:.4f} "
          f"(predicted {float(mdp.initial @ value):.4f}); "
          f"{100 * np.mean(hallway_calls):.0f}% of calls are hallway options; a call lasts "
          f"{np.mean(durations):.1f} primitive steps on average")


if __name__ == "__main__":
    main()
