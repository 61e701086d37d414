"""``emotionkit models``: registered backbones, detectors and explainers, where each comes from, bundled weights."""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Mapping
from typing import Any

from ..exceptions import EmotionKitError


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``models``."""
    p = subparsers.add_parser(
        "models",
        help="list backbones, detectors and explainers, their distributions and bundled weights",
        description="List every registered plugin with the distribution that registered it; for backbones, "
        "the bundled weights and the metrics on their model card. Broken plugins are listed with their error.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _weights_entry(weights: Any) -> dict[str, Any]:
    available = bool(weights.exists())
    card = weights.card() if available else dict(weights.meta)
    return {"name": weights.name, "available": available, "sha256": weights.sha256, "card": card}


def _plugin_entry(kind: str, info: Any) -> dict[str, Any]:
    from ..registry import load_plugin

    entry: dict[str, Any] = {
        "name": info.name,
        "distribution": info.distribution,
        "entry_point": info.value,
        "status": "ok",
        "error": None,
        "description": "",
    }
    try:
        spec = load_plugin(kind, info.name)  # type: ignore[arg-type]
    except EmotionKitError as exc:  # a broken plugin is reported, never fatal
        entry.update(status="broken", error=f"{type(exc).__name__}: {exc}")
        return entry
    entry["description"] = getattr(spec, "description", "")
    if kind == "backbones":
        entry["explainers"] = list(spec.explainers)
        entry["preprocessing"] = dict(spec.preprocessing)
        try:
            entry["weights"] = [_weights_entry(w) for w in spec.weights]
        except Exception as exc:  # a plugin whose weights metadata cannot be read
            entry.update(status="broken", error=f"weights: {type(exc).__name__}: {exc}", weights=[])
    return entry


def collect() -> dict[str, Any]:
    """Return everything ``emotionkit models`` shows, as JSON-serialisable data.

    Returns
    -------
    dict
        ``{"backbones": [...], "detectors": [...], "explainers": [...], "warnings": [...]}``; every plugin entry
        has ``name``, ``distribution``, ``entry_point``, ``status`` (``"ok"`` or ``"broken"``) and ``error``.
    """
    from ..registry import GROUPS, list_plugins

    out: dict[str, Any] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for kind in GROUPS:
            out[kind] = [_plugin_entry(kind, info) for info in list_plugins(kind).values()]  # type: ignore[arg-type]
    out["warnings"] = sorted({str(w.message) for w in caught})
    return out


def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> list[str]:
    parts: list[str] = []
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            parts += _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, float):
            parts.append(f"{prefix}{key}={value:.4g}")
        elif isinstance(value, (int, str)):
            parts.append(f"{prefix}{key}={value}")
    return parts


def _weights_line(w: Mapping[str, Any]) -> str:
    if not w["available"]:
        return f"{w['name']}: declared, file missing"
    card = w["card"]
    metrics = card.get("metrics")
    text = ", ".join(_flatten(metrics)) if isinstance(metrics, Mapping) else "no metrics on its card"
    protocol = card.get("protocol") or (metrics.get("protocol") if isinstance(metrics, Mapping) else None)
    if isinstance(protocol, str) and "protocol=" not in text:
        text += f" [{protocol}]"
    return f"{w['name']}: {text}"


def _print_table(data: Mapping[str, Any]) -> None:
    from ..registry import GROUPS

    broken = []
    for kind, group in GROUPS.items():
        entries = data[kind]
        print(f"{kind.capitalize()} (entry points: {group})")
        if not entries:
            print("  (none registered)")
        for e in entries:
            if e["status"] != "ok":
                broken.append((kind, e))
                print(f"  {e['name']:<14} {e['distribution']:<24} BROKEN (see below)")
                continue
            print(f"  {e['name']:<14} {e['distribution']:<24} {e['description']}")
            if kind == "backbones":
                lines = [_weights_line(w) for w in e.get("weights", [])] or ["no bundled weights"]
                for line in lines:
                    print(f"  {'':<14} {'':<24} weights {line}")
        print()
    if broken:
        print("Broken plugins")
        for kind, e in broken:
            print(f"  {kind[:-1]} {e['name']!r} from {e['distribution']!r} ({e['entry_point']}): {e['error']}")
        print()
    for message in data["warnings"]:
        print(f"warning: {message}")


def run(args: argparse.Namespace) -> int:
    """Run ``models``."""
    data = collect()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        _print_table(data)
    return 0
