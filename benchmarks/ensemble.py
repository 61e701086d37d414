"""Validation accuracy of the bundled models and of their averages: how to pick distillation teachers.

    python benchmarks/ensemble.py [--model NAME ...] [--temperature 2] [--data PATH] [--threads 2]

Protocol: the validation part of FER-2013 Training that every bundled model was selected on (``--split
official --split-seed 0 --val-fraction 0.1``: a stratified 10% of Training, seed 0), never PublicTest, so the
choice of teachers does not tune on the test split. Each model sees the faces as its own preprocessing makes
them; an ensemble is the mean of its members' ``softmax(logits / T)`` (the distillation target of
``emotionkit train --distill-from A,B`` at ``--distill-temperature T``), with and without horizontal-flip TTA.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from emotionkit.data.loading import load_splits
    from emotionkit.recognizer import EmotionRecognizer, bundled_models
    from emotionkit.training.trainer import predict_logits

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=None, help="bundled model names (default: all)")
    parser.add_argument("--temperature", type=float, default=2.0, help="softmax temperature of the average")
    parser.add_argument("--data", default=None, help="FER-2013 CSV or the folder holding fer2013/")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    val = load_splits(args.data, "official", val_fraction=0.1, seed=0).val
    names = args.model or sorted(bundled_models())
    probs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    print(f"validation part of Training: {len(val)} faces; T = {args.temperature}")
    print("| models | accuracy | flip TTA |\n|---|---:|---:|")
    for name in names:
        rec = EmotionRecognizer.from_pretrained(name, detector=None)
        x = rec.preprocessor.faces(val.images)
        one = predict_logits(rec, x, tta_flip=False)
        both = predict_logits(rec, x, tta_flip=True)  # the mean of the crop's and its mirror's logits
        probs[name] = tuple(torch.softmax(torch.as_tensor(v) / args.temperature, 1).numpy() for v in (one, both))  # type: ignore[assignment]
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            one = sum(probs[c][0] for c in combo) / k
            tta = sum(probs[c][1] for c in combo) / k
            acc = float((one.argmax(1) == val.labels).mean())
            acc_tta = float((tta.argmax(1) == val.labels).mean())
            print(f"| {' + '.join(combo)} | {acc:.4f} | {acc_tta:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
