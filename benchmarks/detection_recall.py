"""Detection recall and speed of MTCNN settings on real photos with known faces.

Compares facenet-pytorch's own ``detect_face`` (the per-box loop emotionkit used before)
with emotionkit's vectorised cascade under several input-scaling and pyramid settings,
on the photos of ``benchmarks/_photos.py``. Recall is split by face size because a
setting that skips small faces should say so.

Timing is CPU time of the process with one torch thread (``--threads``), which is what
a call costs on an idle core; wall time on this shared machine is printed beside it.

Run::

    .venv/bin/python benchmarks/detection_recall.py --json /tmp/recall.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _photos import match, photos  # noqa: E402

from emotionkit.detectors.mtcnn import MTCNNDetector  # noqa: E402

#: Settings compared; each is MTCNNDetector's defaults (min_face_size 20, thresholds .7/.7/.7, factor 0.6,
#: max_side 1280) with these changes.
_FACENET = {"min_face_size": 20, "thresholds": (0.6, 0.7, 0.7), "factor": 0.709, "max_side": None}
CONFIGS: dict[str, dict[str, Any]] = {
    "facenet detect_face (old path)": {"facenet": True, **_FACENET},
    "cascade, facenet's settings": _FACENET,
    "default, P-Net .6": {"thresholds": (0.6, 0.7, 0.7)},
    "default": {},
    "default, factor 0.709": {"factor": 0.709},
    "min 32": {"min_face_size": 32},
    "min 40 (portraits)": {"min_face_size": 40},
    "min 40, P-Net .8": {"min_face_size": 40, "thresholds": (0.8, 0.7, 0.7)},
    "default, max_side 640": {"max_side": 640},
    "default, full resolution": {"max_side": None},
}


class _FacenetPath(MTCNNDetector):
    """facenet-pytorch's detect_face on the same nets (NCHW), for comparison."""

    def detect_batch(self, images):  # type: ignore[override]
        from facenet_pytorch.models.utils.detect_face import detect_face

        net = self._net.to(memory_format=torch.contiguous_format)
        out = []
        for im in images:
            with torch.inference_mode():
                boxes, points = detect_face(
                    im[None], self.min_face_size, net.pnet, net.rnet, net.onet, self.thresholds, self.factor, "cpu"
                )
            h, w = im.shape[:2]
            out.append(self._to_detections(np.asarray(boxes[0]), np.asarray(points[0]), 1.0, w, h))
        return out


def _time(fn, repeats: int) -> tuple[float, float, Any]:
    cpu, wall = [], []
    for _ in range(repeats):
        c, w = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return float(np.median(cpu)) * 1000, float(np.median(wall)) * 1000, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--configs", nargs="*", help="subset of config names")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pics = photos()
    rows = []
    for name, cfg in CONFIGS.items():
        if args.configs and name not in args.configs:
            continue
        cfg = dict(cfg)
        cls = _FacenetPath if cfg.pop("facenet", False) else MTCNNDetector
        det = cls(**cfg)
        det.detect(pics[0].image)  # warm up
        row: dict[str, Any] = {"config": name, "options": cfg, "photos": {}}
        small_hit = small_n = big_hit = big_n = false = 0
        for p in pics:
            cpu, wall, found = _time(lambda p=p, det=det: det.detect(p.image), args.repeats)
            boxes = [d.box for d in found]
            for face in p.faces:
                hit, _ = match([face], boxes)
                if face[2] - face[0] < 40:
                    small_n, small_hit = small_n + 1, small_hit + hit
                else:
                    big_n, big_hit = big_n + 1, big_hit + hit
            hits, fp = match(p.faces, boxes)
            false += fp
            row["photos"][p.name] = {
                "size": p.size,
                "faces": len(p.faces),
                "found": hits,
                "false": fp,
                "cpu_ms": cpu,
                "wall_ms": wall,
            }
        row.update(
            recall_ge40=big_hit / big_n,
            recall_lt40=small_hit / small_n,
            faces_ge40=big_n,
            faces_lt40=small_n,
            false=false,
        )
        rows.append(row)
        times = " ".join(f"{k}:{v['cpu_ms']:.0f}" for k, v in row["photos"].items())
        print(
            f"{name:34s} recall>=40px {big_hit}/{big_n}  <40px {small_hit}/{small_n}  false {false}  cpu ms {times}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
