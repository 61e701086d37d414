"""Sphinx configuration of the emotionkit documentation.

Build (warnings are errors; no network)::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

Everything under ``docs/generated/`` is written at build time and ignored by git:
the API pages (``_ext/ek_api.py``), the model zoo table from the bundled model
cards (``_ext/ek_zoo.py``), the command-line reference (``_ext/ek_cli.py``) and
the figures drawn by the example scripts in ``examples/`` (``_ext/ek_figures.py``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(DOCS / "_ext"))
if importlib.util.find_spec("emotionkit") is None:  # building from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("EMOTIONKIT_DATA", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KERAS_HOME", str(DOCS / "_build" / "keras-home"))

import emotionkit  # noqa: E402

project = "emotionkit"
author = "emotionkit developers"
copyright = "emotionkit developers, MIT licence"
release = emotionkit.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
    "ek_api",
    "ek_cli",
    "ek_zoo",
    "ek_figures",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "generated/*.md"]
templates_path: list[str] = []

# No network: no intersphinx, no remote images.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}

# -- autodoc / autosummary / napoleon ------------------------------------------------------------
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = False  # True trips Sphinx 9 on some signatures ("pop from empty list")
autodoc_class_signature = "mixed"
autosummary_generate = False  # pages come from ek_api, one object documented once
autosummary_imported_members = True
# Optional dependencies are mocked only where they are missing, so their modules still document.
# EMOTIONKIT_DOCS_MOCK=keras,av mocks installed ones too (to check a build as CI, which lacks them, does it).
_OPTIONAL = ("keras", "jax", "tensorflow", "onnxruntime", "av")
_FORCED = [name for name in os.environ.get("EMOTIONKIT_DOCS_MOCK", "").split(",") if name in _OPTIONAL]
autodoc_mock_imports = sorted({*_FORCED, *(name for name in _OPTIONAL if importlib.util.find_spec(name) is None)})

napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_include_init_with_doc = False

# -- MyST -----------------------------------------------------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"emotionkit {release}"
html_static_path: list[str] = []
html_theme_options = {"navigation_with_keys": True}
