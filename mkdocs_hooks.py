"""Build hook of the documentation site: the MathJax renderer goes into the built site.

The pages' and docstrings' equations are written in LaTeX between `$...$` (inline) and `$$...$$`
(display); `pymdownx.arithmatex` marks them up and MathJax typesets them in the browser. MathJax
comes from the `django-static-mathjax` package (a plain copy of MathJax's release files, declared in
the `docs` extra) and is copied into the site's `mathjax/` folder at build time, so the site needs
no network to show its equations and the repository holds no copy of MathJax.
"""

import os
from importlib import resources

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

SITE_FOLDER = "mathjax"
# The combined TeX-input, HTML-output component, the web fonts it loads and the TeX extensions it
# may load on demand (relative to MathJax's es5/ folder).
PARTS = ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions")


def mathjax_release():
    """The folder of the installed MathJax release (its LICENSE and es5/)."""
    try:
        folder = os.path.join(str(resources.files("mathjax")), "static", "mathjax")
    except ModuleNotFoundError:
        folder = None
    if folder is None or not os.path.isfile(os.path.join(folder, "es5", PARTS[0])):
        raise PluginError("MathJax is missing: install the docs extra (pip install '.[docs]')")
    return folder


def renderer_files():
    """(source path, path in the site) of every file of the bundled renderer."""
    release = mathjax_release()
    es5 = os.path.join(release, "es5")
    found = [(os.path.join(release, "LICENSE"), f"{SITE_FOLDER}/LICENSE")]
    for part in PARTS:
        path = os.path.join(es5, part)
        if os.path.isfile(path):
            found.append((path, f"{SITE_FOLDER}/{part}"))
            continue
        for folder, _, names in os.walk(path):
            for name in sorted(names):
                source = os.path.join(folder, name)
                found.append((source, f"{SITE_FOLDER}/{os.path.relpath(source, es5)}"))
    return found


def on_files(files, config):
    for source, dest in renderer_files():
        files.append(File.generated(config, dest, abs_src_path=source))
    return files
