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
    p.add_argument(
        "name",
        nargs="?",
        metavar="NAME",
        help="show the full model card of this backbone's bundled weights (training command, per-class F1, "
        "confusion matrix, calibration) instead of the list",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _show_card(name: str, as_json: bool) -> int:
    """Print the whole card of ``name``'s bundled weights: ``card.md`` as text, or ``card.json`` with --json."""
    from ..exceptions import NoBundledWeightsError, UnknownModelError, suggest
    from ..registry import list_plugins, load_plugin

    backbones = list_plugins("backbones")
    if name not in backbones:
        raise UnknownModelError(f"Unknown model {name!r}. Available: {', '.join(backbones)}.{suggest(name, backbones)}")
    spec = load_plugin("backbones", name)
    available = [w for w in spec.weights if w.exists()]
    if not available:
        raise NoBundledWeightsError(
            f"Backbone {name!r} ships no bundled weights, so it has no model card. Models with cards: "
            f"{', '.join(n for n in backbones if _has_weights(n)) or 'none'}."
        )
    if as_json:
        print(json.dumps([_weights_entry(w) for w in available], indent=2, default=str))
        return 0
    for weights in available:
        text = weights.path / "card.md"
        if text.is_file():
            print(text.read_text(encoding="utf-8").rstrip())
        else:  # a third-party card without a text version: its fields, one per line
            print(f"# {weights.name}")
            for key, value in weights.card().items():
                print(f"- {key}: {json.dumps(value, default=str)}")
        print(f"\nWeights: {weights.name}, sha256 {weights.sha256}, files in {weights.path}")
    return 0


def _has_weights(name: str) -> bool:
    from ..registry import load_plugin

    try:
        return any(w.exists() for w in load_plugin("backbones", name).weights)
    except Exception:  # a broken plugin has no card to show
        return False


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


def _card_metrics(card: Mapping[str, Any]) -> list[str]:
    """Headline numbers of a model card: each evaluation (a mapping with an accuracy) and a ``metrics`` mapping."""
    parts: list[str] = []
    for key, value in card.items():
        if not isinstance(value, Mapping):
            continue
        if key == "metrics":
            parts += [
                f"{k}={v:.4g}" for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
            ]
        elif isinstance(value.get("accuracy"), (int, float)):
            shown = [f"{k}={value[k]:.4f}" for k in ("accuracy", "macro_f1") if isinstance(value.get(k), (int, float))]
            parts.append(f"{key} {' '.join(shown)}")
    return parts


def _weights_line(w: Mapping[str, Any]) -> str:
    if not w["available"]:
        return f"{w['name']}: declared, but its files are missing"
    metrics = _card_metrics(w["card"])
    return f"{w['name']}: {'; '.join(metrics) if metrics else 'no metrics on its card'}"


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
    if args.name:
        return _show_card(args.name, args.json)
    data = collect()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        _print_table(data)
    return 0
