"""The settings of a training run: :class:`TrainConfig`, saved as ``train_config.json``.

A module of its own, without torch, so ``emotionkit train``'s flags can take their defaults,
types and choices from the fields when the command line is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``train_config.json``).

    Parameters
    ----------
    backbone : str
        Registered backbone name.
    backbone_config : dict
        Keyword arguments for the backbone's ``build``.
    preprocessing : dict, optional
        :class:`FacePreprocessor` config; default: the backbone spec's.
    epochs : int
        Maximum epochs.
    batch_size : int
        Mini-batch size.
    lr, weight_decay : float
        Optimiser settings (AdamW or Adam).
    optimizer : {"adamw", "adam"}
    schedule : {"cosine", "plateau"}
        Cosine decay after a linear warm-up, or ReduceLROnPlateau on validation loss.
    warmup_epochs : float
        Linear warm-up length (cosine schedule).
    plateau_patience, plateau_factor : int, float
        ReduceLROnPlateau settings.
    early_stopping_patience : int, optional
        Stop after this many epochs without a better validation score.
    label_smoothing : float
        Cross-entropy label smoothing.
    class_balance : {"none", "weights", "sampler"}
        Class weights in the loss, or a weighted sampler, with strength ``balance_power``
        (1 = inverse frequency, 0.5 = its square root).
    augment : bool
        Random rotation, shift, zoom and flip on the training split.
    rotation, shift, zoom : float
        Augmentation ranges (degrees, fractions).
    time_budget_minutes : float, optional
        Wall-clock budget: the cosine schedule anneals on whichever of steps or time runs out first,
        and training ends when it does (so a run on a busy machine still finishes annealed).
    distill_from : str, optional
        Teachers for knowledge distillation (Hinton et al. 2015): one or more bundled model names or
        run directories, comma-separated. Their mean softened probabilities are the distillation
        target; each sees the augmented faces as its own preprocessing makes them
        (:class:`~emotionkit.training.distill.TeacherEnsemble`).
    distill_alpha, distill_temperature : float
        Weight of the distillation term and its softmax temperature.
    seed : int
        Seed of initialisation, shuffling and augmentation.
    threads : int, optional
        ``torch.set_num_threads`` for this run.
    tta_flip : bool
        Also report metrics with horizontal-flip test-time augmentation.
    predict_flip : {"no", "yes", "auto"}
        Whether the saved model predicts with flip test-time augmentation (each face's logits
        averaged with its mirror image's, twice the classifier's work; ``"flip_tta"`` in its
        ``config.json``). ``"auto"``: only when that raises the validation score that chose the best
        epoch (macro F1, then accuracy), recorded in the model's ``meta["flip_tta"]``. The
        temperature is fitted, and the validation metrics measured, as the model will predict.
        Training and checkpoint selection are unchanged (one crop).
    init : {"scratch", "imagenet"} or str
        Random initialisation, timm's ImageNet weights (needs network access; fails at once,
        with what to do instead, when offline), or the path of a local safetensors / torch state
        dict with the backbone's tensor names (all but the head's, strict; see
        :mod:`emotionkit.training.init_weights`), recorded with its sha256 in the model's meta.
    init_from : str, optional
        A model name or run directory whose weights start this run (a warm restart: a fresh
        schedule on trained weights). Its backbone, backbone config and preprocessing are
        used where this config leaves them unset, and must otherwise match.
    augment_copies : int
        Offline augmentation, the seed's recipe: this many transformed copies of every training
        image are added to the training part (never to validation) before training.
    freeze_epochs : int
        Two-phase fine-tuning: the first ``freeze_epochs`` epochs train only the head on a frozen
        base; then the top ``unfreeze_layers`` layers below it (all when ``None``) train too, at
        ``lr * finetune_lr_factor``. 0 trains everything from the start.
    unfreeze_layers : int, optional
        Layers unfrozen in the second phase (see :func:`~emotionkit.training.finetune.layer_groups`).
    finetune_lr_factor : float
        Learning-rate factor of the second phase.
    progress : bool, optional
        Show a progress bar per epoch on stderr (default: when stderr is a terminal).
    soft_targets : {"ferplus"}, optional
        Train against soft targets: FER-2013's label mixed with the FER+ vote distribution
        (:mod:`emotionkit.training.soft_targets`); ``fit`` takes the distributions.
    soft_target_weight : float
        Share of the vote distribution in each target (0: labels only, 1: votes only).
    ferplus_head : float
        Weight of a second output head, ``"ferplus"`` (:mod:`emotionkit.heads`), trained against the
        FER+ vote distribution beside the model's own FER-2013 head; 0 (default): no such head. Needs
        ``soft_targets="ferplus"``, which brings the distributions (``soft_target_weight`` still mixes
        them into the first head's targets; 0 keeps those FER-2013's labels alone).
    ema_decay : float, optional
        Keep an exponential moving average of the weights, ``decay`` per optimiser step
        (:class:`~emotionkit.training.weight_average.WeightAverage`; 0.999 averages about the last
        thousand steps). After each epoch the average is scored on the validation faces beside the
        weights themselves, and the better of the two competes for the best epoch. ``None``
        (default): no average.
    recalibrate_bn : bool
        After training, re-estimate the best epoch's batch-norm statistics on the un-augmented
        training images, and keep them when the validation score does not drop (see
        :mod:`emotionkit.training.batchnorm`); recorded in the model's ``meta["batchnorm"]``.
    """

    backbone: str = "cnn"
    backbone_config: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] | None = None
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "adam"] = "adamw"
    schedule: Literal["cosine", "plateau"] = "cosine"
    warmup_epochs: float = 1.0
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    early_stopping_patience: int | None = None
    label_smoothing: float = 0.1
    class_balance: Literal["none", "weights", "sampler"] = "weights"
    balance_power: float = 0.5
    augment: bool = True
    rotation: float = 10.0
    shift: float = 0.1
    zoom: float = 0.1
    time_budget_minutes: float | None = None
    distill_from: str | None = None
    distill_alpha: float = 0.5
    distill_temperature: float = 2.0
    seed: int = 0
    threads: int | None = None
    tta_flip: bool = True
    predict_flip: Literal["no", "yes", "auto"] = "no"
    init: str = "scratch"
    init_from: str | None = None
    augment_copies: int = 0
    freeze_epochs: int = 0
    unfreeze_layers: int | None = None
    finetune_lr_factor: float = 0.1
    progress: bool | None = None
    recalibrate_bn: bool = True
    soft_targets: str | None = None
    soft_target_weight: float = 0.5
    ferplus_head: float = 0.0
    ema_decay: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict.

        Returns
        -------
        dict
            Every field, as saved in ``train_config.json``.
        """
        return asdict(self)
