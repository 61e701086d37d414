"""How accuracy falls with the pixel size of the face: what the detector's ``min_face_size`` costs.

FER-2013 faces are 48x48 crops; a face found in a photo is cropped (with the preprocessor's
margin) at whatever size it has there and resized to the model's input. This script
downsamples validation faces to smaller crop sides (antialiased, as a camera or a smaller
photo would give them), lets the recognizer resize them back as it does for photo crops,
and reports accuracy and macro F1 per size. The face box side is about
``crop / (1 + 2 * margin)`` (margin 0.1 by default).

Data: the stratified 10% validation part of FER-2013 Training (seed 0) that the bundled
models held out; never PublicTest (the choice of a default is tuning). Run::

    EMOTIONKIT_DATA=../shared/data .venv/bin/python benchmarks/face_size_accuracy.py [--model cnn]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

from emotionkit.data.loading import load_splits
from emotionkit.recognizer import EmotionRecognizer
from emotionkit.training.metrics import classification_metrics

SIZES = (12, 16, 20, 24, 28, 32, 40, 48)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--data", default=None, help="default: $EMOTIONKIT_DATA")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = EmotionRecognizer.from_pretrained(args.model, detector=None)
    val = load_splits(args.data, "official", val_fraction=0.1, seed=0).val
    faces = torch.from_numpy(np.asarray(val.images)).float().div(255.0)
    faces = faces[:, None] if faces.ndim == 3 else faces.permute(0, 3, 1, 2)
    margin = float(rec.preprocessor.margin)
    rows = []
    print(f"{args.model} on {len(val)} validation faces (FER-2013 Training, stratified 10%, seed 0)")
    print("| crop side (px) | face side (px) | accuracy | macro F1 |\n|---:|---:|---:|---:|")
    for size in SIZES:
        small = F.interpolate(faces, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        proba = rec.predict_proba(small.clamp(0, 1).permute(0, 2, 3, 1).numpy())
        m = classification_metrics(np.asarray(val.labels), proba, rec.labels)
        face = size / (1 + 2 * margin)
        rows.append({"crop": size, "face": round(face, 1), "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
        print(f"| {size} | {face:.0f} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
