"""Throughput of batch jobs and of training, serial vs worker processes vs Ray actors, in one run.

Prints photos/s on the same folder of real photos (``benchmarks/_photos.py``: the three portraits and the
480p/720p group photos, repeated to ``--photos`` files, written as JPEG) for

- serial ``predict_batch`` in this process (8 photos per call, ``--threads`` torch threads);
- ``emotionkit batch --engine local`` with 1 worker (all threads) and 2 workers (threads split between them);
- ``--engine ray`` with 1 and 2 actors on a local Ray (``ray.init(num_cpus=--threads)``), and Ray's overhead per
  photo against the local engine with as many workers (Ray's start is timed apart);

and training images/s of ``emotionkit train`` in 1 and 2 processes (DDP, gloo) on ``--train-limit`` FER-2013 rows
per usage, one epoch (the history's figure: the epoch's training faces over its wall time, validation included).
Model loading and worker start are inside each job's time, as a user sees it. Wall times depend on what else
runs: compare within one run. ``--json`` writes everything.

Run::

    .venv/bin/python benchmarks/scale.py --photos 96 --threads 2 --json /tmp/scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _photos import photos  # noqa: E402
from PIL import Image  # noqa: E402

from emotionkit.batch import expand_inputs, predict_files  # noqa: E402


def _folder(root: Path, count: int) -> list[str]:
    chosen = [p for p in photos() if p.name in ("astronaut", "hopper", "camera", "group_480p", "group_720p")]
    for i in range(count):
        photo = chosen[i % len(chosen)]
        Image.fromarray(photo.image).save(root / f"{i:05d}_{photo.name}.jpg", quality=92)
    return expand_inputs(root)


def _serial(files: list[str], threads: int) -> float:
    import torch

    from emotionkit import EmotionRecognizer

    torch.set_num_threads(threads)
    start = time.perf_counter()
    rec = EmotionRecognizer.from_pretrained()
    for i in range(0, len(files), 8):
        rec.predict_batch(files[i : i + 8])
    return time.perf_counter() - start


def _stages(files: list[str], threads: int) -> dict[str, float]:
    """Median ms per photo for decoding and detection, and ms per face for cropping + classification."""
    import statistics

    import torch

    from emotionkit import EmotionRecognizer
    from emotionkit.io import load_image

    torch.set_num_threads(threads)
    rec = EmotionRecognizer.from_pretrained()
    decode, detect, classify, faces = [], [], [], 0
    for path in files:
        t0 = time.perf_counter()
        image = load_image(path)
        t1 = time.perf_counter()
        found = rec.predict_batch([image])  # detection + classification
        t2 = time.perf_counter()
        dets = [face.detection for face in found[0]]
        if dets:
            t3 = time.perf_counter()
            crops = rec.preprocessor.crops(image, dets)
            rec.logits(crops)
            classify.append((time.perf_counter() - t3) / len(dets))
            faces += len(dets)
        decode.append(t1 - t0)
        detect.append(t2 - t1)
    per_face = statistics.median(classify) if classify else 0.0
    return {
        "decode_ms_per_photo": 1000 * statistics.median(decode),
        "predict_ms_per_photo (detection + classification)": 1000 * statistics.median(detect),
        "crop_and_classify_ms_per_face": 1000 * per_face,
        "faces_per_photo": faces / len(files),
    }


def _train_rate(nproc: int, limit: int, threads: int, scratch: Path) -> float:
    out = scratch / f"train{nproc}"
    command = [sys.executable, "-m", "emotionkit", "train", "--out", str(out), "--epochs", "1", "--limit", str(limit)]
    command += ["--threads", str(max(1, threads // nproc)), "--no-report", "--no-bn-recalibration"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return float(json.loads((out / "history.json").read_text())[0]["images_per_second"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=96, help="photos in the folder (default 96)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads in all (default 2)")
    parser.add_argument("--train-limit", type=int, default=2000, help="FER-2013 rows per usage to train on")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray rows")
    parser.add_argument("--no-train", action="store_true", help="skip the training rows")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"photos": args.photos, "threads": args.threads, "rows": {}}
    rows = results["rows"]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        (scratch / "photos").mkdir()
        files = _folder(scratch / "photos", args.photos)
        rows["serial predict_batch"] = args.photos / _serial(files, args.threads)
        results["stages"] = _stages(files, args.threads)
        local: dict[int, float] = {}
        for workers in (1, 2):
            summary = predict_files(
                files, scratch / f"local{workers}", workers=workers, threads=max(1, args.threads // workers)
            )
            local[workers] = summary.seconds
            rows[f"local engine, {workers} worker(s)"] = summary.images_per_second
        if not args.no_ray:
            import ray

            from emotionkit.distributed import predict_files_ray

            start = time.perf_counter()
            ray.init(num_cpus=args.threads, include_dashboard=False, log_to_driver=False)
            results["ray_start_seconds"] = time.perf_counter() - start
            for actors in (1, 2):
                summary = predict_files_ray(
                    files, scratch / f"ray{actors}", actors=actors, threads=max(1, args.threads // actors)
                )
                rows[f"ray engine, {actors} actor(s)"] = summary.images_per_second
                results[f"ray_overhead_ms_per_photo_{actors}"] = 1000 * (summary.seconds - local[actors]) / args.photos
            ray.shutdown()
        if not args.no_train:
            for nproc in (1, 2):
                rows[f"training, {nproc} process(es), images/s"] = _train_rate(
                    nproc, args.train_limit, args.threads, scratch
                )
    print(f"{args.photos} photos, {args.threads} threads in all")
    for name, value in rows.items():
        print(f"  {name:42s} {value:8.1f}{'' if 'training' in name else ' photos/s'}")
    for key, value in results["stages"].items():
        print(f"  {key:42s} {value:8.1f}")
    for key in ("ray_start_seconds", "ray_overhead_ms_per_photo_1", "ray_overhead_ms_per_photo_2"):
        if key in results:
            print(f"  {key:42s} {results[key]:8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
