"""Exact-duplicate census of a dataset: groups of pixel-identical images, across splits and labels."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .fer2013 import FaceDataset
from .splits import image_hashes

__all__ = ["DuplicateSummary", "find_duplicates"]


@dataclass(frozen=True)
class DuplicateSummary:
    """Counts of pixel-identical images in a dataset.

    Parameters
    ----------
    rows : int
        Images examined.
    distinct : int
        Distinct images.
    groups : int
        Groups of two or more identical images.
    rows_in_groups : int
        Images that belong to such a group.
    spanning : dict of str to int
        For each pair of usages ``"A/B"``, the groups with members in both.
    conflicting : int
        Groups whose members carry different labels.
    """

    rows: int
    distinct: int
    groups: int
    rows_in_groups: int
    spanning: dict[str, int]
    conflicting: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict.

        Returns
        -------
        dict
            The fields by name.
        """
        return asdict(self)


def find_duplicates(data: FaceDataset) -> tuple[DuplicateSummary, list[np.ndarray]]:
    """Find groups of pixel-identical images.

    Parameters
    ----------
    data : FaceDataset
        Images, labels and (optionally) usages.

    Returns
    -------
    summary : DuplicateSummary
        The counts.
    groups : list of numpy.ndarray
        Row indices of each group of two or more identical images, in order of first appearance.

    Examples
    --------
    >>> images = np.zeros((4, 2, 2), np.uint8); images[3] = 1
    >>> summary, groups = find_duplicates(FaceDataset(images, np.array([0, 0, 1, 1])))
    >>> summary.distinct, summary.groups, summary.conflicting, groups[0].tolist()
    (2, 1, 1, [0, 1, 2])
    """
    hashes = image_hashes(data.images)
    _, first, inverse, counts = np.unique(hashes, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(counts)[:-1]
    members = np.split(order, bounds)
    groups = [members[g] for g in np.argsort(first) if counts[g] > 1]
    spanning: dict[str, int] = {}
    conflicting = 0
    for rows in groups:
        if len(set(data.labels[rows].tolist())) > 1:
            conflicting += 1
        if data.usage is not None:
            usages = sorted(set(data.usage[rows].tolist()))
            for i, a in enumerate(usages):
                for b in usages[i + 1 :]:
                    spanning[f"{a}/{b}"] = spanning.get(f"{a}/{b}", 0) + 1
    summary = DuplicateSummary(
        rows=len(data),
        distinct=int(counts.size),
        groups=len(groups),
        rows_in_groups=int(sum(len(g) for g in groups)),
        spanning=spanning,
        conflicting=conflicting,
    )
    return summary, groups
