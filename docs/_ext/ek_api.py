"""Generate the API reference pages from each public module's ``__all__``.

One page per public module under ``generated/api/``. Every object is documented
once, at the first public module (in reading order, ``emotionkit`` first) whose
``__all__`` names it; a module that re-exports it lists a link instead. A
``missing-reference`` hook resolves the other spellings (``emotionkit.recognizer.EmotionRecognizer``
and ``emotionkit.EmotionRecognizer`` are the same class), so docstrings can use either.

A module that does not exist yet is skipped with an info line; a module that
exists but fails to import is a warning (an error under ``-W``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The public modules, in reading order. Packages without ``__all__`` contribute their public submodules.
PUBLIC_MODULES = [
    "emotionkit",
    "emotionkit.recognizer",
    "emotionkit.inference",
    "emotionkit.heads",
    "emotionkit.photos",
    "emotionkit.pretrained",
    "emotionkit.types",
    "emotionkit.exceptions",
    "emotionkit.io",
    "emotionkit.preprocessing",
    "emotionkit.registry",
    "emotionkit.interfaces",
    "emotionkit.weights",
    "emotionkit.saved_model",
    "emotionkit.devices",
    "emotionkit.detectors",
    "emotionkit.backbones",
    "emotionkit.explainers",
    "emotionkit.data",
    "emotionkit.training",
    "emotionkit.video",
    "emotionkit.keras",
    "emotionkit.export",
    "emotionkit.onnx_graph",
    "emotionkit.batch",
    "emotionkit.distributed",
    "emotionkit.fusion",
    "emotionkit.testing",
]
#: Never documented as API (the command line has its own page).
EXCLUDED = ("emotionkit.cli", "emotionkit.commands", "emotionkit.__main__")


@dataclass
class Page:
    module: str
    title: str
    documented: list[tuple[str, str]] = field(default_factory=list)  # (name, directive)
    reexported: list[tuple[str, str]] = field(default_factory=list)  # (name, documented full name)
    submodules: list[str] = field(default_factory=list)


def _exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _public_submodules(module: Any) -> list[str]:
    path = getattr(module, "__path__", None)
    if path is None:
        return []
    out = []
    for info in pkgutil.iter_modules(path):
        full = f"{module.__name__}.{info.name}"
        if info.name.startswith("_") or full.startswith(EXCLUDED):
            continue
        out.append(full)
    return sorted(out)


def _directive(obj: Any) -> str:
    if inspect.isclass(obj):
        return "autoexception" if issubclass(obj, BaseException) else "autoclass"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj):
        return "autofunction"
    if callable(obj) and hasattr(obj, "__wrapped__"):
        return "autofunction"
    return "autodata"


def _key(obj: Any, module: str, name: str) -> tuple[Any, ...]:
    """Identity of an object across re-exports (data by name and identity: equal strings are not re-exports)."""
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return ("obj", id(obj))
    return ("data", name, id(obj))


def _assigns(module: Any, attr: str) -> bool:
    """Whether ``module``'s source assigns ``attr`` at top level (where autodoc finds its ``#:`` comment)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return False
    for node in tree.body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == attr for t in targets):
            return True
    return False


def collect(mocked: list[str] | tuple[str, ...] = ()) -> tuple[list[Page], dict[str, str]]:
    """Walk the public modules; return the pages and a map of alternative names to documented names.

    Modules are imported with ``mocked`` optional dependencies mocked, as autodoc will import them.
    A class or function is documented at the first module exporting it; a constant at the module
    that assigns it (where its ``#:`` comment is), when that module is public.
    """
    from sphinx.ext.autodoc.mock import mock

    walked: list[tuple[Page, Any, list[tuple[str, Any]]]] = []
    queue = list(PUBLIC_MODULES)
    seen: set[str] = set()
    while queue:
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        if not _exists(name):
            logger.info(f"[ek_api] {name} does not exist (yet); no API page for it")
            continue
        try:
            with mock(list(mocked)):
                module = importlib.import_module(name)
        except Exception as exc:  # a real error in a module that exists
            logger.warning(f"[ek_api] cannot import {name}: {type(exc).__name__}: {exc}")
            continue
        members = []
        for attr in getattr(module, "__all__", []):
            if attr.startswith("__"):
                continue
            try:
                members.append((attr, getattr(module, attr)))
            except AttributeError as exc:
                logger.warning(f"[ek_api] {name}.__all__ names {attr!r}, which does not exist: {exc}")
        subs = _public_submodules(module)
        page = Page(name, name, submodules=[s for s in subs if _exists(s)])
        walked.append((page, module, members))
        # Submodules come right after their package, before the next listed module.
        queue[0:0] = [s for s in subs if s not in seen]

    home: dict[tuple[Any, ...], str] = {}
    for page, module, members in walked:  # constants: their assigning module first
        for attr, obj in members:
            key = _key(obj, page.module, attr)
            if key[0] == "data" and key not in home and _assigns(module, attr):
                home[key] = f"{page.module}.{attr}"
    aliases: dict[str, str] = {}
    for page, _module, members in walked:
        for attr, obj in members:
            key = _key(obj, page.module, attr)
            full = f"{page.module}.{attr}"
            home.setdefault(key, full)
            if home[key] != full:
                page.reexported.append((attr, home[key]))
                aliases[full] = home[key]
                continue
            page.documented.append((attr, _directive(obj)))
            defined = getattr(obj, "__module__", None)
            qual = getattr(obj, "__qualname__", None)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and defined and qual and f"{defined}.{qual}" != full:
                aliases[f"{defined}.{qual}"] = full
    return [page for page, _, _ in walked], aliases


def _rst(page: Page) -> str:
    title = f"``{page.module}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {page.module}", "   :no-members:", ""]
    lines += [f".. currentmodule:: {page.module}", ""]
    if page.documented:
        lines += [".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   {attr}" for attr, _ in page.documented]
        lines.append("")
    if page.reexported:
        lines += ["Also available here (documented at the linked name):", ""]
        lines += [f"- ``{page.module}.{attr}``: :obj:`{target}`" for attr, target in page.reexported]
        lines.append("")
    if page.submodules:
        lines += ["Submodules:", ""]
        lines += [f"- :doc:`{s}`" for s in page.submodules]
        lines.append("")
    for attr, directive in page.documented:
        lines.append(f".. {directive}:: {attr}")
        if directive in ("autoclass", "autoexception"):
            lines += ["   :members:", "   :show-inheritance:"]
        lines.append("")
    return "\n".join(lines)


def generate(app: Any) -> None:
    """``builder-inited``: write ``generated/api/<module>.rst`` and ``generated/api/index.rst``."""
    out = Path(app.srcdir) / "generated" / "api"
    out.mkdir(parents=True, exist_ok=True)
    pages, aliases = collect(app.config.autodoc_mock_imports)
    app.env.ek_api_aliases = aliases
    wanted = {f"{p.module}.rst" for p in pages} | {"index.rst"}
    for stale in out.glob("*.rst"):
        if stale.name not in wanted:
            stale.unlink()
    for page in pages:
        _write_if_changed(out / f"{page.module}.rst", _rst(page))
    index = ["API reference", "=============", "", ".. toctree::", "   :maxdepth: 1", ""]
    index += [f"   {p.module}" for p in pages]
    index.append("")
    _write_if_changed(out / "index.rst", "\n".join(index))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def resolve_alias(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """``missing-reference``: retry a Python reference under the name its object is documented as."""
    if node.get("refdomain") != "py":
        return None
    aliases: dict[str, str] = getattr(env, "ek_api_aliases", {})
    target = node.get("reftarget", "")
    candidates = [target]
    module, cls = node.get("py:module"), node.get("py:class")
    if module and cls:
        candidates.append(f"{module}.{cls}.{target}")
    if module:
        candidates.append(f"{module}.{target}")
    domain = env.get_domain("py")
    for candidate in candidates:
        parts = candidate.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in aliases:
                new = ".".join([aliases[prefix], *parts[cut:]])
                found = domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"], new, node, contnode)
                if found is not None:
                    return found
                break
    return None


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    app.connect("missing-reference", resolve_alias)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
