"""Generate ``generated/model_zoo.md`` from the bundled weights' own metadata.

The table is built from :func:`emotionkit.recognizer.bundled_models` and each
:meth:`~emotionkit.weights.WeightsSpec.card`, and each model's ``card.md`` is
appended, so a number in the docs cannot drift from the card shipped with the
weights (torchvision renders its weights' ``meta`` the same way).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

NONE_YET = "No bundled weights yet: every backbone can be trained with `emotionkit train` (see the user guide)."

#: Where each value is looked up in a card (first path found wins); the first paths are what
#: ``tools/bundle_weights.py`` writes.
COLUMNS: dict[str, tuple[str, ...]] = {
    "accuracy": ("publictest.accuracy", "metrics.accuracy", "test.accuracy", "accuracy"),
    "accuracy_tta": ("publictest_flip_tta.accuracy", "test_flip_tta.accuracy"),
    "accuracy_dedup": ("publictest_dedup.accuracy", "test_dedup.accuracy"),
    "macro_f1": ("publictest.macro_f1", "metrics.macro_f1", "test.macro_f1", "macro_f1"),
    "weighted_f1": ("publictest.weighted_f1", "metrics.weighted_f1", "test.weighted_f1", "weighted_f1"),
    "ece": ("publictest.ece", "metrics.ece", "test.ece", "ece"),
    "ferplus": ("publictest_ferplus.accuracy",),
    "num_params": ("num_params", "parameters", "params"),
}


def pick(card: Mapping[str, Any], paths: tuple[str, ...]) -> Any:
    """Return the first value found at a dotted path in ``card``, or ``None``."""
    for path in paths:
        node: Any = card
        for part in path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                node = None
                break
            node = node[part]
        if node is not None and not isinstance(node, Mapping):
            return node
    return None


def _pct(value: Any) -> str:
    if value is None:
        return "—"
    value = float(value)
    return f"{100 * value:.1f}%" if value <= 1.0 else f"{value:.1f}%"


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None else format(float(value), fmt)


def _params(value: Any) -> str:
    return "—" if value is None else f"{int(value) / 1e6:.2f} M"


def _demote(markdown: str, top: int) -> str:
    """Shift the headings of ``markdown`` (outside code fences) so its highest becomes level ``top``."""
    lines = markdown.splitlines()
    fence = False
    levels = []
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and (m := re.match(r"^(#{1,6})\s", line)):
            levels.append(len(m.group(1)))
    if not levels:
        return markdown
    shift = top - min(levels)
    out, fence = [], False
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and (m := re.match(r"^(#{1,6})(\s.*)$", line)):
            line = "#" * min(6, len(m.group(1)) + shift) + m.group(2)
        out.append(line)
    return "\n".join(out)


def render() -> str:
    """Return the Markdown of the model table and the cards."""
    from emotionkit.recognizer import DEFAULT_MODEL, bundled_models

    models = bundled_models()
    if not models:
        return f"```{{note}}\n{NONE_YET}\n```\n"
    header = (
        "| model | predicts with | parameters | input | accuracy, one crop | accuracy, flip TTA | accuracy, duplicates removed "
        "| macro F1 | weighted F1 | ECE | accuracy, FER+ labels | weights file |"
    )
    rows = [header, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    cards = []
    for name, spec in models.items():
        card = spec.card()
        pre = spec.preprocessor()
        size_mb = (spec.path / "model.safetensors").stat().st_size / 1e6
        label = f"`{name}` (default)" if name == DEFAULT_MODEL else f"`{name}`"
        own = "publictest_flip_tta" if card.get("flip_tta") else "publictest"  # the protocol it predicts with
        cells = [
            label,
            "flip TTA" if card.get("flip_tta") else "one crop",
            _params(pick(card, COLUMNS["num_params"]) or spec.config().get("num_params")),
            f"{pre.channels}×{pre.size[0]}×{pre.size[1]}",  # type: ignore[index]
            _pct(pick(card, COLUMNS["accuracy"])),
            _pct(pick(card, COLUMNS["accuracy_tta"])),
            _pct(pick(card, COLUMNS["accuracy_dedup"])),
            _num(pick(card, (f"{own}.macro_f1", *COLUMNS["macro_f1"])), ".3f"),
            _num(pick(card, (f"{own}.weighted_f1", *COLUMNS["weighted_f1"])), ".3f"),
            _num(pick(card, (f"{own}.ece", *COLUMNS["ece"])), ".3f"),
            _pct(pick(card, COLUMNS["ferplus"])) + (" (FER+ head)" if card.get("heads", {}).get("ferplus") else ""),
            f"{size_mb:.2f} MB",
        ]
        rows.append("| " + " | ".join(cells) + " |")
        card_md = spec.path / "card.md"
        body = _demote(card_md.read_text(), 3) if card_md.is_file() else "_This model ships no card.md._"
        cards.append(f"## `{name}`\n\nWeights `{spec.name}`, sha256 `{spec.sha256}`.\n\n{body}\n")
    legend = (
        "FER-2013 PublicTest. *Predicts with*: one crop per face, or each face averaged with its mirror image "
        "(flip TTA, chosen on the validation split; `rec.flip_tta = False` turns it off); the duplicates-removed, "
        "F1, ECE and FER+ columns are scored that way. ECE after the temperature "
        "fitted on the validation split. FER+ labels: the same faces scored against the FER+ majority vote "
        "(`benchmarks/accuracy.py` prints it for every model; — where the card predates it), with the model's FER+ "
        'output head where it has one (*FER+ head*: `from_pretrained(name, head="ferplus")`). '
        "Each model's full card follows the table."
    )
    return "\n".join(rows) + "\n\n" + legend + "\n\n" + "\n".join(cards)


def generate(app: Any) -> None:
    """``builder-inited``: write ``generated/model_zoo.md``."""
    path = Path(app.srcdir) / "generated" / "model_zoo.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render()
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
