"""Detection recall and speed of face detector settings (MTCNN, YuNet) on real photos with known faces.

Compares facenet-pytorch's own ``detect_face`` (the per-box loop emotionkit used before)
with emotionkit's vectorised MTCNN cascade under several input-scaling and pyramid settings,
and the single-shot ``yunet`` detector, on the photos of ``benchmarks/_photos.py``. Recall is
split by face size because a setting that skips small faces should say so.

``--fer N`` adds a harder and more varied set: the first N FER-2013 PublicTest faces (N
distinct people and expressions, grayscale, tightly cropped), each resized to 30-160 px
and pasted on a real background photo, 12 to a 960x720 canvas. A face counts as found
when a detection overlaps its square by IoU >= 0.5, and is also counted at IoU >= 0.3 (the FER
crop is looser than a detector's box). It reads FER-2013 from ``EMOTIONKIT_DATA`` (default
``../shared/data``). ``--fer-usage Training`` builds the canvases from Training faces instead,
and ``--score-sweep`` prints found and false faces at several score thresholds: detector
thresholds are chosen on Training faces, PublicTest only reports.

Timing is CPU time of the process with one torch thread (``--threads``), which is what
a call costs on an idle core; wall time on this shared machine is printed beside it.

Run::

    .venv/bin/python benchmarks/detection_recall.py --json /tmp/recall.json
    .venv/bin/python benchmarks/detection_recall.py --fer 1200 --threads 2 --configs default "cascade, facenet's settings"
    .venv/bin/python benchmarks/detection_recall.py --fer 1200 --detectors yunet mtcnn --configs default "yunet default"
    .venv/bin/python benchmarks/detection_recall.py --fer 1200 --fer-usage Training --configs "yunet, scores >= 0.3" \
        --score-sweep 0.3 0.4 0.5 0.6 0.7 0.8 0.9
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
from _photos import Photo, _rgb, match, photos, place, source_paths  # noqa: E402

from emotionkit.detectors.mtcnn import MTCNNDetector  # noqa: E402
from emotionkit.detectors.yunet import YuNetDetector  # noqa: E402

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
    # YuNetDetector's defaults (min_face_size 10, min_score 0.5, max_side 1280, nms_iou 0.3, runtime "auto":
    # onnxruntime when installed) with these changes.
    "yunet default": {"detector": "yunet"},
    "yunet, onnxruntime": {"detector": "yunet", "runtime": "onnx"},
    "yunet, torch": {"detector": "yunet", "runtime": "torch"},
    "yunet, scores >= 0.3": {"detector": "yunet", "min_score": 0.3},
    "yunet, max_side 640": {"detector": "yunet", "max_side": 640},
    "yunet, min 20": {"detector": "yunet", "min_face_size": 20},
    "yunet, min 24": {"detector": "yunet", "min_face_size": 24},
    "yunet, min 32": {"detector": "yunet", "min_face_size": 32},
    "yunet, full resolution": {"detector": "yunet", "max_side": None},
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


def fer_canvases(n_faces: int, seed: int = 0, usage: str = "PublicTest") -> list[Photo]:
    """FER-2013 faces (``usage`` split) pasted on real background photos, 12 to a 960x720 canvas (see module doc)."""
    from PIL import Image

    from emotionkit.data.fer2013 import fer2013_path, read_fer2013

    faces = read_fer2013(fer2013_path(), usage=usage, limit=n_faces).images
    src = source_paths()
    backgrounds = [_rgb(src[k]).resize((960, 720)) for k in ("coffee", "chelsea", "rocket")]
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, len(faces) - 11, 12):
        canvas = backgrounds[len(out) % 3].copy()
        boxes = []
        for cell in range(12):
            side = int(rng.uniform(30, 160))
            face = Image.fromarray(faces[start + cell]).convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
            where = ((cell % 4) * 240, (cell // 4) * 240)
            boxes.append(place(canvas, face, (0.0, 0.0, float(side), float(side)), where, (240, 240), rng))
        out.append(Photo(f"fer_{len(out)}", np.asarray(canvas), boxes))
    return out


def _fer_recall(det: Any, canvases: list[Photo], sweep: list[float] | None = None) -> dict[str, Any]:
    """Faces found at IoU >= 0.5 and >= 0.3 (split at 60 px), false detections and CPU seconds over all canvases.

    ``sweep``: also found / false at IoU >= 0.5 keeping only detections scoring at least each threshold.
    """
    found = {"small": 0, "big": 0}
    total = {"small": 0, "big": 0}
    found_03 = false = false_03 = 0
    swept = {t: [0, 0] for t in sweep or []}
    cpu = time.process_time()
    detections = [det.detect(canvas.image) for canvas in canvases]
    cpu = time.process_time() - cpu
    for canvas, dets in zip(canvases, detections):
        boxes = [d.box for d in dets]
        for face in canvas.faces:
            band = "small" if face[2] - face[0] < 60 else "big"
            total[band] += 1
            found[band] += match([face], boxes, threshold=0.5)[0]
        false += match(canvas.faces, boxes, threshold=0.5)[1]
        hits, fp = match(canvas.faces, boxes, threshold=0.3)
        found_03, false_03 = found_03 + hits, false_03 + fp
        for t, counts in swept.items():
            hits, fp = match(canvas.faces, [d.box for d in dets if d.score >= t], threshold=0.5)
            counts[0], counts[1] = counts[0] + hits, counts[1] + fp
    return {
        "found": found["small"] + found["big"],
        "faces": total["small"] + total["big"],
        "found_lt60": found["small"],
        "faces_lt60": total["small"],
        "found_ge60": found["big"],
        "faces_ge60": total["big"],
        "false": false,
        "found_iou03": found_03,
        "false_iou03": false_03,
        "score_sweep": {str(t): {"found": c[0], "false": c[1]} for t, c in swept.items()},
        "cpu_s": cpu,
    }


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
    parser.add_argument("--fer", type=int, default=0, metavar="N", help="also: N FER-2013 PublicTest faces on canvases")
    parser.add_argument("--fer-usage", default="PublicTest", choices=["PublicTest", "Training"])
    parser.add_argument("--detectors", nargs="*", choices=["mtcnn", "yunet"], help="only these detectors' configs")
    parser.add_argument("--score-sweep", nargs="*", type=float, help="FER found/false at these score thresholds")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pics = photos()
    canvases = fer_canvases(args.fer, usage=args.fer_usage) if args.fer else []
    rows = []
    for name, cfg in CONFIGS.items():
        cfg = dict(cfg)
        kind = cfg.pop("detector", "mtcnn")
        if (args.configs and name not in args.configs) or (args.detectors and kind not in args.detectors):
            continue
        cls = YuNetDetector if kind == "yunet" else _FacenetPath if cfg.pop("facenet", False) else MTCNNDetector
        det = cls(**cfg)
        det.detect(pics[0].image)  # warm up
        row: dict[str, Any] = {"config": name, "detector": kind, "options": cfg, "photos": {}}
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
        times = " ".join(f"{k}:{v['cpu_ms']:.0f}" for k, v in row["photos"].items())
        print(
            f"{name:34s} recall>=40px {big_hit}/{big_n}  <40px {small_hit}/{small_n}  false {false}  cpu ms {times}",
            flush=True,
        )
        if canvases:
            fer = row["fer2013"] = _fer_recall(det, canvases, args.score_sweep)
            print(
                f"{'':34s} FER-2013 {args.fer_usage} canvases, IoU>=0.5: found {fer['found']}/{fer['faces']} (<60px "
                f"{fer['found_lt60']}/{fer['faces_lt60']}, >=60px {fer['found_ge60']}/{fer['faces_ge60']})  false "
                f"{fer['false']};  IoU>=0.3: found {fer['found_iou03']} false {fer['false_iou03']};  "
                f"cpu {fer['cpu_s']:.1f} s",
                flush=True,
            )
            for t, c in fer["score_sweep"].items():
                print(f"{'':34s}   scores >= {t}: found {c['found']} false {c['false']} (IoU>=0.5)", flush=True)
        rows.append(row)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
