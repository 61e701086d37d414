"""Saved model directories: every damaged file is one EmotionKitError naming it; weights cannot be silently wrong."""

from __future__ import annotations

import json
import os
import shutil
import stat
import warnings

import numpy as np
import pytest

from emotionkit import EmotionRecognizer
from emotionkit.exceptions import (
    ChecksumMismatchError,
    EmotionKitError,
    EmotionKitWarning,
    ImageNotFoundError,
    InvalidWeightsError,
    WeightsNotFoundError,
)
from emotionkit.weights import CONFIG_NAME, PREPROCESSOR_NAME, WEIGHTS_NAME, load_weights


def _copy(model_dir, tmp_path, name="copy", *, keep_sha=True):
    out = shutil.copytree(model_dir, tmp_path / name)
    if not keep_sha:
        config = json.loads((out / CONFIG_NAME).read_text())
        del config["weights_sha256"]
        (out / CONFIG_NAME).write_text(json.dumps(config))
    return out


def _load(path):
    return EmotionRecognizer.from_pretrained(path, detector="none")


def test_save_pretrained_files_follow_the_umask(recognizer, tmp_path):
    old = os.umask(0o022)
    try:
        out = recognizer.save_pretrained(tmp_path / "saved")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {CONFIG_NAME: 0o644, PREPROCESSOR_NAME: 0o644, WEIGHTS_NAME: 0o644}
    assert not list(out.glob("*.tmp"))


@pytest.mark.parametrize(
    "content", [b"", b"\x89PNG\r\n\x1a\n not weights", b'{"a": 1}', b"\x08\x00\x00\x00\x00\x00\x00\x00{}"]
)
def test_empty_or_foreign_weights_without_checksum(model_dir, tmp_path, content):
    broken = _copy(model_dir, tmp_path, keep_sha=False)
    (broken / WEIGHTS_NAME).write_bytes(content)
    with pytest.raises(InvalidWeightsError) as excinfo, pytest.warns(EmotionKitWarning, match="unverified"):
        _load(broken)
    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert str(broken / WEIGHTS_NAME) in message and f"({len(content)} bytes)" in message and "re-save" in message


def test_truncated_weights_without_checksum(model_dir, tmp_path):
    broken = _copy(model_dir, tmp_path, keep_sha=False)
    data = (broken / WEIGHTS_NAME).read_bytes()
    (broken / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidWeightsError, match="truncated"), pytest.warns(EmotionKitWarning):
        _load(broken)


def test_missing_weights_file_is_a_weights_error(model_dir, tmp_path):
    broken = _copy(model_dir, tmp_path)
    (broken / WEIGHTS_NAME).unlink()
    with pytest.raises(WeightsNotFoundError) as excinfo:
        _load(broken)
    assert isinstance(excinfo.value, FileNotFoundError) and not isinstance(excinfo.value, ImageNotFoundError)
    assert str(broken / WEIGHTS_NAME) in str(excinfo.value)
    with pytest.raises(WeightsNotFoundError):
        load_weights(broken / WEIGHTS_NAME)


def test_config_whose_widths_disagree_with_the_weights(model_dir, tmp_path):
    broken = _copy(model_dir, tmp_path)
    config = json.loads((broken / CONFIG_NAME).read_text())
    config["backbone_config"]["widths"] = [16, 32, 64]
    (broken / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(InvalidWeightsError) as excinfo:
        _load(broken)
    message = str(excinfo.value)
    assert "do not fit" in message and "size mismatch" in message and str(broken / CONFIG_NAME) in message
    assert "\n" not in message  # one line, for the CLI


def test_missing_checksum_warns_that_weights_are_unverified(model_dir, tmp_path, fer_faces):
    unverified = _copy(model_dir, tmp_path, keep_sha=False)
    with pytest.warns(EmotionKitWarning, match=r"records no weights_sha256.*unverified"):
        rec = _load(unverified)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(rec.predict_proba(fer_faces[:4]), _load(model_dir).predict_proba(fer_faces[:4]))
        EmotionRecognizer.from_pretrained("cnn", detector="none")  # bundled models always verify


def test_checksum_mismatch_is_an_invalid_weights_error(model_dir, tmp_path):
    with pytest.raises(InvalidWeightsError) as excinfo:
        load_weights(model_dir / WEIGHTS_NAME, "0" * 64)
    assert isinstance(excinfo.value, ChecksumMismatchError)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        (CONFIG_NAME, "{not json", "not valid JSON"),
        (CONFIG_NAME, '{"format": "emotionkit/1", "backbone": 3}', "'backbone' must be"),
        (CONFIG_NAME, '{"format": "emotionkit/1", "backbone": "cnn", "temperature": -1}', "'temperature' must be"),
        (PREPROCESSOR_NAME, '{"size": [48, 48], "colour": 1}', "preprocessor.json"),
        (PREPROCESSOR_NAME, "[]", "missing: all"),
        (PREPROCESSOR_NAME, "{}", "missing: channels"),
        (PREPROCESSOR_NAME, None, "has no preprocessor.json"),
    ],
    ids=[
        "config-not-json",
        "backbone-type",
        "temperature",
        "preprocessor-key",
        "preprocessor-list",
        "preprocessor-empty",
        "no-preprocessor",
    ],
)
def test_damaged_config_files(model_dir, tmp_path, name, content, fragment):
    broken = _copy(model_dir, tmp_path)
    if content is None:
        (broken / name).unlink()
    else:
        (broken / name).write_text(content)
    with pytest.raises(EmotionKitError, match=fragment):
        _load(broken)


def test_damaged_directories_load_or_raise_an_emotionkit_error(model_dir, tmp_path):
    """Any file deleted, cut, overwritten with bytes or with one byte changed: loads, or one EmotionKitError."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    files = [CONFIG_NAME, PREPROCESSOR_NAME, WEIGHTS_NAME]
    originals = {name: (model_dir / name).read_bytes() for name in files}
    damage = st.tuples(
        st.sampled_from(files),
        st.sampled_from(["delete", "cut", "flip", "replace"]),
        st.integers(0, 1 << 30),
        st.binary(max_size=64),
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(damage, min_size=1, max_size=3))
    def check(damages):
        folder = tmp_path / "fuzz"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        for name, data in originals.items():
            (folder / name).write_bytes(data)
        for name, how, at, noise in damages:
            path = folder / name
            data = path.read_bytes() if path.exists() else b""
            at = at % (len(data) + 1)
            if how == "delete":
                path.unlink(missing_ok=True)
            elif how == "cut":
                path.write_bytes(data[:at])
            elif how == "flip" and data:
                at = min(at, len(data) - 1)
                path.write_bytes(data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1 :])
            else:
                path.write_bytes(noise)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmotionKitWarning)
            try:
                rec = EmotionRecognizer.from_pretrained(folder, detector="none")
            except EmotionKitError:
                return
        assert rec.predict_proba(np.zeros((1, 48, 48), np.uint8)).shape == (1, len(rec.labels))

    check()
