"""Regenerate the comparison table of the bundled models from the bundled weights.

    python benchmarks/accuracy.py [--model NAME ...] [--data PATH] [--json out.json]

Protocol: FER-2013 PublicTest (from ``$EMOTIONKIT_DATA`` or ``--data``), which no bundled model saw during
training, checkpoint selection or temperature fitting (those used Training and a stratified 10% of it).
Each model is scored with one crop and with horizontal-flip test-time augmentation on all 3,589 PublicTest
rows; then as it predicts (``predicts with``: flip TTA where its ``config.json`` says ``flip_tta``, chosen on
validation by ``emotionkit train --predict-flip auto``, else one crop) on the rows left after dropping exact
duplicates of Training images, and for the macro/weighted F1, class F1 and ECE columns. Beside FER-2013's labels,
the same PublicTest faces are scored, also as the model predicts, against the FER+ majority labels (``ferplus/`` beside ``fer2013/``; the FER+
paper's rule: votes of one annotator dropped, more than half of the rest; faces without such a majority, or whose
majority is unknown, not-a-face or contempt, are left out, and the counts are printed); a model with a FER+ output
head (``emotionkit train --ferplus-head``, :mod:`emotionkit.heads`) is scored there with that head, the column
``FER+ from`` says which, and ``FER+ acc (own labels)`` gives its FER-2013 head's score on them. Inference speed is crop
classification faces/s at batch 64 on this machine's CPU threads (compare as ratios within one run).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from emotionkit.data.fer2013 import read_fer2013
    from emotionkit.data.ferplus import read_ferplus, relabel_by_majority
    from emotionkit.data.splits import cross_split_duplicates
    from emotionkit.heads import FERPLUS_HEAD
    from emotionkit.recognizer import EmotionRecognizer, bundled_models
    from emotionkit.training.evaluate import evaluate
    from emotionkit.training.reports import inference_speed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=None, help="bundled model names (default: all)")
    parser.add_argument("--data", default=None, help="FER-2013 CSV or the folder holding fer2013/")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    names = args.model or sorted(bundled_models())
    if not names:
        print("No bundled weights.", file=sys.stderr)
        return 1
    data = read_fer2013(args.data, usage=("Training", "PublicTest"))
    train = data.subset(np.flatnonzero(data.usage == "Training"))
    test = data.subset(np.flatnonzero(data.usage == "PublicTest"))
    dup = cross_split_duplicates(train.images, test.images)
    dedup = test.subset(np.flatnonzero(~dup))
    ferplus, ferplus_info = relabel_by_majority(test, read_ferplus(args.data))
    rows = []
    for name in names:
        rec = EmotionRecognizer.from_pretrained(name, detector=None)
        one = evaluate(rec, test, tta_flip=False)
        tta = evaluate(rec, test, tta_flip=True)
        own = tta if rec.flip_tta else one
        dd = evaluate(rec, dedup)  # as the model predicts
        head = FERPLUS_HEAD if FERPLUS_HEAD in rec.heads else None
        fp_own = evaluate(rec, ferplus)
        fp = evaluate(rec, ferplus, head=head) if head else fp_own
        f1 = {k: v["f1"] for k, v in own["per_class"].items()}
        rows.append(
            {
                "model": name,
                "params": int(sum(p.numel() for p in rec.model.parameters())),
                "predicts_with": "flip TTA" if rec.flip_tta else "one crop",
                "accuracy": one["accuracy"],
                "accuracy_flip_tta": tta["accuracy"],
                "accuracy_dedup": dd["accuracy"],
                "macro_f1": own["macro_f1"],
                "weighted_f1": own["weighted_f1"],
                "best_class": max(f1, key=f1.get),
                "worst_class": min(f1, key=f1.get),
                "best_f1": max(f1.values()),
                "worst_f1": min(f1.values()),
                "ece": own["ece"],
                "ferplus_from": "ferplus head" if head else "own labels",
                "ferplus_accuracy": fp["accuracy"],
                "ferplus_macro_f1": fp["macro_f1"],
                "ferplus_accuracy_own_labels": fp_own["accuracy"],
                "ferplus_n": ferplus_info["n"],
                "faces_per_second_b64": inference_speed(name),
            }
        )
    header = (
        "| model | predicts with | params | PublicTest one crop | flip TTA | dedup acc | macro F1 | weighted F1 | best class F1 | "
        "worst class F1 | ECE | FER+ from | FER+ acc | FER+ macro F1 | FER+ acc (own labels) | faces/s (b64) |"
    )
    print(f"PublicTest n={len(test)} (dedup n={len(dedup)}, {int(dup.sum())} Training duplicates removed)")
    print(
        f"FER+ majority labels: n={ferplus_info['n']} of {ferplus_info['rows']} ({ferplus_info['no_votes']} without "
        f"FER+ votes, {ferplus_info['contempt']} contempt majority, {ferplus_info['left_out']} no majority / unknown "
        "/ not a face left out)"
    )
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['predicts_with']} | {r['params']:,} | {r['accuracy']:.4f} | {r['accuracy_flip_tta']:.4f} | {r['accuracy_dedup']:.4f} | "
            f"{r['macro_f1']:.4f} | {r['weighted_f1']:.4f} | {r['best_class']} {r['best_f1']:.3f} | "
            f"{r['worst_class']} {r['worst_f1']:.3f} | {r['ece']:.4f} | {r['ferplus_from']} | {r['ferplus_accuracy']:.4f} | "
            f"{r['ferplus_macro_f1']:.4f} | {r['ferplus_accuracy_own_labels']:.4f} | {r['faces_per_second_b64']:.0f} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
