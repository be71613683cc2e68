"""The one training loop of the experiments: progress bar, metrics, checkpoint, resume.

`train(step, state, record, ...)` applies `step` `steps` times to a pytree `state`. After each
step it appends a metrics row, writes `metrics.csv` and an atomic `checkpoint.npz` (the state's
leaves, the step, the rows, and `record` — everything that changes the numbers: the config,
the floating precision, the JAX version). `resume=True` continues from the checkpoint: a
record that differs in any field but `steps` is refused naming the field, and a damaged
checkpoint gives one line naming the file and the problem. A step whose objective is not finite
stops the run (the checkpoint keeps the last good step).
"""

from __future__ import annotations

import json
import math
import os
import time
import zipfile
from typing import Callable, Optional

import jax
import numpy as np

from optiongrad.experiments import processes
from optiongrad.experiments.io import atomic_write, write_csv

CHECKPOINT = "checkpoint.npz"
METRICS = "metrics.csv"


class TrainingError(RuntimeError):
    """A training step produced a non-finite objective."""


def run_record(config_record: dict) -> dict:
    """`config_record` plus what else changes the numbers: precision and JAX version, as it
    reads back from JSON (tuples become lists), so a record compares equal to its checkpoint."""
    record = {**config_record, "float64": bool(jax.config.jax_enable_x64),
              "jax": jax.__version__}
    return json.loads(json.dumps(record))


def train(step: Callable, state, record: dict, *, steps: int, out_dir: Optional[str] = None,
          resume: bool = False, progress: bool = True, description: str = "training",
          finish_row: Optional[Callable[[dict], dict]] = None, objective: str = "objective",
          postfix: Callable[[dict], dict] = lambda row: {},
          flags: Optional[dict] = None, columns: Optional[tuple] = None,
          optional: tuple = (), place: Callable = lambda state: state):
    r"""Run `state, metrics = step(state)` for steps $\mathrm{start} \dots \mathrm{steps} - 1$.

    Args:
      step: jitted `state -> (state, metrics)`, metrics a dict of scalar arrays.
      state: the initial pytree (also the template a checkpoint is loaded into).
      record: what the checkpoint must match to be resumed (see `run_record`).
      steps: the total number of steps.
      out_dir: where `metrics.csv` and `checkpoint.npz` go (nothing is written when None).
      resume: continue from `out_dir/checkpoint.npz` when it exists.
      progress: show a progress bar.
      description: the progress bar's label.
      finish_row: adds derived columns to a row (e.g. normalised returns).
      objective: the metric that must stay finite.
      postfix: the progress bar's postfix of a row.
      flags: `{record field: command-line flag}`, to name the flag when resuming is refused.
      columns: the metrics columns, in order (each row is checked, and so are the rows of a
        checkpoint).
      optional: the columns a row may leave empty (None: not measured at that step).
      place: how the state (initial, or loaded from the checkpoint) is put on the devices
        before the first step (e.g. `processes.replicate`).

    With several processes (`experiments.processes`) every process calls `train` alike and
    only process 0 passes `out_dir`: it reads the checkpoint, the others receive its step and
    state (`processes.broadcast`), and it alone writes.

    Returns:
      `(state, rows)`: the final state and one metrics row per step (row `t` holds the
      metrics `step` computed at update `t`, and in "seconds" the wall time since the previous
      row, or since the start for the first: the first includes compilation).
    """
    path = None if out_dir is None else os.path.join(out_dir, CHECKPOINT)

    def resumed():
        if not (resume and path is not None and os.path.exists(path)):
            return 0, state, []
        loaded = load_checkpoint(path, record, state, flags, columns, optional)
        if loaded[0] > steps:
            raise ValueError(f"--steps: the checkpoint in {out_dir} already holds "
                             f"{loaded[0]} steps; resume with --steps >= {loaded[0]}")
        return loaded

    # with several processes, process 0 alone reads the checkpoint and hands it to the others
    start, state, rows = processes.first_process(resumed, "resuming") or (0, state, [])
    if jax.process_count() > 1:
        start, state = processes.broadcast((start, state))
        start, state = int(start), jax.tree.map(jax.numpy.asarray, state)
    state = place(state)
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, desc=description, disable=not progress)
    # Step t + 1 is dispatched (JAX runs it asynchronously) before step t's files are written,
    # so the writing overlaps the computation; a row's "seconds" is the wall time from the
    # previous row to this one.
    tic = time.perf_counter()
    pending = step(state) if start < steps else None
    for t in range(start, steps):
        new_state, metrics = pending
        row = {"step": t, **{k: v.item() for k, v in metrics.items()}}
        if finish_row is not None:
            row = finish_row(row)
        problem = _non_finite(row, objective, new_state)
        if problem:
            bar.close()
            kept = (f"the checkpoint keeps the {t} steps before it" if out_dir is not None and t
                    else "nothing was saved")
            raise TrainingError(f"step {t}: {problem}; {kept}; try a smaller learning rate")
        toc = time.perf_counter()
        row["seconds"], tic = toc - tic, toc
        if columns is not None and tuple(row) != tuple(columns):
            raise RuntimeError(f"metrics row has columns {tuple(row)}, expected {columns}")
        state = new_state
        if t + 1 < steps:
            pending = step(state)
        rows.append(row)
        if out_dir is not None:
            save_checkpoint(path, record, t + 1, state, rows)
            write_csv(os.path.join(out_dir, METRICS), rows)
        bar.set_postfix(**postfix(row))
        bar.update()
    bar.close()
    return state, rows


def save_checkpoint(path: str, record: dict, step: int, state, rows: list) -> None:
    """Atomically write the state's leaves, the step, the record and the metrics rows."""
    arrays = {f"leaf_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
    arrays["step"] = np.asarray(step)
    arrays["record"] = np.asarray(json.dumps(record, sort_keys=True))
    arrays["metrics"] = np.asarray(json.dumps(rows))
    atomic_write(path, lambda f: np.savez(f, **arrays), binary=True)


def load_checkpoint(path: str, record: dict, template, flags: Optional[dict] = None,
                    columns: Optional[tuple] = None, optional: tuple = ()):
    """`(step, state, rows)` from a checkpoint made with the same `record` (but `steps`);
    `flags` names the command-line flag of a record field in the refusal; `columns` are the
    metrics columns every row must have, `optional` those it may leave empty."""
    leaves, treedef = jax.tree.flatten(template)
    damaged = (OSError, ValueError, KeyError, EOFError, TypeError, AttributeError,
               zipfile.BadZipFile, json.JSONDecodeError)
    try:
        with np.load(path) as data:
            saved = json.loads(str(data["record"]))
            if not isinstance(saved, dict):
                raise ValueError("its record is not a dictionary")
            different = sorted(k for k in set(saved) | set(record)
                               if k != "steps" and saved.get(k) != record.get(k))
            if not different:
                if data["step"].shape != () or data["step"].dtype.kind not in "iu":
                    raise ValueError("its step is not an integer")
                step = int(data["step"])
                rows = _check_rows(json.loads(str(data["metrics"])), columns, optional)
                loaded = [np.asarray(data[f"leaf_{i}"]) for i in range(len(leaves))]
                extra = sum(name.startswith("leaf_") for name in data.files) != len(leaves)
    except damaged as err:
        raise ValueError(f"--resume: the checkpoint {path} is damaged or not a checkpoint "
                         f"({type(err).__name__}: {err})") from None
    if different:
        name = different[0]
        if name == "float64":
            def precision(x64):
                return "float64" if x64 else "float32 (--float32)"

            raise ValueError(f"--resume: the checkpoint {path} was computed in "
                             f"{precision(saved.get(name))}, this run in "
                             f"{precision(record.get(name))}; resume with the same precision "
                             "or pass --force to start over")
        flag = (flags or {}).get(name)
        field = f"{name} ({flag})" if flag else name
        raise ValueError(f"--resume: the checkpoint {path} was made with {field} = "
                         f"{saved.get(name)!r}, this run has {record.get(name)!r}; resume "
                         "with the same settings or pass --force to start over")
    for i, (old, new) in enumerate(zip(loaded, leaves)):
        if old.dtype.kind in "fc" and not np.all(np.isfinite(old)):
            raise ValueError(f"--resume: the checkpoint {path} is damaged (array {i} holds "
                             "non-finite values)")
        if old.shape != np.shape(new) or old.dtype != np.asarray(new).dtype:
            raise ValueError(f"--resume: the checkpoint {path} holds array {i} as {old.dtype}"
                             f"{list(old.shape)}, this run needs {np.asarray(new).dtype}"
                             f"{list(np.shape(new))}")
    if extra or not 0 <= step <= len(rows) or len(rows) != step:
        raise ValueError(f"--resume: the checkpoint {path} is inconsistent (step {step}, "
                         f"{len(rows)} metrics rows)")
    return step, jax.tree.unflatten(treedef, [jax.numpy.asarray(x) for x in loaded]), rows


def _non_finite(row: dict, objective: str, state) -> Optional[str]:
    """What is not finite after a step — the objective, or the new parameters — or None."""
    if not np.isfinite(row[objective]):
        return (f"the {objective} is {row[objective]} (a planner failed or the updates "
                "diverged)")
    if not all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(state)
               if np.issubdtype(np.asarray(x).dtype, np.inexact)):
        return (f"the update produced non-finite parameters (the gradient norm is "
                f"{row.get('grad_norm', 'unknown')})")
    return None


def _check_rows(rows, columns: Optional[tuple], optional: tuple = ()) -> list:
    """The metrics rows of a checkpoint: a list of dicts with the same columns (`columns` when
    given), numbers or bools as values (None in the `optional` columns), and steps 0, 1, …"""
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError("its metrics are not a list of rows")
    expected = tuple(columns) if columns is not None else (tuple(rows[0]) if rows else ())
    for i, row in enumerate(rows):
        if tuple(row) != expected:
            raise ValueError(f"its metrics row {i} has columns {tuple(row)}, expected "
                             f"{expected}")
        for name, value in row.items():
            if not (value is None and name in optional or _plausible(name, value, i)):
                raise ValueError(f"its metrics row {i} has {name} = {value!r:.40}")
    return rows


def _plausible(name: str, value, step: int) -> bool:
    """A metrics value as the loop writes it: the step index, a bool for a convergence flag,
    a non-negative count or time, a finite number otherwise."""
    if name == "step":
        return type(value) is int and value == step
    if name.endswith("converged"):
        return type(value) is bool
    if type(value) not in (int, float) or abs(value) > 1e300 or not math.isfinite(value):
        return False
    if name == "seconds" or name.endswith("iterations"):
        return value >= 0 and (name == "seconds" or float(value).is_integer())
    return True
