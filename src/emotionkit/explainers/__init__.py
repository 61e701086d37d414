"""Explainers: heatmaps of which face regions drive a backbone's decision.

Built-ins (registered in the ``emotionkit.explainers`` entry-point group, like a
third-party explainer would be): ``gradcam`` for every backbone whose spec names a
target layer, ``attention`` (rollout) for Vision Transformers. A backbone's spec
lists the explainers it supports in ``BackboneSpec.explainers``.

Most users call :meth:`emotionkit.EmotionRecognizer.explain`; this module adds
:func:`explain_faces` for pre-cropped faces and :func:`heatmap_to_image` to map a
face heatmap back onto the photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..exceptions import EmotionKitError, IncompatibleComponentsError, InvalidImageError, UnknownPluginError, suggest
from ..inference import HasInference, InferenceModel, inference_of
from ..interfaces import BackboneSpec, Explainer
from ..registry import list_plugins, load_plugin

__all__ = [
    "UnknownTargetError",
    "get_explainer",
    "resolve_targets",
    "checked_explainer",
    "explain_tensor",
    "explain_faces",
    "heatmap_to_image",
]


class UnknownTargetError(EmotionKitError, ValueError):
    """A target class name that the model does not have."""


def get_explainer(method: str, backbone: str | BackboneSpec, **options: Any) -> Explainer:
    """Build the explainer ``method`` for a backbone family, checking that the family supports it.

    Parameters
    ----------
    method : str
        A registered explainer name (``"gradcam"``, ``"attention"``, or a plugin's).
    backbone : str or BackboneSpec
        The backbone's registry name or its spec.
    **options
        Passed to the explainer's ``build`` (e.g. ``discard_ratio`` for ``attention``).

    Returns
    -------
    Explainer
        Call it as ``explainer(model, x, targets) -> (N, H, W)`` maps in [0, 1].

    Raises
    ------
    UnknownPluginError
        ``method`` is not a registered explainer (the message lists them and the closest match).
    IncompatibleComponentsError
        The backbone does not support ``method`` (e.g. ``attention`` on a CNN) or is not registered.

    Examples
    --------
    >>> type(get_explainer("gradcam", "cnn")).__name__
    'GradCAM'
    >>> get_explainer("attention", "cnn")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotionkit.exceptions.IncompatibleComponentsError: Backbone 'cnn' does not support explainer 'attention'. ...
    """
    if not isinstance(method, str):
        raise UnknownPluginError(f"method must be an explainer name (str), got {type(method).__name__}.")
    methods = list_plugins("explainers")
    if method not in methods:
        raise UnknownPluginError(
            f"Unknown explanation method {method!r}. Available: {', '.join(methods) or '(none)'}.{suggest(method, methods)}"
        )
    if isinstance(backbone, str):
        backbones = list_plugins("backbones")
        if backbone not in backbones:
            raise IncompatibleComponentsError(
                f"Backbone {backbone!r} is not registered, so emotionkit does not know which layer to explain. "
                f"Registered backbones: {', '.join(backbones)}. Register a BackboneSpec with a target_layer "
                "(emotionkit.registry.register) under that name."
            )
        spec: BackboneSpec = load_plugin("backbones", backbone)
    else:
        spec = backbone
    if method not in spec.explainers:
        raise IncompatibleComponentsError(
            f"Backbone {spec.name!r} does not support explainer {method!r}. Supported: "
            f"{', '.join(spec.explainers) or '(none)'}. Attention maps need a transformer backbone such as 'vit'; "
            "use method='gradcam' for convolutional ones."
        )
    return load_plugin("explainers", method).build(spec, **options)


def resolve_targets(target: str | None, labels: Sequence[str], predicted: Sequence[int]) -> list[int]:
    """Turn ``explain``'s ``target`` into one class index per face.

    Parameters
    ----------
    target : str or None
        A class name, or ``None`` for each face's most probable class.
    labels : sequence of str
        The model's class names.
    predicted : sequence of int
        Each face's most probable class index.

    Returns
    -------
    list of int

    Raises
    ------
    UnknownTargetError
        ``target`` is not one of ``labels``; the message lists them.

    Examples
    --------
    >>> resolve_targets("happy", ["angry", "happy"], [0, 0])
    [1, 1]
    >>> resolve_targets(None, ["angry", "happy"], [1, 0])
    [1, 0]
    """
    if target is None:
        return [int(p) for p in predicted]
    if not isinstance(target, str) or target not in labels:
        raise UnknownTargetError(
            f"Unknown target class {target!r}. Allowed: {', '.join(labels)} (or None for each face's top label)."
            f"{suggest(str(target), labels)}"
        )
    return [list(labels).index(target)] * len(predicted)


def checked_explainer(model: InferenceModel, method: str, target: str | None, **options: Any) -> Explainer:
    """Build the explainer ``method`` for a model and check ``target``, before any detection or inference work.

    Parameters
    ----------
    model : InferenceModel
        The inference core (its backbone spec or name, and its labels).
    method : str
        A registered explainer the backbone supports.
    target : str or None
        A class name, or ``None`` for each face's top label.
    **options
        Explainer options.

    Returns
    -------
    Explainer

    Raises
    ------
    UnknownPluginError, IncompatibleComponentsError, UnknownTargetError
        As :func:`get_explainer` and :func:`resolve_targets`.
    """
    explainer = get_explainer(method, model.backbone, **options)
    resolve_targets(target, model.active_labels, [])
    return explainer


def explain_tensor(
    model: InferenceModel, explainer: Explainer, x: torch.Tensor, target: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Classify preprocessed faces and explain each one: the step ``explain`` and :func:`explain_faces` share.

    Parameters
    ----------
    model : InferenceModel
        The inference core.
    explainer : Explainer
        From :func:`checked_explainer`.
    x : torch.Tensor
        ``(N, C, H, W)`` faces as ``model.preprocessor`` makes them.
    target : str or None
        A class name, or ``None`` to explain each face's most probable class.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        ``(N, classes)`` probabilities and ``(N, h, w)`` heatmaps in [0, 1].
    """
    probs = model.probabilities(x)
    targets = resolve_targets(target, model.active_labels, [int(i) for i in probs.argmax(axis=1)])
    offset = model.active_columns.start  # the output head's columns in the network's output
    return probs, explainer(model.model, model.prepare(x), [t + offset for t in targets])


def explain_faces(
    recognizer: InferenceModel | HasInference,
    faces: np.ndarray | torch.Tensor,
    target: str | None = None,
    method: str = "gradcam",
    **options: Any,
) -> np.ndarray:
    """Explain pre-cropped faces (FER-2013 style), as :meth:`~emotionkit.EmotionRecognizer.predict_proba` classifies them.

    Parameters
    ----------
    recognizer : EmotionRecognizer or InferenceModel
        The model.
    faces : numpy.ndarray or torch.Tensor
        ``(N, H, W)`` or ``(N, H, W, C)`` faces, as ``predict_proba`` takes them.
    target : str, optional
        A class name; ``None`` explains each face's top label.
    method : str, default "gradcam"
        A registered explainer the backbone supports.
    **options
        Explainer options.

    Returns
    -------
    numpy.ndarray
        ``(N, h, w)`` float32 in [0, 1] on the preprocessor's grid (``recognizer.preprocessor.size``).

    Raises
    ------
    UnknownPluginError, UnknownTargetError, IncompatibleComponentsError, InvalidImageError
        Unknown method or target, a method the backbone cannot do, or faces of a wrong shape.
    """
    core = inference_of(recognizer)
    explainer = checked_explainer(core, method, target, **options)
    return explain_tensor(core, explainer, core.preprocessor.faces(faces), target)[1]


def heatmap_to_image(heatmap: np.ndarray, crop_box: Sequence[float], image_size: tuple[int, int]) -> np.ndarray:
    """Map a face-crop heatmap back into photo coordinates.

    The heatmap covers ``crop_box`` (the square region the preprocessor sampled,
    :meth:`~emotionkit.preprocessing.FacePreprocessor.crop_box`); it is resampled
    bilinearly onto the photo's pixels inside that box, and zero elsewhere.

    Parameters
    ----------
    heatmap : numpy.ndarray
        ``(h, w)`` map in [0, 1], e.g. ``FaceEmotion.heatmap``.
    crop_box : sequence of float
        ``(x1, y1, x2, y2)`` in photo pixels; may extend past the photo.
    image_size : (int, int)
        The photo's ``(height, width)``.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` float32 in [0, 1].

    Raises
    ------
    InvalidImageError
        ``heatmap`` is not 2-D, or the box is empty.

    Examples
    --------
    >>> m = heatmap_to_image(np.ones((4, 4), np.float32), (2, 2, 6, 6), (8, 10))
    >>> m.shape, float(m[3, 3]), float(m[0, 0]), float(m[:, 6:].max())
    ((8, 10), 1.0, 0.0, 0.0)
    """
    hm = np.asarray(heatmap, dtype=np.float32)
    if hm.ndim != 2 or 0 in hm.shape:
        raise InvalidImageError(f"Expected a 2-D heatmap (h, w), got shape {hm.shape}.")
    x1, y1, x2, y2 = (float(v) for v in crop_box)
    height, width = int(image_size[0]), int(image_size[1])
    out = np.zeros((height, width), np.float32)
    if not (x2 > x1 and y2 > y1):
        raise InvalidImageError(f"crop_box must have x2 > x1 and y2 > y1, got {tuple(crop_box)}.")
    # Photo pixels whose centres fall inside the box.
    c0, c1 = max(0, int(np.ceil(x1 - 0.5))), min(width, int(np.floor(x2 - 0.5)) + 1)
    r0, r1 = max(0, int(np.ceil(y1 - 0.5))), min(height, int(np.floor(y2 - 0.5)) + 1)
    if c1 <= c0 or r1 <= r0:
        return out
    xs = (torch.arange(c0, c1, dtype=torch.float32) + 0.5 - x1) / (x2 - x1) * 2.0 - 1.0
    ys = (torch.arange(r0, r1, dtype=torch.float32) + 0.5 - y1) / (y2 - y1) * 2.0 - 1.0
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]  # (1, rows, cols, 2) as (x, y)
    src = torch.from_numpy(np.ascontiguousarray(hm))[None, None]
    sampled = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)[0, 0]
    out[r0:r1, c0:c1] = sampled.clamp_(0.0, 1.0).numpy()
    return out
