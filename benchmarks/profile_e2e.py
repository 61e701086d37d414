"""Where the time of one end-to-end call goes: ``rec.predict(photo)`` under cProfile, summarised by stage.

The default detector's stages (yunet) and mtcnn's (``--detector mtcnn``) are listed; the other's read 0.

CPU time (``time.process_time``) is the profiler's clock, so other load on the machine changes the
numbers less than wall time would. Run::

    .venv/bin/python benchmarks/profile_e2e.py [--model cnn|DIR] [--photo astronaut|group_1080p|...] [--threads 1]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _photos import photos  # noqa: E402

from emotionkit.preprocessing import FacePreprocessor  # noqa: E402
from emotionkit.recognizer import EmotionRecognizer, build_backbone, bundled_models  # noqa: E402
from emotionkit.registry import load_plugin  # noqa: E402

#: (stage, file suffix, function name): cumulative time of these functions.
STAGES = [
    ("decode_image", "emotionkit/io.py", "decode_image"),
    ("detection, yunet (all)", "detectors/yunet.py", "detect_batch"),
    ("  resize for the network", "detectors/yunet.py", "_prepare"),
    ("  network, onnxruntime", "detectors/_yunet_onnx.py", "__call__"),
    ("  network, torch", "detectors/yunet.py", "__call__"),
    ("  decode boxes and landmarks", "detectors/yunet.py", "_decode"),
    ("  suppression, Detection objects", "detectors/yunet.py", "_to_detections"),
    ("detection, mtcnn (all)", "detectors/mtcnn.py", "detect_batch"),
    ("  P-Net over the pyramid", "detectors/_cascade.py", "_stage_one"),
    ("    pyramid (uint8 resizes)", "detectors/_cascade.py", "_pyramid"),
    ("    P-Net forward", "detectors/_nets.py", "forward:FastPNet"),
    ("  R-Net/O-Net crops (roi_align)", "detectors/_cascade.py", "_crops"),
    ("  R-Net forward", "detectors/_nets.py", "forward:FastRNet"),
    ("  O-Net forward", "detectors/_nets.py", "forward:FastONet"),
    ("  non-maximum suppression", "torchvision/ops/boxes.py", "batched_nms"),
    ("face crops for the classifier", "emotionkit/preprocessing.py", "crops"),
    ("classifier (logits)", "emotionkit/inference.py", "logits"),
    ("results (FaceEmotion objects)", "emotionkit/photos.py", "face_results"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default=None, help="model name or directory (default: bundled cnn, else untrained cnn)"
    )
    parser.add_argument("--photo", default="astronaut")
    parser.add_argument("--detector", default=None, help="detector name (default: the library's default)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--top", type=int, default=0, help="also print the top N functions by own time")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    photo = next(p for p in photos() if p.name == args.photo)
    with tempfile.TemporaryDirectory() as tmp:
        where = args.model or ("cnn" if "cnn" in bundled_models() else None)
        if where is None:
            spec = load_plugin("backbones", "cnn")
            untrained = EmotionRecognizer(
                build_backbone("cnn"),
                FacePreprocessor(**spec.preprocessing),
                backbone_name="cnn",
                backbone_config=spec.default_config,
            )
            where = str(untrained.save_pretrained(Path(tmp) / "cnn"))
        rec = EmotionRecognizer.from_pretrained(where, **({"detector": args.detector} if args.detector else {}))
    rec.predict(photo.image)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(args.calls):
        faces = rec.predict(photo.image)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = (
        sum(v[3] for k, v in stats.stats.items() if k[2] == "predict" and k[0].endswith("recognizer.py")) / args.calls
    )  # type: ignore[attr-defined]
    print(
        f"rec.predict({photo.name} {photo.size}): {total * 1000:.1f} ms CPU per call, {len(faces)} faces, {args.threads} thread(s)"
    )
    import inspect

    from emotionkit.detectors import _nets as nets

    for stage, suffix, func in STAGES:
        line = None
        if ":" in func:  # the three nets' forward methods live in one file: tell them apart by line
            func, cls = func.split(":")
            line = inspect.getsourcelines(getattr(nets, cls).forward)[1]
        cum = (
            sum(
                v[3]
                for k, v in stats.stats.items()  # type: ignore[attr-defined]
                if k[0].endswith(suffix) and k[2] == func and (line is None or k[1] == line)
            )
            / args.calls
        )
        print(f"  {stage:34s} {cum * 1000:7.1f} ms  {100 * cum / total:5.1f}%")
    if args.top:
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
