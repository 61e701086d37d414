"""Honest splits: stratified, seeded, and exact-duplicate detection across splits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..exceptions import InvalidDataError
from .fer2013 import FaceDataset

__all__ = [
    "stratified_split",
    "image_hashes",
    "cross_split_duplicates",
    "SPLIT_ALIASES",
    "canonical_usage",
    "DataSplits",
    "split_dataset",
]


def stratified_split(
    labels: np.ndarray,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    *,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """Split indices into parts with the same class proportions, reproducibly.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(N,)`` class indices.
    fractions : sequence of float, default (0.6, 0.2, 0.2)
        Fraction of each part; must sum to 1.
    seed : int, default 0
        Seed of the shuffle.
    class_names : sequence of str, optional
        Names of the classes, for error messages.

    Returns
    -------
    list of numpy.ndarray
        Sorted index arrays, one per fraction; together they cover every index once. Every class
        present in ``labels`` appears in every part (rounding that would leave a part without a
        class moves one sample there from the largest part).

    Raises
    ------
    InvalidDataError
        Fractions that are not positive or do not sum to 1, or a class with fewer samples than parts
        (the message names the class).

    Examples
    --------
    >>> parts = stratified_split(np.array([0] * 10 + [1] * 10), (0.5, 0.5))
    >>> [len(p) for p in parts]
    [10, 10]
    """
    fractions = [float(f) for f in fractions]
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f <= 0 for f in fractions):
        raise InvalidDataError(f"Split fractions must be positive and sum to 1, got {fractions}.")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        if len(idx) < len(fractions):
            name = class_names[int(cls)] if class_names is not None else int(cls)
            raise InvalidDataError(
                f"Class {name!r} has {len(idx)} sample(s), too few to appear in all {len(fractions)} parts of a "
                f"{'/'.join(f'{f:g}' for f in fractions)} split. Add images of that class, or use fewer parts."
            )
        sizes = np.diff(np.round(np.cumsum([0.0, *fractions]) * len(idx)).astype(int))
        for empty in np.flatnonzero(sizes == 0):  # rounding left a part without this class: lend it one
            sizes[int(np.argmax(sizes))] -= 1
            sizes[empty] = 1
        start = 0
        for part, size in zip(parts, sizes):
            part.extend(idx[start : start + size].tolist())
            start += size
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def image_hashes(images: np.ndarray) -> np.ndarray:
    """Return a hex digest per image (pixel-identical images share a digest).

    Parameters
    ----------
    images : numpy.ndarray
        ``(N, H, W[, C])`` images.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` strings: 32-hex-digit BLAKE2b digests of the raw pixels.
    """
    return np.asarray(
        [hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=16).hexdigest() for im in images]
    )


def cross_split_duplicates(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Return a boolean mask over ``other`` marking images that also appear, pixel-identical, in ``reference``.

    Parameters
    ----------
    reference : numpy.ndarray
        ``(N, H, W[, C])`` images, e.g. the training split.
    other : numpy.ndarray
        ``(M, H, W[, C])`` images, e.g. the evaluation split.

    Returns
    -------
    numpy.ndarray
        ``(M,)`` bool.
    """
    seen = set(image_hashes(reference).tolist())
    return np.asarray([h in seen for h in image_hashes(other)], dtype=bool)


#: Split names accepted in a Usage column or as split folder names, mapped to the canonical usage.
SPLIT_ALIASES: dict[str, str] = {
    "training": "Training",
    "train": "Training",
    "validation": "Validation",
    "valid": "Validation",
    "val": "Validation",
    "dev": "Validation",
    "test": "Test",
    "testing": "Test",
    "publictest": "PublicTest",
    "privatetest": "PrivateTest",
}


def canonical_usage(name: str) -> str | None:
    """Return the canonical split name for ``name`` (case-insensitive), or ``None`` if it is not one.

    Parameters
    ----------
    name : str
        A usage or split-folder name such as ``"train"``, ``"Training"``, ``"test"``.

    Returns
    -------
    str or None
        ``"Training"``, ``"Validation"``, ``"PublicTest"``, ``"PrivateTest"`` or ``"Test"``; ``None`` otherwise.

    Examples
    --------
    >>> canonical_usage("train"), canonical_usage("PublicTest"), canonical_usage("happy")
    ('Training', 'PublicTest', None)
    """
    return SPLIT_ALIASES.get(name.strip().lower().replace("_", "").replace("-", ""))


@dataclass(frozen=True)
class DataSplits:
    """Training, validation and (optional) test parts of one dataset, made before any augmentation.

    Parameters
    ----------
    train, val : FaceDataset
        Training and validation (model selection, early stopping, temperature) parts.
    test : FaceDataset or None
        The evaluation part, never seen in training.
    method : {"official", "stratified"}
        How the parts were made.
    settings : dict
        Seed, fractions and source usages, to rebuild the same parts later.
    duplicates : dict
        Exact (pixel-identical) duplicates across parts: ``val_in_train`` rows, ``test_in_train``
        rows (test images also in training or validation), ``test_groups`` (distinct such images),
        and ``dropped`` (whether they were removed from the evaluation parts).
    """

    train: FaceDataset
    val: FaceDataset
    test: FaceDataset | None
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    duplicates: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> dict[str, FaceDataset]:
        """Return ``{"train": ..., "val": ..., "test": ...}`` (``test`` only when present).

        Returns
        -------
        dict of str to FaceDataset
            The parts, by name.
        """
        out = {"train": self.train, "val": self.val}
        if self.test is not None:
            out["test"] = self.test
        return out

    def class_counts(self) -> dict[str, dict[str, int]]:
        """Return the per-class sample counts of every part.

        Returns
        -------
        dict of str to dict of str to int
            Part name to :meth:`FaceDataset.class_counts`.
        """
        return {name: part.class_counts() for name, part in self.parts().items()}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description (method, settings, sizes, class counts, duplicates).

        Returns
        -------
        dict
            ``method``, ``settings``, ``sizes``, ``class_counts`` and ``duplicates``.
        """
        return {
            "method": self.method,
            "settings": self.settings,
            "sizes": {name: len(part) for name, part in self.parts().items()},
            "class_counts": self.class_counts(),
            "duplicates": self.duplicates,
        }


def split_dataset(
    data: FaceDataset,
    method: Literal["official", "stratified"] = "official",
    *,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    val_fraction: float = 0.1,
    seed: int = 0,
    drop_duplicates: bool = False,
) -> DataSplits:
    """Split a dataset into training, validation and test parts; always call it before augmenting.

    Augmenting first (as the seed did) puts transformed copies of training images into the test
    part; :class:`~emotionkit.training.Trainer` augments only the training part it receives.

    Parameters
    ----------
    data : FaceDataset
        Faces with labels (and, for ``"official"``, a usage per face).
    method : {"official", "stratified"}, default "official"
        ``"official"``: the source's own split, ``Training`` for training, a ``Validation`` usage
        if present (else a stratified ``val_fraction`` of training), ``PublicTest`` (else ``Test``)
        for testing; ``PrivateTest`` rows are left out. ``"stratified"``: pool every row and split
        by ``fractions`` (train, validation, test) with the same class proportions in each part.
    fractions : sequence of 3 floats, default (0.6, 0.2, 0.2)
        Stratified split fractions.
    val_fraction : float, default 0.1
        Part of the official training rows held out for validation when the source has none.
    seed : int, default 0
        Seed of the stratified shuffles (reproducible).
    drop_duplicates : bool, default False
        Remove from the validation part the images that also appear, pixel-identical, in training,
        and from the test part those that appear in training or validation. They are counted
        either way.

    Returns
    -------
    DataSplits

    Raises
    ------
    InvalidDataError
        ``"official"`` on data without usages or without training rows; bad fractions; a class
        with no samples in some part (the message names the part and the class).

    Examples
    --------
    >>> from emotionkit.data.fer2013 import FaceDataset
    >>> images = np.arange(40 * 4, dtype=np.uint8).reshape(40, 2, 2)
    >>> data = FaceDataset(images, np.arange(40) % 2, ("a", "b"))
    >>> s = split_dataset(data, "stratified", seed=1)
    >>> len(s.train), len(s.val), len(s.test)
    (24, 8, 8)
    """
    if method == "stratified":
        if len(fractions) != 3:
            raise InvalidDataError(
                f"A stratified split needs 3 fractions (train, validation, test), got {list(fractions)}."
            )
        train_idx, val_idx, test_idx = stratified_split(data.labels, fractions, seed=seed, class_names=data.classes)
        settings: dict[str, Any] = {"fractions": [float(f) for f in fractions], "seed": seed}
        test: np.ndarray | None = test_idx
    elif method == "official":
        train_idx, val_idx, test, settings = _official_indices(data, val_fraction, seed)
    else:
        raise InvalidDataError(f"Unknown split method {method!r}. Allowed: official, stratified.")
    val_idx, test, duplicates = _cross_split_duplicates(data, train_idx, val_idx, test, drop_duplicates)
    parts = {"train": train_idx, "val": val_idx}
    if test is not None:
        parts["test"] = test
    for name, idx in parts.items():
        _check_every_class(data, name, idx)
    return DataSplits(
        data.subset(train_idx),
        data.subset(val_idx),
        None if test is None else data.subset(test),
        method,
        settings,
        duplicates,
    )


def _official_indices(
    data: FaceDataset, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Training, validation and test rows of the source's own split, and the settings that rebuild them."""
    if data.usage is None:
        raise InvalidDataError(
            "This dataset has no official split (no Usage column and no train/ and test/ folders). "
            "Use method='stratified' (--split stratified)."
        )
    all_idx = np.arange(len(data))
    usage = np.asarray([canonical_usage(str(u)) or str(u) for u in data.usage])
    present = sorted(set(usage.tolist()))
    train_idx = all_idx[usage == "Training"]
    if train_idx.size == 0:
        raise InvalidDataError(
            f"No training rows in this dataset (usages present: {', '.join(present)}). Use --split stratified."
        )
    val_idx = all_idx[usage == "Validation"]
    settings: dict[str, Any] = {"seed": seed, "usages": present}
    if val_idx.size == 0:
        if not 0.0 < val_fraction < 1.0:
            raise InvalidDataError(f"val_fraction must be in (0, 1), got {val_fraction}.")
        keep, held = stratified_split(
            data.labels[train_idx], (1.0 - val_fraction, val_fraction), seed=seed, class_names=data.classes
        )
        train_idx, val_idx = train_idx[keep], train_idx[held]
        settings["val_fraction"] = val_fraction
    test_name = "PublicTest" if (usage == "PublicTest").any() else "Test"
    test = all_idx[usage == test_name] if (usage == test_name).any() else None
    settings["test_usage"] = test_name if test is not None else None
    return train_idx, val_idx, test, settings


def _cross_split_duplicates(
    data: FaceDataset, train_idx: np.ndarray, val_idx: np.ndarray, test: np.ndarray | None, drop: bool
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Count the evaluation rows whose image is also in an earlier part; drop them when ``drop``."""
    hashes = image_hashes(data.images)
    train_h = set(hashes[train_idx].tolist())
    val_dup = np.asarray([h in train_h for h in hashes[val_idx]], dtype=bool)
    duplicates: dict[str, Any] = {"val_in_train": int(val_dup.sum()), "dropped": bool(drop)}
    if test is not None:
        seen = train_h | set(hashes[val_idx].tolist())
        test_dup = np.asarray([h in seen for h in hashes[test]], dtype=bool)
        duplicates["test_in_train"] = int(test_dup.sum())
        duplicates["test_groups"] = len(set(hashes[test][test_dup].tolist()))
        if drop:
            test = test[~test_dup]
    if drop:
        val_idx = val_idx[~val_dup]
    return val_idx, test, duplicates


def _check_every_class(data: FaceDataset, name: str, idx: np.ndarray) -> None:
    """Raise when the part ``name`` (rows ``idx``) has no sample of some class."""
    counts = np.bincount(data.labels[idx], minlength=len(data.classes))
    missing = [c for c, k in zip(data.classes, counts) if k == 0]
    if missing:
        raise InvalidDataError(
            f"The {name} split has no samples of class(es) {', '.join(repr(m) for m in missing)} "
            f"({len(idx)} rows; counts {dict(zip(data.classes, counts.tolist()))}). "
            "Add images of those classes, or use a stratified split (--split stratified)."
        )
