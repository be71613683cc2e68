"""The public surface: every name the docs show imports, the namespace fits on a screen, no
module imports one that imports it back, and optiongrad 0.1's spellings still work (with a
DeprecationWarning naming the new one)."""

import ast
import os
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import optiongrad as og

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src", "optiongrad")
PAGES = ["README.md"] + [os.path.join("docs", f) for f in sorted(os.listdir(
    os.path.join(ROOT, "docs"))) if f.endswith(".md")] + [
    os.path.join("docs", "api", f) for f in sorted(os.listdir(os.path.join(ROOT, "docs", "api")))]


def _resolve(path: str):
    obj = og
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def test_every_public_name_the_docs_show_imports():
    shown = set()
    for page in PAGES:
        with open(os.path.join(ROOT, page), encoding="utf-8") as f:
            text = f.read()
        shown |= {m.group(1) for m in re.finditer(r"\bog\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)",
                                                  text)}
        shown |= {m.group(1) for m in re.finditer(
            r"(?:::: |\]\[)optiongrad\.([A-Za-z]\w*(?:\.\w+)*)", text)
            if not m.group(1).startswith(("experiments", "cli", "_src"))}
    assert len(shown) > 60
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)   # the docs use no old spelling
        missing = []
        for name in sorted(shown):
            try:
                _resolve(name)
            except AttributeError:
                missing.append(name)
    assert not missing


def test_the_namespace_fits_on_one_screen():
    names = [n for n in dir(og) if not n.startswith("_")]
    assert set(names) == set(og.__all__)
    assert len(names) <= 70
    for name in og.__all__:
        assert getattr(og, name) is not None
    assert "options" not in dir(og) and "planning" not in dir(og)


def _imports(path: str, package: str) -> set[str]:
    tree = ast.parse(open(path, encoding="utf-8").read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("optiongrad"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("optiongrad")}
    return found


def test_no_module_imports_one_that_imports_it_back():
    modules = {}
    for directory, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(directory, f), os.path.dirname(SRC))
                name = rel[:-3].replace(os.sep, ".").removesuffix(".__init__")
                modules[name] = os.path.join(directory, f)
    graph = {m: {i for i in _imports(p, m) if i in modules and i != m}
             for m, p in modules.items()}
    graph = {m: deps - {"optiongrad"} if m != "optiongrad" else deps
             for m, deps in graph.items()}
    # `import optiongrad as og` inside a sub-module needs the package, which imports everything:
    # allowed only for the experiments and the CLI, which nothing in the library imports.
    for m, deps in graph.items():
        if m.startswith("optiongrad._src"):
            assert not any(d.startswith(("optiongrad.experiments", "optiongrad.cli"))
                           for d in deps), m
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for d in graph[m]:
            if state.get(d) == "open":
                raise AssertionError(" -> ".join(stack + [m, d]))
            if d not in state:
                visit(d, stack + [m])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [])


def test_optiongrad_0_1_module_paths_still_work_and_warn():
    with pytest.warns(DeprecationWarning, match="optiongrad.options"):
        from optiongrad.options import option_models
    assert option_models is og.option_models
    with pytest.warns(DeprecationWarning):
        assert og.planning.soft_value_iteration is og.soft_value_iteration
    with pytest.warns(DeprecationWarning):
        from optiongrad.goal_tasks import goal_task
    assert goal_task is og.goal_task
    with pytest.warns(DeprecationWarning):
        from optiongrad.implicit import FixedPointResult
    assert FixedPointResult is og.FixedPointResult
    with pytest.raises(AttributeError):
        og.no_such_name


def test_optiongrad_0_1_keywords_still_work_and_warn():
    grid = og.gridworld.four_rooms()
    env = og.gridworld.navigation_mdp(grid, 0.9)
    options = og.with_primitives(og.gridworld.hallway_options(grid))
    task = og.gridworld.goal_task(grid, 10, 0.9)
    rewards, transitions = og.option_models(task, options)
    new = og.smdp_value_iteration(rewards, transitions, 0.1, initiation=options.initiation)
    with pytest.warns(DeprecationWarning) as record:
        old = og.smdp_value_iteration(reward=rewards, transition=transitions, temperature=0.1,
                                      initiation=options.initiation)
    assert {"reward=", "transition="} <= {m for w in record for m in ("reward=", "transition=")
                                          if m in str(w.message)}
    np.testing.assert_array_equal(new.q, old.q)
    with pytest.warns(DeprecationWarning, match="environment="):
        m = og.goal_option_models(environment=env, options=options, goals=jnp.arange(3))
    np.testing.assert_array_equal(m[0], og.goal_option_models(env, options, jnp.arange(3))[0])
    with pytest.warns(DeprecationWarning, match="task="):
        og.hierarchical_return(options=og.gridworld.hallway_options(grid), task=task,
                               planner=og.ExtrinsicPlanner())
    with pytest.warns(DeprecationWarning, match="adjoint_rtol"):
        og.soft_value_iteration(task, 0.1, adjoint_rtol=1e-8)
    with pytest.raises(ValueError, match="reward"):
        og.smdp_value_iteration(rewards=rewards, reward=rewards, transitions=transitions,
                                temperature=0.1)
    # DESIGN.md's keywords are not deprecated
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        og.soft_value_iteration(task, 0.1, backup="logsumexp", tol=1e-8, max_iter=100_000,
                                differentiation="unrolled", num_sweeps=3)
        og.gridworld.goal_task(grid, 3, 0.9)
        jax.jit(lambda r: og.soft_value_iteration(task.replace(rewards=r), 0.1).q)(task.rewards)
