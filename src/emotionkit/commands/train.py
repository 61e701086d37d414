"""``emotionkit train``: train a backbone on FER-2013 (or an image folder) into a run directory.

The data are split first (official Usage split or a seeded stratified one), then only the
training part is augmented. The run directory ends up with the best model (it loads with
``EmotionRecognizer.from_pretrained(run_dir)``), ``history.json``, ``checkpoint.pt`` for
``--resume``, ``data.json``/``data.md`` (split sizes, class distribution, duplicates) and, when
the data have a test part, the test report (``report.json``, ``report.md``, plots).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: ``TrainConfig`` fields that a flag sets as it is: the flag is the field's name (``batch_size`` is
#: ``--batch-size``) unless ``flag`` says otherwise. Default, type and choices come from the field
#: (:func:`add_config_flags`), so each default is written once, in :class:`~emotionkit.training.config.TrainConfig`.
CONFIG_FLAGS: dict[str, dict[str, Any]] = {
    "backbone": {"help": "registered backbone name (default: %(default)s)"},
    "epochs": {
        "help": "0 with --init-from: no training, only the finishing steps (batch-norm re-estimation, temperature)"
    },
    "batch_size": {},
    "lr": {},
    "weight_decay": {},
    "optimizer": {},
    "schedule": {},
    "plateau_patience": {"help": "epochs without a lower validation loss before the LR drops"},
    "plateau_factor": {"help": "LR factor of each plateau drop"},
    "label_smoothing": {},
    "class_balance": {},
    "early_stopping_patience": {"flag": "--early-stopping", "metavar": "PATIENCE"},
    "time_budget_minutes": {
        "flag": "--time-budget",
        "metavar": "MINUTES",
        "help": "anneal and stop within this wall time",
    },
    "augment_copies": {"metavar": "N", "help": "add N augmented copies of each training image (offline)"},
    "distill_from": {
        "help": "teachers: model names or run directories, comma-separated (e.g. mobilenetv2,cnn,resnet); "
        "their mean softened probabilities are the distillation target"
    },
    "distill_alpha": {"help": "weight of the distillation term (default %(default)s)"},
    "distill_temperature": {"help": "softmax temperature of distillation (default %(default)s)"},
    "init": {
        "metavar": "{scratch,imagenet,PATH}",
        "help": "starting weights: scratch, imagenet (timm download, online only) or a local .safetensors/.pt state "
        "dict with the backbone's tensor names, all but the head's (e.g. from tools/convert_imagenet_mobilenetv2.py)",
    },
    "init_from": {
        "metavar": "MODEL_OR_DIR",
        "help": "start from these trained weights with a fresh schedule (a warm restart); "
        "takes their --config and --preprocessing",
    },
    "freeze_epochs": {"help": "two-phase fine-tuning: epochs that train only the head"},
    "unfreeze_layers": {"help": "layers unfrozen after --freeze-epochs (default all)"},
    "finetune_lr_factor": {"help": "LR factor after --freeze-epochs"},
    "seed": {"help": "seed of initialisation, shuffling and augmentation"},
    "threads": {},
    "progress": {"help": "progress bar (default: on a terminal)"},
    "predict_flip": {
        "help": "the saved model averages each face with its mirror image when it predicts (flip test-time "
        "augmentation): no, yes, or auto (only if that raises the validation macro F1, then accuracy); its "
        "temperature is fitted that way (default %(default)s)"
    },
    "soft_targets": {
        "choices": ["ferplus"],
        "help": "FER-2013 CSV only: train against FER-2013's label mixed with the FER+ vote distribution "
        "(ferplus/ferplus_votes.csv.gz beside fer2013/)",
    },
    "soft_target_weight": {
        "metavar": "W",
        "help": "share of the FER+ votes in each target: 0 labels only, 1 votes only (default %(default)s)",
    },
    "ferplus_head": {
        "metavar": "W",
        "help": "weight of a second output head, 'ferplus', trained on the FER+ vote distribution beside the "
        "FER-2013 head (needs --soft-targets ferplus; 0: no such head; default %(default)s)",
    },
    "ema_decay": {
        "metavar": "D",
        "help": "keep an exponential moving average of the weights (D per step, e.g. 0.999); each epoch the "
        "better of the average and the weights on validation competes for the best epoch (default: none)",
    },
}


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """Add one flag per :data:`CONFIG_FLAGS` field, its default, type and choices taken from ``TrainConfig``.

    A ``Literal`` field gives the choices, ``X | None`` the type ``X``, a ``bool | None`` field a
    ``--flag/--no-flag`` pair.
    """
    import dataclasses
    import typing

    from ..training.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        if field.name not in CONFIG_FLAGS:
            continue
        options = dict(CONFIG_FLAGS[field.name])
        flag = options.pop("flag", "--" + field.name.replace("_", "-"))
        kind = hints[field.name]
        if typing.get_origin(kind) is typing.Literal:
            options.setdefault("choices", list(typing.get_args(kind)))
        else:
            kind = next((k for k in typing.get_args(kind) if k is not type(None)), kind)  # X | None -> X
            if kind is bool:
                options["action"] = argparse.BooleanOptionalAction
            elif "choices" not in options:
                options["type"] = kind
        p.add_argument(flag, dest=field.name, default=field.default, **options)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train``."""
    p = subparsers.add_parser("train", help="train a backbone; the run directory loads with from_pretrained")
    p.add_argument(
        "--data",
        default=None,
        help="FER-2013 CSV (.csv/.csv.gz), the folder holding fer2013/, or an image tree root/<emotion>/*.jpg "
        "or root/train/<emotion>/*.jpg (default: $EMOTIONKIT_DATA)",
    )
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train in N processes with DistributedDataParallel (torchrun; gloo on CPU, nccl on GPUs); "
        "--batch-size stays the global batch. Same as: torchrun --nproc-per-node N -m emotionkit train ...",
    )
    add_config_flags(p)
    _add_data_flags(p)
    p.add_argument("--no-augment", action="store_true", help="no on-the-fly augmentation")
    p.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation in the test report")
    p.add_argument("--config", default="{}", help="backbone config as JSON, e.g. '{\"widths\": [32, 64, 128]}'")
    p.add_argument("--preprocessing", default=None, help="preprocessor config as JSON (default: the backbone's)")
    p.add_argument("--no-report", action="store_true", help="skip the test-part report at the end")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train into a --out that already holds a run, replacing it (without it, such a --out is refused)",
    )
    p.add_argument(
        "--no-bn-recalibration",
        action="store_true",
        help="keep the batch-norm statistics of training instead of re-estimating them on un-augmented training faces",
    )
    return p


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    """The flags of what is read and how it is split (not part of ``TrainConfig``: recorded in ``data.json``)."""
    p.add_argument(
        "--split",
        choices=["official", "stratified"],
        default="official",
        help="official: the data's own Training/PublicTest (or train/test folders) split; stratified: pool all and "
        "split by --fractions (default official)",
    )
    p.add_argument("--fractions", default="0.6,0.2,0.2", help="train,validation,test fractions of --split stratified")
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="stratified part of Training used for validation (official split)",
    )
    p.add_argument(
        "--drop-duplicates",
        action="store_true",
        help="drop validation/test images that also appear, pixel-identical, in training (always counted)",
    )
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the random validation (and stratified test) split; default: --seed. Keep it fixed when "
        "only --seed changes, so runs are compared on the same validation faces",
    )
    p.add_argument(
        "--face-detector", choices=["none", "mtcnn"], default="none", help="image folders: crop faces with MTCNN first"
    )
    p.add_argument(
        "--ignore", action="append", default=[], metavar="FOLDER", help="image folders: leave out this class folder"
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="CSV: first N rows of each usage; folders: N images per class (smoke tests)",
    )


def train_config(args: argparse.Namespace) -> Any:
    """The :class:`~emotionkit.training.config.TrainConfig` the parsed flags describe.

    The :data:`CONFIG_FLAGS` fields are read as they are; the rest come from flags that say it
    another way (``--config`` and ``--preprocessing`` as JSON, ``--no-augment``, ``--tta``,
    ``--no-bn-recalibration``).
    """
    from ..training.config import TrainConfig

    return TrainConfig(
        **{name: getattr(args, name) for name in CONFIG_FLAGS},
        backbone_config=json.loads(args.config),
        preprocessing=json.loads(args.preprocessing) if args.preprocessing else None,
        augment=not args.no_augment,
        tta_flip=args.tta,
        recalibrate_bn=not args.no_bn_recalibration,
    )


def folder_options(args: argparse.Namespace) -> dict[str, Any]:
    """Image-folder reader options given on the command line (empty for the defaults)."""
    options: dict[str, Any] = {}
    if getattr(args, "face_detector", "none") != "none":
        options["detector"] = args.face_detector
    if getattr(args, "ignore", None):
        options["ignore"] = list(args.ignore)
    return options


def _fractions(text: str) -> tuple[float, ...]:
    from ..exceptions import InvalidDataError

    try:
        return tuple(float(f) for f in text.split(","))
    except ValueError as exc:
        raise InvalidDataError(f"--fractions must be comma-separated numbers like 0.6,0.2,0.2, got {text!r}.") from exc


def check_same_split(
    source: str | None, method: str, seed: int, val_fraction: float, fractions: tuple[float, ...]
) -> None:
    """Refuse a warm-start or teacher run directory that was split differently from this run.

    A model trained on another random split has seen some of this run's validation faces:
    its warm restart or its distilled student would score inflated validation numbers, and
    model selection on them would be biased. Bundled models and directories without the
    ``data.json`` that ``emotionkit train`` writes are not checked (the bundled ones were
    split with ``--split official --split-seed 0 --val-fraction 0.1``).

    Raises
    ------
    InvalidOptionError
        ``source`` is a run directory whose split differs; the message gives the options
        that reproduce it.
    """
    if not source or not (Path(source) / "data.json").is_file():
        return
    recorded = json.loads((Path(source) / "data.json").read_text())
    settings = recorded.get("settings", {})
    ours: dict[str, Any] = {"fractions": [float(f) for f in fractions], "seed": seed, "val_fraction": val_fraction}
    if method == "stratified":
        keys = ["fractions", "seed"]
    else:  # an official split is random only where validation is held out of Training
        keys = ["val_fraction", "seed"] if "val_fraction" in settings else []
    if recorded.get("method") == method and all(settings.get(k) == ours[k] for k in keys):
        return
    from ..exceptions import InvalidOptionError

    def options(m: Any, values: dict[str, Any]) -> str:
        text = f"--split {m} --split-seed {values.get('seed')}"
        if m == "stratified":
            return text + f" --fractions {','.join(str(f) for f in values.get('fractions') or [])}"
        return text + (f" --val-fraction {values['val_fraction']}" if values.get("val_fraction") is not None else "")

    raise InvalidOptionError(
        f"{source} was trained on another split ({options(recorded.get('method'), settings)}) than this run "
        f"({options(method, ours)}): it has seen some of this run's validation faces, which would inflate "
        f"validation scores and bias model selection. Pass {options(recorded.get('method'), settings)} "
        "(--seed can still differ)."
    )


#: Files a run directory gets from ``emotionkit train``; ``--overwrite`` removes them first, so none is left stale.
RUN_FILES = (
    "config.json",
    "preprocessor.json",
    "model.safetensors",
    "checkpoint.pt",
    "train_config.json",
    "history.json",
    "data.json",
    "data.md",
    "report.json",
    "report.md",
    "confusion.png",
    "f1.png",
    "curves.png",
)


def check_out_directory(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to train into a directory that holds a run, unless resuming it or told to overwrite it.

    Raises
    ------
    InvalidOptionError
        ``out`` holds a model or a checkpoint and neither ``resume`` nor ``overwrite`` is set, or both are.
    """
    from ..exceptions import InvalidOptionError

    if resume and overwrite:
        raise InvalidOptionError("--resume continues the run in --out and --overwrite replaces it; give one of them.")
    found = [name for name in ("config.json", "checkpoint.pt") if (out / name).is_file()]
    if not found or resume:
        return
    if overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        return
    raise InvalidOptionError(
        f"--out {str(out)!r} already holds a run ({', '.join(found)}). Pass --resume to continue it, --overwrite to "
        "replace it, or another --out."
    )


def check_resumed_data(out: Path, description: dict[str, Any]) -> None:
    """Refuse ``--resume`` with data options (or data) other than those the run was started with.

    Raises
    ------
    InvalidOptionError
        The recorded ``data.json`` differs; the message lists each difference.
    """
    recorded_path = out / "data.json"
    if not recorded_path.is_file():
        return
    recorded = json.loads(recorded_path.read_text())

    def signature(d: dict[str, Any]) -> dict[str, Any]:
        sig = {"split": d.get("method"), **dict(d.get("settings") or {}), **dict(d.get("folder_options") or {})}
        sig["drop_duplicates"] = dict(d.get("duplicates") or {}).get("dropped")
        sig["sizes"] = d.get("sizes")
        return json.loads(json.dumps(sig))  # JSON-normal form, as data.json holds it

    before, now = signature(recorded), signature(description)
    changed = [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
        for k in sorted(set(before) | set(now))
        if before.get(k) != now.get(k)
    ]
    if changed:
        from ..exceptions import InvalidOptionError

        raise InvalidOptionError(
            f"Cannot resume {str(out)!r} on other data than it was started with ({'; '.join(changed)}): its "
            "validation faces and epochs would not match. Pass the data options of its data.json, or train into "
            "another --out."
        )


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _ferplus_targets(data: str | None, train: Any) -> tuple[Any, Any]:
    """FER+ vote distributions of the training faces, found beside the FER-2013 CSV that ``data`` names."""
    from ..data.ferplus import read_ferplus, vote_distribution
    from ..exceptions import InvalidDataError

    if train.ids is None or train.ids.dtype.kind not in "iu":
        raise InvalidDataError("--soft-targets ferplus needs FER-2013 CSV data (rows with row numbers), not folders.")
    votes, present = read_ferplus(data).for_ids(train.ids, train.labels)
    distribution, has_votes = vote_distribution(votes, tuple(train.classes))
    return distribution, present & has_votes


def run(args: argparse.Namespace) -> int:
    """Run ``train``."""
    import os

    if args.nproc != 1 and "WORLD_SIZE" not in os.environ:  # start the processes; each runs this command again
        from ..training.distributed import launch

        return launch(args.nproc, _without_nproc(list(args._argv)))
    from ..data.loading import load_splits
    from ..recognizer import EmotionRecognizer
    from ..training.distill import teacher_names
    from ..training.evaluate import evaluate
    from ..training.reports import distribution_markdown, write_report
    from ..training.trainer import Trainer

    config = train_config(args)
    split_seed = args.seed if args.split_seed is None else args.split_seed
    for source in (args.init_from, *teacher_names(args.distill_from or "")):
        check_same_split(source, args.split, split_seed, args.val_fraction, _fractions(args.fractions))
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone owns the run directory
        check_out_directory(Path(args.out), resume=args.resume, overwrite=args.overwrite)
    trainer = Trainer(config, args.out)  # builds the model first: a bad backbone or init fails before any data is read
    main_process = trainer.group.is_main
    options = folder_options(args)
    splits = load_splits(
        args.data,
        args.split,
        fractions=_fractions(args.fractions),
        val_fraction=args.val_fraction,
        seed=split_seed,
        drop_duplicates=args.drop_duplicates,
        limit=args.limit,
        **options,
    )
    out = Path(args.out)
    soft = _ferplus_targets(args.data, splits.train) if args.soft_targets == "ferplus" else None
    val_soft = _ferplus_targets(args.data, splits.val) if config.ferplus_head > 0 else None
    if not main_process:  # rank 0 writes the data description, the report and the result
        trainer.fit(splits.train, splits.val, resume=args.resume, soft_targets=soft)
        return 0
    table = distribution_markdown(splits.class_counts())
    description = {**splits.to_dict(), "folder_options": options}
    if args.resume:
        check_resumed_data(out, description)
    (out / "data.json").write_text(json.dumps(description, indent=2) + "\n")
    (out / "data.md").write_text(
        f"# Data\n\n- source: {splits.settings.get('data')}\n- split: {splits.method} {json.dumps(splits.settings)}\n"
        f"- exact duplicates across parts: {json.dumps(splits.duplicates)}\n\n{table}\n"
    )
    print(f"{splits.method} split, class distribution:\n{table}\nduplicates: {splits.duplicates}", file=sys.stderr)

    summary = trainer.fit(splits.train, splits.val, resume=args.resume, soft_targets=soft, val_soft_targets=val_soft)
    result: dict[str, Any] = {
        "out": args.out,
        "best_epoch": summary["best_epoch"],
        "val_accuracy": summary["val"]["accuracy"],
        "val_macro_f1": summary["val"]["macro_f1"],
    }
    if splits.test is not None and not args.no_report:
        test_name = splits.settings.get("test_usage") or f"test part of the stratified split (seed {split_seed})"
        duplicates = {
            "found": splits.duplicates.get("test_in_train", 0),
            "groups": splits.duplicates.get("test_groups", 0),
            "dropped": splits.duplicates.get("dropped", False),
        }
        recognizer = EmotionRecognizer.from_pretrained(out, detector=None)
        report = evaluate(
            recognizer,
            splits.test,
            tta_flip=True if args.tta else None,  # else as the model predicts (--predict-flip or not)
            split=test_name,
            source=splits.settings.get("data"),
            model=out.name,
            extra={"duplicates": duplicates},
        )
        write_report(report, out, history=summary["history"])
        result.update(
            {"test_split": test_name, "test_accuracy": report["accuracy"], "test_macro_f1": report["macro_f1"]}
        )
    print(json.dumps(result))
    return 0
