"""Entry-point plugin registry for backbones, detectors and explainers.

Listing reads entry-point *names* only and imports nothing (cached; see
:func:`refresh`). A plugin is imported on first use. A plugin whose import
fails is reported with its distribution's name and never breaks
``import emotionkit`` or the other plugins. Two distributions registering the
same name trigger a warning naming both; emotionkit's own built-ins win, then
the first distribution found.
"""

from __future__ import annotations

import functools
import threading
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from .exceptions import PluginLoadError, UnknownPluginError, suggest
from .interfaces import BackboneSpec, DetectorSpec, ExplainerSpec

__all__ = ["PluginInfo", "Kind", "GROUPS", "list_plugins", "load_plugin", "register", "refresh"]

#: The kinds of plugin, one entry-point group each (see :data:`GROUPS`).
Kind = Literal["backbones", "detectors", "explainers"]

#: Entry-point group of each kind of plugin.
GROUPS: dict[str, str] = {
    "backbones": "emotionkit.backbones",
    "detectors": "emotionkit.detectors",
    "explainers": "emotionkit.explainers",
}
_SPEC_TYPES: dict[str, Any] = {"backbones": BackboneSpec, "detectors": DetectorSpec, "explainers": ExplainerSpec}
_HOME = "emotionkit"


@dataclass(frozen=True)
class PluginInfo:
    """What is known about a plugin before it is imported.

    Parameters
    ----------
    name : str
        The registered name.
    kind : str
        ``"backbones"``, ``"detectors"`` or ``"explainers"``.
    value : str
        The entry point's ``module:attribute`` target.
    distribution : str
        The distribution that registered it (``"<runtime>"`` for :func:`register`).
    """

    name: str
    kind: str
    value: str
    distribution: str


_lock = threading.RLock()
_loaded: dict[tuple[str, str], Any] = {}
_runtime: dict[str, dict[str, Any]] = {kind: {} for kind in GROUPS}
_warned: set[str] = set()


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "<unknown distribution>"


@functools.cache
def _discover(kind: str) -> tuple[dict[str, tuple[PluginInfo, EntryPoint | None]], tuple[str, ...]]:
    found: dict[str, tuple[PluginInfo, EntryPoint | None]] = {}
    clashes: list[str] = []
    eps = sorted(entry_points(group=GROUPS[kind]), key=lambda ep: (_dist_name(ep) != _HOME, _dist_name(ep)))
    for ep in eps:
        info = PluginInfo(ep.name, kind, ep.value, _dist_name(ep))
        if ep.name in found:
            kept = found[ep.name][0]
            if kept.distribution == info.distribution and kept.value == info.value:
                continue  # the same distribution seen twice on sys.path
            clashes.append(
                f"{kind[:-1]} plugin name {ep.name!r} is registered by both {kept.distribution!r} ({kept.value}) "
                f"and {info.distribution!r} ({info.value}); using the one from {kept.distribution!r}. "
                f"Rename one of them in its entry points."
            )
            continue
        found[ep.name] = (info, ep)
    return found, tuple(clashes)


def _check_kind(kind: str) -> None:
    if kind not in GROUPS:
        raise UnknownPluginError(f"Unknown plugin kind {kind!r}. Allowed: {', '.join(GROUPS)}.{suggest(kind, GROUPS)}")


def list_plugins(kind: Kind) -> dict[str, PluginInfo]:
    """List the registered plugins of one kind without importing any of them.

    Parameters
    ----------
    kind : {"backbones", "detectors", "explainers"}
        Which group to list.

    Returns
    -------
    dict of str to PluginInfo
        Sorted by name.

    Warns
    -----
    UserWarning
        When two distributions register the same name (once per discovery).

    Examples
    --------
    >>> from emotionkit.registry import list_plugins
    >>> sorted(list_plugins("backbones"))[:5]
    ['cnn', 'efficientnet', 'mobilenetv2', 'resnet', 'vit']
    >>> list_plugins("backbones")["cnn"].distribution
    'emotionkit'
    """
    _check_kind(kind)
    found, clashes = _discover(kind)
    if kind not in _warned:
        _warned.add(kind)
        for message in clashes:
            warnings.warn(message, UserWarning, stacklevel=2)
    out = {name: info for name, (info, _) in found.items()}
    for name, obj in _runtime[kind].items():
        out[name] = PluginInfo(name, kind, f"{type(obj).__module__}:{getattr(obj, 'name', name)}", "<runtime>")
    return dict(sorted(out.items()))


def load_plugin(kind: Kind, name: str) -> Any:
    """Import (once) and return the spec registered under ``name``.

    Parameters
    ----------
    kind : {"backbones", "detectors", "explainers"}
        Which group.
    name : str
        The registered name.

    Returns
    -------
    BackboneSpec or DetectorSpec or ExplainerSpec

    Raises
    ------
    UnknownPluginError
        No plugin of that name; the message lists the available ones and the closest match.
    PluginLoadError
        The plugin failed to import or is not a spec; the message names its distribution.
    """
    plugins = list_plugins(kind)
    if name in _runtime.get(kind, {}):
        return _runtime[kind][name]
    if name not in plugins:
        raise UnknownPluginError(
            f"Unknown {kind[:-1]} {name!r}. Available: {', '.join(plugins) or '(none)'}.{suggest(name, plugins)}"
        )
    with _lock:
        key = (kind, name)
        if key in _loaded:
            return _loaded[key]
        info, ep = _discover(kind)[0][name]
        assert ep is not None
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginLoadError(
                f"The {kind[:-1]} plugin {name!r} from distribution {info.distribution!r} ({info.value}) failed to load: "
                f"{type(exc).__name__}: {exc}. Reinstall or upgrade {info.distribution!r}, or uninstall it."
            ) from exc
        expected = _SPEC_TYPES[kind]
        if not isinstance(obj, expected):
            raise PluginLoadError(
                f"The {kind[:-1]} plugin {name!r} from distribution {info.distribution!r} points to {info.value}, "
                f"which is a {type(obj).__name__}, not an emotionkit {expected.__name__}."
            )
        _loaded[key] = obj
        return obj


def register(kind: Kind, spec: Any, *, overwrite: bool = False) -> None:
    """Register a spec in this process only, without an entry point (handy in notebooks and tests).

    Parameters
    ----------
    kind : {"backbones", "detectors", "explainers"}
        Which group.
    spec : BackboneSpec or DetectorSpec or ExplainerSpec
        The spec; its ``name`` is the registered name.
    overwrite : bool, default False
        Replace an existing runtime registration of the same name.

    Raises
    ------
    ValueError
        The name is taken and ``overwrite`` is false.
    """
    _check_kind(kind)
    if not isinstance(spec, _SPEC_TYPES[kind]):
        raise TypeError(f"Expected a {_SPEC_TYPES[kind].__name__} for kind {kind!r}, got {type(spec).__name__}.")
    if not overwrite and (spec.name in _runtime[kind] or spec.name in _discover(kind)[0]):
        raise ValueError(f"A {kind[:-1]} named {spec.name!r} is already registered; pass overwrite=True to replace it.")
    _runtime[kind][spec.name] = spec


def refresh() -> None:
    """Forget discovered and loaded plugins, e.g. after installing a plugin in a running process."""
    with _lock:
        _discover.cache_clear()
        _loaded.clear()
        _warned.clear()
