"""The documentation site builds with warnings as errors, covers the whole public API, and its
tutorial and command-line page are true to the code."""

import argparse
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys

import optiongrad as og
from optiongrad.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def public_modules():
    """Every module a user may import: the namespaces, the CLI and the experiments."""
    names = []
    for info in pkgutil.walk_packages(og.__path__, "optiongrad."):
        if not any(part.startswith("_") for part in info.name.split(".")) and not info.ispkg:
            names.append(info.name)
    return sorted(names)


def rendered():
    """Every identifier rendered by a `::: identifier` line of an API page."""
    found = set()
    for name in os.listdir(os.path.join(DOCS, "api")):
        found |= set(re.findall(r"^::: ([\w.]+)$", read("docs", "api", name), re.M))
    return found


def test_site_builds_with_warnings_as_errors(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         os.path.join(ROOT, "mkdocs.yml"), "--site-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "api" / "planning" / "index.html").read_text(encoding="utf-8")
    assert "soft_value_iteration" in page and "Q_{k+1} = r + γ P m_τ(Q_k)" in page
    assert (tmp_path / "seed-map" / "index.html").exists()
    errors = (tmp_path / "errors" / "index.html").read_text(encoding="utf-8")
    assert "budget_reached" in errors and "throw=True" in errors


def test_every_public_module_is_documented():
    documented = rendered()
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None)
        whole = module_name in documented
        assert whole or (names and all(
            f"{module_name}.{n}" in documented
            or (f"optiongrad.{n}" in documented and getattr(og, n, None) is getattr(module, n))
            for n in names)), module_name


def test_every_top_level_name_is_documented_and_in_the_overview():
    documented, overview = rendered(), read("docs", "api", "index.md")
    for name in og.__all__:
        obj = getattr(og, name)
        if inspect.ismodule(obj):
            assert f"(og.{name})" in overview or f"`og.{name}`" in overview, name
            continue
        homes = [f"optiongrad.{name}"] + [f"optiongrad.{ns}" for ns in ("gym",)
                                          if name in getattr(og, ns).__all__]
        assert any(home in documented for home in homes), name
        assert f"[`{name}`]" in overview, name


def test_every_public_function_and_class_has_a_docstring():
    missing, seen = [], set()
    objects = [(f"og.{n}", getattr(og, n)) for n in og.__all__]
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if not inspect.getdoc(module):
            missing.append(module_name)
        for name, obj in vars(module).items():
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj)) \
                    and getattr(obj, "__module__", "").startswith("optiongrad"):
                objects.append((f"{module_name}.{name}", obj))
    for label, obj in objects:
        if id(obj) in seen or inspect.ismodule(obj):
            continue
        seen.add(id(obj))
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
            missing.append(label)
        if inspect.isclass(obj) and obj.__module__.startswith("optiongrad"):
            missing += [f"{label}.{m}" for m, f in vars(obj).items()
                        if not m.startswith("_") and inspect.isfunction(f) and not f.__doc__]
    assert not missing


def test_tutorial_runs_from_top_to_bottom(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", read("docs", "tutorial.md"), re.S)
    assert len(blocks) >= 10
    script = tmp_path / "tutorial.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MDP(S=3, A=2, dense, discount=0.9, dtype=float64)" in result.stdout
    assert "2 13" in result.stdout


def test_command_line_page_lists_every_flag():
    page = read("docs", "cli.md")
    subparsers = next(a for a in build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    for command, parser in subparsers.choices.items():
        assert f"## `optiongrad {command}`" in page
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert f"`{flag}`" in page, (command, flag)


def test_readme_and_docs_links_point_to_files_that_exist():
    for path in ["README.md"] + [os.path.join("docs", f) for f in os.listdir(DOCS)
                                 if f.endswith(".md")]:
        base = os.path.dirname(os.path.join(ROOT, path))
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", read(path)):
            if "://" not in target:
                assert os.path.exists(os.path.join(base, target)), (path, target)
    readme = read("README.md")
    for page in ("docs/index.md", "docs/tutorial.md", "docs/seed-map.md", "docs/examples.md"):
        assert f"]({page})" in readme, page
