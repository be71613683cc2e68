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
