"""A Keras training path mirroring the seed's: augmentation layers, class weights, and its three callbacks.

The seed trained with ``model.fit`` behind ``RandomRotation``, ``RandomTranslation``,
``RandomZoom`` and ``RandomFlip`` layers, weighting classes by inverse frequency (FER-2013
has 1.5% disgust) and watching ``val_loss`` with ``EarlyStopping``, ``ReduceLROnPlateau`` and
``ModelCheckpoint``. :func:`fit` does the same on any Keras 3 backend. The augmentation
layers transform each training batch on the fly, outside the model, so the checkpoint and the
trained model are the plain emotionkit model (which :func:`emotionkit.keras.save_pretrained`
exports for :class:`~emotionkit.recognizer.EmotionRecognizer`), and JAX can compile the
training step (Keras runs a model holding random image layers eagerly on JAX).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..exceptions import InvalidDataError
from .builders import import_keras, model_info
from .convert import nhwc_faces

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["augmentation", "class_weights", "training_callbacks", "fit"]


def augmentation(
    *,
    rotation_degrees: float = 10.0,
    translation: float = 0.1,
    zoom: float = 0.1,
    flip: bool = True,
    fill_mode: str = "nearest",
    seed: int | None = None,
) -> keras.Sequential:
    """The seed's augmentation layers: rotation, translation, zoom and horizontal flip.

    They act only in training (``training=True``); at inference they pass faces through.
    Their cost depends on the backend: TensorFlow and JAX transform a batch at once (about 1 and
    1.5 ms of CPU per 48x48 face for all four layers), while Keras' torch backend loops over the
    images in Python (about 19 ms per face), which then dominates a training epoch.

    Parameters
    ----------
    rotation_degrees : float, default 10
        Maximum rotation either way, in degrees.
    translation : float, default 0.1
        Maximum shift, as a fraction of height and width.
    zoom : float, default 0.1
        Maximum zoom in or out, as a fraction.
    flip : bool, default True
        Mirror half of the faces left-right.
    fill_mode : str, default "nearest"
        How pixels moved in from outside are filled (Keras' fill modes).
    seed : int, optional
        For reproducible augmentation.

    Returns
    -------
    keras.Sequential
    """
    keras = import_keras()
    L = keras.layers

    def s(i: int) -> int | None:  # distinct seeds, so the four random streams are independent
        return None if seed is None else seed + i

    layers = [
        L.RandomRotation(rotation_degrees / 360.0, fill_mode=fill_mode, seed=s(0), name="random_rotation"),
        L.RandomTranslation(translation, translation, fill_mode=fill_mode, seed=s(1), name="random_translation"),
        L.RandomZoom(zoom, fill_mode=fill_mode, seed=s(2), name="random_zoom"),
    ]
    if flip:
        layers.append(L.RandomFlip("horizontal", seed=s(3), name="random_flip"))
    return keras.Sequential(layers, name="augmentation")


def class_weights(labels: Any, num_classes: int = 7) -> dict[int, float]:
    """Inverse-frequency ("balanced") class weights for ``model.fit(class_weight=...)``.

    Weight of class ``c`` is ``n / (num_classes_present * count_c)``, so the average weight
    of a sample is 1; classes absent from ``labels`` get 1.

    Parameters
    ----------
    labels : array-like of int
        ``(N,)`` class indices.
    num_classes : int, default 7
        Number of classes.

    Returns
    -------
    dict of int to float

    Raises
    ------
    InvalidDataError
        Labels outside ``[0, num_classes)`` or not integers.

    Examples
    --------
    >>> class_weights([0, 0, 0, 1], num_classes=3)
    {0: 0.6667, 1: 2.0, 2: 1.0}
    """
    y = np.asarray(labels)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise InvalidDataError(f"labels must be a 1-D array of class indices, got shape {y.shape} and dtype {y.dtype}.")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise InvalidDataError(f"labels must lie in [0, {num_classes}), got values from {y.min()} to {y.max()}.")
    counts = np.bincount(y, minlength=num_classes)
    present = int((counts > 0).sum())
    return {c: round(float(y.size / (present * n)), 4) if n else 1.0 for c, n in enumerate(counts.tolist())}


def training_callbacks(
    checkpoint: str | os.PathLike,
    *,
    monitor: str = "val_loss",
    early_stopping_patience: int = 5,
    lr_patience: int = 2,
    lr_factor: float = 0.5,
    lr_min_delta: float = 1e-4,
    min_lr: float = 1e-6,
    verbose: int = 0,
) -> list[Any]:
    """The seed's callbacks: EarlyStopping (restoring the best weights), ReduceLROnPlateau, ModelCheckpoint.

    Parameters
    ----------
    checkpoint : str or os.PathLike
        Where ``ModelCheckpoint`` writes the best model (``.keras``, or ``.weights.h5`` for weights only).
    monitor : str, default "val_loss"
        What all three callbacks watch (lower is better for losses, higher for accuracies).
    early_stopping_patience : int, default 5
        Epochs without improvement before training stops.
    lr_patience : int, default 2
        Epochs without improvement before the learning rate is multiplied by ``lr_factor``;
        0 reduces it after every epoch that does not improve.
    lr_factor : float, default 0.5
        Learning-rate multiplier.
    lr_min_delta : float, default 1e-4
        Smallest change of ``monitor`` that counts as an improvement for the learning-rate schedule (Keras' default).
    min_lr : float, default 1e-6
        Lower bound of the learning rate.
    verbose : int, default 0
        Keras callback verbosity.

    Returns
    -------
    list of keras.callbacks.Callback
    """
    keras = import_keras()
    cb = keras.callbacks
    checkpoint = os.fspath(checkpoint)
    weights_only = checkpoint.endswith(".weights.h5")
    common = {"monitor": monitor, "verbose": verbose}
    return [
        cb.EarlyStopping(patience=early_stopping_patience, restore_best_weights=True, **common),
        cb.ReduceLROnPlateau(factor=lr_factor, patience=lr_patience, min_delta=lr_min_delta, min_lr=min_lr, **common),
        cb.ModelCheckpoint(checkpoint, save_best_only=True, save_weights_only=weights_only, **common),
    ]


def _batches(keras: Any) -> type:
    class AugmentedBatches(keras.utils.PyDataset):
        """Shuffled training batches, augmented eagerly by the augmentation layers.

        Augmenting here rather than in the model keeps the trained model (and its checkpoint)
        the plain emotionkit model, and lets JAX compile the training step: Keras runs a model
        that contains random image layers eagerly on JAX.
        """

        def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, augment: Any, seed: int | None) -> None:
            super().__init__()
            self.x, self.y, self.batch_size, self.augment = x, y, batch_size, augment
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(x))

        def __len__(self) -> int:
            return -(-len(self.x) // self.batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
            faces = self.x[rows]
            if self.augment is not None:
                faces = np.asarray(keras.ops.convert_to_numpy(self.augment(faces, training=True)), dtype=np.float32)
            return faces, self.y[rows]

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(len(self.x))

    return AugmentedBatches


def fit(
    model: keras.Model,
    x: Any,
    y: Any,
    *,
    validation_data: tuple[Any, Any] | None = None,
    validation_split: float = 0.1,
    epochs: int = 30,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    checkpoint: str | os.PathLike = "best.keras",
    class_weight: Literal["balanced"] | Mapping[int, float] | None = "balanced",
    augment: bool = True,
    early_stopping_patience: int = 5,
    lr_patience: int = 2,
    lr_factor: float = 0.5,
    lr_min_delta: float = 1e-4,
    min_lr: float = 1e-6,
    seed: int | None = None,
    verbose: int | str = 2,
) -> keras.callbacks.History:
    """Train an emotionkit Keras model the seed's way; the model is trained in place.

    Faces are preprocessed exactly as the torch recognizer does (:func:`nhwc_faces` with the
    model's preprocessor). Training uses Adam and sparse categorical cross-entropy on batches
    reshuffled and augmented by :func:`augmentation` every epoch, with :func:`class_weights`
    and :func:`training_callbacks`. The model is compiled for this.

    Parameters
    ----------
    model : keras.Model
        From :func:`emotionkit.keras.build` (or ``build_cnn`` and the others).
    x : numpy.ndarray
        Training faces ``(N, H, W)`` or ``(N, H, W, C)``, uint8 or float in [0, 1].
    y : array-like of int
        ``(N,)`` class indices (the model's label order, :data:`~emotionkit.EMOTIONS` by default).
    validation_data : tuple, optional
        ``(faces, labels)``: held-out faces the callbacks watch; default: the last ``validation_split``
        of ``x`` (not augmented).
    validation_split : float, default 0.1
        Used only without ``validation_data``.
    epochs, batch_size, learning_rate
        As for Keras.
    checkpoint : str or os.PathLike, default "best.keras"
        Where the best model (lowest ``val_loss``) is written.
    class_weight : "balanced", mapping or None, default "balanced"
        Class weights; ``"balanced"`` computes :func:`class_weights` from ``y``.
    augment : bool, default True
        Augment each training batch with :func:`augmentation` (on the fly, every epoch anew).
    early_stopping_patience, lr_patience, lr_factor, lr_min_delta, min_lr
        See :func:`training_callbacks`.
    seed : int, optional
        Seeds Keras, numpy and the augmentation, for a reproducible run.
    verbose : int or str, default 2
        Keras ``fit`` verbosity (2: one line per epoch).

    Returns
    -------
    keras.callbacks.History
        ``history.history`` has ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` and ``learning_rate`` per epoch.

    Raises
    ------
    InvalidDataError
        Labels that do not match the faces or the model's classes.
    InvalidImageError
        Faces that are not a batch of images.
    """
    keras = import_keras()
    info = model_info(model)
    num_classes = int(model.output_shape[-1])
    x_train, y_train, validation = _train_and_validation(
        x, y, validation_data, validation_split, info["preprocessor"], num_classes
    )
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=info["output"] == "logits"),
        metrics=["accuracy"],
    )
    weights = class_weights(y_train, num_classes) if class_weight == "balanced" else class_weight
    batches = _batches(keras)(x_train, y_train, batch_size, augmentation(seed=seed) if augment else None, seed)
    callbacks = training_callbacks(
        checkpoint,
        early_stopping_patience=early_stopping_patience,
        lr_patience=lr_patience,
        lr_factor=lr_factor,
        lr_min_delta=lr_min_delta,
        min_lr=min_lr,
    )
    return model.fit(
        batches,
        validation_data=validation,
        epochs=epochs,
        class_weight=dict(weights) if weights is not None else None,
        callbacks=callbacks,
        verbose=verbose,
    )


def _train_and_validation(
    x: Any,
    y: Any,
    validation_data: tuple[Any, Any] | None,
    validation_split: float,
    preprocessor: Mapping[str, Any],
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Preprocessed training faces and labels, and the validation pair (given, or the last split of ``x``)."""
    x_train = nhwc_faces(x, preprocessor)
    y_train = _labels(y, len(x_train), num_classes, "y")
    if validation_data is not None:
        vx = nhwc_faces(validation_data[0], preprocessor)
        return x_train, y_train, (vx, _labels(validation_data[1], len(vx), num_classes, "validation labels"))
    if 0 < validation_split < 1 and int(len(x_train) * validation_split) > 0:
        cut = len(x_train) - int(len(x_train) * validation_split)
        return x_train[:cut], y_train[:cut], (x_train[cut:], y_train[cut:])
    raise InvalidDataError(
        f"Give validation_data, or a validation_split in (0, 1) that leaves at least one face; got "
        f"validation_split={validation_split!r} for {len(x_train)} faces."
    )


def _labels(y: Any, n: int, num_classes: int, what: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.shape != (n,):
        raise InvalidDataError(f"{what} must have shape ({n},) to match the faces, got {labels.shape}.")
    if not np.issubdtype(labels.dtype, np.integer) or (n and (labels.min() < 0 or labels.max() >= num_classes)):
        raise InvalidDataError(
            f"{what} must be integer class indices in [0, {num_classes}), got dtype {labels.dtype}"
            + (f" and values {labels.min()}..{labels.max()}." if n else ".")
        )
    return labels.astype(np.int64)
