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


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train``."""
    p = subparsers.add_parser("train", help="train a backbone; the run directory loads with from_pretrained")
    p.add_argument("--backbone", default="cnn", help="registered backbone name (default: cnn)")
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
    p.add_argument(
        "--epochs",
        type=int,
        default=30,
        help="0 with --init-from: no training, only the finishing steps (batch-norm re-estimation, temperature)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--optimizer", choices=["adamw", "adam"], default="adamw")
    p.add_argument("--schedule", choices=["cosine", "plateau"], default="cosine")
    p.add_argument(
        "--plateau-patience", type=int, default=2, help="epochs without a lower validation loss before the LR drops"
    )
    p.add_argument("--plateau-factor", type=float, default=0.5, help="LR factor of each plateau drop")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--class-balance", choices=["none", "weights", "sampler"], default="weights")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    p.add_argument(
        "--time-budget", type=float, default=None, metavar="MINUTES", help="anneal and stop within this wall time"
    )
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
        "--augment-copies",
        type=int,
        default=0,
        metavar="N",
        help="add N augmented copies of each training image (offline)",
    )
    p.add_argument("--no-augment", action="store_true", help="no on-the-fly augmentation")
    p.add_argument("--tta", action="store_true", help="horizontal-flip test-time augmentation in the test report")
    p.add_argument(
        "--face-detector", choices=["none", "mtcnn"], default="none", help="image folders: crop faces with MTCNN first"
    )
    p.add_argument(
        "--ignore", action="append", default=[], metavar="FOLDER", help="image folders: leave out this class folder"
    )
    p.add_argument("--config", default="{}", help="backbone config as JSON, e.g. '{\"widths\": [32, 64, 128]}'")
    p.add_argument("--preprocessing", default=None, help="preprocessor config as JSON (default: the backbone's)")
    p.add_argument(
        "--distill-from",
        default=None,
        help="teachers: model names or run directories, comma-separated (e.g. mobilenetv2,cnn,resnet); "
        "their mean softened probabilities are the distillation target",
    )
    p.add_argument("--distill-alpha", type=float, default=0.5, help="weight of the distillation term (default 0.5)")
    p.add_argument(
        "--distill-temperature", type=float, default=2.0, help="softmax temperature of distillation (default 2)"
    )
    p.add_argument(
        "--init",
        default="scratch",
        metavar="{scratch,imagenet,PATH}",
        help="starting weights: scratch, imagenet (timm download, online only) or a local .safetensors/.pt state dict "
        "with the backbone's tensor names, all but the head's (e.g. from tools/convert_imagenet_mobilenetv2.py)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        metavar="MODEL_OR_DIR",
        help="start from these trained weights with a fresh schedule (a warm restart); "
        "takes their --config and --preprocessing",
    )
    p.add_argument(
        "--freeze-epochs", type=int, default=0, help="two-phase fine-tuning: epochs that train only the head"
    )
    p.add_argument(
        "--unfreeze-layers", type=int, default=None, help="layers unfrozen after --freeze-epochs (default all)"
    )
    p.add_argument("--finetune-lr-factor", type=float, default=0.1, help="LR factor after --freeze-epochs")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, shuffling and augmentation")
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the random validation (and stratified test) split; default: --seed. Keep it fixed when "
        "only --seed changes, so runs are compared on the same validation faces",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="CSV: first N rows of each usage; folders: N images per class (smoke tests)",
    )
    p.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    p.add_argument("--no-report", action="store_true", help="skip the test-part report at the end")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train into a --out that already holds a run, replacing it (without it, such a --out is refused)",
    )
    p.add_argument(
        "--soft-targets",
        choices=["ferplus"],
        default=None,
        help="FER-2013 CSV only: train against FER-2013's label mixed with the FER+ vote distribution "
        "(ferplus/ferplus_votes.csv.gz beside fer2013/)",
    )
    p.add_argument(
        "--soft-target-weight",
        type=float,
        default=0.5,
        metavar="W",
        help="share of the FER+ votes in each target: 0 labels only, 1 votes only (default 0.5)",
    )
    p.add_argument(
        "--no-bn-recalibration",
        action="store_true",
        help="keep the batch-norm statistics of training instead of re-estimating them on un-augmented training faces",
    )
    return p


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
    from ..training.trainer import TrainConfig, Trainer

    config = TrainConfig(
        backbone=args.backbone,
        backbone_config=json.loads(args.config),
        preprocessing=json.loads(args.preprocessing) if args.preprocessing else None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        schedule=args.schedule,
        plateau_patience=args.plateau_patience,
        plateau_factor=args.plateau_factor,
        label_smoothing=args.label_smoothing,
        class_balance=args.class_balance,
        early_stopping_patience=args.early_stopping,
        augment=not args.no_augment,
        time_budget_minutes=args.time_budget,
        distill_from=args.distill_from,
        distill_alpha=args.distill_alpha,
        distill_temperature=args.distill_temperature,
        init=args.init,
        init_from=args.init_from,
        seed=args.seed,
        threads=args.threads,
        tta_flip=args.tta,
        augment_copies=args.augment_copies,
        freeze_epochs=args.freeze_epochs,
        unfreeze_layers=args.unfreeze_layers,
        finetune_lr_factor=args.finetune_lr_factor,
        progress=args.progress,
        recalibrate_bn=not args.no_bn_recalibration,
        soft_targets=args.soft_targets,
        soft_target_weight=args.soft_target_weight,
    )
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

    summary = trainer.fit(splits.train, splits.val, resume=args.resume, soft_targets=soft)
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
            tta_flip=args.tta,
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
