"""Property tests of the dataset readers on real FER-2013 rows: a bad row, file or folder is one error that names it."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from emotionkit import EMOTIONS
from emotionkit.data.fer2013 import read_fer2013
from emotionkit.data.folders import read_image_folder
from emotionkit.exceptions import EmotionKitError, InvalidDataError

HEADER = "emotion,pixels,Usage"
_ROWS = 6
# Field text: digits, spaces, signs, letters, separators and quotes (no line breaks: one row stays one row).
_FIELD = st.text(alphabet=st.sampled_from(list('0123456789 -+.,"xeT\t')), max_size=40)


@pytest.fixture(scope="module")
def real_rows(fer_train_small) -> list[list[str]]:
    data = fer_train_small
    usages = ["Training", "PublicTest", "PrivateTest"]
    return [[str(data.labels[i]), " ".join(map(str, data.images[i].ravel())), usages[i % 3]] for i in range(_ROWS)]


def _damage(field: str, how: str, text: str) -> str:
    if how == "replace":
        return text
    if how == "append":
        return field + text
    if how == "cut":
        return field[: len(text) * 7]
    return field.replace(" ", text or "  ", 1)  # "sep": another separator between the first two values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    row=st.integers(0, _ROWS - 1),
    column=st.integers(0, 2),
    how=st.sampled_from(["replace", "append", "cut", "sep"]),
    text=_FIELD,
)
def test_fer2013_csv_with_one_damaged_row(real_rows, tmp_path_factory, row, column, how, text):
    rows = [list(r) for r in real_rows]
    rows[row][column] = _damage(rows[row][column], how, text)
    path = tmp_path_factory.mktemp("csv") / "fer2013.csv"
    path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n")
    try:
        data = read_fer2013(path)
    except InvalidDataError as exc:
        assert f"row {row + 1}:" in str(exc), str(exc)  # the damaged row, 1-based, and no other
        return
    assert data.images.shape == (_ROWS, 48, 48) and data.images.dtype == np.uint8
    assert set(data.labels.tolist()) <= set(range(len(EMOTIONS)))
    undamaged = [i for i in range(_ROWS) if i != row]
    np.testing.assert_array_equal(
        data.images[undamaged],
        np.array([np.array(real_rows[i][1].split(), np.uint8).reshape(48, 48) for i in undamaged]),
    )


@pytest.mark.parametrize(
    ("column", "value", "fragment"),
    [
        (0, "7", "unknown emotion label '7'"),
        (0, "happy", "unknown emotion label 'happy'"),
        (1, "1 2 3", "expected 2304 pixels (48x48), got 3"),
        (1, " ".join(["300"] * 2304), "pixel values must be 0-255"),
        (1, " ".join(["12"] * 2303 + ["12000000000000000000"]), "pixel values must be 0-255, got 12000000000000000000"),
        (2, "Validation", "unknown Usage 'Validation'"),
    ],
)
def test_fer2013_bad_values_name_row_and_allowed(real_rows, tmp_path, column, value, fragment):
    rows = [list(r) for r in real_rows]
    rows[3][column] = value
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n")
    with pytest.raises(InvalidDataError, match="row 4: ") as excinfo:
        read_fer2013(path)
    assert fragment in str(excinfo.value) and isinstance(excinfo.value, ValueError)


@pytest.fixture(scope="module")
def face_tree(fer_train_small, tmp_path_factory):
    root = tmp_path_factory.mktemp("tree") / "faces"
    for i in range(14):
        folder = root / EMOTIONS[i % 7]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(fer_train_small.images[i]).save(folder / f"{i:02d}.png")
    return root


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    target=st.integers(0, 13),
    how=st.sampled_from(["cut", "flip", "noise", "rename_folder", "text"]),
    at=st.integers(0, 1 << 20),
    noise=st.binary(max_size=64),
    name=st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyz_-")), min_size=1, max_size=10),
)
def test_image_folder_with_one_damaged_file_or_folder(face_tree, tmp_path_factory, target, how, at, noise, name):
    root = tmp_path_factory.mktemp("case") / "faces"
    shutil.copytree(face_tree, root)
    path = root / EMOTIONS[target % 7] / f"{target:02d}.png"
    data = path.read_bytes()
    if how == "cut":
        path.write_bytes(data[: at % len(data)])
    elif how == "flip":
        i = at % len(data)
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xA5]) + data[i + 1 :])
    elif how == "noise":
        path.write_bytes(noise)
    elif how == "text":
        path.write_text(name)
    else:
        assume(not (root / name).exists())
        path.parent.rename(root / name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unreadable files are skipped with a warning by design
        try:
            data_set = read_image_folder(root, on_bad_file="raise")
        except EmotionKitError as exc:
            assert isinstance(exc, InvalidDataError)
            named = name if how == "rename_folder" else path.name
            assert named in str(exc), str(exc)
            return
    assert 1 <= len(data_set) <= 14 and data_set.images.shape[1:] == (48, 48)
