"""emotionkit.batch and ``emotionkit batch``: real photos, a real FER-2013 crop and broken files, compared with serial predict."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotionkit.batch import COLUMNS, expand_inputs, predict_files, read_results
from emotionkit.cli import main
from emotionkit.exceptions import ImageNotFoundError, InvalidDataError, InvalidOptionError


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory, sample_photo, fer_faces) -> Path:
    """A folder as users have them: a photo with a face, nested folders, a face-less photo and broken files."""
    root = tmp_path_factory.mktemp("photos")
    (root / "trip" / "day2").mkdir(parents=True)
    shutil.copy(sample_photo, root / "astronaut.jpg")
    Image.open(sample_photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "trip" / "mirrored.png")
    big = Image.fromarray(fer_faces[0]).resize((240, 240), Image.Resampling.BICUBIC)  # a real FER-2013 face
    canvas = Image.new("L", (480, 360), 90)
    canvas.paste(big, (120, 60))
    canvas.save(root / "trip" / "day2" / "fer_face.png")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(root / "trip" / "wall.png")  # no face
    (root / "notes.jpg").write_text("not an image")
    data = sample_photo.read_bytes()
    (root / "trip" / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "readme.txt.bak").write_text("skipped: not an image suffix")
    return root


@pytest.fixture(scope="module")
def bundled():
    """The bundled default model with the default detector: what ``emotionkit batch`` runs without options."""
    from emotionkit import EmotionRecognizer

    return EmotionRecognizer.from_pretrained()


def _key(row):
    return row["path"], -1 if row["face"] is None else row["face"]


def _serial(recognizer, paths):
    """What a user gets by calling predict on each path, as {(path, face): (box, score, label, probs)}."""
    out = {}
    for path in paths:
        try:
            faces = recognizer.predict(path)
        except Exception as exc:  # noqa: BLE001 - the job records any error as a row
            out[(path, -1)] = type(exc).__name__
            continue
        if not faces:
            out[(path, -1)] = None
        for i, face in enumerate(faces):
            out[(path, i)] = (face.box, face.detection.score, face.label, [face.scores[k] for k in recognizer.labels])
    return out


def _check_rows_equal_serial(rows, serial, labels, atol):
    assert sorted(_key(r) for r in rows) == sorted(serial)
    for row in rows:
        expected = serial[_key(row)]
        if row["error"] is not None:
            assert row["error"].startswith(f"{expected}: ")
            assert all(row[c] is None for c in ("face", "label", "confidence", "x1"))
        elif expected is None:
            assert row["label"] is None and row["face"] is None
        else:
            box, score, label, probs = expected
            assert (row["x1"], row["y1"], row["x2"], row["y2"]) == pytest.approx(box, abs=atol)
            assert row["detection_score"] == pytest.approx(score, abs=atol)
            assert row["label"] == label
            got = [row[f"prob_{k}"] for k in labels]
            np.testing.assert_allclose(got, probs, atol=atol, rtol=0)
            assert row["confidence"] == pytest.approx(max(probs), abs=atol)


def test_expand_inputs_folder_glob_list_and_table(photo_dir, tmp_path):
    files = expand_inputs(photo_dir)
    names = [Path(p).relative_to(photo_dir).as_posix() for p in files]
    assert names == sorted(names)
    assert set(names) == {
        "astronaut.jpg",
        "notes.jpg",
        "trip/mirrored.png",
        "trip/truncated.jpg",
        "trip/wall.png",
        "trip/day2/fer_face.png",
    }
    assert expand_inputs(f"{photo_dir}/**/*.png") == sorted(p for p in files if p.endswith(".png"))
    listing = tmp_path / "paths.txt"
    listing.write_text(f"# photos\n{files[1]}\n\n{files[0]}\n{files[1]}\n")
    assert expand_inputs(listing) == [files[1], files[0]]  # order kept, duplicates dropped
    table = tmp_path / "paths.csv"
    with open(table, "w", newline="") as fh:
        csv.writer(fh).writerows([["id", "file"], [1, files[2]], [2, files[3]]])
    assert expand_inputs(table, path_column="file") == files[2:4]
    with pytest.raises(InvalidDataError, match=r"no column 'path' \(its columns: id, file\)"):
        expand_inputs(table)
    with pytest.raises(ImageNotFoundError, match="Input not found: 'nowhere'"):
        expand_inputs("nowhere")
    with pytest.raises(ImageNotFoundError, match="matches no image file"):
        expand_inputs(f"{photo_dir}/*.gif")


def test_rows_equal_serial_predict_exactly_one_photo_per_pass(photo_dir, tmp_path, bundled):
    summary = predict_files(photo_dir, tmp_path / "out", workers=0, chunk_size=1, format="jsonl", progress=False)
    rows = read_results(tmp_path / "out")
    assert all(tuple(r) == COLUMNS for r in rows)
    serial = _serial(bundled, expand_inputs(photo_dir))
    _check_rows_equal_serial(rows, serial, bundled.labels, atol=0)
    assert (summary.images, summary.skipped, summary.errors) == (6, 0, 2)
    assert summary.faces == sum(1 for k, v in serial.items() if isinstance(v, tuple))
    assert summary.no_face == sum(1 for v in serial.values() if v is None) >= 1
    from emotionkit.recognizer import DEFAULT_MODEL
    from emotionkit.registry import load_plugin

    assert {r["model"] for r in rows} == {DEFAULT_MODEL}
    assert {r["weights_sha256"] for r in rows} == {load_plugin("backbones", DEFAULT_MODEL).weights[0].sha256}


def test_batched_passes_and_two_worker_processes_match_serial(photo_dir, tmp_path, bundled):
    predict_files(photo_dir, tmp_path / "w2", workers=2, threads=1, chunk_size=2, progress=False)
    rows = read_results(tmp_path / "w2")
    serial = _serial(bundled, expand_inputs(photo_dir))
    _check_rows_equal_serial(rows, serial, bundled.labels, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "w2").iterdir()) == ["part-000000.parquet"]


def test_killed_job_resumes_with_the_missing_photos_only(photo_dir, tmp_path):
    out = tmp_path / "resume"
    first = predict_files(photo_dir, out, workers=0, part_size=1, chunk_size=1, progress=False)
    full = read_results(out)
    parts = sorted(out.iterdir())
    assert len(parts) == first.images == 6
    parts[-1].unlink()  # the part in flight when the job was killed never appeared
    parts[-2].unlink()
    (out / ".part-000005.parquet.tmp").write_bytes(b"half a part")  # staging leftovers are ignored
    again = predict_files(photo_dir, out, workers=0, part_size=1, chunk_size=1, progress=False)
    assert (again.images, again.skipped) == (2, 4)
    assert sorted(map(_key, read_results(out))) == sorted(map(_key, full))
    done = predict_files(photo_dir, out, workers=0, progress=False)
    assert (done.images, done.skipped) == (0, 6)
    with pytest.raises(InvalidOptionError, match="already holds parquet parts; asked for jsonl"):
        predict_files(photo_dir, out, workers=0, format="jsonl", progress=False)
    fresh = predict_files(photo_dir, out, workers=0, overwrite=True, progress=False)
    assert (fresh.images, fresh.skipped) == (6, 0)


def test_bad_options_are_refused_before_work(photo_dir, tmp_path):
    for kwargs, message in (
        ({"workers": -1}, "workers must be an integer >= 0"),
        ({"chunk_size": 0}, "chunk_size must be an integer >= 1"),
        ({"part_size": 1.5}, "part_size must be an integer >= 1"),
    ):
        with pytest.raises(InvalidOptionError, match=message):
            predict_files(photo_dir, tmp_path / "x", **kwargs)
    target = tmp_path / "file.parquet"
    target.write_text("")
    with pytest.raises(InvalidOptionError, match="is a file; results are written as a folder"):
        predict_files(photo_dir, target, workers=0, progress=False)


def test_cli_batch_reports_and_exits_1_when_files_failed(photo_dir, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["batch", str(photo_dir), "--out", str(out), "--workers", "0", "--format", "jsonl"])
    assert code == 1
    printed = capsys.readouterr().out
    assert "6 photos" in printed and "2 failed" in printed and "0 already done" in printed
    assert all(p.suffix == ".jsonl" for p in out.iterdir())
    ok = tmp_path / "ok"
    code = main(["batch", str(photo_dir / "astronaut.jpg"), "--out", str(ok), "--workers", "0"])
    assert code == 0 and read_results(ok)[0]["label"] is not None


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with two CPUs (no mock), shut down after the module."""
    ray = pytest.importorskip("ray", reason='Ray is an optional extra: pip install "emotionkit[ray]"')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


def test_ray_engine_rows_equal_serial_predict(photo_dir, tmp_path, bundled, local_ray):
    from emotionkit.distributed import predict_files_ray

    summary = predict_files_ray(photo_dir, tmp_path / "ray", actors=2, threads=1, chunk_size=2)
    rows = read_results(tmp_path / "ray")
    _check_rows_equal_serial(rows, _serial(bundled, expand_inputs(photo_dir)), bundled.labels, atol=1e-5)
    assert (summary.images, summary.errors) == (6, 2)
    again = predict_files_ray(photo_dir, tmp_path / "ray", actors=2)
    assert (again.images, again.skipped) == (0, 6)


def test_predict_dataset_reads_bytes_through_ray(photo_dir, bundled, local_ray):
    from emotionkit.distributed import predict_dataset

    files = expand_inputs(photo_dir)
    ds = local_ray.data.read_binary_files(files, include_paths=True)
    rows = predict_dataset(ds, batch_size=3, concurrency=1).take_all()
    serial = _serial(bundled, files)
    # read_binary_files names files by absolute path: map back to the inputs' spelling
    by_abs = {str(Path(p).resolve()): p for p in files}
    rows = [dict(r, path=by_abs[str(Path(r["path"]).resolve())]) for r in rows]
    _check_rows_equal_serial(rows, serial, bundled.labels, atol=1e-5)
    with pytest.raises(InvalidDataError, match="has no 'path' column"):
        predict_dataset(local_ray.data.from_items([{"file": files[0]}]))


# ---------------------------------------------------------------------------------------------- videos
@pytest.fixture(scope="module")
def video_dir(tmp_path_factory, sample_photo) -> Path:
    """Two short real-photo videos (a slow pan over the sample photo, one mirrored) and a corrupt one."""
    from emotionkit.video import VideoWriter

    root = tmp_path_factory.mktemp("videos")
    (root / "b").mkdir()
    photo = Image.open(sample_photo).convert("RGB")
    for path, image in (
        (root / "a.mp4", photo),
        (root / "b" / "a.mp4", photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
    ):
        with VideoWriter(path, fps=10) as out:
            for t in range(10):
                out.write(np.asarray(image.resize((256, 256), box=(4 * t, 0, 4 * t + 440, 440))))
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    return root


def _serial_timeline(recognizer, video, tmp_path):
    from emotionkit.video import TimelineWriter, read_timeline

    target = tmp_path / f"serial-{Path(video).parent.name}-{Path(video).stem}.csv"
    with recognizer.stream(video) as stream, TimelineWriter(target, recognizer.labels) as writer:
        for result in stream:
            writer.write(result)
    return read_timeline(target)


def _same_timeline(got, expected):
    """Equal rows; numbers to the rounding of the file (a task may run on other thread counts than this process)."""
    assert [(r["frame"], r["track"], r["detected"], r["label"]) for r in got] == [
        (r["frame"], r["track"], r["detected"], r["label"]) for r in expected
    ]
    for a, b in zip(got, expected):
        assert a["box"] == pytest.approx(b["box"], abs=0.02)
        assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
        assert a["raw_scores"] == pytest.approx(b["raw_scores"], abs=1e-5)


def test_videos_get_the_timelines_emotionkit_video_writes(video_dir, tmp_path, bundled):
    pytest.importorskip("av")
    from emotionkit.batch.videos import SUMMARY_NAME, predict_videos, timeline_name
    from emotionkit.video import read_timeline

    out = tmp_path / "videos"
    summaries = predict_videos(video_dir, out, workers=0)
    by_video = {Path(s["video"]).relative_to(video_dir).as_posix(): s for s in summaries}
    assert sorted(by_video) == ["a.mp4", "b/a.mp4", "broken.mp4"]
    assert (
        by_video["broken.mp4"]["error"].startswith("InvalidVideoError") and by_video["broken.mp4"]["timeline"] is None
    )
    for name in ("a.mp4", "b/a.mp4"):
        video = str(video_dir / name)
        assert by_video[name]["frames"] == 10 and by_video[name]["tracks"] >= 1 and by_video[name]["error"] is None
        assert read_timeline(out / timeline_name(video)) == _serial_timeline(bundled, video, tmp_path)
    assert len((out / SUMMARY_NAME).read_text().splitlines()) == 3
    again = predict_videos(video_dir, out, workers=0)  # done videos are skipped; the broken one is tried again
    assert [Path(s["video"]).name for s in again] == ["broken.mp4"]


def test_videos_on_ray_one_task_each(video_dir, tmp_path, bundled, local_ray):
    pytest.importorskip("av")
    from emotionkit.batch.videos import timeline_name
    from emotionkit.distributed import predict_videos_ray
    from emotionkit.video import read_timeline

    summaries = predict_videos_ray(video_dir, tmp_path / "ray-videos")
    assert [s["error"] is None for s in summaries] == [True, True, False]
    video = str(video_dir / "b" / "a.mp4")
    _same_timeline(
        read_timeline(tmp_path / "ray-videos" / timeline_name(video)), _serial_timeline(bundled, video, tmp_path)
    )


def test_cli_batch_videos(video_dir, tmp_path, capsys):
    pytest.importorskip("av")
    code = main(["batch", "--videos", str(video_dir / "b"), "--out", str(tmp_path / "cli-videos"), "--workers", "0"])
    assert code == 0
    assert "1 videos, 0 failed" in capsys.readouterr().out
