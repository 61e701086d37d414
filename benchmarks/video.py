"""Frames per second of ``EmotionRecognizer.stream`` on a 640x480 video, detection on every frame and every Nth.

The video is built from real photos: the two-face scene pans and zooms over the sample
photo beside a mirrored, smaller copy of it (a call with two people); the ``group`` scene
pans over ``benchmarks/_photos.py``'s 640x480 group photo (4 faces over a real background).
It is encoded with PyAV, as a user's file would be, and decoded again on every run.

Each model runs with the MTCNN detector on every frame, then every ``N``th frame (boxes
carried and classified in between). Bundled models are measured by default; when none
ships weights yet, every registered backbone runs with untrained weights (same speed).
A "decode only" row gives the ceiling set by decoding alone.

Timing: wall-clock frames/s, and frames/s from the process's CPU time, which is what
the run would reach on idle cores with ``--threads`` threads (this machine is shared).

Run::

    .venv/bin/python benchmarks/video.py                       # bundled (or untrained) models
    .venv/bin/python benchmarks/video.py --models cnn runs/vit --every 1 3 10 --frames 120
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from emotionkit import EmotionRecognizer, FacePreprocessor, build_backbone, load_image, sample_image_path
from emotionkit.recognizer import bundled_models
from emotionkit.registry import list_plugins, load_plugin
from emotionkit.video import VideoReader, VideoWriter

SIZE = (640, 480)


def two_face_photo() -> Image.Image:
    photo = Image.fromarray(load_image(sample_image_path()))
    right = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((384, 384), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (896, 512))
    canvas.paste(photo, (0, 0))
    canvas.paste(right, (512, 128))
    return canvas


def group_photo() -> Image.Image:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _photos import photos

    return Image.fromarray(next(p.image for p in photos() if p.name == "group_480p"))


def make_video(path: Path, scene: str, frames: int, fps: float = 30.0) -> Path:
    """Pan and zoom a virtual 640x480 camera over the scene's photo and encode it."""
    photo = two_face_photo() if scene == "two" else group_photo()
    center, zoom, amp = (
        ((0.52, 0.4), (1.0, 0.9), (0.015, 0.02)) if scene == "two" else ((0.5, 0.5), (1.0, 0.9), (0.04, 0.04))
    )
    width, height = photo.size
    aspect = SIZE[0] / SIZE[1]
    with VideoWriter(path, fps=fps) as out:
        for t in range(frames):
            phase = 2 * math.pi * t / max(frames, 1)
            z = zoom[0] + (zoom[1] - zoom[0]) * (0.5 - 0.5 * math.cos(phase))
            w = min(width, height * aspect) * z
            h = w / aspect
            cx, cy = width * (center[0] + amp[0] * math.sin(phase)), height * (center[1] + amp[1] * math.sin(2 * phase))
            x1, y1 = min(max(cx - w / 2, 0), width - w), min(max(cy - h / 2, 0), height - h)
            out.write(np.asarray(photo.resize(SIZE, Image.Resampling.BILINEAR, box=(x1, y1, x1 + w, y1 + h))))
    return path


def recognizers(names: list[str] | None, detector_options: dict[str, Any]) -> list[tuple[str, EmotionRecognizer]]:
    """The models to time: given names/dirs, else the bundled ones, else every backbone untrained."""
    out = []
    if names:
        for name in names:
            out.append(
                (name, EmotionRecognizer.from_pretrained(name, detector="mtcnn", detector_options=detector_options))
            )
        return out
    bundled = list(bundled_models())
    if bundled:
        return recognizers(bundled, detector_options)
    from emotionkit.detectors.mtcnn import MTCNNDetector

    for name in list_plugins("backbones"):
        spec = load_plugin("backbones", name)
        pre = FacePreprocessor(**spec.preprocessing)
        model = build_backbone(name, {"in_channels": pre.channels, **spec.default_config})
        rec = EmotionRecognizer(model, pre, MTCNNDetector(**detector_options), backbone_name=name)
        out.append((f"{name} (untrained)", rec))
    return out


def time_stream(rec: EmotionRecognizer | None, path: Path, every: int) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    frames = faces = 0
    tracks: set[int] = set()
    if rec is None:
        with VideoReader(path) as video:
            for _ in video:
                frames += 1
    else:
        for result in rec.stream(path, every=every):
            frames += 1
            faces += len(result.faces)
            tracks.update(f.track_id for f in result.faces)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "frames": frames,
        "fps_wall": frames / wall,
        "fps_cpu": frames / cpu,
        "faces_per_frame": faces / max(frames, 1),
        "tracks": len(tracks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=None, help="model names or saved directories (default: bundled)")
    parser.add_argument("--every", type=int, nargs="+", default=[1, 5], help="detection intervals (default: 1 5)")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--scene", choices=["two", "group"], default="two")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--detector-options", default="{}", help="MTCNN options as JSON, e.g. '{\"min_face_size\": 40}'"
    )
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = json.loads(args.detector_options)
    with tempfile.TemporaryDirectory() as tmp:
        path = make_video(Path(tmp) / f"{args.scene}.mp4", args.scene, args.frames)
        rows = [{"model": "decode only", "every": "-", **time_stream(None, path, 1)}]
        for name, rec in recognizers(args.models, options):
            time_stream(rec, path, max(args.every))  # warm-up (first-call allocations, lazy imports)
            for every in args.every:
                rows.append({"model": name, "every": every, **time_stream(rec, path, every)})
                print(f"  {name} every={every}: {rows[-1]['fps_wall']:.1f} frames/s wall", file=sys.stderr)
    print(
        f"\n640x480 '{args.scene}' video, {args.frames} frames, MTCNN {options or 'defaults'}, torch threads={args.threads}"
    )
    print(
        f"{'model':<26} {'detect every':>12} {'frames/s (CPU)':>15} {'frames/s (wall)':>16} {'faces/frame':>12} {'tracks':>7}"
    )
    for r in rows:
        print(
            f"{r['model']:<26} {r['every']!s:>12} {r['fps_cpu']:>15.1f} {r['fps_wall']:>16.1f} {r['faces_per_frame']:>12.2f} {r['tracks']:>7}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
