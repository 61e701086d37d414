"""Video: reading, tracking, smoothing, annotated output, timelines, CLI, and clear errors.

The videos are built here from the bundled photo (one face) and a two-face photo composed
from it (the photo beside a mirrored, smaller copy), panned and zoomed, and encoded with
PyAV, the library emotionkit reads them with.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

av = pytest.importorskip("av", reason="video tests need PyAV: pip install 'emotionkit[video]'")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from emotionkit import EMOTIONS, EmotionRecognizer, FacePreprocessor, build_backbone, load_image, sample_image_path  # noqa: E402
from emotionkit.detectors.mtcnn import MTCNNDetector  # noqa: E402
from emotionkit.types import Detection  # noqa: E402
from emotionkit.video import (  # noqa: E402
    AnnotatedVideoWriter,
    CameraError,
    EMASmoother,
    FrameResult,
    InvalidVideoError,
    IoUTracker,
    NoSmoother,
    TimelineWriter,
    VideoNotFoundError,
    VideoOptionError,
    VideoReader,
    VideoStream,
    VideoWriteError,
    VideoWriter,
    WindowSmoother,
    plot_timeline,
    read_timeline,
)
from emotionkit.video.tracking import _greedy, assign  # noqa: E402

SIZE = (320, 240)
FPS = 15


# ---------------------------------------------------------------------------------------------- videos
def two_face_photo() -> Image.Image:
    """The sample photo beside a mirrored copy scaled to 3/4: two real faces of different sizes."""
    photo = Image.fromarray(load_image(sample_image_path()))
    right = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT).resize((384, 384), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (896, 512))
    canvas.paste(photo, (0, 0))
    canvas.paste(right, (512, 128))
    return canvas


def pan_zoom(
    photo: Image.Image, n: int, *, center: tuple[float, float], zoom: tuple[float, float], amp: tuple[float, float]
) -> Iterator[np.ndarray]:
    """A virtual camera: ``n`` frames of size SIZE that pan around ``center`` and zoom in and out once."""
    width, height = photo.size
    aspect = SIZE[0] / SIZE[1]
    for t in range(n):
        phase = 2 * math.pi * t / n
        z = zoom[0] + (zoom[1] - zoom[0]) * (0.5 - 0.5 * math.cos(phase))
        w = min(width, height * aspect) * z
        h = w / aspect
        cx = width * (center[0] + amp[0] * math.sin(phase))
        cy = height * (center[1] + amp[1] * math.sin(2 * phase))
        x1, y1 = min(max(cx - w / 2, 0), width - w), min(max(cy - h / 2, 0), height - h)
        yield np.asarray(photo.resize(SIZE, Image.Resampling.BILINEAR, box=(x1, y1, x1 + w, y1 + h)))


def one_face_frames(n: int) -> Iterator[np.ndarray]:
    photo = Image.fromarray(load_image(sample_image_path()))
    return pan_zoom(photo, n, center=(0.45, 0.35), zoom=(1.0, 0.6), amp=(0.06, 0.05))


def two_face_frames(n: int) -> Iterator[np.ndarray]:
    # Both faces stay in view: the window pans +-13 px and zooms to 90 %.
    return pan_zoom(two_face_photo(), n, center=(0.52, 0.4), zoom=(1.0, 0.9), amp=(0.015, 0.02))


def write_video(path: Path, frames: Iterator[np.ndarray], fps: float = FPS) -> Path:
    with VideoWriter(path, fps=fps) as out:
        for frame in frames:
            out.write(frame)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    return {
        "one": write_video(root / "one.mp4", one_face_frames(64)),
        "two": write_video(root / "two.mp4", two_face_frames(64)),
    }


# ---------------------------------------------------------------------------------------------- model
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A saved model: the bundled cnn weights when they exist, else a random-init cnn normalised on real faces.

    An untrained network with default BatchNorm statistics answers the same class for every
    face (its bias dominates), which would make the smoothing test vacuous. So the random
    network's BatchNorm statistics and output bias are estimated on crops of the real faces
    (jittered boxes from the sample photo and its mirror): its answers then depend on the
    face, close to its decision boundaries, as a weak real model's do.
    """
    out = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    backbone = build_backbone("cnn")
    pre = FacePreprocessor(size=48, channels=1)
    photo = load_image(sample_image_path())
    (face,) = MTCNNDetector().detect(photo)
    rng = np.random.default_rng(0)
    crops = []
    for image in (photo, np.ascontiguousarray(photo[:, ::-1])):
        x1, y1, x2, y2 = (
            face.box if image is photo else (512 - face.box[2], face.box[1], 512 - face.box[0], face.box[3])
        )
        w = x2 - x1
        boxes = [Detection(tuple(np.add((x1, y1, x2, y2), rng.normal(0, 0.08 * w, 4)).tolist())) for _ in range(64)]
        crops.append(pre.crops(image, boxes))
    x = torch.cat(crops)
    for module in backbone.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    backbone.train()
    with torch.no_grad():
        backbone(x)
        backbone.eval()
        last = backbone.classifier[-1]
        last.bias -= backbone(x).mean(0)
    rec = EmotionRecognizer(backbone, pre, None, backbone_name="cnn", backbone_config={"in_channels": 1})
    return rec.save_pretrained(out)


@pytest.fixture(scope="module")
def recognizer(model_dir) -> EmotionRecognizer:
    return EmotionRecognizer.from_pretrained(model_dir, detector="mtcnn", detector_options={"min_face_size": 24})


def label_changes(labels: list[str]) -> int:
    return sum(a != b for a, b in zip(labels, labels[1:]))


# ---------------------------------------------------------------------------------------------- reading / writing
def test_written_video_reads_back_with_size_count_and_times(tmp_path):
    frames = list(one_face_frames(12))
    path = write_video(tmp_path / "clip.mp4", iter(frames), fps=12)
    with VideoReader(path) as video:
        assert video.size == SIZE and video.fps == pytest.approx(12) and video.frame_count == 12
        decoded = list(video)
    assert [f.index for f in decoded] == list(range(12))
    assert [f.time for f in decoded] == pytest.approx([i / 12 for i in range(12)], abs=1e-3)
    for original, frame in zip(frames, decoded):
        assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
        assert np.abs(frame.image.astype(int) - original).mean() < 6  # lossy H.264, same picture


def test_writer_crops_odd_sizes_and_rejects_bad_frames(tmp_path):
    with VideoWriter(tmp_path / "odd.mkv", fps=10) as out:
        out.write(np.zeros((33, 47, 3), np.uint8))
        with pytest.raises(VideoWriteError, match="46x32"):
            out.write(np.zeros((64, 64, 3), np.uint8))
        with pytest.raises(VideoWriteError, match="uint8"):
            out.write(np.zeros((33, 47, 3), np.float32))
    assert VideoReader(tmp_path / "odd.mkv").size == (46, 32)
    with pytest.raises(VideoWriteError, match=r"\.mp4"):
        VideoWriter(tmp_path / "clip.xyz")


# ---------------------------------------------------------------------------------------------- the main run
@pytest.fixture(scope="module")
def two_face_run(recognizer, videos, tmp_path_factory):
    """Stream the two-face video once (detection every 2nd frame), writing every output on the way."""
    out = tmp_path_factory.mktemp("outputs")
    results: list[FrameResult] = []
    with (
        recognizer.stream(videos["two"], every=2, smoothing="ema", alpha=0.25) as stream,
        AnnotatedVideoWriter(out / "annotated.mp4", fps=stream.fps) as video,
        TimelineWriter(out / "timeline.csv", recognizer.labels) as csv_out,
        TimelineWriter(out / "timeline.json", recognizer.labels) as json_out,
    ):
        assert isinstance(stream, VideoStream) and stream.frame_count == 64 and stream.size == SIZE
        for result in stream:
            video.write_result(result)
            csv_out.write(result)
            json_out.write(result)
            results.append(result)
    return results, out


def test_two_faces_keep_one_stable_id_each(two_face_run):
    results, _ = two_face_run
    assert len(results) == 64
    ids = [tuple(f.track_id for f in r.faces) for r in results]
    assert {i for frame in ids for i in frame} == {1, 2}, ids
    assert sum(frame == (1, 2) for frame in ids) >= 60, ids  # both faces seen (almost) everywhere
    # No swap: each id stays on its side of the picture.
    sides = {f.track_id: set() for r in results for f in r.faces}
    for r in results:
        for f in r.faces:
            sides[f.track_id].add((f.box[0] + f.box[2]) / 2 < SIZE[0] / 2)
    assert all(len(s) == 1 for s in sides.values()) and sides[1] != sides[2]
    # Detection ran on even frames; odd frames classify the carried boxes.
    assert [r.detected for r in results] == [i % 2 == 0 for i in range(64)]
    carried = [f for r in results if not r.detected for f in r.faces]
    assert carried and not any(f.detected for f in carried)


def test_smoothing_is_the_ema_of_each_tracks_raw_probabilities(two_face_run):
    """The stream smooths each track on its own: its smoothed probabilities are exactly the EMA
    (alpha 0.25) of that track's raw ones, which move far less from frame to frame and flip the
    label no more often. (The stand-in model's raw answers are close to ties, so the label count
    alone would be at the mercy of float noise; the probabilities are not.)"""
    results, _ = two_face_run
    for track in (1, 2):
        faces = [f for r in results for f in r.faces if f.track_id == track]
        labels = list(faces[0].raw)
        raw = np.array([[f.raw[k] for k in labels] for f in faces])
        smoothed = np.array([[f.smoothed[k] for k in labels] for f in faces])
        expected = [raw[0]]
        for p in raw[1:]:
            expected.append(0.25 * p + 0.75 * expected[-1])
        np.testing.assert_allclose(smoothed, expected, atol=1e-5, err_msg=f"track {track}")
        raw_motion = np.abs(np.diff(raw, axis=0)).sum()
        smoothed_motion = np.abs(np.diff(smoothed, axis=0)).sum()
        assert smoothed_motion < 0.5 * raw_motion, (track, raw_motion, smoothed_motion)
        raw_changes = label_changes([f.raw_label for f in faces])
        assert raw_changes >= 3, (
            f"track {track}: raw labels barely change ({raw_changes}); the test would prove nothing"
        )
        assert label_changes([f.label for f in faces]) <= raw_changes
        for f in faces:
            assert sum(f.smoothed.values()) == pytest.approx(1.0) and f.label == max(f.smoothed, key=f.smoothed.get)
            assert sum(f.raw.values()) == pytest.approx(1.0) and f.raw_label == max(f.raw, key=f.raw.get)


def test_timeline_rows_match_frames(two_face_run):
    results, out = two_face_run
    expected = [(r.index, r.time, f) for r in results for f in r.faces]
    for name in ("timeline.csv", "timeline.json"):
        rows = read_timeline(out / name)
        assert len(rows) == len(expected), name
        for row, (index, t, face) in zip(rows, expected):
            assert (row["frame"], row["track"], row["label"], row["raw_label"]) == (
                index,
                face.track_id,
                face.label,
                face.raw_label,
            )
            assert row["time"] == pytest.approx(t, abs=1e-5) and row["time"] == pytest.approx(index / FPS, abs=1e-3)
            assert row["box"] == pytest.approx(face.box, abs=0.01)
            assert row["detected"] == face.detected
            assert row["scores"] == pytest.approx(dict(face.smoothed), abs=1e-5)
            assert row["raw_scores"] == pytest.approx(dict(face.raw), abs=1e-5)
    header = (out / "timeline.csv").read_text().splitlines()[0].split(",")
    assert header[:11] == [
        "frame",
        "time",
        "track",
        "x1",
        "y1",
        "x2",
        "y2",
        "detected",
        "label",
        "confidence",
        "raw_label",
    ]
    assert header[11:] == [*EMOTIONS, *(f"raw_{k}" for k in EMOTIONS)]
    assert json.loads((out / "timeline.json").read_text())["labels"] == header[11:18]


def test_annotated_video_and_plot(two_face_run, tmp_path):
    results, out = two_face_run
    with VideoReader(out / "annotated.mp4") as video:
        frames = list(video)
    assert len(frames) == len(results) and video.size == SIZE
    # The box outline is drawn: pixels on the top edge of track 1's box change colour.
    r = results[10]
    face = r.faces[0]
    x1, y1, x2, _ = (int(round(v)) for v in face.box)
    edge = slice(max(y1 - 1, 0), y1 + 2), slice(x1 + 3, x2 - 3)
    assert np.abs(frames[10].image[edge].astype(int) - r.image[edge]).mean() > 20
    png = plot_timeline(out / "timeline.csv", tmp_path / "emotions.png", raw=True)
    with Image.open(png) as im:
        assert im.size[0] >= 800 and im.size[1] >= 400


def test_one_face_keeps_one_id_through_pan_and_zoom(recognizer, videos):
    results = list(recognizer.stream(videos["one"], every=3, smoothing="window", window=6))
    ids = [tuple(f.track_id for f in r.faces) for r in results]
    assert len(results) == 64 and {i for frame in ids for i in frame} == {1}
    assert sum(frame == (1,) for frame in ids) >= 62, ids
    sizes = [f.detection.width for r in results for f in r.faces]
    assert max(sizes) > 1.4 * min(sizes)  # the zoom really changed the face's size
    faces = [r.faces[0] for r in results if r.faces]
    assert label_changes([f.label for f in faces]) < 0.6 * label_changes([f.raw_label for f in faces])


# ---------------------------------------------------------------------------------------------- memory
def _rss() -> int:
    """Resident memory of this process in bytes (Linux /proc, else psutil)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        psutil = pytest.importorskip("psutil", reason="measuring memory needs /proc or psutil")
        return int(psutil.Process().memory_info().rss)


def _peak_rss_while_streaming(recognizer, path: Path) -> tuple[int, int]:
    gc.collect()
    peak, frames = 0, 0
    for _ in recognizer.stream(path, every=10):
        peak = max(peak, _rss())
        frames += 1
    return peak, frames


def test_memory_stays_flat_with_video_length(recognizer, tmp_path):
    # Decoded frames live in FFmpeg's buffers, which tracemalloc does not see: measure resident memory.
    short = write_video(tmp_path / "short.mp4", one_face_frames(30))
    long = write_video(tmp_path / "long.mp4", one_face_frames(150))
    list(recognizer.stream(short, max_frames=3))  # warm-up: first-call allocations (caches, lazy imports)
    peak_short, n_short = _peak_rss_while_streaming(recognizer, short)
    peak_long, n_long = _peak_rss_while_streaming(recognizer, long)
    assert (n_short, n_long) == (30, 150)
    # Keeping the 120 extra frames (or decoding the file up front) would add over 120 * 230 kB = 28 MB;
    # allocator noise is a few MB.
    frame_bytes = SIZE[0] * SIZE[1] * 3
    assert peak_long - peak_short < 40 * frame_bytes, (peak_short / 1e6, peak_long / 1e6)


# ---------------------------------------------------------------------------------------------- errors
def test_missing_path_and_directory(recognizer, tmp_path):
    with pytest.raises(VideoNotFoundError, match="not found") as err:
        recognizer.stream(tmp_path / "nope.mp4")
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(InvalidVideoError, match="directory"):
        recognizer.stream(tmp_path)


def test_corrupt_file_gives_clear_error(recognizer, tmp_path, videos):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(InvalidVideoError, match="junk.mp4.*corrupt") as err:
        recognizer.stream(junk)  # fails at once, not at the first frame
    assert isinstance(err.value, ValueError)
    cut = tmp_path / "cut.mp4"
    data = videos["one"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])  # the index (moov atom) at the end is lost
    with pytest.raises(InvalidVideoError, match="cut.mp4"):
        list(recognizer.stream(cut))


def test_file_without_video_stream(recognizer, tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        t = np.arange(8000) / 8000
        frame = av.AudioFrame.from_ndarray(
            (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)[None], format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(InvalidVideoError, match="no video stream.*audio"):
        recognizer.stream(path)


def test_camera_that_cannot_be_opened(recognizer):
    with pytest.raises(CameraError, match="camera 99") as err:
        recognizer.stream(99)
    assert isinstance(err.value, OSError)
    with pytest.raises(CameraError, match=">= 0"):
        recognizer.stream(-1)


def test_bad_options(recognizer, videos):
    with pytest.raises(VideoOptionError, match="every"):
        recognizer.stream(videos["one"], every=0)
    with pytest.raises(VideoOptionError, match="Did you mean 'ema'"):
        recognizer.stream(videos["one"], smoothing="emma")  # type: ignore[arg-type]
    with pytest.raises(VideoOptionError, match="alpha"):
        recognizer.stream(videos["one"], alpha=1.5)
    with pytest.raises(InvalidVideoError, match="float"):
        recognizer.stream(1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- CLI
def _video_cli(argv: list[str]) -> int:
    from emotionkit.commands import video

    parser = argparse.ArgumentParser(prog="emotionkit")
    video.add_parser(parser.add_subparsers())
    return video.run(parser.parse_args(["video", *argv]))


def test_cli_writes_video_timelines_and_plot(model_dir, videos, tmp_path, capsys):
    outs = {name: tmp_path / name for name in ("annotated.mp4", "t.csv", "t.json", "plot.png")}
    argv = [str(videos["two"]), "--model", str(model_dir), "--every", "4", "--max-frames", "20", "--smooth", "window"]
    argv += ["--out", str(outs["annotated.mp4"]), "--timeline", str(outs["t.csv"]), "--timeline", str(outs["t.json"])]
    argv += ["--plot", str(outs["plot.png"]), "--detector-options", '{"min_face_size": 24}']
    assert _video_cli(argv) == 0
    printed = capsys.readouterr()
    assert "20 frames" in printed.out and "frames/s" in printed.out and "every 4 frames" in printed.out
    assert "frame/s]" not in printed.err  # stderr is not a terminal: no progress bar (tqdm's disable=None), as train
    assert all(p.stat().st_size > 0 for p in outs.values())
    assert len(read_timeline(outs["t.csv"])) == len(read_timeline(outs["t.json"])) >= 36
    assert VideoReader(outs["annotated.mp4"]).frame_count == 20


def test_cli_usage_errors(model_dir, videos):
    from emotionkit.commands.video import VideoUsageError
    from emotionkit.exceptions import EmotionKitError

    with pytest.raises(VideoUsageError, match="exactly one"):
        _video_cli(["--timeline", "t.csv"])
    with pytest.raises(VideoUsageError, match="exactly one"):
        _video_cli([str(videos["one"]), "--camera", "0", "--timeline", "t.csv"])
    with pytest.raises(VideoUsageError, match="Nothing to write"):
        _video_cli([str(videos["one"])])
    with pytest.raises(EmotionKitError, match="camera 7"):
        _video_cli(["--camera", "7", "--model", str(model_dir), "--timeline", "t.csv"])


# ---------------------------------------------------------------------------------------------- tracker
def test_tracker_filters_one_frame_false_positives_and_never_reuses_ids():
    tracker = IoUTracker(min_hits=2, max_age=2)
    face = Detection((100, 100, 140, 140))
    assert [t.track_id for t in tracker.update([face], 0)] == [1]  # first frames report at once
    tracker.update([face], 1)
    assert [t.track_id for t in tracker.update([face, Detection((10, 10, 30, 30))], 2)] == [1]  # tentative
    assert [t.track_id for t in tracker.update([face], 3)] == [1]  # the blip is gone
    for frame in (4, 5, 6):
        assert tracker.update([], frame) == []
    assert tracker.track_ids == set()  # older than max_age
    tracker.update([face], 7)
    assert [t.track_id for t in tracker.update([face], 8)] == [2]


@settings(max_examples=40, deadline=None)
@given(
    starts=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 3)), min_size=1, max_size=4, unique=True),
    velocity=st.tuples(st.floats(-6, 6), st.floats(-6, 6)),
    every=st.integers(1, 3),
)
def test_tracker_keeps_ids_of_faces_moving_smoothly(starts, velocity, every):
    """Faces on a grid (never overlapping) moving together by up to 6 px a frame keep their ids."""
    tracker = IoUTracker(min_hits=1)
    seen: dict[int, int] = {}
    for frame in range(0, 30, every):
        dets = [
            Detection(
                (
                    gx * 100 + velocity[0] * frame,
                    gy * 100 + velocity[1] * frame,
                    gx * 100 + 60 + velocity[0] * frame,
                    gy * 100 + 60 + velocity[1] * frame,
                )
            )
            for gx, gy in starts
        ]
        for track in tracker.update(dets, frame):
            owner = dets.index(track.detection)
            assert seen.setdefault(owner, track.track_id) == track.track_id
    assert sorted(seen.values()) == list(range(1, len(starts) + 1))


@given(st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=1, max_size=5))
def test_hungarian_matches_at_least_as_much_iou_as_greedy(rows):
    iou = np.array(rows)
    pairs = assign(iou, 0.3)
    assert len({r for r, _ in pairs}) == len(pairs) == len({c for _, c in pairs})
    assert all(iou[r, c] >= 0.3 for r, c in pairs)
    assert sum(iou[r, c] for r, c in pairs) >= sum(iou[r, c] for r, c in _greedy(iou, 0.3)) - 1e-9


# ---------------------------------------------------------------------------------------------- smoothing
probability_sequences = st.integers(2, 7).flatmap(
    lambda k: st.lists(
        st.lists(st.floats(0.01, 1.0), min_size=k, max_size=k).map(lambda v: np.array(v) / sum(v)),
        min_size=1,
        max_size=30,
    )
)


@given(probability_sequences, st.floats(0.05, 1.0), st.integers(1, 10))
def test_smoothers_return_probabilities(seq, alpha, size):
    for smoother in (EMASmoother(alpha), WindowSmoother(size), NoSmoother()):
        for p in seq:
            s = smoother.update(1, p)
            assert s.sum() == pytest.approx(1.0) and (s >= 0).all()
    assert np.allclose(EMASmoother(1.0).update(3, seq[-1]), seq[-1])


@given(st.lists(st.floats(0.0, 1.0), min_size=2, max_size=60), st.floats(0.05, 1.0))
def test_ema_never_flips_more_than_raw_for_two_classes(values, alpha):
    smoother = EMASmoother(alpha)
    raw, smoothed = [], []
    for v in values:
        p = np.array([v, 1.0 - v])
        raw.append(int(np.argmax(p)))
        smoothed.append(int(np.argmax(smoother.update(1, p))))
    assert label_changes(smoothed) <= label_changes(raw)  # type: ignore[arg-type]


def test_smoothers_forget_ended_tracks():
    for smoother in (EMASmoother(0.5), WindowSmoother(4)):
        smoother.update(1, np.array([1.0, 0.0]))
        smoother.retain({2})
        assert smoother.update(1, np.array([0.0, 1.0])).tolist() == [0.0, 1.0]


def test_cli_entry_point_reports_user_errors_in_one_line(tmp_path, capsys):
    from emotionkit.cli import main

    assert main(["video", str(tmp_path / "missing.mp4"), "--timeline", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emotionkit video: error: Video not found") and "missing.mp4" in err and "\n" not in err


def test_min_hits_defaults_to_1_with_every_so_a_new_face_is_shown_at_its_first_detection(recognizer, tmp_path):
    """A face that enters at frame 8: with --every 4 it is shown from frame 8, not hidden until frame 12."""
    frames = [np.zeros((SIZE[1], SIZE[0], 3), np.uint8)] * 8 + list(one_face_frames(12))
    path = write_video(tmp_path / "enters.mp4", iter(frames))

    def first_face(**options) -> int:
        with VideoStream(recognizer, path, **options) as stream:
            return min(r.index for r in stream if r.faces)

    assert first_face(every=4) == 8
    assert first_face(every=4, min_hits=2) == 12  # the old default hid it for one more detection pass
    assert first_face(every=1) == 9  # every frame: the second detection confirms it
    assert VideoStream(recognizer, path, every=1).tracker.min_hits == 2
