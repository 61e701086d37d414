"""How FER-2013 and FER+ accuracy trade off: a bundled model's head refitted on its frozen features to FER+ votes.

    python benchmarks/ferplus_probe.py [--model mobilenetv2] [--weights 0 0.3 0.5 0.7 1] [--threads 1]

The model's features (the input of its linear head) are computed once for the training and validation parts of
FER-2013 Training (``--split official --split-seed 0 --val-fraction 0.1``, the split every bundled model was
selected on). A new head, started from the model's own, is then fitted for each weight ``w`` to the soft target
``(1 - w) * smoothed one-hot FER-2013 label + w * FER+ vote distribution`` (what ``emotionkit train --soft-targets
ferplus --soft-target-weight w`` trains to; faces without votes keep the label), with the trainer's class weights.
Each head is scored on the validation part against FER-2013's labels and against the FER+ majority labels (the
FER+ paper's rule, as in ``benchmarks/accuracy.py``). PublicTest is not used: this chooses a recipe.

Only the head moves, so the numbers bound what the votes can do to features learnt from FER-2013 labels; training
the whole network on the mixed targets may do better on both.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _features(rec, images: np.ndarray, head: torch.nn.Module) -> torch.Tensor:
    """The input of ``head`` for every face, in batches of 256."""
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            for i in range(0, len(images), 256):
                rec.model(rec.preprocessor.faces(images[i : i + 256]))
    finally:
        hook.remove()
    return torch.cat(seen)


def _fit_head(start, feats, targets, weights, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    w = start[0].clone().requires_grad_()
    b = start[1].clone().requires_grad_()
    opt = torch.optim.Adam([w, b], 1e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(feats), (1024,))
        logp = (feats[idx] @ w.T + b).log_softmax(1)
        loss = -(targets[idx] * logp).sum(1).mul(weights[idx]).mean() + 1e-4 * (w**2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return w.detach(), b.detach()


def main(argv: list[str] | None = None) -> int:
    from emotionkit import EmotionRecognizer
    from emotionkit.data.ferplus import majority_labels, read_ferplus, vote_distribution
    from emotionkit.data.loading import load_splits
    from emotionkit.training.finetune import head_index, layer_groups

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mobilenetv2", help="bundled model name or a model directory")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7, 1.0])
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of 1,024 faces per head")
    parser.add_argument("--data", default=None, help="FER-2013 CSV or the folder holding fer2013/ and ferplus/")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    splits = load_splits(args.data, "official", val_fraction=0.1, seed=0)
    rec = EmotionRecognizer.from_pretrained(args.model, detector="none")
    rec.model.eval()
    groups = layer_groups(rec.model)
    head = groups[head_index(groups, rec.model)][1]
    if not isinstance(head, torch.nn.Linear):
        raise SystemExit(f"{args.model}'s head is a {type(head).__name__}, not a linear layer")
    started = time.perf_counter()
    train_x = _features(rec, splits.train.images, head)
    val_x = _features(rec, splits.val.images, head)
    print(
        f"{args.model}: features of {len(train_x)} training and {len(val_x)} validation faces in "
        f"{time.perf_counter() - started:.0f} s"
    )

    votes = read_ferplus(args.data)
    classes = tuple(splits.train.classes)
    train_votes, train_present = votes.for_ids(splits.train.ids, splits.train.labels)
    dist, has_votes = vote_distribution(train_votes, classes)
    mixed_ok = torch.as_tensor(train_present & has_votes, dtype=torch.float32)[:, None]
    val_votes, _ = votes.for_ids(splits.val.ids, splits.val.labels)
    val_major = majority_labels(val_votes, classes)
    scored = val_major >= 0
    labels = torch.as_tensor(splits.train.labels)
    onehot = torch.nn.functional.one_hot(labels, len(classes)).float() * 0.9 + 0.1 / len(classes)
    counts = torch.as_tensor(np.bincount(splits.train.labels, minlength=len(classes)), dtype=torch.float32)
    class_weight = (counts.sum() / counts) ** 0.5  # the trainer's default: class_balance="weights", power 0.5
    sample_weight = (class_weight / class_weight.mean())[labels]

    def row(name: str, logits: torch.Tensor) -> None:
        pred = logits.argmax(1).numpy()
        fer = float((pred == splits.val.labels).mean())
        plus = float((pred[scored] == val_major[scored]).mean())
        print(f"| {name} | {fer:.4f} | {plus:.4f} |")

    print(f"validation: {len(val_x)} faces, {int(scored.sum())} with a FER+ majority label")
    print("| head | FER-2013 accuracy | FER+ majority accuracy |\n|---|---:|---:|")
    k = len(classes)  # the model's own classes: the first rows (a model may have a FER+ head after them)
    start = (head.weight.detach()[:k], head.bias.detach()[:k])
    row("the model's own", val_x @ start[0].T + start[1])
    for w in args.weights:
        target = (1 - w * mixed_ok) * onehot + w * mixed_ok * torch.as_tensor(dist)
        weight, bias = _fit_head(start, train_x, target, sample_weight, args.steps, seed=0)
        row(f"refit, w = {w:g}", val_x @ weight.T + bias)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
