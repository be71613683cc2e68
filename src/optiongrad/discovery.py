"""Option families, each planned by the same smooth planner (or built from the map):

    og.discovery.random_options(key, env, K)        # random subgoals
    og.discovery.eigenoptions(env, K)               # Machado et al. 2017
    og.discovery.covering_options(env, K)           # Jinnai et al. 2019
    og.discovery.hallway_options(grid)              # Sutton, Precup & Singh 1999
    og.discovery.subgoal_options(env, subgoals)     # one option per subgoal state
    og.discovery.potential_options(env, potentials) # climb given potentials
"""

from optiongrad._src.discovery import (
    covering_options,
    covering_subgoals,
    eigenoptions,
    hallway_options,
    laplacian_eigenvectors,
    potential_options,
    random_options,
    state_graph,
    subgoal_options,
)

__all__ = ["covering_options", "covering_subgoals", "eigenoptions", "hallway_options", "laplacian_eigenvectors", "potential_options",
           "random_options", "state_graph", "subgoal_options"]
