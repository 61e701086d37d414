"""Soak test: many video frames and ``predict`` calls on one recognizer; the resident memory must stay flat.

One :class:`~emotionkit.EmotionRecognizer` (the bundled ``cnn`` with the default detector) runs

- ``--frames`` video frames through :meth:`~emotionkit.EmotionRecognizer.stream`: a 320x240 clip
  panning over the sample photo, written once with PyAV and streamed again and again (each pass
  opens and closes the file, so leaks in the reader count too), and
- ``--calls`` :meth:`~emotionkit.EmotionRecognizer.predict` calls, cycling through a path, an
  array, a PIL image and, every 25th call, an unreadable file (its ``InvalidImageError`` is caught).

The resident set size (VmRSS from ``/proc/self/status``) is read after a warm-up (the first 10%
of each part, at least 50 iterations) and at the end; the growth after warm-up must stay under
``--limit-mb`` (50 MB). Prints one JSON line per part and exits 1 when a part grows more.

Run::

    .venv/bin/python benchmarks/soak.py                              # 10,000 frames and 10,000 calls
    .venv/bin/python benchmarks/soak.py --frames 2000 --calls 2000   # shorter
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from emotionkit import EmotionRecognizer, load_image, sample_image_path
from emotionkit.exceptions import InvalidImageError

SIZE = (320, 240)


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def clip(path: Path, n: int = 120) -> Path:
    """Write ``n`` frames panning over the sample photo (one real face)."""
    from emotionkit.video import VideoWriter

    photo = Image.fromarray(load_image(sample_image_path()))
    with VideoWriter(path, fps=15) as out:
        for t in range(n):
            x = int(40 + 40 * np.sin(2 * np.pi * t / n))
            out.write(np.asarray(photo.resize(SIZE, Image.Resampling.BILINEAR, box=(x, 20, x + 400, 320))))
    return path


def soak(name: str, total: int, step: Callable[[int], int], limit_mb: float) -> dict[str, object]:
    """Run ``step(remaining)`` (some iterations, returning how many) until ``total``; measure RSS growth."""
    warmup = max(50, total // 10)
    done, before, peak = 0, None, 0.0
    start = time.perf_counter()
    while done < total:
        done += step(total - done)
        if before is None and done >= warmup:
            before = rss_mb()
            start = time.perf_counter()
        peak = max(peak, rss_mb())
    after = rss_mb()
    before = after if before is None else before
    growth = after - before
    return {
        "part": name,
        "iterations": done,
        "warmup": warmup,
        "rss_after_warmup_mb": round(before, 1),
        "rss_end_mb": round(after, 1),
        "rss_peak_mb": round(peak, 1),
        "growth_mb": round(growth, 1),
        "limit_mb": limit_mb,
        "ok": growth < limit_mb,
        "seconds_after_warmup": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000, help="video frames through stream() (default 10000)")
    parser.add_argument("--calls", type=int, default=10_000, help="predict() calls (default 10000)")
    parser.add_argument("--every", type=int, default=1, help="detect on every Nth video frame (default 1)")
    parser.add_argument("--model", default="cnn", help="bundled model or saved directory (default cnn)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--limit-mb", type=float, default=50.0, help="allowed RSS growth after warm-up (default 50)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rec = EmotionRecognizer.from_pretrained(args.model)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        video = clip(Path(tmp) / "clip.mp4")
        broken = Path(tmp) / "broken.jpg"
        broken.write_bytes(sample_image_path().read_bytes()[:4000])
        photo_path = sample_image_path()
        photo = load_image(photo_path)
        pil = Image.open(photo_path).convert("RGB")

        def video_pass(remaining: int) -> int:
            with rec.stream(video, every=args.every) as stream:
                frames: Iterator[object] = iter(stream)
                return sum(1 for _ in zip(range(remaining), frames))

        calls = {"i": 0}

        def one_call(_: int) -> int:
            i = calls["i"] = calls["i"] + 1
            if i % 25 == 0:
                try:
                    rec.predict(broken)
                except InvalidImageError:
                    pass
                return 1
            faces = rec.predict((photo_path, photo, pil)[i % 3])
            if len(faces) != 1:
                raise AssertionError(f"call {i}: {len(faces)} faces on the sample photo")
            return 1

        if args.frames:
            results.append(soak("video frames", args.frames, video_pass, args.limit_mb))
            print(json.dumps(results[-1]), flush=True)
        if args.calls:
            results.append(soak("predict calls", args.calls, one_call, args.limit_mb))
            print(json.dumps(results[-1]), flush=True)
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
