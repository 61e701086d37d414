"""``emotionkit train``: train a backbone on FER-2013 (or an image folder) into a run directory."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train``."""
    p = subparsers.add_parser("train", help="train a backbone; the run directory loads with from_pretrained")
    p.add_argument("--backbone", default="cnn", help="registered backbone name (default: cnn)")
    p.add_argument("--data", default=None, help="FER-2013 CSV or the folder holding fer2013/ (default: $EMOTIONKIT_DATA)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--schedule", choices=["cosine", "plateau"], default="cosine")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--class-balance", choices=["none", "weights", "sampler"], default="weights")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE")
    p.add_argument("--time-budget", type=float, default=None, metavar="MINUTES", help="anneal and stop within this wall time")
    p.add_argument("--val-fraction", type=float, default=0.1, help="stratified part of Training used for validation")
    p.add_argument("--config", default="{}", help="backbone config as JSON, e.g. '{\"widths\": [32, 64, 128]}'")
    p.add_argument("--preprocessing", default=None, help="preprocessor config as JSON (default: the backbone's)")
    p.add_argument("--distill-from", default=None, help="teacher model name or directory")
    p.add_argument("--init", choices=["scratch", "imagenet"], default="scratch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--limit", type=int, default=None, help="use only the first N training rows (smoke tests)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's checkpoint")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``train``."""
    from ..data.fer2013 import read_fer2013
    from ..data.splits import stratified_split
    from ..training.trainer import TrainConfig, Trainer

    config = TrainConfig(
        backbone=args.backbone,
        backbone_config=json.loads(args.config),
        preprocessing=json.loads(args.preprocessing) if args.preprocessing else None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        label_smoothing=args.label_smoothing,
        class_balance=args.class_balance,
        early_stopping_patience=args.early_stopping,
        time_budget_minutes=args.time_budget,
        distill_from=args.distill_from,
        init=args.init,
        seed=args.seed,
        threads=args.threads,
    )
    data = read_fer2013(args.data, usage="Training", limit=args.limit)
    train_idx, val_idx = stratified_split(data.labels, (1.0 - args.val_fraction, args.val_fraction), seed=args.seed)
    summary = Trainer(config, args.out).fit(data.subset(train_idx), data.subset(val_idx), resume=args.resume)
    val = summary["val"]
    print(json.dumps({"out": args.out, "best_epoch": summary["best_epoch"], "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"]}))
    return 0
