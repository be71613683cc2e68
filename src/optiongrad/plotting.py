"""Figures on grid worlds: value heat-maps, policy arrows, options, value propagation, curves.

All draw with matplotlib (Agg backend when none is set) and return the axes or figure.
"""

from optiongrad._src.plotting import (
    plot_curves,
    plot_options,
    plot_policy,
    plot_sweeps,
    plot_values,
)

__all__ = ["plot_curves", "plot_options", "plot_policy", "plot_sweeps", "plot_values"]
