"""Evaluate a recognizer on labelled faces: accuracy, per-class P/R/F1, macro/weighted F1, confusion, ECE."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..data.fer2013 import FaceDataset
from ..exceptions import IncompatibleComponentsError
from ..recognizer import EmotionRecognizer
from .metrics import classification_metrics, expected_calibration_error, softmax
from .trainer import predict_logits

__all__ = ["evaluate", "predict_dataset"]


def _label_map(data: FaceDataset, labels: tuple[str, ...]) -> np.ndarray:
    """Map the dataset's label indices to the model's output order (by name)."""
    missing = [c for c in data.classes if c not in labels]
    if missing:
        raise IncompatibleComponentsError(
            f"The data has class(es) {', '.join(missing)} that the model does not predict (model labels: {', '.join(labels)})."
        )
    return np.asarray([labels.index(c) for c in data.classes], dtype=np.int64)


def predict_dataset(
    recognizer: EmotionRecognizer,
    data: FaceDataset,
    *,
    tta_flip: bool | None = None,
    batch_size: int = 512,
    head: str | None = None,
) -> np.ndarray:
    """Return the logits ``(N, K)`` of every face in ``data`` (preprocessed as the model was trained).

    Parameters
    ----------
    recognizer : EmotionRecognizer
        The model.
    data : FaceDataset
        Face crops.
    tta_flip : bool, optional
        Average each face's logits with its mirror image's; ``None`` (default): as the model does
        (``recognizer.flip_tta``).
    batch_size : int, default 512
        Faces per forward pass.
    head : str, optional
        An extra output head (``recognizer.heads``, e.g. ``"ferplus"``); ``None``: the model's own classes.

    Returns
    -------
    numpy.ndarray
        ``(N, K)`` float32 logits, before the temperature; columns follow that head's labels.
    """
    chunks = []
    for start in range(0, len(data), 2048):
        x = recognizer.preprocessor.faces(data.images[start : start + 2048])
        chunks.append(predict_logits(recognizer, x, batch_size=batch_size, tta_flip=tta_flip, head=head))
    width = len(recognizer.inference.head_spec(head).labels)
    return np.concatenate(chunks) if chunks else np.empty((0, width), np.float32)


def evaluate(
    recognizer: EmotionRecognizer,
    data: FaceDataset,
    *,
    tta_flip: bool | None = None,
    split: str | None = None,
    source: str | None = None,
    model: str | None = None,
    extra: dict[str, Any] | None = None,
    head: str | None = None,
) -> dict[str, Any]:
    """Evaluate a model on labelled faces.

    Probabilities use the model's fitted temperature (so the ECE is that of the calibrated
    model); ``ece_uncalibrated`` is the ECE at temperature 1.

    Parameters
    ----------
    recognizer : EmotionRecognizer
        The model (its detector is not used: the faces are already cropped).
    data : FaceDataset
        Faces and labels, e.g. the PublicTest part.
    tta_flip : bool, optional
        Average the logits of each face and its mirror image; ``None`` (default): as the model does
        (``recognizer.flip_tta``). The report's ``tta_flip`` says which was scored.
    split, source, model : str, optional
        Names recorded in the report (which part, which data file or folder, which model).
    extra : dict, optional
        More fields for the report (e.g. the duplicates dropped).
    head : str, optional
        Score an extra output head (``recognizer.heads``, e.g. ``"ferplus"`` against FER+ majority
        labels) with its own labels and temperature; ``None`` (default): the model's own classes.
        The report's ``head`` says which.

    Returns
    -------
    dict
        The fields of :func:`~emotionkit.training.metrics.classification_metrics` (``accuracy``,
        ``macro_f1``, ``weighted_f1``, ``ece``, ``per_class``, ``confusion``,
        ``confusion_normalized``, ``n``) plus ``ece_uncalibrated``, ``labels``, ``tta_flip``,
        ``temperature``, ``model``, ``backbone``, ``num_params``, ``split``, ``data``,
        ``seconds`` and ``faces_per_second``.

    Raises
    ------
    IncompatibleComponentsError
        The data has classes the model does not predict.
    InvalidOptionError
        ``head`` is not one of the model's heads.

    Examples
    --------
    >>> from emotionkit.recognizer import build_backbone
    >>> from emotionkit.preprocessing import FacePreprocessor
    >>> rec = EmotionRecognizer(build_backbone("cnn"), FacePreprocessor(), backbone_name="cnn")
    >>> faces = FaceDataset(np.zeros((4, 48, 48), np.uint8), np.array([0, 3, 3, 6]))
    >>> report = evaluate(rec, faces)
    >>> report["n"], sum(map(sum, report["confusion"]))
    (4, 4)
    """
    spec = recognizer.inference.head_spec(head)
    labels, temperature = tuple(spec.labels), spec.temperature
    y = _label_map(data, labels)[data.labels]
    start = time.perf_counter()
    with torch.inference_mode():
        logits = predict_dataset(recognizer, data, tta_flip=tta_flip, head=head)
    seconds = time.perf_counter() - start
    metrics = classification_metrics(y, softmax(logits, temperature), labels)
    report: dict[str, Any] = {
        "model": model,
        "backbone": recognizer.backbone_name,
        "num_params": int(sum(p.numel() for p in recognizer.model.parameters())),
        "data": source,
        "split": split,
        "tta_flip": bool(recognizer.flip_tta if tta_flip is None else tta_flip),
        "head": head,
        "temperature": temperature,
        "labels": list(labels),
        **metrics,
        "ece_uncalibrated": expected_calibration_error(softmax(logits), y),
        "seconds": round(seconds, 3),
        "faces_per_second": round(len(data) / max(seconds, 1e-9), 1),
    }
    report.update(extra or {})
    return report
