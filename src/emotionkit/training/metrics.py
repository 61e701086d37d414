"""Classification metrics: accuracy, per-class precision/recall/F1, macro/weighted F1, confusion, ECE, temperature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "expected_calibration_error", "fit_temperature", "softmax"]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature``.

    Parameters
    ----------
    logits : numpy.ndarray
        ``(N, K)`` logits.
    temperature : float, default 1.0
        Divides the logits first (a fitted calibration temperature).

    Returns
    -------
    numpy.ndarray
        ``(N, K)`` probabilities; each row sums to 1.

    Examples
    --------
    >>> softmax(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-1 confidence with equal-width bins.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(N, K)`` probabilities.
    labels : numpy.ndarray
        ``(N,)`` true class indices.
    bins : int, default 15
        Number of confidence bins.

    Returns
    -------
    float
        Weighted mean of ``|accuracy - confidence|`` over bins, in [0, 1].

    Examples
    --------
    >>> expected_calibration_error(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1]))
    0.0
    """
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fit the softmax temperature that minimises negative log-likelihood (Guo et al., 2017).

    Fit on a validation split, never on the test split.

    Parameters
    ----------
    logits : numpy.ndarray
        ``(N, K)`` validation logits.
    labels : numpy.ndarray
        ``(N,)`` validation labels, or ``(N, K)`` target distributions (e.g. FER+ votes): the NLL is
        then the cross-entropy against them.

    Returns
    -------
    float
        The temperature in [0.05, 20].
    """
    import torch

    z = torch.as_tensor(logits, dtype=torch.float64)
    soft = np.ndim(labels) == 2
    y = torch.as_tensor(labels, dtype=torch.float64 if soft else torch.long)
    grid = torch.exp(torch.linspace(np.log(0.05), np.log(20.0), 400, dtype=torch.float64))
    nll = torch.stack([torch.nn.functional.cross_entropy(z / t, y) for t in grid])
    best = grid[int(torch.argmin(nll))]
    log_t = torch.log(best).clone().requires_grad_(True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=50)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / torch.exp(log_t), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(np.clip(torch.exp(log_t).item(), 0.05, 20.0))


def classification_metrics(
    labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str], *, ece_bins: int = 15
) -> dict[str, Any]:
    """Compute the report's metrics.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(N,)`` true class indices.
    probs : numpy.ndarray
        ``(N, K)`` predicted probabilities.
    class_names : sequence of str
        Names of the K classes.
    ece_bins : int, default 15
        Bins for the expected calibration error.

    Returns
    -------
    dict
        ``accuracy``, ``macro_f1``, ``weighted_f1``, ``ece``, ``per_class`` (precision, recall,
        f1, support per class), ``confusion`` (counts, rows = true class) and
        ``confusion_normalized`` (rows sum to 1), ``n``.
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    k = len(class_names)
    pred = probs.argmax(axis=1)
    idx = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(labels, pred, labels=idx, zero_division=0)
    cm = confusion_matrix(labels, pred, labels=idx)
    rows = cm.sum(axis=1, keepdims=True)
    return {
        "n": int(labels.shape[0]),
        "accuracy": float((pred == labels).mean()),
        "macro_f1": float(f1_score(labels, pred, labels=idx, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, pred, labels=idx, average="weighted", zero_division=0)),
        "ece": expected_calibration_error(probs, labels, ece_bins),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        },
        "confusion": cm.tolist(),
        "confusion_normalized": np.divide(cm, np.maximum(rows, 1)).round(4).tolist(),
    }
