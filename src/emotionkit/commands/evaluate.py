"""``emotionkit evaluate``: test a model or run directory on labelled faces; write report.json, report.md and plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import add_head_flag


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``evaluate``."""
    p = subparsers.add_parser(
        "evaluate", help="accuracy, per-class F1, confusion, calibration of a model on a labelled split"
    )
    p.add_argument("model", metavar="MODEL_OR_RUN", help="a bundled model name or a run / model directory")
    p.add_argument(
        "--data", default=None, help="FER-2013 CSV or image tree (default: the run's data, else $EMOTIONKIT_DATA)"
    )
    p.add_argument(
        "--split",
        default="auto",
        help="auto (the run's test part: PublicTest / test folder, or its stratified test part), stratified, "
        "all, or a usage / split folder name such as PublicTest, PrivateTest, Training, test",
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each face with its mirror image (--no-tta: one crop; default: as the model predicts, its "
        "config's flip_tta)",
    )
    p.add_argument(
        "--drop-duplicates", action="store_true", help="leave out faces that also appear, pixel-identical, in training"
    )
    p.add_argument("--out", default=None, help="report folder (default: the run directory, else ./eval-<model>)")
    p.add_argument(
        "--limit", type=int, default=None, help="CSV: first N rows of each usage; folders: N images per class"
    )
    p.add_argument(
        "--face-detector", choices=["none", "mtcnn"], default="none", help="image folders: crop faces with MTCNN first"
    )
    p.add_argument(
        "--ignore", action="append", default=[], metavar="FOLDER", help="image folders: leave out this class folder"
    )
    p.add_argument("--no-plots", action="store_true", help="JSON and Markdown only")
    p.add_argument("--threads", type=int, default=None)
    add_head_flag(p)
    return p


def _evaluation_part(args: argparse.Namespace, recorded: dict[str, Any]) -> tuple[Any, str, dict[str, Any], str]:
    """Return (faces, split name, duplicates info, data path) for the requested split."""
    from ..data.loading import is_csv_source, load_dataset, load_splits
    from ..data.splits import canonical_usage, cross_split_duplicates
    from ..exceptions import InvalidDataError
    from .train import folder_options

    settings = recorded.get("settings", {})
    data = args.data or settings.get("data")
    options = folder_options(args) or dict(recorded.get("folder_options") or {})
    split = args.split
    if split == "auto":
        split = "stratified" if recorded.get("method") == "stratified" else "test"
    if split == "stratified":
        # The same data, limit, fractions and seed as training, or the test part would overlap training.
        splits = load_splits(
            data,
            "stratified",
            fractions=settings.get("fractions", (0.6, 0.2, 0.2)),
            seed=settings.get("seed", 0),
            drop_duplicates=args.drop_duplicates,
            limit=settings.get("limit", args.limit),
            **options,
        )
        assert splits.test is not None  # a stratified split always has one
        found = {
            "found": splits.duplicates["test_in_train"],
            "groups": splits.duplicates["test_groups"],
            "dropped": args.drop_duplicates,
        }
        return (
            splits.test,
            f"test part of the stratified split (seed {settings.get('seed', 0)})",
            found,
            str(splits.settings["data"]),
        )
    if split == "all":
        faces = load_dataset(data, limit=args.limit, **options)
        return faces, "all", {}, str(data)
    usage = canonical_usage(split) or split
    path = Path(data) if data is not None else None
    if usage == "Test" and (path is None or is_csv_source(path)):
        usage = "PublicTest"  # the CSV's test part
    wanted = [usage] if usage == "Training" else [usage, "Training"]
    both = load_dataset(data, usage=wanted, limit=args.limit, **options)
    assert both.usage is not None
    faces = both.subset(both.usage == usage)
    if len(faces) == 0:
        raise InvalidDataError(
            f"No faces of split {split!r} in {data!r}. Splits present: {', '.join(sorted(set(both.usage.tolist())))}."
        )
    duplicates: dict[str, Any] = {}
    if usage != "Training" and (both.usage == "Training").any():
        mask = cross_split_duplicates(both.images[both.usage == "Training"], faces.images)
        duplicates = {"found": int(mask.sum()), "dropped": args.drop_duplicates}
        if args.drop_duplicates:
            faces = faces.subset(~mask)
    return faces, usage, duplicates, str(data if data is not None else "$EMOTIONKIT_DATA")


def run(args: argparse.Namespace) -> int:
    """Run ``evaluate``."""
    import torch

    from ..recognizer import EmotionRecognizer
    from ..training.evaluate import evaluate
    from ..training.reports import write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = Path(args.model)
    is_dir = model_path.is_dir()
    recognizer = EmotionRecognizer.from_pretrained(args.model, detector=None)
    recorded = (
        json.loads((model_path / "data.json").read_text()) if is_dir and (model_path / "data.json").is_file() else {}
    )
    faces, split, duplicates, source = _evaluation_part(args, recorded)
    name = model_path.resolve().name if is_dir else str(args.model)
    report = evaluate(
        recognizer,
        faces,
        tta_flip=args.tta,
        split=split,
        source=source,
        model=name,
        extra={"duplicates": duplicates} if duplicates else None,
        head=args.head,
    )
    out = Path(args.out) if args.out else (model_path if is_dir else Path(f"eval-{name}"))
    history_path = model_path / "history.json"
    history = json.loads(history_path.read_text()) if is_dir and history_path.is_file() else None
    paths = write_report(report, out, history=history, plots=not args.no_plots)
    print(
        json.dumps(
            {
                "model": name,
                "split": split,
                **({"head": args.head} if args.head else {}),
                "n": report["n"],
                "accuracy": report["accuracy"],
                "macro_f1": report["macro_f1"],
                "weighted_f1": report["weighted_f1"],
                "ece": report["ece"],
                "duplicates": duplicates,
                "files": {k: str(v) for k, v in paths.items()},
            }
        )
    )
    return 0
