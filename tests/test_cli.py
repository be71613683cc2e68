"""End-to-end: the command line and the intrinsic-reward-gradient demonstration, and the
integrity of runs. CLI cases run as real subprocesses, except the damaged-checkpoint cases past
the first, which call the same `cli.main` in this process (each subprocess costs a JAX start)."""

import csv
import json
import os
import stat
import subprocess
import sys

import pytest

from optiongrad import cli
from optiongrad.experiments.four_rooms import COLUMNS, FourRoomsConfig
from optiongrad.experiments.io import RunLock
from optiongrad.experiments.irg import IRGConfig, run_irg
from optiongrad.experiments.training import save_checkpoint


def optiongrad(*argv, umask=None, timeout=600):
    """Run `python -m optiongrad.cli *argv` in a fresh process (with `umask` when given)."""
    command = [sys.executable, "-m", "optiongrad.cli", *argv, "--quiet"]
    if umask is not None:
        command = ["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def _in_process(capfd, *argv):
    """`cli.main(argv)` in this process, as a `subprocess.CompletedProcess` (exit status and
    the captured output)."""
    capfd.readouterr()
    try:
        status = cli.main(list(argv))
    except SystemExit as exit:       # argparse's `error` exits with status 2
        status = exit.code
    out, err = capfd.readouterr()
    return subprocess.CompletedProcess(list(argv), status, out, err)


def refused(proc, *phrases):
    """Exit status 2, one error line naming the problem, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    error = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(error) == 1, proc.stderr
    for phrase in phrases:
        assert phrase in error[0], error[0]
    return error[0]


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
    results = run_irg(IRGConfig(steps=40, planning_budget=4), None, progress=False)
    before, after = results["table"][3]["normalized_return"], results["table"][4]["normalized_return"]
    assert after > before + 0.3


@pytest.mark.slow
def test_cli_irg_end_to_end_with_the_users_permissions_and_no_silent_overwrite(tmp_path):
    out = tmp_path / "run"
    proc = optiongrad("irg", "--steps", "5", "--out", str(out), umask=0o027)
    assert proc.returncode == 0, proc.stderr
    assert "bounded planner" in proc.stdout
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["steps"] == 5
    written = sorted(n for n in os.listdir(out) if not n.startswith("."))  # not the .lock
    assert {"results.json", "metrics.csv", "checkpoint.npz", "irg_learning_curve.png",
            "irg_reward.png"} <= set(written)
    for name in written:  # every output follows the umask, like a plain open() would
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o640, name
    before = (out / "results.json").read_bytes()
    refused(optiongrad("irg", "--steps", "5", "--out", str(out)), "--out",
            "holds a finished run", "--force")
    assert (out / "results.json").read_bytes() == before
    refused(optiongrad("irg", "--steps", "5", "--out", str(out), "--resume", "--force"),
            "--force", "--resume")
    more = optiongrad("irg", "--steps", "6", "--out", str(out), "--resume", umask=0o022)
    assert more.returncode == 0, more.stderr
    for name in written:  # everything rewritten by the resumed run follows its umask
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o644, name
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == list(range(6))
    refused(optiongrad("irg", "--steps", "7", "--out", str(out), "--resume", "--lr", "0.2"),
            "learning_rate (--lr) = 0.05", "0.2")
    again = optiongrad("irg", "--steps", "3", "--out", str(out), "--force")
    assert again.returncode == 0, again.stderr
    assert json.loads((out / "results.json").read_text())["config"]["steps"] == 3
    (out / "checkpoint.npz").unlink()                  # a finished run with no checkpoint
    refused(optiongrad("irg", "--steps", "3", "--out", str(out), "--resume"),
            "--resume", "no checkpoint", "--force")


@pytest.mark.parametrize("argv,message", [
    (["irg", "--steps", "-1"], "steps"),
    (["irg", "--goal", "0,0"], "free cell"),
    (["irg", "--goal", "banana"], "ROW,COL"),
    (["irg", "--plan-discount", "1.5"], "--plan-discount"),
    (["irg", "--temperature", "0"], "temperature"),
])
def test_cli_rejects_bad_flags(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--quiet", "--out", os.devnull])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
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


# -- integrity of runs: each refusal happens before any work, names the flag, and is one line --


@pytest.mark.parametrize("argv,phrases", [
    (["--budget", "3", "--converged"], ["--converged", "--budget"]),
    (["--converged", "--budget", "7"], ["--converged", "--budget"]),
    (["--seed", str(10**23)], ["--seed"]),
    (["--seed", "-1"], ["--seed"]),
    (["--lr", "inf"], ["--lr", "finite"]),
    (["--lr", "nan"], ["--lr"]),
    (["--diversity", "nan"], ["--diversity", "finite"]),
    (["--discount", "1"], ["--discount"]),
    (["--temperature-mu", "0"], ["--temperature-mu"]),
    (["--temperature-options", "-inf"], ["--temperature-options"]),
    (["--options", "3"], ["--options", "even"]),
    (["--termination", "1"], ["--termination"]),
    (["--steps", "-5"], ["--steps"]),
    (["--budget", "0"], ["--budget"]),
    (["--options", "106"], ["--options", "104"]),
])
def test_four_rooms_flags_are_checked_before_any_work(tmp_path, capfd, argv, phrases):
    # in this process (`cli.main`, what `python -m optiongrad.cli` calls): a fresh process per
    # case would spend its time importing JAX; the refusals below also run in fresh processes
    out = tmp_path / "never"
    refused(_in_process(capfd, "four-rooms", "--out", str(out), *argv, "--quiet"), *phrases)
    assert not out.exists()


@pytest.mark.parametrize("argv,phrases", [
    (["irg", "--budget", "3", "--plan-discount", "0.7"], ["--budget", "--plan-discount"]),
    (["irg", "--slip", "0.75"], ["--slip", "0.75"]),
    (["irg", "--slip", "true"], ["--slip"]),
    (["planning-time", "--options", "106"], ["--options", "104"]),
])
def test_other_commands_check_their_flags_before_any_work(tmp_path, capfd, argv, phrases):
    out = tmp_path / "never"
    refused(_in_process(capfd, *argv, "--out", str(out), "--quiet"), *phrases)
    assert not out.exists()


@pytest.mark.parametrize("place", ["file", "unwritable"])
def test_out_must_be_a_writable_directory(tmp_path, place):
    if place == "file":
        out = tmp_path / "a-file"
        out.write_text("not a directory")
    else:
        out = "/proc/optiongrad-cannot-be-here"
    proc = optiongrad("four-rooms", "--out", str(out))
    refused(proc, "--out")


def _fake_run(out, **config):
    """A checkpoint as a float64 four-rooms run with `config` would leave it after one step
    (its record and metrics; its state is not used by the refusals tested here)."""
    from optiongrad.experiments.learn_options import _record

    record = {**_record(FourRoomsConfig(**config)), "float64": True}
    row = {name: 0 for name in COLUMNS}
    row["intrinsic_converged"] = True
    save_checkpoint(str(out / "checkpoint.npz"), record, 1, (), [row])


def test_resume_refuses_another_precision_or_config(tmp_path, capfd):
    """The first refusal by `python -m optiongrad.cli` in a fresh process, the others by
    `cli.main` in this one."""
    _fake_run(tmp_path)
    refused(optiongrad("four-rooms", "--out", str(tmp_path), "--resume", "--float32"),
            "--resume", "computed in float64", "this run in float32 (--float32)")
    refused(_in_process(capfd, "four-rooms", "--out", str(tmp_path), "--resume", "--lr", "0.2",
                        "--quiet"),
            "--resume", "learning_rate (--lr) = 0.1", "this run has 0.2")
    refused(_in_process(capfd, "four-rooms", "--out", str(tmp_path), "--quiet"),
            "unfinished run", "--resume")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "not-a-checkpoint",
                                    "step-array", "metrics-number", "metrics-dict",
                                    "metrics-missing-column", "metrics-text", "extra-leaf",
                                    "nan-leaf", "metrics-nan", "metrics-bool-step",
                                    "metrics-negative-seconds", "metrics-flag"])
def test_a_damaged_checkpoint_gives_one_line(tmp_path, capfd, damage):
    _fake_run(tmp_path)
    path = tmp_path / "checkpoint.npz"
    import numpy as np

    if damage.startswith(("step", "metrics", "extra", "nan")):
        with np.load(path) as data:
            arrays = dict(data)
        row = {name: 0 for name in COLUMNS}
        row["intrinsic_converged"] = True
        if damage == "step-array":
            arrays["step"] = np.arange(3)
        elif damage == "metrics-number":
            arrays["metrics"] = np.asarray("5")
        elif damage == "metrics-dict":
            arrays["metrics"] = np.asarray('{"a": 1}')
        elif damage == "metrics-missing-column":
            del row["test_normalized"]
            arrays["metrics"] = np.asarray(json.dumps([row]))
        elif damage == "metrics-text":
            arrays["metrics"] = np.asarray(json.dumps([{**row, "objective": "abc"}]))
        elif damage.startswith("metrics-"):
            change = {"metrics-nan": {"objective": float("nan")},
                      "metrics-bool-step": {"step": False},
                      "metrics-negative-seconds": {"seconds": -1.0},
                      "metrics-flag": {"intrinsic_converged": 5}}[damage]
            good = {**row, "intrinsic_converged": True}
            arrays["metrics"] = np.asarray(json.dumps([{**good, **change}]))
        elif damage == "extra-leaf":
            arrays["leaf_99"] = np.ones(2)
        else:
            arrays["leaf_0"] = np.full(2, np.nan)
        np.savez(path, **arrays)
    elif damage == "garbage":
        path.write_bytes(os.urandom(2000))
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "not-a-checkpoint":
        np.savez(path, something=np.ones(3))
    argv = ("four-rooms", "--out", str(tmp_path), "--resume")
    if damage == "garbage":          # one case as a real subprocess, the rest in this process
        line = refused(optiongrad(*argv), "checkpoint.npz", "damaged")
    else:                            # (the same `cli.main`, without a fresh JAX each time)
        line = refused(_in_process(capfd, *argv, "--quiet"), "checkpoint.npz", "damaged")
    assert str(path) in line


def test_planning_time_refuses_to_overwrite_a_finished_run(tmp_path):
    (tmp_path / "planning_time.json").write_text("{}")
    line = refused(optiongrad("planning-time", "--out", str(tmp_path), "--epsilon", "1e-4"),
                   "finished run", "--force")
    assert "--resume" not in line       # planning-time has nothing to resume
    refused(optiongrad("planning-time", "--out", str(tmp_path), "--options", "5"), "--options")


def test_two_runs_cannot_share_an_output_directory(tmp_path):
    with RunLock(str(tmp_path)):                       # a run in progress holds the lock
        refused(optiongrad("irg", "--steps", "2", "--out", str(tmp_path)), "--out", "in use")
    assert not (tmp_path / "results.json").exists()


def test_a_degenerate_normalisation_is_refused(tmp_path):
    refused(optiongrad("irg", "--steps", "2", "--slip", "0.7500000000000001", "--out",
                       str(tmp_path)), "slip", "same return")
