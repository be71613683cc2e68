"""Experiment outputs: atomic writes with the user's permissions, and the output directory's
integrity (a writable directory; a finished or unfinished run is never overwritten unless the
user asks)."""

from __future__ import annotations

import csv
import json
import os
import fcntl
import shutil
import sys
import tempfile
from typing import Iterable, Mapping, Sequence

import numpy as np

LOCK = ".lock"


def _to_builtin(value):
    if isinstance(value, dict):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    return value


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str, write, binary: bool = False) -> None:
    r"""Call `write(file)` on a temporary file next to `path` (binary mode when `binary`), then
    rename it into place, with the permissions a plain `open` would give (`0o666 & ~umask`)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: str, data) -> None:
    """Write `data` as indented JSON (numpy/JAX values as lists), atomically."""
    atomic_write(path, lambda f: json.dump(_to_builtin(data), f, indent=2))


def write_csv(path: str, rows: Iterable[Mapping]) -> None:
    """Write `rows` (dicts with the same keys) as CSV with a header, atomically."""
    rows = [_to_builtin(dict(r)) for r in rows]
    fields = list(rows[0]) if rows else []

    def write(f):
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)

    atomic_write(path, write)


class RunLock:
    """An exclusive `flock` on `out_dir/.lock`, held while a run writes there, so that two runs
    cannot share an output directory. Released by `release()` (or when the process ends)."""

    def __init__(self, out_dir: str):
        self.path = os.path.join(out_dir, LOCK)
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise ValueError(f"--out: {out_dir} is in use by another run; wait for it or choose "
                             "another --out") from None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def save_figure(fig, path: str, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically, with the user's permissions."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi), binary=True)


def prepare_output(out_dir: str, *, finished: str, unfinished: Sequence[str] = (),
                   outputs: Sequence[str] = (), resume: bool = False,
                   force: bool = False) -> RunLock:
    """Check `out_dir` before any work, make it ready and lock it (use the returned `RunLock`
    as a context manager around the run).

    * it must be a directory that can be created and written (`ValueError` naming `--out`),
      and no other run may be using it;
    * if it holds a finished run (`finished`, e.g. results.json) or an unfinished one (any of
      `unfinished`, e.g. checkpoint.npz), it is refused unless `resume` (continue it from its
      checkpoint, which must then exist) or `force` (start over: the files `outputs` of the
      old run are deleted first). Experiments with nothing to resume pass no `unfinished`.
    """
    if resume and force:
        raise ValueError("--force: conflicts with --resume (continue the run, or start over)")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out: {out_dir} exists and is not a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        raise ValueError(f"--out: cannot write to {out_dir} ({err.strerror or err})") from None
    lock = RunLock(out_dir)
    try:
        _check_previous_run(out_dir, finished, unfinished, outputs, resume, force)
    except BaseException:
        lock.release()
        raise
    return lock


def _check_previous_run(out_dir, finished, unfinished, outputs, resume, force) -> None:
    present = [name for name in (finished, *unfinished)
               if os.path.exists(os.path.join(out_dir, name))]
    checkpoints = [name for name in unfinished if name in present]
    if resume:
        if finished in present and not checkpoints:
            raise ValueError(f"--resume: {out_dir} holds a finished run ({finished}) but no "
                             "checkpoint to continue; pass --force to start over")
        if not present:
            print(f"note: no checkpoint in {out_dir}; starting a new run", file=sys.stderr)
        return
    if not present:
        return
    if force:
        for name in outputs:
            path = os.path.join(out_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.unlink(path)
        return
    if finished in present:
        resume_hint = ", --resume to continue it" if unfinished else ""
        raise ValueError(f"--out: {out_dir} holds a finished run ({finished}); pass --force to "
                         f"overwrite it{resume_hint}, or choose another --out")
    raise ValueError(f"--out: {out_dir} holds an unfinished run ({present[0]}); pass --resume "
                     "to continue it, --force to start over, or choose another --out")
