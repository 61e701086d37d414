"""Bundle a finished training run as emotionkit's pretrained weights for one backbone, with its model card.

Usage (maintainers)::

    python tools/bundle_weights.py RUN_DIR NAME [--data PATH] [--command "emotionkit train ..."]
        [--first-stage RUN_DIR --first-command "..."] [--finish-command "emotionkit train --epochs 0 ..."]
        [--refinish-of OLD_CARD_JSON]

It evaluates the run on FER-2013 PublicTest (one crop and horizontal-flip TTA; then, as the model predicts (flip
TTA when its ``config.json`` says ``flip_tta``), without the images that duplicate a Training image and against the
FER+ majority labels of the same faces), decides fp16 vs fp32 storage on the *validation* split (fp16 when it
costs under 0.1 point of accuracy), copies the files into ``src/emotionkit/assets/models/NAME/``, writes
``card.json`` and ``card.md``, and prints the sha256 (the backbone's ``WeightsSpec`` reads it from the copied
``config.json``, so nothing needs pasting into the code).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

from emotionkit.data.fer2013 import FaceDataset, read_fer2013
from emotionkit.data.ferplus import read_ferplus, relabel_by_majority
from emotionkit.data.splits import cross_split_duplicates, stratified_split
from emotionkit.heads import FERPLUS_HEAD, heads_to_dict
from emotionkit.recognizer import EmotionRecognizer
from emotionkit.registry import list_plugins, load_plugin
from emotionkit.training.distill import teacher_names
from emotionkit.training.metrics import classification_metrics, softmax
from emotionkit.training.trainer import predict_logits
from emotionkit.weights import sha256sum

ASSETS = Path(__file__).resolve().parents[1] / "src" / "emotionkit" / "assets" / "models"


def evaluate(
    rec: EmotionRecognizer, images: np.ndarray, labels: np.ndarray, tta: bool, head: str | None = None
) -> dict:
    x = rec.preprocessor.faces(images)
    logits = predict_logits(rec, x, tta_flip=tta, head=head)
    spec = rec.inference.head_spec(head)
    out = classification_metrics(labels, softmax(logits, spec.temperature), spec.labels)
    out["ece_uncalibrated"] = classification_metrics(labels, softmax(logits), spec.labels)["ece"]
    return out


def _head_lines(name: str, card: dict) -> list[str]:
    """The card's line on an extra FER+ output head, if the model has one: how it was fitted, calibrated and scored."""
    if FERPLUS_HEAD not in card.get("heads", {}):
        return []
    fit = card.get("heads_fit", {}).get(FERPLUS_HEAD)
    if fit:  # added to a trained network by a finish (--epochs 0): a linear probe, nothing else changed
        how = (
            f"fitted to the FER+ vote distributions of {fit['faces']:,} training faces on this network's frozen "
            f"features (a linear probe, {fit['steps']} Adam steps; `emotionkit train --epochs 0 --ferplus-head`: "
            "every other weight, and so every FER-2013 score, unchanged)"
        )
    else:
        weight = card["training"].get("config", {}).get("ferplus_head")
        how = (
            f"trained on the FER+ vote distribution with the network (loss weight {weight}; `--ferplus-head {weight}`)"
        )
    calibration = card.get("heads_calibration", {}).get(FERPLUS_HEAD, {})
    temperature = (
        f" Its temperature {calibration['temperature']:.3f} (fitted {calibration['fitted_temperature']:.3f} on the "
        f"validation votes, {'kept' if calibration['kept'] else 'not kept: it raised the validation ECE'})."
        if calibration.get("split")
        else ""
    )
    val = card.get("validation_ferplus_head")
    return [
        f"- A second output head, `ferplus`, beside the FER-2013 head: {how}; "
        f'`EmotionRecognizer.from_pretrained("{name}", head="ferplus")` answers with it.'
        + temperature
        + (
            f" On the validation faces' FER+ majority labels (n={val['n']}): accuracy {val['accuracy']:.4f}, "
            f"macro F1 {val['macro_f1']:.4f}."
            if val
            else ""
        )
    ]


def faces_per_second(rec: EmotionRecognizer, batch: int = 64, repeats: int = 5) -> float:
    x = torch.rand(batch, rec.preprocessor.channels, *rec.preprocessor.size)
    rec.logits(x)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        rec.logits(x)
        best = min(best, time.perf_counter() - t)
    return batch / best


def _stage_record(run_dir: str, command: str | None, teacher_sha256: str | None) -> dict:
    """The card's record of an earlier training stage: its run's epochs, time and config, its command and teacher."""
    training = EmotionRecognizer.from_pretrained(run_dir, detector=None).meta.get("training", {})
    return {
        **{k: training[k] for k in ("config", "epochs_run", "best_epoch", "seconds") if k in training},
        "command": command,
        **({"teacher_sha256": teacher_sha256} if teacher_sha256 else {}),
    }


def _stage_line(title: str, stage: dict) -> str:
    """A card line for an earlier training stage: its command and, if distilled, which weights taught it."""
    teacher = stage.get("config", {}).get("distill_from")
    sha = stage.get("teacher_sha256")
    taught = (
        f" (its teacher: the bundled `{teacher}` of the time, weights sha256 {sha[:12]}...)" if teacher and sha else ""
    )
    return f"- {title}: `{stage['command']}`{taught}"


def _init_line(init: dict | None) -> list[str]:
    """Card lines naming the weights a run started from (``--init PATH``): source, licence, sha256."""
    if not init:
        return []
    meta = init.get("metadata", {})
    return [
        f"- Initialised from `{meta.get('source', init.get('path'))}` (sha256 {meta.get('source_sha256', '?')}), "
        f"converted by `{meta.get('converted_by', '?')}` into a start file with sha256 {init['sha256']}; "
        f"licence: {meta.get('licence', 'not recorded')}. Fresh (untrained) tensors: {', '.join(init['fresh']) or 'none'}."
    ]


def _stage_commands(previous: dict) -> list[str]:
    """Every command that made a bundled model, oldest first: the models it warm-restarted from, then its own stages."""
    training = previous["training"]
    earlier = _stage_commands(training["previous"]) if training.get("previous") else []
    stages = [training.get("first_stage"), *training.get("middle_stages", []), training]
    own = [s["command"] for s in stages if s and s.get("command")]
    return earlier + own + ([previous["batchnorm_command"]] if previous.get("batchnorm_command") else [])


def _previous_lines(name: str, previous: dict | None) -> list[str]:
    """Card lines for the bundled model a run warm-restarted from: its sha256, accuracy and every stage's command."""
    if not previous:
        return []
    training = previous["training"]
    commands = _stage_commands(previous)
    minutes = training.get("total_seconds", training.get("seconds", 0.0)) / 60
    return [
        f"- Warm restart (`--init-from {name}`) of the bundled `{name}` of the time (weights sha256 "
        f"{previous['sha256'][:12]}..., PublicTest one crop {previous['publictest_accuracy']:.4f}; {minutes:.1f} min of "
        "training), made by: " + "; then ".join(f"`{c}`" for c in commands)
    ]


def _distill_line(training: dict, init: dict | None) -> list[str]:
    """The card line naming the teacher(s) a run was distilled from, with their weights' sha256.

    A teacher that is a training run rather than a bundled model (``--teacher-run DIR=COMMAND``) is named by its
    folder, with its weights' sha256, its validation accuracy and the command that made it, so the card says how
    to rebuild every teacher.
    """
    cfg = training.get("config", {})
    teachers = teacher_names(cfg.get("distill_from") or "")
    if not teachers:
        return []
    sha = training.get("teacher_sha256")
    shas = sha if isinstance(sha, dict) else {teachers[0]: sha} if sha else {}
    runs = training.get("teacher_runs", {})

    def named(t: str) -> str:
        if t in runs:
            r = runs[t]
            return (
                f"the run `{r['name']}` (not bundled; weights sha256 {r['sha256'][:12]}..., validation accuracy "
                f"{r['validation_accuracy']:.4f}; made by `{r['command']}`)"
            )
        return f"the bundled `{t}`" + (f" (weights sha256 {shas[t][:12]}...)" if t in shas else "")

    what = (
        f"{named(teachers[0])} model: its soft labels"
        if len(teachers) == 1
        else "an ensemble of " + ", ".join(named(t) for t in teachers) + ", each fed the faces as "
        "its own preprocessing makes them: the mean of their soft labels"
    )
    return [
        f"- Distilled from {what} on the same augmented Training batches (Hinton et al. 2015; weight "
        f"{cfg['distill_alpha']}, temperature {cfg['distill_temperature']})."
        + ("" if init else " No ImageNet weights.")
    ]


def _teacher_runs(teachers: list[str], pairs: list[str]) -> dict:
    """Records of the teachers that are run folders: ``{teacher: {name, sha256, validation_accuracy, command}}``.

    ``pairs`` are ``--teacher-run DIR=COMMAND`` values; every teacher that is not a bundled model needs one.
    """
    given = {}
    for pair in pairs:
        folder, sep, command = pair.partition("=")
        if not sep or not command.strip():
            raise SystemExit(f"--teacher-run takes DIR=COMMAND, got {pair!r}")
        given[str(Path(folder).resolve())] = command.strip()
    records = {}
    for t in teachers:
        if t in list_plugins("backbones"):
            continue
        folder = Path(t).resolve()
        if str(folder) not in given:
            raise SystemExit(f"teacher {t!r} is a run folder, not a bundled model: give --teacher-run {t}=COMMAND")
        summary = json.loads((folder / "summary.json").read_text())
        records[t] = {
            "name": folder.name,
            "sha256": sha256sum(folder / "model.safetensors"),
            "validation_accuracy": float(summary["val"]["accuracy"]),
            "command": given[str(folder)],
        }
    return records


def _total_seconds(training: dict, previous: dict) -> float:
    """Training time of a warm restart of ``previous`` (a bundled card's record): its time, then this record's stages.

    ``training`` holds this run's ``seconds`` and, when it had earlier stages of its own (``--first-stage``), their
    sum with it in ``total_seconds``.
    """
    before = previous.get("total_seconds", previous.get("seconds", 0.0))
    return float(before + training.get("total_seconds", training.get("seconds", 0.0)))


def _average_line(training: dict) -> list[str]:
    """The card line of a run that kept a moving average of its weights (``--ema-decay``), and which one it kept."""
    if not (average := training.get("weight_average")):
        return []
    kept = (
        "the average's weights (they scored higher on validation than the epoch's own)"
        if average.get("best_is") == "average"
        else "the epoch's own weights (they scored higher on validation than the average)"
    )
    return [
        f"- Exponential moving average of the weights during training (`--ema-decay {average['decay']}`, "
        f"`emotionkit.training.weight_average`); the best epoch's model is {kept}."
    ]


def _resize_line(training: dict) -> list[str]:
    """The card line of a warm restart at a new input size (``--init-from`` with a new ``--preprocessing`` size)."""
    if not (before := training.get("resized_from")):
        return []
    after = training["config"]["preprocessing"]["size"]
    before, after = ([s, s] if isinstance(s, int) else s for s in (before, after))  # --preprocessing may give one int
    return [
        f"- Input size raised from {before[0]}x{before[1]} to {after[0]}x{after[1]} px at the warm restart: the "
        "same tensors (the network ends in global pooling), fine-tuned at the new size."
    ]


def _calibration_line(calibration: dict) -> str:
    """The card line of the temperature: fitted on validation, and kept only when it lowered validation ECE."""
    before, after = calibration["ece_before"], calibration["ece_after"]
    if calibration.get("kept", True):
        return (
            f"- Calibration: temperature {calibration['temperature']:.3f} fitted on the validation split; "
            f"validation ECE {before:.4f} before, {after:.4f} after."
        )
    return (
        f"- Calibration: the temperature fitted on the validation split ({calibration['fitted_temperature']:.3f}, "
        f"least NLL) raised its ECE from {before:.4f} to {after:.4f}, so it was not kept: temperature 1."
    )


def _flip_lines(card: dict) -> list[str]:
    """The card lines of flip test-time augmentation: whether the model predicts with it, and why."""
    choice = card.get("flip_tta_choice")
    scores = (
        f"validation macro F1 {choice['val_macro_f1_one_crop']:.4f} -> {choice['val_macro_f1_flip']:.4f}, accuracy "
        f"{choice['val_accuracy_one_crop']:.4f} -> {choice['val_accuracy_flip']:.4f} with the mirror image"
        if choice
        else ""
    )
    if card.get("flip_tta"):
        line = (
            "- Predicts with horizontal-flip test-time augmentation (each face's logits averaged with its mirror "
            "image's: twice the classifier's work; `flip_tta` in config.json, `rec.flip_tta = False` for one crop)"
            + (f", kept because it raised the validation score ({scores})." if choice else ".")
        )
    elif choice:
        line = f"- Predicts on one crop per face: flip test-time augmentation did not raise the validation score ({scores})."
    else:
        return []
    finish = card["training"].get("finish_command")
    return [line + (f" Finished (no training) by `{finish}`." if finish else "")]


def card_markdown(name: str, card: dict) -> str:
    pt, tta, dd = card["publictest"], card["publictest_flip_tta"], card["publictest_dedup"]
    middle = card["training"].get("middle_stages", [])
    init = card["training"].get("init_weights")
    lines = [
        f"# `{name}`: {card['architecture']}",
        "",
        f"- Parameters: {card['num_params']:,}; input: {card['input']}; weights file: {card['file_bytes'] / 1e6:.2f} MB ({card['dtype']}).",
        (
            "- Fine-tuned from pretrained weights"
            if init
            else "- Warm-restarted from the bundled model of the time (below)"
            if card["training"].get("previous")
            else "- Trained from scratch"
        )
        + " on FER-2013 Training minus a stratified 10% validation part (seed 0); "
        + (
            f"{card['training']['epochs_run']} epochs, best epoch {card['training']['best_epoch']}, "
            f"{card['training']['seconds'] / 60:.1f} min wall time on {card['training']['hardware']}."
            if not (first := card["training"].get("first_stage"))
            else f"in {2 + len(middle)} stages on {card['training']['hardware']}: {first['epochs_run']} epochs "
            f"({first['seconds'] / 60:.1f} min, best epoch {first['best_epoch']}), then "
            + ("warm restarts, each" if middle else "a warm restart")
            + " from the best epoch before (`--init-from`, a fresh cosine schedule) for "
            + "".join(
                f"{m['epochs_run']} epochs ({m['seconds'] / 60:.1f} min, best epoch {m['best_epoch']}), "
                for m in middle
            )
            + ("and " if middle else "")
            + f"{card['training']['epochs_run']} epochs "
            f"({card['training']['seconds'] / 60:.1f} min, best epoch {card['training']['best_epoch']}); "
            f"{card['training']['total_seconds'] / 60:.1f} min in all."
        ),
        *_distill_line(card["training"], init),
        *_average_line(card["training"]),
        *_resize_line(card["training"]),
        *_init_line(init),
        *(
            [
                f"- Soft targets: FER-2013's label mixed with the FER+ vote distribution (weight "
                f"{cfg['soft_target_weight']} on the votes)."
            ]
            if (cfg := card["training"].get("config", {})).get("soft_targets")
            else []
        ),
        *_previous_lines(name, card["training"].get("previous")),
        *([_stage_line("First stage", first)] if (first := card["training"].get("first_stage")) else []),
        *(_stage_line(f"Stage {i}", m) for i, m in enumerate(middle, start=2)),
        f"- Command: `{card['training']['command']}`",
        *(
            [
                f"- Batch-norm statistics re-estimated after training on the {bn['images']:,} un-augmented training "
                f"faces (`emotionkit.training.batchnorm`), kept because the validation score (macro F1, then accuracy) did not drop: accuracy "
                f"{bn['val_accuracy_before']:.4f} -> {bn['val_accuracy_after']:.4f}, macro F1 "
                f"{bn['val_macro_f1_before']:.4f} -> {bn['val_macro_f1_after']:.4f}"
                + (f"; command: `{bn['command']}`." if bn.get("command") else ".")
            ]
            if (bn := card.get("batchnorm")) and bn.get("kept")
            else []
        ),
        _calibration_line(card["calibration"]),
        *_flip_lines(card),
        *_head_lines(name, card),
        "",
        "## FER-2013 PublicTest (never used for training, selection or tuning)",
        "",
        "| protocol | n | accuracy | macro F1 | weighted F1 | ECE (calibrated) | ECE (T=1) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    flip = bool(card.get("flip_tta"))
    own = "horizontal-flip TTA" if flip else "one crop"
    rows = (
        ("one crop" + ("" if flip else " (as it predicts)"), pt),
        ("horizontal-flip TTA" + (" (as it predicts)" if flip else ""), tta),
        (f"{own}, Training duplicates removed", dd),
    )
    for label, m in rows:
        lines.append(
            f"| {label} | {m['n']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} | {m['ece']:.4f} | {m['ece_uncalibrated']:.4f} |"
        )
    fer_rows = [
        (
            f"{own}, FER+ majority labels" + (", FER+ head" if card.get("publictest_ferplus", {}).get("head") else ""),
            card.get("publictest_ferplus"),
        )
    ]
    fer_rows.append((f"{own}, FER+ majority labels, FER-2013 head", card.get("publictest_ferplus_own_labels")))
    for label, fp in fer_rows:
        if fp:
            lines.append(
                f"| {label} | {fp['n']} | {fp['accuracy']:.4f} | {fp['macro_f1']:.4f} | "
                f"{fp['weighted_f1']:.4f} | {fp['ece']:.4f} | {fp['ece_uncalibrated']:.4f} |"
            )
    main = tta if flip else pt
    lines += ["", f"Per-class F1 ({own}): " + ", ".join(f"{k} {v['f1']:.3f}" for k, v in main["per_class"].items()), ""]
    lines += [
        f"Confusion matrix ({own}; rows true, columns predicted, order " + ", ".join(card["labels"]) + "):",
        "",
        "```",
    ]
    lines += [" ".join(f"{v:4d}" for v in row) for row in main["confusion"]]
    lines += ["```", "", f"Reproduce: `{card['reproduce']}`", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("run_dir")
    p.add_argument("name")
    p.add_argument("--data", default=None)
    p.add_argument("--command", required=True, help="the exact training command")
    p.add_argument("--hardware", default="2 shared CPU cores (no GPU)")
    p.add_argument("--architecture", default=None, help="card text; default: the backbone spec's description")
    p.add_argument(
        "--first-stage",
        default=None,
        metavar="RUN_DIR",
        help="the run that RUN_DIR warm-restarted from (--init-from): its epochs and time go in the card",
    )
    p.add_argument("--first-command", default=None, help="the exact command of --first-stage")
    p.add_argument(
        "--teacher-run",
        action="append",
        default=[],
        metavar="DIR=COMMAND",
        help="a teacher of RUN_DIR that is a training run, not a bundled model, and the exact command that made it "
        "(repeat for each)",
    )
    p.add_argument(
        "--teacher-sha256",
        default=None,
        help="sha256 of the weights that taught RUN_DIR (default: the bundled teacher's, right only if unchanged since)",
    )
    p.add_argument(
        "--finish-command",
        default=None,
        help="the exact command that finished RUN_DIR without training (emotionkit train --epochs 0 --init-from ...)",
    )
    p.add_argument(
        "--first-teacher-sha256",
        default=None,
        help="sha256 of the weights that taught --first-stage (distilled from a bundled model since replaced)",
    )
    p.add_argument(
        "--middle-stage",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="a warm restart between --first-stage and RUN_DIR (repeat in order); with --middle-command and "
        "--middle-teacher-sha256 ('-' for none) once each",
    )
    p.add_argument("--middle-command", action="append", default=[])
    p.add_argument(
        "--previous-card",
        default=None,
        metavar="CARD_JSON",
        help="card.json of the bundled model RUN_DIR warm-restarted from (--init-from NAME; copy it before "
        "bundling over it): its stages and commands go in the card",
    )
    p.add_argument(
        "--refinish-of",
        default=None,
        metavar="CARD_JSON",
        help="card.json of the bundled model that RUN_DIR only finished (--init-from NAME --epochs 0, e.g. to choose "
        "flip TTA; copy it before bundling over it): its training record and batch-norm line stay on the card, "
        "--finish-command says what finished it",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads for the evaluations (default 2)")
    p.add_argument("--middle-teacher-sha256", action="append", default=[])
    args = p.parse_args()
    if not (len(args.middle_stage) == len(args.middle_command) == len(args.middle_teacher_sha256)):
        p.error("give --middle-command and --middle-teacher-sha256 once for each --middle-stage")
    if args.middle_stage and not args.first_stage:
        p.error("--middle-stage needs --first-stage")
    if args.refinish_of and (args.first_stage or args.previous_card or not args.finish_command):
        p.error(
            "--refinish-of takes the stages from that card: give --finish-command, not --first-stage/--previous-card"
        )
    torch.set_num_threads(args.threads)
    run = Path(args.run_dir)
    rec = EmotionRecognizer.from_pretrained(run, detector=None)
    train_all = read_fer2013(args.data, usage="Training")
    test = read_fer2013(args.data, usage="PublicTest")
    _, val_idx = stratified_split(train_all.labels, (0.9, 0.1), seed=0)
    val = train_all.subset(val_idx)

    # fp16 decision on the validation split.
    tmp = Path("/tmp") / f"bundle_{args.name}_fp16"
    rec.save_pretrained(tmp, half=True)
    rec16 = EmotionRecognizer.from_pretrained(tmp, detector=None)
    acc32 = evaluate(rec, val.images, val.labels, rec.flip_tta)["accuracy"]
    acc16 = evaluate(rec16, val.images, val.labels, rec.flip_tta)["accuracy"]
    half = (acc32 - acc16) < 0.001
    chosen = rec16 if half else rec
    print(
        f"validation accuracy fp32 {acc32:.4f} fp16 {acc16:.4f} -> storing {'fp16' if half else 'fp32'}",
        file=sys.stderr,
    )

    dup = cross_split_duplicates(train_all.images, test.images)
    ferplus: FaceDataset | None = None
    fp_head = FERPLUS_HEAD if FERPLUS_HEAD in rec.heads else None
    try:
        votes = read_ferplus(args.data)
        ferplus, ferplus_info = relabel_by_majority(test, votes)
        val_ferplus, _ = relabel_by_majority(val, votes)
    except FileNotFoundError:
        print("FER+ votes not found: the card gets no FER+ accuracy", file=sys.stderr)
    card_training = dict(rec.meta.get("training", {}))
    teachers = teacher_names(card_training.get("config", {}).get("distill_from") or "")
    refinished = json.loads(Path(args.refinish_of).read_text()) if args.refinish_of else None
    if refinished is not None:
        # Only finished (no training): the weights' record is the bundled card's, stages, commands and all.
        card_training = dict(refinished["training"])
        card_training["refinished_from_sha256"] = refinished["sha256"]
    elif args.teacher_sha256:
        card_training["teacher_sha256"] = args.teacher_sha256
    elif teachers:
        # Which weights taught it: the bundled ones may be replaced later (bundle a student before its teachers);
        # a run folder's are its own model.safetensors.
        runs = _teacher_runs(teachers, args.teacher_run)
        if runs:
            card_training["teacher_runs"] = runs
        shas = {t: runs[t]["sha256"] if t in runs else load_plugin("backbones", t).weights[0].sha256 for t in teachers}
        card_training["teacher_sha256"] = shas[teachers[0]] if len(teachers) == 1 else shas
    if args.first_stage:
        card_training["first_stage"] = _stage_record(args.first_stage, args.first_command, args.first_teacher_sha256)
        middle = [
            _stage_record(run_dir, command, None if sha == "-" else sha)
            for run_dir, command, sha in zip(args.middle_stage, args.middle_command, args.middle_teacher_sha256)
        ]
        if middle:
            card_training["middle_stages"] = middle
        earlier = [card_training["first_stage"], *middle]
        card_training["total_seconds"] = sum(m.get("seconds", 0.0) for m in earlier) + card_training.get("seconds", 0.0)
    if args.previous_card:
        previous = json.loads(Path(args.previous_card).read_text())
        card_training["previous"] = {
            "sha256": previous["sha256"],
            "publictest_accuracy": previous["publictest"]["accuracy"],
            "training": previous["training"],
            **({"batchnorm_command": c} if (c := previous.get("batchnorm", {}).get("command")) else {}),
        }
        if "init_weights" not in card_training and (start := previous["training"].get("init_weights")):
            # The pretrained start of the model this run warm-restarted from: its source, sha256 and licence
            # stay on the card (they are where these weights came from too).
            card_training["init_weights"] = start
        card_training["total_seconds"] = _total_seconds(card_training, previous["training"])
    card = {
        "name": args.name,
        "architecture": args.architecture or load_plugin("backbones", rec.backbone_name).description,
        "backbone": rec.backbone_name,
        "backbone_config": rec.backbone_config,
        "labels": list(rec.labels),
        "num_params": int(sum(p.numel() for p in rec.model.parameters())),
        "input": f"{rec.preprocessor.channels}x{rec.preprocessor.size[0]}x{rec.preprocessor.size[1]}, "
        f"mean {list(rec.preprocessor.mean)}, std {list(rec.preprocessor.std)}",
        "dtype": "float16" if half else "float32",
        "validation_accuracy_fp32": acc32,
        "validation_accuracy_fp16": acc16,
        "training": {
            **card_training,
            **({} if refinished is not None else {"command": args.command, "hardware": args.hardware}),
            **({"finish_command": args.finish_command} if args.finish_command else {}),
            "data": "FER-2013 Training (../shared/data/fer2013)",
        },
        "calibration": rec.meta.get("calibration", {}),
        "flip_tta": rec.flip_tta,
        **({"flip_tta_choice": rec.meta["flip_tta"]} if rec.meta.get("flip_tta") else {}),
        **({"heads": heads_to_dict(rec.heads)} if rec.heads else {}),
        **{key: rec.meta[key] for key in ("heads_fit", "heads_calibration") if rec.meta.get(key)},
        **(
            {"batchnorm": refinished["batchnorm"]}
            if refinished is not None and refinished.get("batchnorm")
            else {
                "batchnorm": {
                    **rec.meta["batchnorm"],
                    # the finish's command, when the finish is what re-estimated them (not a run that did it itself)
                    **(
                        {"command": args.finish_command}
                        if args.finish_command
                        and rec.meta["training"].get("finished_by", {}).get("recalibrate_bn", True)
                        else {}
                    ),
                }
            }
            if rec.meta.get("batchnorm")
            else {}
        ),
        "publictest": evaluate(chosen, test.images, test.labels, False),
        "publictest_flip_tta": evaluate(chosen, test.images, test.labels, True),
        "publictest_dedup": evaluate(chosen, test.images[~dup], test.labels[~dup], rec.flip_tta),
        "publictest_duplicates_removed": int(dup.sum()),
        **(
            {
                "publictest_ferplus": {
                    **evaluate(chosen, ferplus.images, ferplus.labels, rec.flip_tta, fp_head),
                    "head": fp_head,
                    "faces": ferplus_info,
                    "rule": "FER+ majority (single votes dropped, more than half of the rest; no majority, unknown, "
                    "not-a-face and contempt majorities left out)",
                }
            }
            if ferplus is not None
            else {}
        ),
        **(
            {
                "publictest_ferplus_own_labels": evaluate(chosen, ferplus.images, ferplus.labels, rec.flip_tta),
                "validation_ferplus_head": evaluate(
                    chosen, val_ferplus.images, val_ferplus.labels, rec.flip_tta, fp_head
                ),
            }
            if ferplus is not None and fp_head
            else {}
        ),
        "faces_per_second_batch64": round(faces_per_second(chosen), 1),
        "reproduce": f"python benchmarks/accuracy.py --model {args.name}",
    }
    # Everything is written to a staging folder first, so a failure (e.g. in the card's text) leaves the
    # bundled model as it was: a half-replaced model would also give the next bundling wrong teacher sha256s.
    dest = ASSETS / args.name
    staging = ASSETS / f".{args.name}.staging"
    if staging.exists():
        shutil.rmtree(staging)
    chosen.meta = {k: v for k, v in rec.meta.items()}
    chosen.save_pretrained(staging, half=half)
    card["file_bytes"] = (staging / "model.safetensors").stat().st_size
    card["sha256"] = sha256sum(staging / "model.safetensors")
    (staging / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (staging / "card.md").write_text(card_markdown(args.name, card))
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    print(
        json.dumps(
            {
                "name": args.name,
                "sha256": card["sha256"],
                "bytes": card["file_bytes"],
                "accuracy": card["publictest"]["accuracy"],
                "tta": card["publictest_flip_tta"]["accuracy"],
                "macro_f1": card["publictest"]["macro_f1"],
                "ferplus": card.get("publictest_ferplus", {}).get("accuracy"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
