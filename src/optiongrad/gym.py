"""Gymnasium both ways: `from_gymnasium` (toy-text tables to an `MDP`), `TabularEnv` (an `MDP`
as a `gymnasium.Env`) and `OptionsEnv` (options as actions, call-and-return), registered as
`TABULAR_ID` and `OPTIONS_ID` for `gymnasium.make`."""

from optiongrad._src.gym import (
    OPTIONS_ID,
    SPARSE_THRESHOLD,
    TABULAR_ID,
    OptionsEnv,
    TabularEnv,
    absorbing_states,
    from_gymnasium,
)

__all__ = ["OPTIONS_ID", "SPARSE_THRESHOLD", "TABULAR_ID", "OptionsEnv", "TabularEnv",
           "absorbing_states", "from_gymnasium"]
