"""Benchmark helpers: timing compiled functions, XLA memory figures, machine description,
and writing a markdown table into the README between markers."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time

import jax
import numpy as np


def machine() -> str:
    """One line describing this machine and the JAX build."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        mem = f"{kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        mem = "? GiB"
    return (f"{cpu}, {os.cpu_count()} cores, {mem} RAM, {platform.system()}, "
            f"Python {platform.python_version()}, JAX {jax.__version__} "
            f"({jax.default_backend().upper()})")


def block(x):
    return jax.tree.map(lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, x)


def time_compiled(fn, *args, repeats: int = 5, min_time: float = 0.2):
    """Compile `fn` (jitted) on `args`; return (compile seconds, median seconds per call, output).

    Each measurement repeats the call until `min_time` has passed and divides, so fast
    functions are not dominated by timer resolution.
    """
    jitted = jax.jit(fn)
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    out = block(compiled(*args))
    samples = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        while True:
            block(compiled(*args))
            n += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        samples.append(elapsed / n)
    return compile_s, statistics.median(samples), out


def peak_memory(fn, *args) -> int:
    """XLA's compile-time memory for `jax.jit(fn)(*args)`, in bytes: temporaries + arguments +
    outputs. (`peak_memory_in_bytes` of the CPU backend misses scan-stacked residuals, so it
    is not used.)"""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    return int(stats.temp_size_in_bytes + stats.argument_size_in_bytes
               + stats.output_size_in_bytes)


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(text: str, readme, name: str) -> None:
    """Print `text` and, if `readme` is given, write it into that README's `name` section."""
    print()
    print(text)
    if readme:
        write_readme_section(readme, name, text)


def write_readme_section(readme: str, name: str, text: str) -> None:
    """Replace the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`."""
    with open(readme) as f:
        content = f.read()
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        raise SystemExit(f"README has no {start} … {end} section")
    content = pattern.sub(lambda _: f"{start}\n{text}\n{end}", content)
    with open(readme, "w") as f:
        f.write(content)


def np_float(x) -> float:
    return float(np.asarray(x))


def csr(mdp):
    """The sparse transitions of `mdp` as a scipy `(S·A) × S` CSR matrix (row `s·A + a`)."""
    import scipy.sparse as sp

    nxt = np.asarray(mdp.transitions.next_states)
    prob = np.asarray(mdp.transitions.probs)
    s, a, b = nxt.shape
    rows = np.repeat(np.arange(s * a), b)
    return sp.csr_matrix((prob.reshape(-1), (rows, nxt.reshape(-1))), shape=(s * a, s))
