"""``emotionkit video``: track faces in a video file or camera, write an annotated video, a timeline and a plot."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ..exceptions import EmotionKitError
from . import add_flip_tta_flag, add_head_flag


class VideoUsageError(EmotionKitError, ValueError):
    """Command-line options that do not fit together."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``video``."""
    p = subparsers.add_parser(
        "video",
        help="follow faces in a video or camera: annotated video, per-track timeline, plot",
        description="Follow every face of a video file or a camera over time, with smoothed emotions per track.",
    )
    p.add_argument("input", nargs="?", help="video file (omit with --camera)")
    p.add_argument(
        "--camera",
        type=int,
        default=None,
        metavar="INDEX",
        help="read a live camera instead (0 = default camera); Ctrl-C stops",
    )
    p.add_argument("--out", default=None, help="annotated video to write (.mp4, .mkv, .avi, .webm)")
    p.add_argument(
        "--timeline", action="append", default=[], help="per-track timeline, .csv or .json (repeat for both)"
    )
    p.add_argument("--plot", default=None, help="image of each track's emotions over time (.png, .svg, .pdf)")
    p.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="detect faces every N frames; carry boxes between (default: 1)",
    )
    p.add_argument(
        "--min-hits",
        type=int,
        default=None,
        metavar="N",
        help="detections a new face needs before it is shown (and written); its earlier frames are not back-filled "
        "and faces detected fewer times are dropped as false positives (default: 2, or 1 with --every > 1)",
    )
    p.add_argument(
        "--smooth", choices=["ema", "window", "none"], default="ema", help="per-track smoothing (default: ema)"
    )
    p.add_argument("--alpha", type=float, default=0.3, help="EMA weight of the newest frame (default: 0.3)")
    p.add_argument("--window", type=int, default=8, help="frames averaged by --smooth window (default: 8)")
    p.add_argument("--model", default=None, help="bundled model name or saved model directory (default: mobilenetv2)")
    add_flip_tta_flag(p)
    add_head_flag(p)
    p.add_argument("--detector", default="yunet", help="face detector (default: yunet; or mtcnn)")
    p.add_argument("--detector-options", default="{}", help="detector options as JSON, e.g. '{\"max_side\": 640}'")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: only when stderr is a terminal, as in train)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar (same as --no-progress)")
    return p


def _bar_disabled(args: argparse.Namespace) -> bool | None:
    """tqdm's ``disable``: ``None`` (a bar only on a terminal) unless --progress, --no-progress or --quiet says."""
    if args.quiet or args.progress is False:
        return True
    return False if args.progress else None


def run(args: argparse.Namespace) -> int:
    """Run ``video``."""
    if (args.input is None) == (args.camera is None):
        raise VideoUsageError(
            "Give a video file or --camera INDEX (exactly one), e.g. `emotionkit video talk.mp4 --out annotated.mp4`."
        )
    if not (args.out or args.timeline or args.plot):
        raise VideoUsageError(
            "Nothing to write: add --out annotated.mp4, --timeline timeline.csv and/or --plot emotions.png."
        )
    if args.input is not None and not Path(args.input).exists():  # before the slow model load
        from ..video import VideoNotFoundError

        raise VideoNotFoundError(
            f"Video not found: {args.input!r}. Check the path, or use --camera INDEX for a live camera."
        )
    try:
        detector_options = json.loads(args.detector_options)
    except json.JSONDecodeError as exc:
        raise VideoUsageError(
            f"--detector-options must be a JSON object, got {args.detector_options!r} ({exc})."
        ) from exc
    import torch
    from tqdm import tqdm

    from ..recognizer import EmotionRecognizer
    from ..video import AnnotatedVideoWriter, TimelineWriter, plot_timeline

    if args.threads:
        torch.set_num_threads(args.threads)
    rec = EmotionRecognizer.from_pretrained(
        args.model,
        detector=args.detector,
        device=args.device,
        flip_tta=args.flip_tta,
        head=args.head,
        detector_options=detector_options,
    )
    source = args.camera if args.camera is not None else args.input
    timelines = list(args.timeline)
    with ExitStack() as outer:
        if args.plot and not timelines:
            timelines.append(str(Path(outer.enter_context(tempfile.TemporaryDirectory())) / "timeline.csv"))
        with ExitStack() as stack:
            stream = stack.enter_context(
                rec.stream(
                    source,
                    every=args.every,
                    smoothing=args.smooth,
                    alpha=args.alpha,
                    window=args.window,
                    max_frames=args.max_frames,
                    min_hits=args.min_hits,
                )
            )
            writers = [stack.enter_context(TimelineWriter(path, rec.labels)) for path in timelines]
            video: AnnotatedVideoWriter | None = None
            if args.out:
                video = AnnotatedVideoWriter(args.out, fps=stream.fps)
                stack.callback(video.close)
            bar = stack.enter_context(
                tqdm(total=stream.frame_count, unit="frame", disable=_bar_disabled(args), dynamic_ncols=True)
            )
            frames = faces = 0
            tracks: set[int] = set()
            start = time.perf_counter()
            try:
                for result in stream:
                    if video is not None:
                        video.write_result(result)
                    for writer in writers:
                        writer.write(result)
                    frames += 1
                    faces += len(result.faces)
                    tracks.update(f.track_id for f in result.faces)
                    bar.update(1)
                    if frames % 10 == 0:
                        bar.set_postfix(
                            fps=f"{frames / (time.perf_counter() - start):.1f}", tracks=len(tracks), refresh=False
                        )
            except KeyboardInterrupt:
                print("\nStopped; finishing the outputs.", file=sys.stderr)
            elapsed = time.perf_counter() - start
        if args.plot:
            plot_timeline(timelines[0], args.plot, raw=args.smooth != "none")
    rate = frames / elapsed if elapsed > 0 else 0.0
    every = "every frame" if args.every == 1 else f"every {args.every} frames"
    print(
        f"{frames} frames, {faces} face observations, {len(tracks)} tracks in {elapsed:.1f} s: {rate:.1f} frames/s (detection on {every})."
    )
    for label, path in [("annotated video", args.out), *[("timeline", t) for t in args.timeline], ("plot", args.plot)]:
        if path:
            print(f"wrote {label}: {path}")
    return 0
