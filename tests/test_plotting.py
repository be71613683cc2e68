import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from optiongrad import plotting  # noqa: E402
from optiongrad.gridworld import four_rooms  # noqa: E402


def test_value_heat_map_masks_walls():
    grid = four_rooms()
    ax = plotting.plot_values(grid, np.arange(104.0), title="v", marks=[3])
    image = ax.images[0].get_array()
    assert image.shape == (13, 13)
    assert image.mask[0, 0] and not image.mask[1, 1]
    assert image[11, 11] == 103.0
    assert ax.get_title() == "v"
    plt.close(ax.figure)


def test_policy_arrows_point_along_actions():
    grid = four_rooms()
    policy = np.zeros((104, 4))
    policy[:, 1] = 1.0  # always right
    ax = plotting.plot_policy(grid, policy)
    quiver = ax.collections[0]
    u, v = quiver.U, quiver.V
    assert len(u) == 104
    np.testing.assert_allclose(u, 1.0)
    np.testing.assert_allclose(v, 0.0)
    plt.close(ax.figure)
    policy = np.zeros((104, 4))
    policy[:, 0] = 1.0  # always up: decreasing row index
    ax = plotting.plot_policy(grid, policy, values=np.zeros(104))
    np.testing.assert_allclose(ax.collections[0].V, -1.0)
    assert ax.yaxis_inverted()  # row 0 at the top, so V = −1 is drawn upwards
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="policy"):
        plotting.plot_policy(grid, np.zeros((3, 4)))


def test_curves():
    ax = plotting.plot_curves({"a": [1, 2, 3], "b": ([0, 2], [1, 1])}, hlines={"ref": 2.0})
    assert len(ax.lines) == 3
    plt.close(ax.figure)


def test_option_panels_and_sweep_figures():
    import optiongrad as og

    grid = four_rooms()
    options = og.gridworld.hallway_options(grid)
    fig = plotting.plot_options(grid, options, columns=3, names=[f"h{i}" for i in range(8)])
    axes = fig.axes
    assert len(axes) == 9 and not axes[8].axison  # 8 panels + 1 empty slot
    assert axes[0].get_title() == "h0"
    # arrows only inside the initiation set, heat-map = termination
    n_arrows = len(axes[0].collections[0].U)
    assert n_arrows == int(np.asarray(options.initiation[0]).sum())
    np.testing.assert_allclose(np.nan_to_num(axes[0].images[0].get_array().filled(np.nan)),
                               np.nan_to_num(grid.values_to_image(options.termination[0])))
    plt.close(fig)
    values = {"a": np.random.default_rng(0).random((4, 104)), "b": np.zeros((4, 104))}
    fig = plotting.plot_sweeps(grid, values, [1, 3])
    assert len(fig.axes) == 4 and fig.axes[1].get_title() == "a: 3 sweeps"
    plt.close(fig)
