"""``emotionkit predict``: find the faces in photos, classify their expressions, optionally draw them."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..exceptions import EmotionKitError, InvalidImageError, one_line
from . import add_flip_tta_flag, add_head_flag, detector_options

#: Photos classified per batch (one detector batch per image size, one classifier pass per batch).
CHUNK = 8


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``predict``."""
    p = subparsers.add_parser(
        "predict",
        help="classify the facial expression of every face in one or more photos",
        description="Find every face in each IMAGE, classify its expression and print the results "
        "(JSON with --json); with --out, also save the photo with boxes and captions drawn on it. "
        "An IMAGE that cannot be read is listed on stderr with its reason and the others are still reported; "
        "the exit status is then 1 (2 when no IMAGE could be read or an option is wrong).",
    )
    p.add_argument(
        "images", nargs="*", metavar="IMAGE", help="photos (JPEG, PNG, ...), or face crops with --detector none"
    )
    p.add_argument("--sample", action="store_true", help="also classify the bundled sample photo (NASA, public domain)")
    p.add_argument("--model", default=None, help="bundled model name or a saved model directory (default: mobilenetv2)")
    add_flip_tta_flag(p)
    add_head_flag(p)
    p.add_argument(
        "--detector", default="yunet", help="face detector: yunet (default), mtcnn, or none for pre-cropped faces"
    )
    p.add_argument(
        "--detector-options",
        default="{}",
        help="detector options as JSON, e.g. '{\"min_face_size\": 40}' (2x faster, portraits)",
    )
    p.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {image, faces} instead of text")
    p.add_argument(
        "--out",
        default=None,
        metavar="PATH",
        help="save annotated images: a file (e.g. annotated.png) for one image, a directory for several",
    )
    return p


def _inputs(args: argparse.Namespace) -> list[str]:
    images = [str(p) for p in args.images]
    if args.sample:
        from ..io import sample_image_path

        images.append(str(sample_image_path()))
    if not images:
        raise InvalidImageError("Received no images. Pass one or more image paths, or --sample for the bundled photo.")
    return images


def _outputs(out: str | None, images: Sequence[str]) -> list[Path] | None:
    """Decide where each annotated image goes, and fail before any work when that cannot be done."""
    if out is None:
        return None
    from PIL import Image

    target = Path(out)
    as_file = target.suffix != "" and not target.is_dir()
    if as_file:
        if len(images) > 1:
            raise InvalidImageError(
                f"Received --out {out!r} (a file) for {len(images)} images. Pass a directory to --out for several images."
            )
        if target.suffix.lower() not in Image.registered_extensions():
            allowed = ".png, .jpg, .webp, .bmp, .tif, ..."
            raise InvalidImageError(f"Cannot save an image as {out!r}: unknown extension. Allowed: {allowed}")
        return [target]
    paths: list[Path] = []
    seen: set[str] = set()
    for image in images:
        stem = Path(image).stem or "image"
        name, i = f"{stem}_annotated.png", 1
        while name in seen:
            i += 1
            name = f"{stem}_annotated_{i}.png"
        seen.add(name)
        paths.append(target / name)
    return paths


def run(args: argparse.Namespace) -> int:
    """Run ``predict``."""
    from ..drawing import annotate
    from ..io import decode_image
    from ..recognizer import EmotionRecognizer

    images = _inputs(args)
    outputs = _outputs(args.out, images)
    options = detector_options(args.detector_options)
    recognizer = EmotionRecognizer.from_pretrained(
        args.model,
        detector=args.detector,
        device=args.device,
        flip_tta=args.flip_tta,
        detector_options=options,
        head=args.head,
    )
    report: list[dict[str, Any]] = []
    failed: list[str] = []
    notes = sys.stderr if args.json else sys.stdout
    for start in range(0, len(images), CHUNK):
        loaded: list[tuple[int, str, Any]] = []  # (index, name, decoded array)
        for index in range(start, min(start + CHUNK, len(images))):
            try:  # one unreadable file (truncated, not an image, a bomb, missing) does not lose the others
                loaded.append((index, images[index], decode_image(images[index])))
            except EmotionKitError as exc:
                failed.append(images[index])
                print(f"emotionkit predict: error: {one_line(exc)}", file=sys.stderr)
        results = recognizer.predict_batch([array for _, _, array in loaded]) if loaded else []
        for (index, name, array), faces in zip(loaded, results):
            report.append({"image": name, "faces": [face.to_dict() for face in faces]})
            if not args.json:
                print(f"{name}: {len(faces)} face{'' if len(faces) == 1 else 's'}")
                for i, face in enumerate(faces, start=1):
                    box = ", ".join(f"{v:.0f}" for v in face.box)
                    print(f"  face {i}: {face.label} ({face.confidence:.2f}) at ({box})")
            if outputs is not None:
                path = outputs[index]
                path.parent.mkdir(parents=True, exist_ok=True)
                annotate(array, faces).save(path)
                print(f"wrote {path}", file=notes)
    if args.json:
        print(json.dumps(report, indent=2))
    if not failed:
        return 0
    if report:
        print(
            f"emotionkit predict: {len(failed)} of {len(images)} images could not be read (listed above); "
            f"the other {len(report)} are reported.",
            file=sys.stderr,
        )
        return 1
    return 2
