"""The four-rooms experiment: outputs in the DESIGN.md formats, held-out numbers recomputed
from options.npz and the config alone, determinism, and resume after a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import optiongrad as og
from optiongrad.cli import main
from optiongrad.experiments.four_rooms import (
    FourRoomsConfig,
    Setup,
    load_options,
    split_goals,
    train_options,
)

SMALL = dict(num_options=2, steps=3)


def test_split_is_seeded_80_20_partition():
    train_goals, test_goals = split_goals(104, 0)
    assert len(train_goals) == 83 and len(test_goals) == 21
    assert sorted(np.concatenate([train_goals, test_goals]).tolist()) == list(range(104))
    again = split_goals(104, 0)
    np.testing.assert_array_equal(again[1], test_goals)
    assert not np.array_equal(split_goals(104, 1)[1], test_goals)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("four-rooms"))
    assert main(["four-rooms", "--out", out, "--steps", "2", "--options", "2", "--quiet"]) == 0
    with open(os.path.join(out, "metrics.csv")) as f:
        first = f.read()
    assert main(["four-rooms", "--out", out, "--steps", "3", "--options", "2", "--quiet",
                 "--resume"]) == 0
    return out, first


def test_outputs_follow_the_design_formats(run_dir):
    out, _ = run_dir
    for name in ("results.json", "metrics.csv", "options.npz", "learning_curves.png",
                 "learned_options.png", "methods.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    config = results["config"]
    for key in ("discount", "temperature_options", "temperature_mu", "planning_budget",
                "include_primitives", "num_options", "seed", "steps"):
        assert key in config
    assert config["steps"] == 3 and config["planning_budget"] == 3
    assert len(results["split"]["train"]) == 83 and len(results["split"]["test"]) == 21
    assert set(results["methods"]) == {"learned", "primitives", "hallway", "random",
                                       "eigenoptions", "covering"}
    assert config["map"] == "four-rooms"
    for scores in results["methods"].values():
        for subset in ("train", "test"):
            assert set(scores[subset]) >= {"return", "normalized_return", "planning_sweeps"}
            assert np.isfinite(scores[subset]["return"])
    with np.load(os.path.join(out, "options.npz")) as data:
        assert data["policy"].shape == (2, 104, 4)
        assert data["termination"].shape == (2, 104)
        assert data["initiation"].shape == (2, 104) and data["initiation"].dtype == bool
        np.testing.assert_array_equal(data["cells"], og.gridworld.four_rooms().cells)


def test_resume_appends_to_the_interrupted_run(run_dir):
    out, first = run_dir
    with open(os.path.join(out, "metrics.csv")) as f:
        lines = f.read().splitlines()
    assert len(lines) == 4  # header + 3 steps
    assert lines[:3] == first.splitlines()


def _recompute(results, options, goals, include_primitives):
    """The held-out return as a third party would compute it: public API, dense models of each
    goal task, nothing from the experiment module."""
    c = results["config"]
    grid = og.gridworld.four_rooms()
    if include_primitives:
        options = og.with_primitives(options)
    kwargs = {}
    if c["planning_budget"] is not None:
        kwargs = dict(differentiation="unrolled", num_sweeps=c["planning_budget"])
    returns = []
    for g in goals:
        task = og.gridworld.goal_task(grid, int(g), c["discount"])
        reward, transition = og.option_models(task, options)
        mu = og.smdp_value_iteration(reward, transition, c["temperature_mu"],
                                     initiation=options.initiation, **kwargs).policy
        returns.append(float(task.initial @ og.smdp_policy_evaluation(reward, transition, mu)))
    return float(np.mean(returns))


@pytest.mark.parametrize("method", ["learned", "hallway"])
def test_held_out_numbers_recomputed_from_options_npz(run_dir, method):
    out, _ = run_dir
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    path = "options.npz" if method == "learned" else f"options_{method}.npz"
    options = load_options(os.path.join(out, path))
    expected = _recompute(results, options, results["split"]["test"],
                          results["config"]["include_primitives"])
    assert results["methods"][method]["test"]["return"] == pytest.approx(expected, rel=1e-10)


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_training_is_deterministic_and_resume_loses_nothing(tmp_path):
    setup = Setup(FourRoomsConfig(**{**SMALL, "steps": 4}))
    params_a, rows_a = train_options(setup, None, progress=False)
    out = str(tmp_path)
    # two steps in one run, two more resumed in another: the same digits as four in one go
    # (so training is deterministic and a resume loses nothing)
    train_options(Setup(FourRoomsConfig(**{**SMALL, "steps": 2})), out, progress=False)
    params_c, rows_c = train_options(setup, out, resume=True, progress=False)
    assert _strip(rows_c) == _strip(rows_a)
    for a, c in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_c)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(c))


def test_resume_refuses_a_different_config(tmp_path):
    out = str(tmp_path)
    train_options(Setup(FourRoomsConfig(num_options=2, steps=1)), out, progress=False)
    with pytest.raises(ValueError, match=r"learning_rate \(--lr\) = 0.1, this run has 0.5"):
        train_options(Setup(FourRoomsConfig(num_options=2, steps=2, learning_rate=0.5)), out,
              resume=True, progress=False)
    train_options(Setup(FourRoomsConfig(num_options=2, steps=2)), out, resume=True, progress=False)
    with pytest.raises(ValueError, match="steps.*already holds 2 steps"):
        train_options(Setup(FourRoomsConfig(num_options=2, steps=1)), out, resume=True, progress=False)


def test_killed_run_resumes_where_it_stopped(tmp_path):
    out = str(tmp_path)
    cmd = [sys.executable, "-m", "optiongrad.cli", "four-rooms", "--out", out, "--steps", "200",
           "--options", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = os.path.join(out, "checkpoint.npz")
    deadline = time.time() + 240
    killed_at = None
    try:
        while time.time() < deadline and proc.poll() is None:
            if os.path.exists(checkpoint):
                try:
                    with np.load(checkpoint) as data:
                        step = int(data["step"])
                except (OSError, ValueError, KeyError):
                    step = 0  # being replaced; atomic rename means never half-read
                if step >= 3:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    killed_at = step
                    break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed_at is not None and killed_at < 200, "the run was not killed mid-training"
    with np.load(checkpoint) as data:
        saved = int(data["step"])
    total = saved + 2
    resumed_params, resumed = train_options(Setup(FourRoomsConfig(num_options=2, steps=total)), out,
                                    resume=True, progress=False)
    reference_params, reference = train_options(Setup(FourRoomsConfig(num_options=2, steps=total)),
                                        None, progress=False)
    assert _strip(resumed) == _strip(reference)
    for a, b in zip(jax.tree.leaves(resumed_params), jax.tree.leaves(reference_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_config_validation_names_the_field():
    for kwargs, field in [(dict(num_options=3), "num_options"), (dict(discount=1.0), "discount"),
                          (dict(planning_budget=0), "planning_budget"),
                          (dict(temperature_mu=0.0), "temperature_mu"),
                          (dict(reward="linear"), "reward"), (dict(termination=0.0),
                                                              "termination"),
                          (dict(train_fraction=0.001), "train_fraction"),
                          (dict(train_fraction=0.999), "train_fraction"),
                          (dict(num_options=106), "num_options")]:
        with pytest.raises(ValueError, match=field):
            FourRoomsConfig(**kwargs).validate()


def test_the_training_loop_stops_on_non_finite_parameters(tmp_path):
    """A finite objective with a non-finite update stops the run before the state is saved."""
    from optiongrad.experiments.training import TrainingError, train

    def step(state):
        bad = state["w"] * (np.nan if state["t"] >= 2 else 1.0)
        return {"w": bad, "t": state["t"] + 1}, {"objective": jax.numpy.asarray(1.0)}

    state = {"w": np.ones(2), "t": 0}
    with pytest.raises(TrainingError, match="step 2: the update produced non-finite"):
        train(step, state, {"a": 1}, steps=5, out_dir=str(tmp_path), progress=False)
    with np.load(tmp_path / "checkpoint.npz") as data:
        assert int(data["step"]) == 2 and np.isfinite(data["leaf_1"]).all()
