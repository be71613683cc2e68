"""End-to-end: the command line and the intrinsic-reward-gradient demonstration."""

import csv
import json
import os
import subprocess
import sys

import pytest

from optiongrad import cli
from optiongrad.experiments.irg import IRGConfig, run_irg


def test_irg_demonstration_shows_what_it_claims(tmp_path):
    """The bounded planner on the extrinsic reward is poor; on the learned reward it is
    near-optimal; the outputs are written."""
    results = run_irg(IRGConfig(steps=60), str(tmp_path), progress=False)
    table = {row["policy"]: row["normalized_return"] for row in results["table"]}
    before = next(v for k, v in table.items() if "extrinsic r" in k and "bounded planner" in k)
    after = next(v for k, v in table.items() if "learned" in k)
    assert table["optimal policy (hard VI, γ)"] == pytest.approx(1.0)
    assert table["uniform random policy"] == pytest.approx(0.0)
    assert before < 0.5 < 0.95 < after
    for name in ("metrics.csv", "results.json", "irg_learning_curve.png", "irg_reward.png"):
        assert os.path.getsize(tmp_path / name) > 0
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 60
    assert float(rows[-1]["normalized_return"]) == pytest.approx(after, abs=0.02)
    assert all(row["planner_converged"] == "True" for row in rows)


@pytest.mark.parametrize("reward", ["state", "linear"])
def test_irg_other_parametrisations_improve(tmp_path, reward):
    results = run_irg(IRGConfig(steps=40, reward=reward), None, progress=False)
    before, after = results["table"][3]["normalized_return"], results["table"][4]["normalized_return"]
    assert after > before + 0.2


def test_irg_with_a_sweep_budget(tmp_path):
    results = run_irg(IRGConfig(steps=40, plan_sweeps=4), None, progress=False)
    before, after = results["table"][3]["normalized_return"], results["table"][4]["normalized_return"]
    assert after > before + 0.3


def test_cli_irg_end_to_end(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "optiongrad.cli", "irg", "--steps", "5", "--out", str(out),
         "--quiet"], capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "bounded planner" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["steps"] == 5


@pytest.mark.parametrize("argv,message", [
    (["irg", "--steps", "-1"], "steps"),
    (["irg", "--goal", "0,0"], "free cell"),
    (["irg", "--goal", "banana"], "ROW,COL"),
    (["irg", "--plan-discount", "1.5"], "plan_discount"),
    (["irg", "--temperature", "0"], "temperature"),
])
def test_cli_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--quiet", "--out", os.devnull])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_planning_time_reproduces_sutton_1999(tmp_path):
    out = tmp_path / "pt"
    cli.main(["planning-time", "--out", str(out), "--quiet"])
    data = json.loads((out / "planning_time.json").read_text())
    sweeps = data["sweeps"]
    for goal in ("hallway (7,9)", "hallway (3,6)"):
        assert sweeps["hallway"]["values"][goal] <= 3
        assert sweeps["primitives"]["values"][goal] >= 10
    assert sweeps["hallway"]["values"]["mean over all goals"] < \
        sweeps["primitives"]["values"]["mean over all goals"]
    for name in ("value_propagation.png", "options_hallway.png", "options_eigenoptions.png",
                 "options_random.png"):
        assert (out / name).stat().st_size > 0
