"""Many processes, one result: two local CPU processes on JAX's multi-process runtime train (and
run the whole experiment) to the numbers of one process; only process 0 writes; bad settings
are refused naming the flag."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from optiongrad.cli import main
from optiongrad.experiments import processes
from optiongrad.experiments.learn_options import LearnOptionsConfig, Setup, train_options

SRC = os.path.join(os.path.dirname(__file__), os.pardir, "src")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(argvs, timeout=600):
    """Run one subprocess per argv at once (the same environment, `src` importable); return
    their stdouts, or fail with the stderr of the first that failed."""
    env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC)}
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for argv in argvs]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return outputs


TRAIN = textwrap.dedent("""
    import json, sys, jax
    jax.config.update("jax_enable_x64", True)
    from optiongrad.experiments import processes
    from optiongrad.experiments.learn_options import LearnOptionsConfig, Setup, train_options

    assert processes.initialize(f"localhost:{sys.argv[1]}", 2, int(sys.argv[2])) == 2
    import numpy as np, optiongrad as og      # a batch over both processes, gathered on each
    doubled = og.sharding.sharded_vmap(lambda x, c: x * c, np.arange(5.0), 2.0)
    assert np.asarray(doubled).tolist() == [0.0, 2.0, 4.0, 6.0, 8.0], doubled
    params, rows = train_options(Setup(LearnOptionsConfig(steps=2)), progress=False)
    print(json.dumps({"devices": jax.device_count(), "rows": rows}))
""")


def test_two_processes_train_to_the_numbers_of_one():
    """Two steps on four rooms, the goals split over two processes' CPU devices (gloo
    all-reduces): every process gets the one-process metrics, held-out return to 1e-9; and
    `sharded_vmap` over both processes gives every process the whole result."""
    port = _free_port()
    outs = _launch([[sys.executable, "-c", TRAIN, str(port), str(i)] for i in range(2)])
    _, alone = train_options(Setup(LearnOptionsConfig(steps=2)), progress=False)
    for out in outs:
        got = json.loads(out.strip().splitlines()[-1])
        assert got["devices"] == 2
        for row, ref in zip(got["rows"], alone, strict=True):
            for name in ("test_return", "train_return", "objective", "grad_norm"):
                assert row[name] == pytest.approx(ref[name], rel=1e-9), name


@pytest.mark.slow
def test_two_processes_run_the_experiment_like_one(tmp_path):
    """`optiongrad four-rooms` in two processes: process 0 writes the one-process results
    (held-out return to 1e-9), "machine" records 2 processes and 2 devices, process 1 (given
    another --out) writes nothing."""
    port, out, other = _free_port(), str(tmp_path / "two"), str(tmp_path / "never")
    argv = [sys.executable, "-m", "optiongrad.cli", "four-rooms", "--steps", "2", "--quiet",
            "--coordinator", f"localhost:{port}", "--num-processes", "2"]
    printed = _launch([[*argv, "--out", where, "--process-id", str(i)]
                       for i, where in enumerate((out, other))])
    # (gloo itself prints a line "[Gloo] Rank 1 is connected …" on each process)
    assert "wrote" in printed[0] and "map:" in printed[0]
    assert "wrote" not in printed[1] and "map:" not in printed[1]
    assert not os.path.exists(other)
    # the finished run is refused by process 0, and that stops process 1 too
    port = _free_port()
    argv[argv.index("--coordinator") + 1] = f"localhost:{port}"
    env = {**os.environ, "PYTHONPATH": os.path.abspath(SRC)}
    procs = [subprocess.Popen([*argv, "--out", out, "--process-id", str(i)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [2, 1]
    assert "holds a finished run" in errors[0] and "process 0 stopped" in errors[1]
    alone = str(tmp_path / "one")
    assert main(["four-rooms", "--steps", "2", "--quiet", "--out", alone]) == 0
    results = [json.load(open(os.path.join(d, "results.json"))) for d in (out, alone)]
    assert results[0]["machine"]["processes"] == 2 and results[0]["machine"]["devices"] == 2
    assert results[1]["machine"]["processes"] == 1 and results[1]["machine"]["devices"] == 1
    for name, method in results[1]["methods"].items():
        for split in ("train", "test"):
            assert results[0]["methods"][name][split]["return"] == pytest.approx(
                method[split]["return"], rel=1e-9), (name, split)


@pytest.mark.parametrize("flags,message", [
    ({"coordinator": "node01"}, "--coordinator: expected HOST:PORT"),
    ({"coordinator": "node01:0"}, "--coordinator: expected HOST:PORT"),
    ({"coordinator": ":80"}, "--coordinator: expected HOST:PORT"),
    ({"coordinator": "node01:99999"}, "--coordinator: expected HOST:PORT"),
    ({"num_processes": 0}, "--num-processes: expected an integer >= 1"),
    ({"process_id": -1}, "--process-id: expected an integer >= 0"),
    ({"coordinator": "h:1", "num_processes": 2, "process_id": 2}, "--process-id: expected 0 <= I"),
    ({"coordinator": "h:1", "num_processes": 2}, "--process-id: required"),
    ({"num_processes": 2, "process_id": 0}, "--coordinator: required"),
    ({"coordinator": "h:1"}, "--num-processes: required"),
])
def test_bad_settings_name_the_flag(flags, message):
    with pytest.raises(ValueError, match=message):
        processes.initialize(**flags)


def test_one_process_and_no_cluster_start_no_runtime(monkeypatch):
    for name in [k for k in os.environ if k.startswith(("SLURM_", "OMPI_"))]:
        monkeypatch.delenv(name)
    assert processes.initialize() == 1
    assert processes.initialize(num_processes=1) == 1
    assert processes.parse_coordinator("[::1]:1234") == ("[::1]", 1234)


def test_a_slurm_job_is_detected_by_jax(monkeypatch):
    """JAX's own cluster detection reads the Slurm task's environment; a job of one task runs
    as one process, without the runtime."""
    slurm = {"SLURM_JOB_ID": "17", "SLURM_STEP_NODELIST": "node[01-02]", "SLURM_NTASKS": "4",
             "SLURM_PROCID": "1", "SLURM_LOCALID": "1"}
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    assert processes._detected_processes() == 4
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert processes.initialize() == 1


def test_the_command_line_refuses_bad_process_flags(capsys, tmp_path):
    out = str(tmp_path / "never")
    for flags, message in ((["--process-id", "2", "--num-processes", "2", "--coordinator",
                             "localhost:1"], "--process-id: expected 0 <= I"),
                           (["--coordinator", "localhost"], "--coordinator: expected"),
                           (["--workers", "2"], "--workers: only with --seeds")):
        with pytest.raises(SystemExit):
            main(["four-rooms", "--out", out, *flags])
        assert message in capsys.readouterr().err
    assert not os.path.exists(out)
