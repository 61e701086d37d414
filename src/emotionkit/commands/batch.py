"""``emotionkit batch``: classify every face in a folder, glob, path list or table of photos, resumably."""

from __future__ import annotations

import argparse
from typing import Any

from . import detector_options


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``batch``."""
    p = subparsers.add_parser(
        "batch",
        help="classify every face in many photos; results in Parquet or JSON-lines parts, resumable",
        description="Read every photo of INPUT (folders are searched recursively; globs such as 'photos/**/*.jpg'; "
        "a .txt file of paths; a .csv/.parquet table with a path column), classify each face and write one row per "
        "face, one per photo without a face and one per unreadable file (with its error) to the folder --out, in "
        "parts. Rerunning with the same --out skips the photos already done. Exits 1 when some files failed.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="folder, glob, .txt path list, or .csv/.parquet table")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder of part-NNNNNN.parquet|jsonl files")
    p.add_argument("--format", choices=("parquet", "jsonl"), default=None, help="default: parquet (needs pyarrow)")
    p.add_argument("--model", default=None, help="bundled model name or a saved model directory (default: mobilenetv2)")
    p.add_argument(
        "--detector", default=None, help="face detector (default: the library's; none: photos are face crops)"
    )
    p.add_argument("--detector-options", default="{}", help="detector options as JSON")
    p.add_argument("--device", default=None, help="torch device of each worker (default cpu)")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="local processes (default) or Ray Data")
    p.add_argument("--workers", type=int, default=1, help="local: worker processes (0: in this process); ray: actors")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    p.add_argument("--chunk-size", type=int, default=8, help="photos per task, classified in one pass (default 8)")
    p.add_argument("--part-size", type=int, default=256, help="local: photos per output part (default 256)")
    p.add_argument("--path-column", default="path", help="column of a .csv/.parquet INPUT that holds the paths")
    p.add_argument("--overwrite", action="store_true", help="delete the parts already in --out instead of resuming")
    p.add_argument(
        "--videos",
        action="store_true",
        help="INPUT names videos: write OUT/<name>.csv, each video's per-track timeline, and OUT/videos.jsonl; "
        "one task per video",
    )
    p.add_argument("--every", type=int, default=1, help="videos: detect faces every N frames (default 1)")
    p.add_argument("--smooth", choices=("ema", "window", "none"), default="ema", help="videos: per-track smoothing")
    p.add_argument("--address", default=None, help="ray: cluster address (auto, ray://host:10001); default: local")
    p.add_argument("--num-cpus", type=float, default=1.0, help="ray: CPUs per actor (default 1)")
    p.add_argument("--num-gpus", type=float, default=0.0, help="ray: GPUs per actor (default 0)")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``batch``."""
    options = detector_options(args.detector_options)
    common: dict[str, Any] = dict(
        model=args.model,
        detector=args.detector,
        detector_options=options,
        device=args.device,
        chunk_size=args.chunk_size,
        format=args.format,
        overwrite=args.overwrite,
        path_column=args.path_column,
    )
    if args.videos:
        return _videos(args, options)
    if args.engine == "ray":
        from ..distributed import predict_files_ray

        summary = predict_files_ray(
            args.inputs,
            args.out,
            actors=max(1, args.workers),
            threads=args.threads,
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            address=args.address,
            **common,
        )
    else:
        from ..batch import predict_files

        summary = predict_files(
            args.inputs, args.out, workers=args.workers, threads=args.threads, part_size=args.part_size, **common
        )
    print(
        f"{summary.out}: {summary.images} photos in {summary.seconds:.1f} s ({summary.images_per_second:.1f}/s): "
        f"{summary.faces} faces, {summary.no_face} without a face, {summary.errors} failed; "
        f"{summary.skipped} already done"
    )
    return 1 if summary.errors else 0


def _videos(args: argparse.Namespace, options: dict[str, Any]) -> int:
    recognizer = dict(model=args.model, detector=args.detector, detector_options=options, device=args.device)
    stream = dict(every=args.every, smoothing=args.smooth)
    if args.engine == "ray":
        from ..distributed import predict_videos_ray

        summaries = predict_videos_ray(
            args.inputs,
            args.out,
            address=args.address,
            num_cpus=args.num_cpus,
            num_gpus=args.num_gpus,
            threads=args.threads,
            **recognizer,
            **stream,
        )
    else:
        from ..batch.videos import predict_videos

        summaries = predict_videos(
            args.inputs, args.out, workers=args.workers, threads=args.threads, **recognizer, **stream
        )
    failed = [s for s in summaries if s["error"]]
    for s in summaries:
        print(
            f"{s['video']}: {s['error']}"
            if s["error"]
            else f"{s['video']}: {s['frames']} frames, {s['tracks']} tracks -> {s['timeline']}"
        )
    print(f"{args.out}: {len(summaries)} videos, {len(failed)} failed")
    return 1 if failed else 0
