"""``emotionkit export MODEL --format onnx --out model.onnx [--int8]``: a backbone as a self-describing ONNX file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``export``."""
    p = subparsers.add_parser(
        "export",
        help="export a model's backbone to ONNX (dynamic batch axis, preprocessing and labels in its metadata)",
        description="Export a bundled model or a saved model directory to ONNX. The graph maps preprocessed faces "
        "(batch, C, H, W) to logits; its metadata holds the preprocessing, labels and temperature. When onnxruntime is "
        'installed the export is checked against torch on a few inputs. Needs: pip install "emotionkit[onnx]".',
    )
    p.add_argument("model", metavar="MODEL", help="a bundled model name (see `emotionkit models`) or a model directory")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="output format (default: onnx)")
    p.add_argument("--out", type=Path, required=True, help="the file to write, e.g. model.onnx")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    p.add_argument(
        "--int8",
        action="store_true",
        help="quantize to int8 (static, calibrated on real faces: the stratified 10%% validation part, seed 0, of "
        "--calibration-data's training faces), then report agreement and accuracy against float32 on validation "
        "faces the calibration did not use",
    )
    p.add_argument(
        "--calibration-data",
        default=None,
        metavar="DATA",
        help="FER-2013 CSV, its folder, or an image tree root/<emotion>/*.jpg (default: $EMOTIONKIT_DATA)",
    )
    p.add_argument(
        "--calibration-faces", type=int, default=512, metavar="N", help="faces used for calibration (default: 512)"
    )
    return p


def run(args: argparse.Namespace) -> int:
    """Export, verify against torch when onnxruntime is there, and print a one-line summary."""
    import importlib.util

    import torch

    from ..export import OnnxBackbone, export_onnx
    from ..heads import head_columns
    from ..recognizer import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained(args.model, detector="none")
    if args.int8:
        return _export_int8(rec, args)
    data = export_onnx(rec, args.out, opset=args.opset)
    height, width = rec.preprocessor.size  # type: ignore[misc]
    summary = f"wrote {args.out} ({len(data) / 1e6:.1f} MB): faces (batch, {rec.preprocessor.channels}, {height}, {width}) -> logits (batch, {rec.inference.outputs})"
    if importlib.util.find_spec("onnxruntime") is not None:
        x = torch.rand(5, rec.preprocessor.channels, height, width, generator=torch.Generator().manual_seed(0))
        if any(m != 0 for m in rec.preprocessor.mean) or any(s != 1 for s in rec.preprocessor.std):
            mean = torch.tensor(rec.preprocessor.mean).view(1, -1, 1, 1)
            x = (x - mean) / torch.tensor(rec.preprocessor.std).view(1, -1, 1, 1)
        graph = OnnxBackbone(data)(x)  # every head's columns
        diff = max(  # each output head's probabilities, against torch's
            (
                torch.softmax(graph[:, head_columns(rec.labels, rec.heads, head)], 1)
                - torch.softmax(rec.logits(x, flip_tta=False, head=head), 1)
            )
            .abs()
            .max()
            .item()
            for head in (None, *rec.heads)
        )
        summary += f"; onnxruntime vs torch: max |probability difference| {diff:.1e} on 5 inputs"
    print(summary)
    return 0


def _export_int8(rec: Any, args: argparse.Namespace) -> int:
    """Quantize on validation faces, check on other validation faces, write, and report."""
    import numpy as np

    from ..data.fer2013 import default_data_dir
    from ..data.loading import is_csv_source, load_dataset
    from ..data.splits import stratified_split
    from ..exceptions import InvalidDataError
    from ..export import OnnxBackbone, export_onnx, quantize_onnx

    if args.calibration_faces < 1:
        raise InvalidDataError(f"--calibration-faces must be at least 1, got {args.calibration_faces}.")
    source = args.calibration_data
    csv = is_csv_source(Path(source) if source is not None else default_data_dir())
    data = load_dataset(source, usage="Training" if csv else None)
    _, val_index = stratified_split(data.labels, (0.9, 0.1), seed=0)
    val = data.subset(val_index)
    n_cal = min(args.calibration_faces, len(val) // 2)
    if n_cal < 1:
        raise InvalidDataError(
            f"Only {len(val)} validation faces in {source or 'EMOTIONKIT_DATA'}: need at least 2 (one to calibrate, one to check)."
        )
    faces = rec.preprocessor.faces(val.images)
    float_model = export_onnx(rec, opset=args.opset)
    quantized = quantize_onnx(float_model, faces[:n_cal], args.out)
    held_out = slice(n_cal, n_cal + 4000)
    labels = np.asarray(val.labels[held_out])
    own = slice(0, len(rec.labels))  # the model's own classes (the graph also outputs any extra head's columns)
    p32 = OnnxBackbone(float_model)(faces[held_out])[:, own].softmax(1)
    p8 = OnnxBackbone(quantized)(faces[held_out])[:, own].softmax(1)
    agree = float((p32.argmax(1) == p8.argmax(1)).float().mean())
    acc32 = float((p32.argmax(1).numpy() == labels).mean())
    acc8 = float((p8.argmax(1).numpy() == labels).mean())
    height, width = rec.preprocessor.size
    print(
        f"wrote {args.out} ({len(quantized) / 1e6:.1f} MB, int8; float32 was {len(float_model) / 1e6:.1f} MB): faces "
        f"(batch, {rec.preprocessor.channels}, {height}, {width}) -> logits (batch, {rec.inference.outputs}); calibrated on "
        f"{n_cal} validation faces; on {len(labels)} other validation faces: top-1 agreement with float32 {agree:.4f}, "
        f"accuracy float32 {acc32:.4f} int8 {acc8:.4f}, max |probability difference| {(p32 - p8).abs().max().item():.3f}"
    )
    return 0
