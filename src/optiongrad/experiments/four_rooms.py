"""`optiongrad four-rooms`, the main job: the option-gradient experiment (`learn_options`) on
Sutton, Precup & Singh's four-rooms map — `optiongrad learn-options --map four-rooms`."""

from optiongrad.experiments.learn_options import (  # noqa: F401 (this module's names)
    BASELINES,
    COLUMNS,
    FIGURES,
    MAX_SWEEPS,
    RESULTS_FILE,
    LearnOptionsConfig,
    Setup,
    baselines,
    evaluate,
    format_table,
    learned_options,
    load_options,
    machine,
    output_files,
    save_options,
    split_goals,
    train_options,
)
from optiongrad.experiments.learn_options import run_learn_options as run_four_rooms

#: The four-rooms experiment's settings: `LearnOptionsConfig`, whose map is four rooms.
FourRoomsConfig = LearnOptionsConfig
CELLS = 104  # free cells of four rooms
