"""The documentation site builds with warnings as errors, covers the whole public API, typesets
its equations with the renderer it bundles, and its tutorial and command-line page are true to
the code."""

import argparse
import ast
import html
import importlib
import inspect
import json
import os
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

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


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once per module with warnings as errors."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         os.path.join(ROOT, "mkdocs.yml"), "--site-dir", str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return out


def pages(site):
    return sorted(p for p in site.rglob("*.html") if p.name != "404.html")


def test_site_builds_with_warnings_as_errors(site):
    page = (site / "api" / "planning" / "index.html").read_text(encoding="utf-8")
    assert "soft_value_iteration" in page
    assert '<span class="arithmatex">\\(Q_{k+1} = r + \\gamma P m_\\tau(Q_k)\\)</span>' in page
    assert (site / "seed-map" / "index.html").exists()
    errors = (site / "errors" / "index.html").read_text(encoding="utf-8")
    assert "budget_reached" in errors and "throw=True" in errors


# An equation written as code: symbols of the notation (Greek letters, Σ, ∂, ‖, ≤, ᵀ, the minus
# sign −, ·, …) together with a relation or an operator (=, ≤, ←, ↦, Σ, ∂, a superscript), or
# TeX-style scripts `_{…}` / `^{…}`. Names, calls and shapes (`og.plan_adjoint(mdp, τ, …)`,
# `(S, A)`) are not equations.
NOTATION = set("αβγδεζηθκλμνξπρστφχψωΓΔΘΛΞΠΣΦΨΩ∑∂∇‖≤≥∈∉⊆ᵀ⁻−·×↦≡≈⊙∞ḡ\u0302\u0304")
RELATION = re.compile(r"=|≤|≥|←|↦|[Σ∑∂]|[\w)*]\^")


def equation_in_code(text):
    return (any(c in NOTATION for c in text) and RELATION.search(text) is not None
            or re.search(r"[_^]\{", text) is not None)


def code_elements(page):
    """The text of each inline code span and of each code block that is not highlighted source."""
    for match in re.finditer(r"<pre[^>]*>(.*?)</pre>|<code[^>]*>(.*?)</code>", page, re.S):
        block, inline = match.groups()
        if block is not None and re.search(r'class="[^"]*language-(?!output)', block):
            continue    # python, bash: comments in source code may use any notation
        yield html.unescape(re.sub(r"<[^>]+>", "", block if block is not None else inline))


def test_no_equation_is_left_in_code(site):
    found = [(p.relative_to(site).as_posix(), text.strip()[:80]) for p in pages(site)
             for text in code_elements(p.read_text(encoding="utf-8")) if equation_in_code(text)]
    assert not found, found


def test_equations_are_marked_up_for_the_bundled_renderer(site):
    """Each page's equations are arithmatex markup, and the page loads MathJax from the site."""
    with_math = 0
    for path in pages(site):
        page = path.read_text(encoding="utf-8")
        math = re.findall(r'<(span|div) class="arithmatex">(.*?)</\1>', page, re.S)
        # prose, once code, scripts and the marked-up math are removed, has no TeX left over
        prose = re.sub(r'<script.*?</script>|<pre.*?</pre>|<code.*?</code>'
                       r'|<(span|div) class="arithmatex">.*?</\1>', "", page, flags=re.S)
        assert not re.search(r"\\(?:[a-zA-Z]{2,}|\(|\[)|\$\$?[^$\s<][^$<]*\$", prose), path
        if not math:
            continue
        with_math += 1
        for tag, tex in math:
            inline = tex.startswith("\\(") and tex.endswith("\\)")
            display = tex.startswith("\\[") and tex.endswith("\\]")
            assert (inline if tag == "span" else display), (path, tex[:80])
        scripts = [src for src in re.findall(r'<script[^>]* src="([^"]+)"', page)
                   if "mathjax" in src]
        assert [os.path.basename(s) for s in scripts] == ["mathjax-config.js", "tex-chtml.js"], path
        for src in scripts:
            assert "://" not in src, (path, src)    # bundled: nothing from the network
            assert (path.parent / src).resolve().is_file(), (path, src)
    assert with_math >= 15
    for name in ("DESIGN", "seed-map", "tutorial", os.path.join("api", "planning"),
                 os.path.join("api", "options"), os.path.join("api", "intrinsic")):
        assert 'class="arithmatex"' in (site / name / "index.html").read_text(encoding="utf-8")


def test_renderer_files_are_in_the_site(site):
    """MathJax's component, the web fonts it loads and its TeX extensions are copied in."""
    mathjax = site / "mathjax"
    component = (mathjax / "tex-chtml.js").read_text(encoding="utf-8")
    assert "woff-v2" in component and (mathjax / "LICENSE").is_file()
    fonts = {p.name for p in (mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff")}
    assert {"MathJax_Main-Regular.woff", "MathJax_Math-Italic.woff", "MathJax_AMS-Regular.woff",
            "MathJax_Size1-Regular.woff"} <= fonts and len(fonts) >= 20
    assert any((mathjax / "input" / "tex" / "extensions").glob("*.js"))
    config = (site / "js" / "mathjax-config.js").read_text(encoding="utf-8")
    assert "arithmatex" in config


def test_docstrings_with_tex_are_raw_strings():
    """A docstring's TeX must reach help() and the site unchanged: `\\tau` in a plain string is a
    tab and `au`."""
    wrong = []
    for path in pathlib.Path(ROOT, "src").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "$" in node.value:
                raw = ast.get_source_segment(source, node).lstrip()[:1] in "rR"
                if not raw and re.search(r"[\\\a\b\f\v]", node.value):
                    wrong.append(f"{path.name}:{node.lineno}")
    assert not wrong, wrong


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


# Runs code blocks in order in one namespace and prints, as JSON, what each one printed.
RUN_BLOCKS = """
import contextlib, io, json, sys
blocks, printed, namespace = json.load(open(sys.argv[1])), [], {"__name__": "__main__"}
for number, block in enumerate(blocks):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(block, f"tutorial block {number + 1}", "exec"), namespace)
    printed.append(out.getvalue())
print(json.dumps(printed))
"""


def test_tutorial_prints_what_the_page_shows(tmp_path):
    """The tutorial's code blocks run in order as one script, and what each block prints is the
    ```output block that follows it on the page (a block without one prints nothing)."""
    page = read("docs", "tutorial.md")
    pairs = re.findall(r"```python\n(.*?)```\n(?:\n```output\n(.*?)```\n)?", page, re.S)
    assert len(pairs) >= 10
    assert page.count("```output") == sum(1 for _, shown in pairs if shown)
    (tmp_path / "blocks.json").write_text(json.dumps([code for code, _ in pairs]), encoding="utf-8")
    (tmp_path / "run.py").write_text(RUN_BLOCKS, encoding="utf-8")
    result = subprocess.run([sys.executable, "run.py", "blocks.json"], capture_output=True,
                            text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    for number, ((code, shown), out) in enumerate(zip(pairs, printed), 1):
        assert out == shown, f"tutorial block {number} printed\n{out}\nthe page shows\n{shown}"


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
