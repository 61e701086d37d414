"""Data readers, splits and duplicates: real FER-2013 rows, small CSVs and image trees written in tmp_path."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from emotionkit.data.duplicates import find_duplicates
from emotionkit.data.fer2013 import FaceDataset, read_fer2013
from emotionkit.data.folders import canonical_emotion, read_image_folder
from emotionkit.data.loading import concatenate, load_dataset, load_splits
from emotionkit.data.splits import split_dataset, stratified_split
from emotionkit.exceptions import ImageNotFoundError, InvalidDataError
from emotionkit.training.augment import augment_copies
from emotionkit.training.reports import distribution_markdown
from emotionkit.types import EMOTIONS

# Pixel-identical groups among the first 2,000 Training rows (CSV data-row numbers), found by
# benchmarks/fer2013_duplicates.py; rows 1045 and 1309 carry different labels (sad, fear).
KNOWN_GROUPS_2000 = [
    [75, 1552],
    [492, 1104],
    [584, 873],
    [1045, 1309],
    [1108, 1186],
    [1166, 1829],
    [1224, 1576],
    [1560, 1742],
]


@pytest.fixture(scope="module")
def fer_2000(fer_csv) -> FaceDataset:
    return read_fer2013(fer_csv, usage="Training", limit=2000)


def _pixels(image: np.ndarray) -> str:
    return " ".join(map(str, image.ravel().tolist()))


def _write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    text = "emotion,pixels,Usage\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ CSV
@pytest.mark.parametrize("name", ["bad.csv", "bad.csv.gz"])
@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (("3", "0 1 2", "Training"), r"row 2: expected 2304 pixels \(48x48\), got 3"),
        (("9", None, "Training"), r"row 2: unknown emotion label '9'"),
        (("happy", None, "Training"), r"row 2: unknown emotion label 'happy'"),
        (("3", None, "Validation"), r"row 2: unknown Usage 'Validation'"),
        (("3", " ".join(["300"] * 2304), "Training"), r"row 2: pixel values must be 0-255"),
        (("3", " ".join(["x"] * 2304), "Training"), r"row 2: pixels must be space-separated integers"),
    ],
)
def test_csv_bad_row_is_named(tmp_path, fer_faces, name, row, expected):
    good = ("0", _pixels(fer_faces[0]), "Training")
    label, pixels, usage = row
    path = _write_csv(tmp_path / name, [good, (label, pixels or _pixels(fer_faces[1]), usage)])
    with pytest.raises(InvalidDataError, match=expected) as info:
        read_fer2013(path)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("name", ["ok.csv", "ok.csv.gz"])
def test_csv_plain_and_gzip_read_real_faces(tmp_path, fer_faces, name):
    rows = [(str(i % 7), _pixels(face), "Training" if i < 6 else "PublicTest") for i, face in enumerate(fer_faces[:8])]
    data = read_fer2013(_write_csv(tmp_path / name, rows))
    assert data.images.shape == (8, 48, 48) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images, fer_faces[:8])
    assert data.labels.tolist() == [i % 7 for i in range(8)]
    assert data.ids.tolist() == list(range(1, 9))
    only = read_fer2013(tmp_path / name, limit_per_usage=1)
    assert only.usage.tolist() == ["Training", "PublicTest"] and only.ids.tolist() == [1, 7]


def test_csv_bad_header(tmp_path):
    (tmp_path / "x.csv").write_text("label,image\n1,2\n")
    with pytest.raises(InvalidDataError, match="does not start with the header 'emotion,pixels,Usage'"):
        read_fer2013(tmp_path / "x.csv")


def test_real_csv_limits_and_counts(fer_csv, fer_train_small):
    assert len(fer_train_small) == 600 and set(fer_train_small.usage.tolist()) == {"Training"}
    assert fer_train_small.class_counts() == dict(zip(EMOTIONS, [71, 10, 77, 165, 94, 79, 104]))


# ------------------------------------------------------------------------------------------ duplicates
def test_known_duplicates_are_found(fer_2000):
    summary, groups = find_duplicates(fer_2000)
    assert [fer_2000.ids[g].tolist() for g in groups] == KNOWN_GROUPS_2000
    assert (summary.rows, summary.distinct, summary.groups, summary.rows_in_groups, summary.conflicting) == (
        2000,
        1992,
        8,
        16,
        1,
    )


def test_cross_split_duplicates_reported_and_dropped(fer_2000):
    # Pretend rows after 1000 are the test split: groups (75, 1552) and (492, 1104) then span both.
    usage = np.where(fer_2000.ids <= 1000, "Training", "PublicTest")
    data = FaceDataset(fer_2000.images, fer_2000.labels, usage=usage, ids=fer_2000.ids)
    kept = split_dataset(data, "official", seed=0)
    assert kept.duplicates["test_in_train"] == 2 and kept.duplicates["test_groups"] == 2
    assert len(kept.test) == 1000
    dropped = split_dataset(data, "official", seed=0, drop_duplicates=True)
    assert len(dropped.test) == 998 and not {1552, 1104} & set(dropped.test.ids.tolist())
    assert len(dropped.train) == len(kept.train)  # training is never touched


# ------------------------------------------------------------------------------------------ splits
@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 6), min_size=1, max_size=300),
    seed=st.integers(0, 2**16),
    fractions=st.sampled_from([(0.6, 0.2, 0.2), (0.9, 0.1), (0.5, 0.25, 0.25), (0.7, 0.3)]),
)
def test_stratified_split_is_disjoint_stratified_and_seeded(labels, seed, fractions):
    y = np.asarray(labels)
    counts = np.bincount(y, minlength=7)
    if counts[counts > 0].min() < len(fractions):
        with pytest.raises(InvalidDataError, match="too few to appear in all"):
            stratified_split(y, fractions, seed=seed)
        return
    parts = stratified_split(y, fractions, seed=seed)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(y)))  # disjoint and complete
    for part, fraction in zip(parts, fractions):
        part_counts = np.bincount(y[part], minlength=7)
        assert ((part_counts > 0) == (counts > 0)).all()  # every class in every part
        assert (np.abs(part_counts - fraction * counts) <= len(fractions)).all()  # proportional
    again = stratified_split(y, fractions, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_stratified_split_names_a_class_that_is_too_small():
    with pytest.raises(InvalidDataError, match="Class 'disgust' has 2 sample"):
        stratified_split(np.array([0] * 10 + [1] * 2), (0.6, 0.2, 0.2), class_names=EMOTIONS)


def test_split_dataset_stratified_on_real_faces(fer_train_small):
    s = split_dataset(fer_train_small, "stratified", seed=3)
    sizes = np.array([len(s.train), len(s.val), len(s.test)])
    assert sizes.sum() == 600 and (np.abs(sizes - [360, 120, 120]) <= 7).all()  # per-class rounding
    ids = [set(p.ids.tolist()) for p in (s.train, s.val, s.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert s.class_counts()["val"]["disgust"] == 2 and s.class_counts()["train"]["disgust"] == 6
    table = distribution_markdown(s.class_counts())
    assert table.splitlines()[0] == "| class | train | % | val | % | test | % |"
    assert "| disgust | 6 | 1.7 | 2 | 1.7 | 2 | 1.7 |" in table and f"| **total** | **{len(s.train)}** |" in table
    assert split_dataset(fer_train_small, "stratified", seed=3).train.ids.tolist() == s.train.ids.tolist()


def test_class_without_samples_in_a_split_is_named(fer_train_small):
    # Official split whose test part has no disgust face.
    usage = np.where(np.arange(600) < 500, "Training", "PublicTest")
    usage[(np.arange(600) >= 500) & (fer_train_small.labels == 1)] = "Training"
    data = FaceDataset(fer_train_small.images, fer_train_small.labels, usage=usage)
    with pytest.raises(InvalidDataError, match="The test split has no samples of class\\(es\\) 'disgust'"):
        split_dataset(data, "official")


def test_official_split_needs_usages(fer_train_small):
    with pytest.raises(InvalidDataError, match="no official split"):
        split_dataset(FaceDataset(fer_train_small.images, fer_train_small.labels), "official")


def test_augmented_copies_follow_their_source(fer_train_small):
    part = fer_train_small.subset(np.arange(20))
    more = augment_copies(part, 2, seed=1)
    assert len(more) == 60 and more.images.dtype == np.uint8
    np.testing.assert_array_equal(more.images[:20], part.images)
    assert more.labels.tolist() == part.labels.tolist() * 3 and more.ids.tolist() == part.ids.tolist() * 3
    assert not np.array_equal(more.images[20:40], part.images)  # transformed...
    corr = [
        max(np.corrcoef(a.ravel(), b.ravel())[0, 1], np.corrcoef(a.ravel(), b[:, ::-1].ravel())[0, 1])
        for a, b in zip(more.images[20:40].astype(float), part.images.astype(float))
    ]
    assert np.median(corr) > 0.6  # ...but still the same faces (up to a mirror flip)
    np.testing.assert_array_equal(augment_copies(part, 2, seed=1).images, more.images)


# ------------------------------------------------------------------------------------------ image folders
def _tree(root: Path, faces: np.ndarray, labels: np.ndarray, names: dict[int, str], split: str | None = None) -> Path:
    for i, (face, label) in enumerate(zip(faces, labels)):
        folder = root / split / names[int(label)] if split else root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(folder / f"{i:04d}.png")
    return root


ALIASES = {0: "Anger", 1: "disgusted", 2: "fear", 3: "happiness", 4: "Sad", 5: "surprised", 6: "neutral"}


def test_aliases_map_to_canonical_names():
    assert [canonical_emotion(n) for n in ALIASES.values()] == list(EMOTIONS)
    assert canonical_emotion("3") == "happy" and canonical_emotion("SURPRISE") == "surprise"
    assert canonical_emotion("contempt") is None


def test_folder_tree_with_splits_reads_real_faces(tmp_path, fer_train_small):
    faces, labels = fer_train_small.images[:40], fer_train_small.labels[:40]
    _tree(tmp_path, faces[:30], labels[:30], ALIASES, "train")
    _tree(tmp_path, faces[30:], labels[30:], ALIASES, "test")
    data = read_image_folder(tmp_path)
    assert data.images.shape == (40, 48, 48) and data.classes == EMOTIONS
    train = data.subset(data.usage == "Training")
    order = np.argsort([int(Path(i).stem) for i in train.ids])
    np.testing.assert_array_equal(train.images[order], faces[:30])  # lossless PNG, whole image: same pixels
    np.testing.assert_array_equal(train.labels[order], labels[:30])
    assert set(data.usage.tolist()) == {"Training", "Test"}
    assert len(read_image_folder(tmp_path, usage="test")) == 10


def test_folder_any_size_and_colour(tmp_path, fer_faces):
    (tmp_path / "happy").mkdir()
    (tmp_path / "sad").mkdir()
    big = Image.fromarray(fer_faces[0]).resize((144, 144), Image.Resampling.BICUBIC).convert("RGB")
    big.save(tmp_path / "happy" / "big.jpg", quality=95)
    Image.fromarray(fer_faces[1]).resize((60, 40)).save(tmp_path / "sad" / "wide.bmp")
    data = read_image_folder(tmp_path)
    assert data.images.shape == (2, 48, 48) and data.images.dtype == np.uint8
    assert np.abs(data.images[0].astype(int) - fer_faces[0]).mean() < 6  # same face after up- and down-scaling
    rgb = read_image_folder(tmp_path, channels=3)
    assert rgb.images.shape == (2, 48, 48, 3)


def test_unknown_folder_is_named(tmp_path, fer_faces):
    _tree(tmp_path, fer_faces[:2], np.array([3, 4]), {3: "happy", 4: "sad"})
    (tmp_path / "contempt").mkdir()
    Image.fromarray(fer_faces[2]).save(tmp_path / "contempt" / "a.png")
    with pytest.raises(
        InvalidDataError, match=r"Unknown folder '.*contempt': 'contempt' is neither an emotion"
    ) as info:
        read_image_folder(tmp_path)
    assert "ignore=['contempt']" in str(info.value)
    assert len(read_image_folder(tmp_path, ignore=["contempt"])) == 2
    (tmp_path / "hapy").mkdir()
    with pytest.raises(InvalidDataError, match="Did you mean 'happy'"):
        read_image_folder(tmp_path, ignore=["contempt"])


def test_empty_class_folder_is_named(tmp_path, fer_faces):
    _tree(tmp_path, fer_faces[:2], np.array([3, 4]), {3: "happy", 4: "sad"})
    (tmp_path / "fear").mkdir()
    with pytest.raises(InvalidDataError, match=r"Class folder '.*fear' holds no images"):
        read_image_folder(tmp_path)
    with pytest.raises(InvalidDataError, match="No class folders"):
        read_image_folder(tmp_path / "fear")


def test_non_image_files_are_named(tmp_path, fer_faces):
    _tree(tmp_path, fer_faces[:2], np.array([3, 4]), {3: "happy", 4: "sad"})
    (tmp_path / "happy" / "notes.txt").write_text("not a face")
    with pytest.warns(UserWarning, match=r"non-image file\(s\).*notes\.txt"):
        assert len(read_image_folder(tmp_path)) == 2
    (tmp_path / "sad" / "broken.jpg").write_bytes(b"this is not a JPEG")
    with pytest.raises(InvalidDataError, match=r"Cannot read '.*broken\.jpg' as an image"), pytest.warns(UserWarning):
        read_image_folder(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(read_image_folder(tmp_path, on_bad_file="warn")) == 2
    assert any("broken.jpg" in str(w.message) for w in caught)


def test_mtcnn_face_crop_pass(tmp_path, sample_photo, sample_face_box):
    (tmp_path / "happy").mkdir()
    (tmp_path / "neutral").mkdir()
    Image.open(sample_photo).save(tmp_path / "happy" / "astronaut.jpg")
    Image.fromarray(np.full((80, 80), 128, np.uint8)).save(tmp_path / "neutral" / "blank.png")
    from emotionkit.detectors.mtcnn import MTCNNDetector

    detector = MTCNNDetector(max_side=256)
    with pytest.warns(UserWarning, match=r"without a detected face skipped: '.*blank\.png'"):
        data = read_image_folder(tmp_path, detector=detector)
    assert data.images.shape == (1, 48, 48) and data.ids.tolist() == ["happy/astronaut.jpg"]
    # The crop is the face: it matches the hand-labelled face box cropped the same way, not the whole photo.
    x1, y1, x2, y2 = sample_face_box
    side = max(x2 - x1, y2 - y1) * 1.1
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    by_hand = np.asarray(Image.open(sample_photo).convert("L").crop(tuple(round(v) for v in box)).resize((48, 48)))
    whole = read_image_folder(tmp_path / "happy" / "..", usage=None, ignore=["neutral"])
    assert (
        np.abs(by_hand.astype(int) - data.images[0]).mean() < np.abs(by_hand.astype(int) - whole.images[0]).mean() / 2
    )
    kept = read_image_folder(tmp_path, detector=detector, no_face="whole")
    assert len(kept) == 2


def test_load_dataset_dispatch(tmp_path, fer_csv, fer_faces):
    assert load_dataset(fer_csv, usage="train", limit=5).ids.tolist() == [1, 2, 3, 4, 5]
    assert len(load_dataset(fer_csv.parent.parent, usage="Training", limit=3)) == 3  # the folder holding fer2013/
    _tree(tmp_path / "tree", fer_faces[:3], np.array([0, 3, 3]), {0: "angry", 3: "happy"})
    assert load_dataset(tmp_path / "tree").labels.tolist() == [0, 3, 3]
    with pytest.raises(ImageNotFoundError, match="Dataset not found"):
        load_dataset(tmp_path / "missing")
    with pytest.raises(TypeError, match="apply to image folders"):
        load_dataset(fer_csv, limit=1, detector="mtcnn")


def test_load_splits_records_its_settings(tmp_path, fer_train_small):
    faces, labels = fer_train_small.images[:300], fer_train_small.labels[:300]
    _tree(tmp_path, faces, labels, ALIASES)
    s = load_splits(tmp_path, "stratified", seed=5)
    assert s.settings == {"fractions": [0.6, 0.2, 0.2], "seed": 5, "data": str(tmp_path), "limit": None}
    assert sum(len(p) for p in s.parts().values()) == 300
    assert [p.class_counts()["disgust"] for p in (s.train, s.val, s.test)] == [1, 1, 1]
    joined = concatenate([s.train, s.val, s.test])
    assert sorted(joined.ids.tolist()) == sorted(f"{ALIASES[int(y)]}/{i:04d}.png" for i, y in enumerate(labels))
