"""Soft targets: FER-2013's label mixed with a vote distribution (FER+), and the cross-entropy against them.

FER+ (Barsoum et al., ICMI 2016) found training on the annotators' vote distribution better than on
the majority label. Here each training face's target is

``(1 - w) * smoothed_one_hot(FER-2013 label) + w * votes / sum(votes)``

with ``w = weight`` where the face has votes for the seven classes and ``w = 0`` elsewhere (the
faces FER+ dropped, or whose votes are all contempt / unknown / not a face). ``weight=0`` is the
plain label-smoothed cross-entropy, ``weight=1`` the FER+ distribution alone.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..exceptions import InvalidDataError, InvalidOptionError

__all__ = ["mixed_targets", "soft_cross_entropy"]


def mixed_targets(
    labels: np.ndarray,
    distribution: np.ndarray,
    present: np.ndarray,
    *,
    weight: float,
    label_smoothing: float = 0.0,
) -> np.ndarray:
    """Per-face target distributions: the smoothed one-hot label mixed with ``distribution`` where ``present``.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(N,)`` class indices.
    distribution : numpy.ndarray
        ``(N, K)`` rows that sum to 1 where ``present``.
    present : numpy.ndarray
        ``(N,)`` bool: the face has a distribution.
    weight : float
        Share of the distribution, in [0, 1].
    label_smoothing : float, default 0
        Smoothing of the one-hot part, as in :func:`torch.nn.functional.cross_entropy`.

    Returns
    -------
    numpy.ndarray
        ``(N, K)`` float32 rows summing to 1.

    Raises
    ------
    InvalidOptionError
        ``weight`` outside [0, 1].
    InvalidDataError
        Shapes that do not line up.

    Examples
    --------
    >>> t = mixed_targets(np.array([0, 1]), np.array([[0.0, 1.0], [0.5, 0.5]]), np.array([True, False]), weight=0.5)
    >>> t.tolist()
    [[0.5, 0.5], [0.0, 1.0]]
    """
    if not 0.0 <= weight <= 1.0:
        raise InvalidOptionError(
            f"The soft-target weight must be in [0, 1] (0: labels only, 1: votes only); got {weight}."
        )
    labels = np.asarray(labels)
    distribution = np.asarray(distribution, np.float32)
    present = np.asarray(present, bool)
    if distribution.ndim != 2 or distribution.shape[0] != labels.shape[0] or present.shape != labels.shape:
        raise InvalidDataError(
            f"Soft targets must be (N, K) with N = {labels.shape[0]} labels and an (N,) mask; got "
            f"{distribution.shape} and {present.shape}."
        )
    k = distribution.shape[1]
    one_hot = np.full((labels.shape[0], k), label_smoothing / k, np.float32)
    one_hot[np.arange(labels.shape[0]), labels] += 1.0 - label_smoothing
    w = np.where(present, weight, 0.0).astype(np.float32)[:, None]
    return ((1.0 - w) * one_hot + w * distribution).astype(np.float32)


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, sample_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy against target distributions, a weighted mean over the batch.

    Parameters
    ----------
    logits : torch.Tensor
        ``(B, K)``.
    targets : torch.Tensor
        ``(B, K)`` distributions.
    sample_weight : torch.Tensor, optional
        ``(B,)`` weights (e.g. the class weight of each face's label); the mean is normalised by their sum,
        as :func:`torch.nn.functional.cross_entropy` does with ``weight``.

    Returns
    -------
    torch.Tensor
        A scalar.

    Examples
    --------
    >>> logits = torch.tensor([[2.0, 0.0, -1.0]])
    >>> hard = F.cross_entropy(logits, torch.tensor([0]))
    >>> bool(torch.isclose(soft_cross_entropy(logits, torch.tensor([[1.0, 0.0, 0.0]])), hard))
    True
    """
    per_face = -(targets * F.log_softmax(logits, dim=1)).sum(1)
    if sample_weight is None:
        return per_face.mean()
    return (per_face * sample_weight).sum() / sample_weight.sum().clamp_min(1e-12)
