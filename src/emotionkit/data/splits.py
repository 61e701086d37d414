"""Honest splits: stratified, seeded, and exact-duplicate detection across splits."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from ..exceptions import InvalidDataError

__all__ = ["stratified_split", "image_hashes", "cross_split_duplicates"]


def stratified_split(labels: np.ndarray, fractions: Sequence[float] = (0.6, 0.2, 0.2), *, seed: int = 0) -> list[np.ndarray]:
    """Split indices into parts with the same class proportions, reproducibly.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(N,)`` class indices.
    fractions : sequence of float, default (0.6, 0.2, 0.2)
        Fraction of each part; must sum to 1.
    seed : int, default 0
        Seed of the shuffle.

    Returns
    -------
    list of numpy.ndarray
        Sorted index arrays, one per fraction; together they cover every index once.

    Raises
    ------
    InvalidDataError
        Fractions that do not sum to 1, or a class too small to appear in every part.

    Examples
    --------
    >>> parts = stratified_split(np.array([0] * 10 + [1] * 10), (0.5, 0.5))
    >>> [len(p) for p in parts]
    [10, 10]
    """
    fractions = [float(f) for f in fractions]
    if abs(sum(fractions) - 1.0) > 1e-6 or any(f <= 0 for f in fractions):
        raise InvalidDataError(f"Split fractions must be positive and sum to 1, got {fractions}.")
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        start = 0
        for part, end in zip(parts, bounds):
            part.extend(idx[start:end].tolist())
            start = end
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def image_hashes(images: np.ndarray) -> np.ndarray:
    """Return a hex digest per image (pixel-identical images share a digest)."""
    return np.asarray([hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=16).hexdigest() for im in images])


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
