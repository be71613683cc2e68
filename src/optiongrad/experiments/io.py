"""Writing experiment outputs: CSV metrics, JSON results (atomically, so an interrupted run
never leaves a half-written file)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from typing import Iterable, Mapping

import numpy as np


def _to_builtin(value):
    if isinstance(value, dict):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    if isinstance(value, (np.generic, np.ndarray)) or hasattr(value, "__array__"):
        arr = np.asarray(value)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    return value


def atomic_write(path: str, write, binary: bool = False) -> None:
    """Call `write(file)` on a temporary file next to `path` (opened in binary mode when
    `binary`), then rename it into place."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="") as f:
            write(f)
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
