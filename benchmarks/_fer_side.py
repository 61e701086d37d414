"""The `fer` package's side of ``benchmarks/speed.py``; runs in fer's own virtual environment and prints JSON.

fer cannot share emotionkit's venv (its MTCNN extra pins torch<2.3 through facenet-pytorch 2.6),
so it lives in its own::

    python -m venv /tmp/fervenv
    /tmp/fervenv/bin/pip install tensorflow-cpu "opencv-python-headless<5" requests Pillow
    /tmp/fervenv/bin/pip install --no-deps fer

fer's MTCNN detector is facenet-pytorch's ``MTCNN(keep_all=True)`` with its defaults; for it this
script appends emotionkit's site-packages (``--torch-site``) to ``sys.path`` so fer imports the
same torch and facenet-pytorch (fer's own packages come first).

Configurations: fer's Haar cascade or its MTCNN, each with its TFLite or its Keras classifier,
exactly as ``FER(mtcnn=..., use_tflite=...)`` sets them up. Images are passed as BGR, as fer expects.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_HOME", "/tmp/fer_keras_home")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _photos import WARMUP_CALLS, photos, timing_row  # noqa: E402

CONFIGS = {
    "fer Haar + TFLite": {"mtcnn": False, "use_tflite": True},
    "fer Haar + Keras": {"mtcnn": False, "use_tflite": False},
    "fer MTCNN + TFLite": {"mtcnn": True, "use_tflite": True},
    "fer MTCNN + Keras": {"mtcnn": True, "use_tflite": False},
}


def _timed(fn) -> tuple[float, float, object]:
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return (time.perf_counter() - w) * 1000, (time.process_time() - c) * 1000, out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--paths", required=True, help="JSON of source photo paths (from _photos.dump_paths)")
    parser.add_argument("--faces", help=".npy of 48x48 uint8 faces for crop classification")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per (config, photo) at most")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--torch-site", help="site-packages holding torch and facenet-pytorch, for fer's MTCNN")
    parser.add_argument("--configs", nargs="*")
    parser.add_argument("--photos", nargs="*", help="subset of photo names")
    args = parser.parse_args()
    if args.torch_site:
        sys.path.append(args.torch_site)
        # torch and torchvision before TensorFlow: the other order segfaults in torchvision's import.
        import facenet_pytorch  # noqa: F401
        import torch
        import torchvision  # noqa: F401

        torch.set_num_threads(args.threads)
    import logging

    import cv2
    import tensorflow as tf

    logging.getLogger("fer").setLevel(logging.WARNING)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    cv2.setNumThreads(args.threads)
    from fer.fer import FER

    pics = [p for p in photos(args.paths) if not args.photos or p.name in args.photos]
    result: dict = {"versions": {"tensorflow": tf.__version__, "opencv": cv2.__version__}, "e2e": {}, "crops": {}}
    try:
        from importlib.metadata import version

        result["versions"]["fer"] = version("fer")
    except Exception:  # pragma: no cover
        pass
    for name, options in CONFIGS.items():
        if args.configs and name not in args.configs:
            continue
        try:
            fer = FER(**options)
        except Exception as exc:  # e.g. no torch for MTCNN
            result["e2e"][name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        rows = {}
        for p in pics:
            bgr = np.ascontiguousarray(p.image[..., ::-1])
            for _ in range(WARMUP_CALLS):
                fer.detect_emotions(bgr)
            walls, cpus, start = [], [], time.perf_counter()
            found: object = []
            while len(walls) < args.repeats and (not walls or time.perf_counter() - start < args.budget):
                wall, cpu, found = _timed(lambda bgr=bgr, fer=fer: fer.detect_emotions(bgr))
                walls.append(wall)
                cpus.append(cpu)
            boxes = [(x, y, x + w, y + h) for x, y, w, h in (tuple(f["box"]) for f in found)]  # type: ignore[attr-defined]
            rows[p.name] = timing_row(p, walls, cpus, boxes)
        result["e2e"][name] = rows
        if args.faces and not options["mtcnn"]:
            faces = np.load(args.faces)
            # fer's classifiers take 64x64 faces scaled to [-1, 1], as detect_emotions prepares them.
            x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype("float32") / 255.0
            x = (x - 0.5) * 2.0
            classify = fer._classify_emotions
            speeds = {}
            for batch in (1, 64):
                xb = np.ascontiguousarray(x[:batch])
                for _ in range(WARMUP_CALLS):
                    classify(xb)
                walls, start = [], time.perf_counter()
                while len(walls) < max(args.repeats, 3) and (not walls or time.perf_counter() - start < args.budget):
                    walls.append(_timed(lambda xb=xb, classify=classify: np.asarray(classify(xb)))[0])
                speeds[f"batch{batch}_faces_per_s"] = batch / (float(np.median(walls)) / 1000)
            result["crops"]["fer " + ("TFLite" if options["use_tflite"] else "Keras")] = speeds
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
