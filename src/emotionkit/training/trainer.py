"""The trainer: weighted cross-entropy, AdamW, cosine or plateau schedule, early stopping, checkpoints, resume.

A run directory holds everything: ``train_config.json``, ``history.json``,
``checkpoint.pt`` (the last epoch, for resuming after a kill) and the best
model in the :meth:`EmotionRecognizer.save_pretrained` layout (``config.json``,
``preprocessor.json``, ``model.safetensors``), so
``EmotionRecognizer.from_pretrained(run_dir)`` loads a finished run.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.fer2013 import FaceDataset
from ..exceptions import IncompatibleComponentsError, InvalidDataError, InvalidOptionError, InvalidWeightsError
from ..heads import FERPLUS_HEAD, OutputHead, head_columns, match_heads, output_width
from ..preprocessing import FacePreprocessor
from ..recognizer import EmotionRecognizer, build_backbone
from ..registry import load_plugin
from ..types import EMOTIONS
from .augment import RandomAffineFlip, augment_copies
from .batchnorm import recalibrate_if_better
from .config import TrainConfig
from .distill import TeacherEnsemble, distillation_loss
from .distributed import ProcessGroup
from .finetune import set_trainable
from .head_probe import fit_linear_head, layer_inputs, output_layer
from .init_weights import is_init_path, load_init_weights
from .metrics import classification_metrics, fit_temperature, softmax
from .soft_targets import mixed_targets, soft_cross_entropy
from .weight_average import WeightAverage, check_decay

__all__ = ["TrainConfig", "Trainer", "predict_logits", "class_weights"]

CHECKPOINT_NAME = "checkpoint.pt"
# Settings a resumed run may change without a warning (more epochs, another machine).
_RESUMABLE_CHANGES = frozenset({"epochs", "time_budget_minutes", "threads", "progress", "early_stopping_patience"})


def class_weights(labels: np.ndarray, num_classes: int, power: float = 0.5) -> np.ndarray:
    """Per-class weights ``(N / (K * count)) ** power``; classes without samples get weight 0.

    Parameters
    ----------
    labels : numpy.ndarray
        ``(N,)`` class indices of the training part.
    num_classes : int
        ``K``.
    power : float, default 0.5
        1 is inverse frequency, 0.5 its square root, 0 no balancing.

    Returns
    -------
    numpy.ndarray
        ``(K,)`` float64 weights.

    Examples
    --------
    >>> class_weights(np.array([0, 0, 0, 1]), 2, power=1.0).round(3).tolist()
    [0.667, 2.0]
    """
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.zeros(num_classes)
    nonzero = counts > 0
    w[nonzero] = (labels.shape[0] / (num_classes * counts[nonzero])) ** power
    return w


def predict_logits(
    recognizer: EmotionRecognizer,
    x: torch.Tensor,
    *,
    batch_size: int = 512,
    tta_flip: bool | None = None,
    head: str | None = None,
) -> np.ndarray:
    """Logits of preprocessed faces ``(N, C, H, W)``, batched; with ``tta_flip`` averaged with the mirrored faces.

    Parameters
    ----------
    recognizer : EmotionRecognizer
        The model.
    x : torch.Tensor
        ``(N, C, H, W)`` faces, as its preprocessor makes them.
    batch_size : int, default 512
        Faces per forward pass.
    tta_flip : bool, optional
        Average with the logits of the horizontally mirrored faces; ``None`` (default): as the model
        does (``recognizer.flip_tta``).
    head : str, optional
        An extra output head (``recognizer.heads``, e.g. ``"ferplus"``); ``None``: the model's own classes.

    Returns
    -------
    numpy.ndarray
        ``(N, K)`` float32 logits of that head.
    """
    out = []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start : start + batch_size]
        out.append(recognizer.logits(xb, flip_tta=tta_flip, head=head).numpy())
    width = len(recognizer.inference.head_spec(head).labels)
    return np.concatenate(out) if out else np.empty((0, width), np.float32)


@dataclass
class _FitRun:
    """What one :meth:`Trainer.fit` works on: tensors, losses, optimiser, schedule, generator and resumable state."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    targets: torch.Tensor | None
    x_val: torch.Tensor
    y_val: np.ndarray
    n_plain: int  # the training faces before offline copies
    n_train: int  # with them
    classes: tuple[str, ...]
    loss_weight: torch.Tensor | None
    sample_weight: torch.Tensor | None
    augment: RandomAffineFlip | None
    teacher: TeacherEnsemble | None
    model: nn.Module
    train_model: nn.Module
    opt: torch.optim.Optimizer
    plateau: Any
    gen: torch.Generator
    steps_per_epoch: int
    total_steps: int
    state: dict[str, Any]
    ckpt_path: Path
    show_progress: bool
    start: float = 0.0  # when the current epoch's time started counting
    loss_sum: float = 0.0  # the current epoch's, in this process
    correct: int = 0
    seen: int = 0
    head_targets: torch.Tensor | None = None  # the FER+ head's vote distributions (config.ferplus_head)
    head_present: torch.Tensor | None = None  # faces that have them
    average: WeightAverage | None = None  # config.ema_decay's moving average of the weights


class Trainer:
    """Train a registered backbone on a :class:`FaceDataset`.

    Parameters
    ----------
    config : TrainConfig
        The recipe.
    out_dir : str or os.PathLike
        The run directory (created).
    log : callable, optional
        Where progress lines go (default: print to stderr); silent on every rank but 0.
    group : ProcessGroup, optional
        This process's rank in a multi-process run (default: what torchrun's environment says, else one
        process); see :mod:`emotionkit.training.distributed`.

    Raises
    ------
    UnknownPluginError
        ``config.backbone`` is not a registered backbone.
    IncompatibleComponentsError
        ``init="imagenet"`` for a backbone without ImageNet weights in timm.
    InvalidOptionError
        ``config.epochs`` below 1, except 0 with ``init_from`` (finishing steps only); a
        ``config.predict_flip`` other than ``"no"``, ``"yes"``, ``"auto"``; a ``config.ema_decay`` outside
        (0, 1).
    """

    def __init__(
        self, config: TrainConfig, out_dir: str | os.PathLike, log: Any = None, group: ProcessGroup | None = None
    ) -> None:
        if config.epochs < 0 or (config.epochs == 0 and not config.init_from):
            raise InvalidOptionError(
                f"epochs must be >= 1 (or 0 with init_from: finish trained weights without training); got "
                f"{config.epochs}{'' if config.init_from else ' without init_from'}."
            )
        if config.ferplus_head < 0 or (config.ferplus_head > 0 and config.soft_targets != "ferplus"):
            raise InvalidOptionError(
                f"ferplus_head must be >= 0, and above 0 it needs soft_targets='ferplus' (the vote distributions "
                f"its head learns; --soft-targets ferplus --soft-target-weight 0 leaves the first head on "
                f"FER-2013's labels); got ferplus_head={config.ferplus_head}, soft_targets={config.soft_targets!r}."
            )
        if config.predict_flip not in ("no", "yes", "auto"):
            raise InvalidOptionError(
                f"predict_flip must be 'no', 'yes' or 'auto' (flip test-time augmentation of the saved model); got "
                f"{config.predict_flip!r}."
            )
        if config.ema_decay is not None:  # refused here, before any data are read
            check_decay(config.ema_decay, "ema_decay (None: no weight average)")
        self.config = config
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.group = group or ProcessGroup.from_environment()
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        if not self.group.is_main:
            self.log = lambda msg: None
        #: Called after every optimiser step as ``callback(step, model, rows)``, ``rows`` being the indices of
        #: the training faces this process used in the step.
        self.step_callbacks: list[Callable[[int, nn.Module, torch.Tensor], None]] = []
        spec = load_plugin("backbones", config.backbone)
        source = self._init_source()
        self._source_meta: dict[str, Any] = dict(source.meta) if source is not None else {}
        if source is not None:  # a warm restart takes the source's architecture unless told otherwise
            backbone_config = config.backbone_config or dict(source.backbone_config)
            if config.preprocessing and "image_size" in backbone_config and "image_size" not in config.backbone_config:
                # A new input size in --preprocessing alone: the backbone is told it too.
                size = FacePreprocessor.from_dict(config.preprocessing).to_dict()["size"][0]
                backbone_config = {**backbone_config, "image_size": size}
            config = self.config = replace(
                config,
                backbone_config=backbone_config,
                preprocessing=config.preprocessing or source.preprocessor.to_dict(),
            )
        pre_cfg = dict(config.preprocessing or spec.preprocessing)
        self.preprocessor = FacePreprocessor.from_dict(pre_cfg)
        backbone_config = {**spec.default_config, **config.backbone_config}
        backbone_config.setdefault("in_channels", self.preprocessor.channels)
        if config.init == "imagenet":
            if "pretrained" not in inspect.signature(spec.build).parameters:
                raise IncompatibleComponentsError(
                    f"init='imagenet' needs a backbone with ImageNet weights in timm (such as mobilenetv2 or vit); "
                    f"{config.backbone!r} has none. Use init='scratch' (--init scratch)."
                )
            backbone_config["pretrained"] = True
        self.backbone_config = json.loads(json.dumps(backbone_config))  # JSON-normal form (tuples -> lists)
        torch.manual_seed(config.seed)
        #: Extra output heads the run trains (``"ferplus"`` with ``config.ferplus_head``), after the seven classes.
        self.heads = {FERPLUS_HEAD: OutputHead(EMOTIONS)} if config.ferplus_head > 0 else {}
        self._new_heads: list[str] = []  # heads a warm start's source lacks: fitted on frozen features at epochs=0
        self._probed: dict[str, Any] = {}
        self.model = build_backbone(config.backbone, backbone_config, num_classes=output_width(EMOTIONS, self.heads))
        self.backbone_config.pop("pretrained", None)
        self._init_weights: dict[str, Any] | None = None
        self._resized_from: list[int] | None = None
        if is_init_path(config.init):  # a local file (init_from with it was refused by _init_source)
            self._init_weights = load_init_weights(self.model, config.init, backbone=config.backbone)
        if source is not None:
            self._load_init_weights(source)

    def _init_source(self) -> EmotionRecognizer | None:
        cfg = self.config
        if not cfg.init_from:
            return None
        if cfg.init != "scratch":
            raise IncompatibleComponentsError(
                f"init={cfg.init!r} and init_from={cfg.init_from!r} both set the starting weights; give one of them."
            )
        source = EmotionRecognizer.from_pretrained(cfg.init_from, detector=None)
        if source.backbone_name != cfg.backbone:
            raise IncompatibleComponentsError(
                f"init_from={cfg.init_from!r} holds a {source.backbone_name!r} model, but this run trains "
                f"{cfg.backbone!r}. Use --backbone {source.backbone_name} (or distill instead: --distill-from)."
            )
        return source

    def _load_init_weights(self, source: EmotionRecognizer) -> None:
        """Load a warm restart's weights: the same architecture and preprocessing, or the same at a new input size."""
        before = source.preprocessor.to_dict()
        after = self.preprocessor.to_dict()
        resized = _only_size_differs(source.backbone_config, self.backbone_config, before, after)
        if not resized and (source.backbone_config != self.backbone_config or before != after):
            raise IncompatibleComponentsError(
                f"init_from={self.config.init_from!r} was built with backbone config {source.backbone_config} and "
                f"preprocessing {before}; this run asks for {self.backbone_config} and {after}. Leave "
                "--config/--preprocessing unset to take the source's (a new input size alone is allowed: "
                "'size' in --preprocessing and 'image_size' in --config)."
            )
        state = {k: v.float() if v.is_floating_point() else v for k, v in source.model.state_dict().items()}
        state = match_heads(state, source.inference, EMOTIONS, self.heads)
        self._new_heads = [name for name in self.heads if name not in source.heads]
        try:
            self.model.load_state_dict(state)
        except RuntimeError as exc:  # only a new input size gets here: some tensor's shape follows it
            raise IncompatibleComponentsError(
                f"init_from={self.config.init_from!r} was trained at {_px(before)}; its {self.config.backbone!r} "
                f"weights do not fit a model at {_px(after)} ({str(exc).splitlines()[-1].strip()}). This "
                "backbone's weights depend on the input size: keep the source's size."
            ) from None
        if resized:
            self._resized_from = list(before["size"])

    # -------------------------------------------------------------------------------- helpers
    def _recognizer(
        self, temperature: float = 1.0, meta: dict[str, Any] | None = None, *, flip_tta: bool = False
    ) -> EmotionRecognizer:
        return EmotionRecognizer(
            self.model,
            self.preprocessor,
            None,
            backbone_name=self.config.backbone,
            backbone_config=self.backbone_config,
            temperature=temperature,
            meta=meta,
            flip_tta=flip_tta,
            heads=self.heads,
        )

    def _tensors(self, data: FaceDataset) -> torch.Tensor:
        chunks = [self.preprocessor.faces(data.images[i : i + 2048]) for i in range(0, len(data), 2048)]
        return torch.cat(chunks)

    def _check_classes(self, train: FaceDataset, val: FaceDataset) -> None:
        for name, data in (("training", train), ("validation", val)):
            missing = [c for c, n in data.class_counts().items() if n == 0]
            if missing:
                raise InvalidDataError(
                    f"The {name} split has no samples of class(es) {', '.join(missing)}. "
                    "Use a stratified split, or add data for those classes."
                )

    def _lr_factor(self, step: int, total_steps: int, start_time: float, elapsed_before: float) -> float:
        cfg = self.config
        progress = step / max(total_steps, 1)
        if cfg.time_budget_minutes:
            elapsed = elapsed_before + time.time() - start_time
            progress = max(progress, elapsed / (cfg.time_budget_minutes * 60.0))
        warm = cfg.warmup_epochs / max(cfg.epochs, 1)
        if progress < warm:
            return max(progress / warm, 1e-3)
        return 0.5 * (1.0 + math.cos(math.pi * min((progress - warm) / max(1.0 - warm, 1e-9), 1.0)))

    # -------------------------------------------------------------------------------- training
    def fit(
        self,
        train: FaceDataset,
        val: FaceDataset,
        *,
        resume: bool = False,
        soft_targets: tuple[np.ndarray, np.ndarray] | None = None,
        val_soft_targets: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """Train, keeping the best epoch by validation macro-F1 then accuracy.

        Parameters
        ----------
        train, val : FaceDataset
            Training and validation splits (split *before* any augmentation).
        resume : bool, default False
            Continue from ``checkpoint.pt`` in the run directory.
        soft_targets : (numpy.ndarray, numpy.ndarray), optional
            With ``config.soft_targets``: ``(len(train), K)`` distributions over the classes
            (e.g. :func:`~emotionkit.data.ferplus.vote_distribution`) and the ``(len(train),)`` mask
            of faces that have one; mixed with the labels by ``config.soft_target_weight``.
        val_soft_targets : (numpy.ndarray, numpy.ndarray), optional
            The same for the validation faces: with ``config.ferplus_head``, the FER+ head's temperature is
            fitted on them (kept when its ECE against their majority does not rise); else it stays 1.

        Returns
        -------
        dict
            ``history`` (one entry per epoch), ``best_epoch``, ``temperature``, ``val`` metrics
            of the best model (calibrated), ``seconds``.

        Raises
        ------
        InvalidDataError
            A split without samples of some class.
        IncompatibleComponentsError
            Resuming from a checkpoint of another backbone or configuration.
        """
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self._check_classes(train, val)
        run = self._start_run(train, val, resume, soft_targets)
        run.start = time.time()
        stop_reason = "epochs"
        while run.state["epoch"] < cfg.epochs:
            epoch_start = time.time()
            annealed = self._train_epoch(run)
            self._end_epoch(run, epoch_start)
            if cfg.early_stopping_patience is not None and run.state["bad_epochs"] >= cfg.early_stopping_patience:
                stop_reason = "early_stopping"
                break
            if annealed or (cfg.time_budget_minutes and run.state["elapsed"] >= cfg.time_budget_minutes * 60.0):
                stop_reason = "time_budget"
                break
        if not self.group.is_main:  # rank 0 finishes (batch norm, temperature) and writes the model
            return {"history": run.state["history"], "best_epoch": run.state["best_epoch"], "rank": self.group.rank}
        if run.state["best_epoch"] is None and self._new_heads:  # nothing trained: fit the new heads alone
            self._probe_new_heads(run)
        return self._calibrate_and_save_best(
            run.x_train[: run.n_plain], run.x_val, run.y_val, run.classes, run.state, stop_reason, val_soft_targets
        )

    def _start_run(
        self,
        train: FaceDataset,
        val: FaceDataset,
        resume: bool,
        soft_targets: tuple[np.ndarray, np.ndarray] | None,
    ) -> _FitRun:
        """Tensors, loss weights, teachers, optimiser, schedule and state (resumed or fresh) of one :meth:`fit`."""
        cfg = self.config
        n_plain = len(train)  # offline copies go after the originals; batch norm is re-estimated on these
        targets = self._soft_targets(train, soft_targets)
        if cfg.augment_copies:  # offline copies of the training part only (it was split before)
            train = augment_copies(
                train, cfg.augment_copies, seed=cfg.seed, augment=RandomAffineFlip(cfg.rotation, cfg.shift, cfg.zoom)
            )
        x_train, y_train = self._tensors(train), torch.as_tensor(train.labels)
        if targets is not None:  # copies (if any) follow the originals in order: tile the targets alike
            targets = targets.repeat(len(train) // n_plain, 1)
        x_val, y_val = self._tensors(val), val.labels
        weights = class_weights(train.labels, len(train.classes), cfg.balance_power)
        loss_weight = torch.as_tensor(weights, dtype=torch.float32) if cfg.class_balance == "weights" else None
        sample_weight = torch.as_tensor(weights[train.labels]) if cfg.class_balance == "sampler" else None
        augment = RandomAffineFlip(cfg.rotation, cfg.shift, cfg.zoom) if cfg.augment else None
        teacher = self._teacher()

        model = self.model.to(memory_format=torch.channels_last)
        params = list(model.parameters())  # frozen ones (no gradient) are skipped by the optimiser
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.plateau_factor, patience=cfg.plateau_patience)
            if cfg.schedule == "plateau"
            else None
        )
        gen = torch.Generator().manual_seed(cfg.seed)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        state: dict[str, Any] = {
            "epoch": 0,
            "step": 0,
            "elapsed": 0.0,
            "history": [],
            "best": None,
            "best_epoch": None,
            "bad_epochs": 0,
        }
        ckpt_path = self.out / CHECKPOINT_NAME
        saved_average: dict[str, Any] | None = None
        if resume and ckpt_path.is_file():
            state, saved_average = self._load_checkpoint(ckpt_path, model, opt, plateau, gen)
            self.log(f"resumed from {ckpt_path} at epoch {state['epoch']}")
        elif resume:
            self.log(f"no checkpoint at {ckpt_path}: starting from scratch")
        average = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay is not None else None
        if average is not None and saved_average is not None:
            average.load_state_dict(saved_average)
        # Written only now, so a refused resume leaves the run's own config in place.
        if self.group.is_main:
            record = {**cfg.to_dict(), "distributed": self.group.describe(cfg.batch_size, cfg.lr)}
            (self.out / "train_config.json").write_text(json.dumps(record, indent=2) + "\n")
        show_progress = self.group.is_main and (cfg.progress if cfg.progress is not None else sys.stderr.isatty())
        train_model = self.group.wrap(model)  # after a resume, so every rank starts from the checkpoint
        run = _FitRun(
            x_train,
            y_train,
            targets,
            x_val,
            y_val,
            n_plain,
            len(train),
            train.classes,
            loss_weight,
            sample_weight,
            augment,
            teacher,
            model,
            train_model,
            opt,
            plateau,
            gen,
            steps_per_epoch,
            steps_per_epoch * cfg.epochs,
            state,
            ckpt_path,
            show_progress,
        )
        if self.heads and soft_targets is not None:  # copies (if any) follow the originals: tile alike
            copies = len(train) // n_plain
            run.head_targets = torch.as_tensor(soft_targets[0], dtype=torch.float32).repeat(copies, 1)
            run.head_present = torch.as_tensor(soft_targets[1], dtype=torch.bool).repeat(copies)
        run.average = average
        return run

    def _train_epoch(self, run: _FitRun) -> bool:
        """One pass over the training faces; the epoch's loss and accuracy go to ``run``. True when the time
        budget annealed the schedule to its end mid-epoch."""
        cfg, state = self.config, run.state
        frozen, lr_scale = self._phase(run.model, run.opt, run.plateau, state["epoch"])
        run.model.train()
        for module in frozen:  # frozen layers keep their batch-norm statistics
            module.eval()
        bar = None
        if run.show_progress:
            from tqdm import tqdm

            bar = tqdm(
                total=run.steps_per_epoch,
                desc=f"epoch {state['epoch'] + 1}/{cfg.epochs}",
                unit="batch",
                leave=False,
                file=sys.stderr,
            )
        if run.sample_weight is not None:
            order = torch.multinomial(run.sample_weight, run.n_train, replacement=True, generator=run.gen)
        else:
            order = torch.randperm(run.n_train, generator=run.gen)
        run.loss_sum, run.correct, run.seen, annealed = 0.0, 0, 0, False
        for b in range(run.steps_per_epoch):
            idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            if idx.numel() < 2 * self.group.world_size:  # batch norm needs two faces in every process
                continue
            self._train_step(run, idx, lr_scale)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{run.loss_sum / run.seen:.4f}", refresh=False)
            if (
                run.plateau is None
                and cfg.time_budget_minutes
                and self._lr_factor(state["step"], run.total_steps, run.start, state["elapsed"]) <= 1e-4
            ):
                annealed = True
                break
        if bar is not None:
            bar.close()
        return annealed

    def _train_step(self, run: _FitRun, idx: torch.Tensor, lr_scale: float) -> None:
        """One optimiser step on the training faces ``idx`` (this process's shard of them)."""
        cfg, state = self.config, run.state
        xb, yb = run.x_train[idx], run.y_train[idx]
        if run.augment is not None:  # the whole global batch, so every rank's generator stays in step
            xb = run.augment(xb, generator=run.gen)
        idx, xb, yb = self.group.shard(idx), self.group.shard(xb), self.group.shard(yb)
        xb = xb.contiguous(memory_format=torch.channels_last)
        if run.plateau is None:
            factor = self._lr_factor(state["step"], run.total_steps, run.start, state["elapsed"])
            for group in run.opt.param_groups:
                group["lr"] = cfg.lr * factor * lr_scale
        logits = run.train_model(xb)
        logits, head_loss = self._head_loss(run, logits, idx)
        if run.targets is not None:
            weight = None if run.loss_weight is None else run.loss_weight[yb]
            loss = soft_cross_entropy(logits, run.targets[idx], weight)
        else:
            loss = F.cross_entropy(logits, yb, weight=run.loss_weight, label_smoothing=cfg.label_smoothing)
        if run.teacher is not None:
            t = cfg.distill_temperature
            kd = distillation_loss(logits, run.teacher.soft_targets(xb, t), t)
            loss = (1 - cfg.distill_alpha) * loss + cfg.distill_alpha * kd
        if head_loss is not None:
            loss = loss + cfg.ferplus_head * head_loss
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        if run.average is not None:
            run.average.update(run.model)
        state["step"] += 1
        for callback in self.step_callbacks:
            callback(state["step"], run.model, idx)
        run.loss_sum += float(loss.detach()) * idx.numel()
        run.correct += int((logits.argmax(1) == yb).sum())
        run.seen += idx.numel()

    def _head_loss(
        self, run: _FitRun, logits: torch.Tensor, idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Split the network's output into the seven classes' logits and the FER+ head's loss (``None`` without)."""
        if not self.heads or run.head_targets is None or run.head_present is None:
            return logits, None
        own, head = logits[:, : len(EMOTIONS)], logits[:, len(EMOTIONS) :]
        present = run.head_present[idx]
        if not bool(present.any()):
            return own, head.sum() * 0.0  # keeps every process's graph the same shape
        return own, soft_cross_entropy(head[present], run.head_targets[idx][present])

    def _end_epoch(self, run: _FitRun, epoch_start: float) -> None:
        """Evaluate on the validation faces, keep the best epoch, step the plateau schedule, log, checkpoint."""
        cfg, state = self.config, run.state
        state["epoch"] += 1
        loss_sum, correct_sum, seen_sum = self.group.sum([run.loss_sum, run.correct, run.seen])
        correct, seen = int(correct_sum), int(seen_sum)
        self.group.sync_buffers(run.model)
        val_metrics, val_loss = self._validate(run)
        averaged = None
        if run.average is not None:
            with run.average.applied(run.model):
                averaged = self._validate(run)
        entry = {
            "epoch": state["epoch"],
            "train_loss": loss_sum / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_loss": val_loss,
            "val_accuracy": val_metrics["accuracy"],
            "val_macro_f1": val_metrics["macro_f1"],
            "lr": run.opt.param_groups[0]["lr"],
            "seconds": time.time() - epoch_start,
            "images_per_second": seen / max(time.time() - epoch_start, 1e-9),
        }
        if cfg.freeze_epochs > 0:
            entry["phase"] = 1 if state["epoch"] <= cfg.freeze_epochs else 2
        score = (round(val_metrics["macro_f1"], 4), val_metrics["accuracy"])
        use_average = False
        if averaged is not None:
            entry.update(
                val_loss_average=averaged[1],
                val_accuracy_average=averaged[0]["accuracy"],
                val_macro_f1_average=averaged[0]["macro_f1"],
            )
            average_score = (round(averaged[0]["macro_f1"], 4), averaged[0]["accuracy"])
            use_average = average_score > score
            score = max(score, average_score)
        state["history"].append(entry)
        if state["best"] is None or score > tuple(state["best"]):
            state["best"], state["best_epoch"], state["bad_epochs"] = list(score), state["epoch"], 0
            state["best_weights"] = "average" if use_average else "weights"
            if self.group.is_main:
                with run.average.applied(run.model) if use_average and run.average else nullcontext():
                    self._recognizer().save_pretrained(self.out)
        else:
            state["bad_epochs"] += 1
        if run.plateau is not None:
            run.plateau.step(val_loss)
        self.log(
            f"epoch {entry['epoch']:3d}/{cfg.epochs} train_loss {entry['train_loss']:.4f} acc {entry['train_accuracy']:.4f} | "
            f"val_loss {val_loss:.4f} acc {entry['val_accuracy']:.4f} macro_f1 {entry['val_macro_f1']:.4f} | "
            f"lr {entry['lr']:.2e} | {entry['seconds']:.0f}s ({entry['images_per_second']:.0f} img/s)"
            + (
                f" | average: val acc {entry['val_accuracy_average']:.4f} macro_f1 {entry['val_macro_f1_average']:.4f}"
                if averaged is not None
                else ""
            )
        )
        state["elapsed"] += time.time() - run.start
        run.start = time.time()
        if self.group.is_main:
            self._save_checkpoint(run.ckpt_path, run.model, run.opt, run.plateau, run.gen, state, run.average)
            (self.out / "history.json").write_text(json.dumps(state["history"], indent=2) + "\n")

    def _validate(self, run: _FitRun) -> tuple[dict[str, Any], float]:
        """The model's validation metrics (one crop, temperature 1) and cross-entropy, as it stands."""
        val_logits = predict_logits(self._recognizer(), run.x_val)
        val_metrics = classification_metrics(run.y_val, softmax(val_logits), run.classes)
        return val_metrics, float(F.cross_entropy(torch.as_tensor(val_logits), torch.as_tensor(run.y_val)))

    def _calibrate_and_save_best(
        self,
        x_train: torch.Tensor,
        x_val: torch.Tensor,
        y_val: np.ndarray,
        classes: tuple[str, ...],
        state: dict[str, Any],
        stop_reason: str,
        val_soft_targets: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """Reload the best epoch, re-estimate its batch norm, fit its temperature on the validation split, save it."""
        if state["best_epoch"] is None:  # no epoch ran (epochs=0): finish the starting weights
            self._recognizer().save_pretrained(self.out)
        best = EmotionRecognizer.from_pretrained(self.out, detector=None, flip_tta=False)
        batchnorm = self._recalibrate(best, x_train, x_val, y_val, classes) if self.config.recalibrate_bn else None
        flip = self._choose_flip(best, x_val, y_val, classes)
        logits = predict_logits(best, x_val)  # as the saved model will predict (with or without flip TTA)
        fitted = fit_temperature(logits, y_val)
        before = classification_metrics(y_val, softmax(logits), classes)
        after = classification_metrics(y_val, softmax(logits, fitted), classes)
        # The NLL-optimal temperature can raise the ECE it is there to lower (a distilled model's logits, say):
        # keep it only when the validation ECE does not rise, as batch-norm re-estimation is kept only when the
        # validation score does not drop.
        kept = after["ece"] <= before["ece"]
        temperature = fitted if kept else 1.0
        meta = {
            "training": {
                "config": self.config.to_dict(),
                "epochs_run": state["epoch"],
                "best_epoch": state["best_epoch"],
                "stop_reason": stop_reason,
                "seconds": round(state["elapsed"], 1),
                "seconds_per_epoch": round(state["elapsed"] / max(state["epoch"], 1), 1),
                **(
                    {"weight_average": {"decay": self.config.ema_decay, "best_is": state.get("best_weights")}}
                    if self.config.ema_decay is not None
                    else {}
                ),
            },
            "calibration": {
                "split": "validation",
                "temperature": temperature,
                "fitted_temperature": fitted,
                "kept": kept,
                "ece_before": before["ece"],
                "ece_after": after["ece"],
            },
            **({"batchnorm": batchnorm} if batchnorm else {}),
            **({"flip_tta": flip} if flip else {}),
        }
        if self.heads:
            meta["heads_calibration"] = self._calibrate_heads(best, x_val, val_soft_targets)
        if self._probed:
            meta["heads_fit"] = self._probed
        if self._init_weights is not None:
            meta["training"]["init_weights"] = self._init_weights
        if self._resized_from is not None:
            meta["training"]["resized_from"] = self._resized_from
        if state["epoch"] == 0 and "training" in self._source_meta:
            # Nothing trained here: the weights are the source's, and so is the record of how they were trained
            # (its batch-norm re-estimation too, unless this finish made one).
            meta["training"] = {**self._source_meta["training"], "finished_by": self.config.to_dict()}
            if not batchnorm and self._source_meta.get("batchnorm"):
                meta["batchnorm"] = self._source_meta["batchnorm"]
        self.model = best.model
        self._recognizer(temperature, meta, flip_tta=best.flip_tta).save_pretrained(self.out)
        summary = {
            "history": state["history"],
            "best_epoch": state["best_epoch"],
            "temperature": temperature,
            "val": after,
            "stop_reason": stop_reason,
        }
        if self.config.tta_flip:
            summary["val_tta_flip"] = classification_metrics(
                y_val, softmax(predict_logits(best, x_val, tta_flip=True), temperature), classes
            )
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _probe_new_heads(self, run: _FitRun) -> None:
        """Fit each head the source lacks on the frozen features of the un-augmented training faces that have votes."""
        if run.head_targets is None or run.head_present is None:
            return
        layer = output_layer(self.model, output_width(EMOTIONS, self.heads))
        present = run.head_present[: run.n_plain]
        features = layer_inputs(self.model, run.x_train[: run.n_plain], layer)[present]
        targets = run.head_targets[: run.n_plain][present]
        for name in self._new_heads:
            cols = head_columns(EMOTIONS, self.heads, name)
            weight, bias = fit_linear_head(
                features, targets, layer.weight[cols], layer.bias[cols], seed=self.config.seed
            )
            with torch.no_grad():
                layer.weight[cols] = weight.to(layer.weight.dtype)
                layer.bias[cols] = bias.to(layer.bias.dtype)
            self._probed[name] = {
                "faces": int(present.sum()),
                "method": "linear probe on frozen features",
                "steps": 300,
            }
            self.log(f"head {name!r} fitted on the frozen features of {int(present.sum())} training faces with votes")

    def _calibrate_heads(
        self, best: EmotionRecognizer, x_val: torch.Tensor, given: tuple[np.ndarray, np.ndarray] | None
    ) -> dict[str, Any]:
        """Fit the FER+ head's temperature on the validation faces' vote distributions (when given); set it."""
        if given is None:
            return {FERPLUS_HEAD: {"split": None, "temperature": 1.0, "kept": False, "why": "no validation votes"}}
        distribution, present = given
        logits = predict_logits(best, x_val, head=FERPLUS_HEAD)[present]
        target = distribution[present]
        fitted = fit_temperature(logits, target)
        majority = target.argmax(1)
        before = classification_metrics(majority, softmax(logits), EMOTIONS)["ece"]
        after = classification_metrics(majority, softmax(logits, fitted), EMOTIONS)["ece"]
        kept = after <= before
        self.heads = {FERPLUS_HEAD: OutputHead(EMOTIONS, fitted if kept else 1.0)}
        return {
            FERPLUS_HEAD: {
                "split": "validation",
                "faces": int(present.sum()),
                "temperature": self.heads[FERPLUS_HEAD].temperature,
                "fitted_temperature": fitted,
                "kept": kept,
                "ece_before": before,
                "ece_after": after,
            }
        }

    def _choose_flip(
        self, best: EmotionRecognizer, x_val: torch.Tensor, y_val: np.ndarray, classes: tuple[str, ...]
    ) -> dict[str, Any] | None:
        """Set ``best.flip_tta`` as ``config.predict_flip`` says; for ``"auto"``, return the validation scores behind it.

        ``"auto"`` keeps flip test-time augmentation only when it raises the score that chose the best
        epoch, (macro F1, accuracy) on the validation faces: it doubles the classifier's work, so a tie
        stays one crop.
        """
        choice = self.config.predict_flip
        best.flip_tta = choice == "yes"
        if choice != "auto":
            return None
        scores = {}
        for flip in (False, True):
            m = classification_metrics(y_val, softmax(predict_logits(best, x_val, tta_flip=flip)), classes)
            scores[flip] = (round(m["macro_f1"], 4), m["accuracy"])
        best.flip_tta = scores[True] > scores[False]
        self.log(
            f"flip test-time augmentation: validation (macro F1, accuracy) one crop {scores[False]}, with the mirror "
            f"image {scores[True]}: {'kept' if best.flip_tta else 'not kept (one crop)'}"
        )
        return {
            "split": "validation",
            "val_macro_f1_one_crop": scores[False][0],
            "val_accuracy_one_crop": scores[False][1],
            "val_macro_f1_flip": scores[True][0],
            "val_accuracy_flip": scores[True][1],
            "kept": best.flip_tta,
        }

    def _recalibrate(
        self,
        recognizer: EmotionRecognizer,
        x_train: torch.Tensor,
        x_val: torch.Tensor,
        y_val: np.ndarray,
        classes: tuple[str, ...],
    ) -> dict[str, Any] | None:
        """Re-estimate ``recognizer``'s batch norm on ``x_train`` if that does not lower its validation score.

        The score is the one that chose the best epoch: (macro F1, accuracy) on the
        validation faces ``x_val``. Returns what :func:`~emotionkit.training.batchnorm.recalibrate_if_better`
        returns, with the validation accuracy before and after, or ``None`` for a model
        without batch norm.
        """

        def score() -> tuple[float, float]:
            m = classification_metrics(y_val, softmax(predict_logits(recognizer, x_val)), classes)
            return round(m["macro_f1"], 4), m["accuracy"]

        info = recalibrate_if_better(recognizer.model, x_train, score)
        if not info["layers"]:
            return None
        self.log(
            f"batch norm re-estimated on {info['images']} un-augmented training faces: validation (macro F1, accuracy) "
            f"{tuple(info['score_before'])} -> {tuple(info['score_after'])}, "
            f"{'kept' if info['kept'] else 'dropped (the training statistics stay)'}"
        )
        return {
            "data": "the training part, un-augmented",
            "images": info["images"],
            "layers": info["layers"],
            "val_macro_f1_before": info["score_before"][0],
            "val_macro_f1_after": info["score_after"][0],
            "val_accuracy_before": info["score_before"][1],
            "val_accuracy_after": info["score_after"][1],
            "kept": info["kept"],
        }

    # -------------------------------------------------------------------------------- internals
    def _soft_targets(self, train: FaceDataset, given: tuple[np.ndarray, np.ndarray] | None) -> torch.Tensor | None:
        """The mixed targets of the training faces, or ``None`` for plain labels; refuses a mismatch."""
        cfg = self.config
        if cfg.soft_targets is None:
            if given is not None:
                raise InvalidOptionError("soft targets were given to fit() but config.soft_targets is not set.")
            return None
        if given is None:
            raise InvalidOptionError(
                f"config.soft_targets={cfg.soft_targets!r} needs the distributions: pass fit(..., soft_targets=...) "
                "(emotionkit train --soft-targets ferplus reads them from $EMOTIONKIT_DATA/ferplus)."
            )
        distribution, present = given
        mixed = mixed_targets(
            train.labels, distribution, present, weight=cfg.soft_target_weight, label_smoothing=cfg.label_smoothing
        )
        if mixed.shape[1] != len(train.classes):
            raise InvalidDataError(f"Soft targets have {mixed.shape[1]} classes, the data {len(train.classes)}.")
        return torch.as_tensor(mixed)

    def _phase(self, model: nn.Module, opt: Any, plateau: Any, epoch: int) -> tuple[list[nn.Module], float]:
        """Apply two-phase fine-tuning before 0-based ``epoch``; return the frozen layers and the LR scale."""
        cfg = self.config
        if cfg.freeze_epochs <= 0:
            return [], 1.0
        phase = 1 if epoch < cfg.freeze_epochs else 2
        frozen = set_trainable(model, phase, cfg.unfreeze_layers)
        if phase == 2 and epoch == cfg.freeze_epochs:
            self.log(
                f"fine-tuning phase 2: unfreezing {'all' if cfg.unfreeze_layers is None else cfg.unfreeze_layers} layer(s) at lr x {cfg.finetune_lr_factor}"
            )
            if plateau is not None:  # the cosine schedule applies the scale itself, every step
                for group in opt.param_groups:
                    group["lr"] *= cfg.finetune_lr_factor
        return frozen, (1.0 if phase == 1 else cfg.finetune_lr_factor)

    def _teacher(self) -> TeacherEnsemble | None:
        if not self.config.distill_from:
            return None
        teacher = TeacherEnsemble.load(self.config.distill_from, self.preprocessor)
        for name in teacher.names:
            self.log(
                f"distilling from {name!r} (alpha {self.config.distill_alpha}, T {self.config.distill_temperature})"
            )
        return teacher

    def _save_checkpoint(
        self,
        path: Path,
        model: nn.Module,
        opt: Any,
        plateau: Any,
        gen: torch.Generator,
        state: dict[str, Any],
        average: WeightAverage | None = None,
    ) -> None:
        payload = {
            "backbone": self.config.backbone,
            "backbone_config": self.backbone_config,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "plateau": plateau.state_dict() if plateau is not None else None,
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),  # dropout draws from it: needed for an exact resume
            "state": json.dumps(state),
            "train_config": json.dumps(self.config.to_dict()),
            "weight_average": average.state_dict() if average is not None else None,
        }
        tmp = path.with_suffix(".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

    def _load_checkpoint(
        self, path: Path, model: nn.Module, opt: Any, plateau: Any, gen: torch.Generator
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The run's state and its weight average's saved state (``None`` without), after loading the rest."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(payload, dict) or not {"backbone", "model", "state"} <= set(payload):
                raise ValueError("not an emotionkit training checkpoint")
        except Exception as exc:  # cut short ("PytorchStreamReader failed ..."), zeroed, or another file
            raise InvalidWeightsError(
                f"Cannot resume from {str(path)!r} ({path.stat().st_size} bytes): it is truncated or not an emotionkit "
                f"checkpoint ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). Delete it to train from "
                "scratch, or restore a copy."
            ) from exc
        if payload["backbone"] != self.config.backbone or payload["backbone_config"] != self.backbone_config:
            raise IncompatibleComponentsError(
                f"Cannot resume: {str(path)!r} is a checkpoint of backbone {payload['backbone']!r} with config "
                f"{payload['backbone_config']}, but this run trains {self.config.backbone!r} with {self.backbone_config}. "
                "Use another --out directory, or drop --resume."
            )
        saved = json.loads(payload.get("train_config") or "{}")
        changed = sorted(
            k for k, v in self.config.to_dict().items() if k in saved and saved[k] != v and k not in _RESUMABLE_CHANGES
        )
        if changed:
            self.log(
                f"warning: resuming {str(path)!r} with changed settings {', '.join(f'{k}: {saved[k]!r} -> {self.config.to_dict()[k]!r}' for k in changed)}; "
                "the run will not match an uninterrupted one."
            )
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["optimizer"])
        if plateau is not None and payload["plateau"] is not None:
            plateau.load_state_dict(payload["plateau"])
        gen.set_state(payload["generator"])
        if payload.get("torch_rng") is not None:
            torch.set_rng_state(payload["torch_rng"])
        return dict(json.loads(payload["state"])), payload.get("weight_average")


def _only_size_differs(
    source_config: dict[str, Any], config: dict[str, Any], source_pre: dict[str, Any], pre: dict[str, Any]
) -> bool:
    """Whether a warm restart changes the input size and nothing else (``size``, and ``image_size`` if set)."""
    if source_pre["size"] == pre["size"]:
        return False
    same_pre = {k: v for k, v in source_pre.items() if k != "size"} == {k: v for k, v in pre.items() if k != "size"}
    same_config = {k: v for k, v in source_config.items() if k != "image_size"} == {
        k: v for k, v in config.items() if k != "image_size"
    }
    image_size = config.get("image_size", pre["size"][0])  # a backbone that is told its size must be told the new one
    return same_pre and same_config and image_size in (pre["size"][0], list(pre["size"]))


def _px(preprocessing: dict[str, Any]) -> str:
    height, width = preprocessing["size"]
    return f"{height}x{width} px"
