"""``emotionkit export MODEL --format onnx --out model.onnx``: a backbone as a self-describing ONNX file."""

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
    return p


def run(args: argparse.Namespace) -> int:
    """Export, verify against torch when onnxruntime is there, and print a one-line summary."""
    import importlib.util

    import torch

    from ..export import OnnxBackbone, export_onnx
    from ..recognizer import EmotionRecognizer

    rec = EmotionRecognizer.from_pretrained(args.model, detector="none")
    data = export_onnx(rec, args.out, opset=args.opset)
    height, width = rec.preprocessor.size  # type: ignore[misc]
    summary = f"wrote {args.out} ({len(data) / 1e6:.1f} MB): faces (batch, {rec.preprocessor.channels}, {height}, {width}) -> logits (batch, {len(rec.labels)})"
    if importlib.util.find_spec("onnxruntime") is not None:
        x = torch.rand(5, rec.preprocessor.channels, height, width, generator=torch.Generator().manual_seed(0))
        if any(m != 0 for m in rec.preprocessor.mean) or any(s != 1 for s in rec.preprocessor.std):
            mean = torch.tensor(rec.preprocessor.mean).view(1, -1, 1, 1)
            x = (x - mean) / torch.tensor(rec.preprocessor.std).view(1, -1, 1, 1)
        diff = (torch.softmax(OnnxBackbone(data)(x), 1) - torch.softmax(rec.logits(x), 1)).abs().max().item()
        summary += f"; onnxruntime vs torch: max |probability difference| {diff:.1e} on 5 inputs"
    print(summary)
    return 0
