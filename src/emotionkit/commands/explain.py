"""``emotionkit explain``: classify the faces of a photo and save a heatmap overlay of what drove each decision."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _opacity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``explain``."""
    p = subparsers.add_parser(
        "explain",
        help="save a Grad-CAM / attention heatmap overlay of every face in a photo",
        description="Find the faces in IMAGE, classify them, and save the photo with a heatmap over each face "
        "showing the regions behind the prediction (or behind --target).",
    )
    p.add_argument("image", metavar="IMAGE", help="photo (JPEG, PNG, ...) or a face crop with --detector none")
    p.add_argument("--out", default="explained.png", help="output PNG (default: explained.png)")
    p.add_argument("--model", default=None, help="bundled model name or a saved model directory (default: mobilenetv2)")
    p.add_argument("--method", default="gradcam", help="explainer: gradcam (every backbone) or attention (vit)")
    p.add_argument(
        "--weighting",
        choices=["mean", "elementwise"],
        default=None,
        help="gradcam only: mean = Grad-CAM (default), elementwise = HiResCAM (faithful for the cnn's flatten head)",
    )
    p.add_argument("--target", default=None, help="class to explain, e.g. happy (default: each face's top label)")
    p.add_argument("--detector", default="yunet", help="face detector: yunet, mtcnn, or none for a pre-cropped face")
    p.add_argument("--alpha", type=_opacity, default=0.5, help="heatmap opacity in [0, 1] (default: 0.5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON lines instead of text")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``explain``."""
    from ..exceptions import IncompatibleComponentsError
    from ..recognizer import EmotionRecognizer
    from ..visualize import overlay_on_photo

    options = {} if args.weighting is None else {"weighting": args.weighting}
    if options and args.method != "gradcam":
        raise IncompatibleComponentsError(f"--weighting applies to --method gradcam only, not {args.method!r}.")
    recognizer = EmotionRecognizer.from_pretrained(args.model, detector=args.detector)
    faces = recognizer.explain(args.image, target=args.target, method=args.method, **options)
    out = Path(args.out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    overlay_on_photo(args.image, faces, recognizer.preprocessor, alpha=args.alpha).save(out)
    for i, face in enumerate(faces, start=1):
        if args.json:
            print(json.dumps({"face": i, **face.to_dict(), "method": args.method, "target": args.target or face.label}))
        else:
            box = ", ".join(f"{v:.0f}" for v in face.box)
            print(f"face {i}: {face.label} ({face.confidence:.2f}) at ({box}); explained {args.target or face.label}")
    notes = sys.stderr if args.json else sys.stdout
    if not faces:
        print("no face found (for a pre-cropped face use --detector none)", file=notes)
    print(f"wrote {out}", file=notes)
    return 0
