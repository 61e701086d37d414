"""Sanity figures for emotionkit's explanations on real FER-2013 PublicTest faces.

Run: ``python benchmarks/explain_sanity.py [MODEL ...] [--n 200] [--method gradcam] [--data PATH]``
(MODEL: a bundled model name or a saved model directory; default: every bundled model).

Prints, per model:

1. The model-randomisation check (Adebayo et al., 2018): Spearman rank correlation between the
   heatmaps of the trained model and of the same architecture re-initialised (seeds 0, 1, 2),
   both explaining the trained model's predicted class, next to two references: the trained
   model against itself on a *different* face (how alike unrelated maps are) and two
   re-initialisations against each other.
2. Region masses, with the true label as the target: the share of Grad-CAM mass in the lower third
   (mouth) for happy faces vs a uniform map's 1/3, and in the eye band (rows 1/4 to 1/2) for angry
   and sad faces vs 1/4; the same figures for the other classes and for a re-initialised model as
   contrast. ``+-`` is the standard error of the mean.

For ``--method gradcam`` both weightings are reported: Grad-CAM and HiResCAM (``weighting="elementwise"``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from emotionkit.data.fer2013 import read_fer2013
from emotionkit.explainers import explain_faces
from emotionkit.explainers.sanity import (
    EYE_REGION,
    LOWER_THIRD,
    randomization_check,
    randomized_copy,
    rank_correlation,
    region_mass,
)
from emotionkit.recognizer import EmotionRecognizer, bundled_models
from emotionkit.types import EMOTIONS


def _mean_se(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return "n/a"
    return f"{v.mean():.3f} +- {v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0:.3f} (n={v.size})"


def randomisation(rec: EmotionRecognizer, faces: np.ndarray, method: str, options: dict) -> None:
    print(
        f"  model randomisation ({_name(method, options)}, {len(faces)} PublicTest faces, target = trained model's prediction)"
    )
    for seed in (0, 1, 2):
        r = randomization_check(rec, faces, method, seed=seed, **options)
        empty = float((r["random"].reshape(len(faces), -1).max(axis=1) == 0).mean())
        print(
            f"    seed {seed}: trained vs re-initialised Spearman mean {r['correlation'].mean():.3f} "
            f"median {np.median(r['correlation']):.3f}; all-zero random maps {empty:.0%}"
        )
    print(f"    reference: trained, face i vs face i+1: mean {r['baseline'].mean():.3f}")
    predicted = rec.predict_proba(faces).argmax(axis=1)
    a, b = randomized_copy(rec, 0), randomized_copy(rec, 1)
    maps_a = _explain(a, faces, predicted, method, options)
    maps_b = _explain(b, faces, predicted, method, options)
    print(f"    reference: re-initialised seed 0 vs seed 1: mean {rank_correlation(maps_a, maps_b).mean():.3f}")
    print(f"    reference: trained vs itself: mean {rank_correlation(r['trained'], r['trained']).mean():.3f}")


def _name(method: str, options: dict) -> str:
    return "hirescam" if options.get("weighting") == "elementwise" else method


def _explain(rec: EmotionRecognizer, faces: np.ndarray, classes: np.ndarray, method: str, options: dict) -> np.ndarray:
    from emotionkit.explainers import get_explainer

    x = rec.preprocessor.faces(faces).to(rec.device)
    return get_explainer(method, rec.backbone_name, **options)(rec.model, x, [int(c) for c in classes])


def masses(rec: EmotionRecognizer, images: np.ndarray, labels: np.ndarray, n: int, method: str, options: dict) -> None:
    lower_uniform = LOWER_THIRD[1] - LOWER_THIRD[0]
    eye_uniform = EYE_REGION[1] - EYE_REGION[0]
    print(
        f"  region mass ({_name(method, options)}, target = true label, up to {n} faces per class; "
        f"uniform: lower third {lower_uniform:.3f}, eye band {eye_uniform:.3f})"
    )
    random_rec = randomized_copy(rec, 0)
    for emotion in EMOTIONS:
        faces = images[labels == EMOTIONS.index(emotion)][:n]
        if len(faces) == 0:
            continue
        maps = explain_faces(rec, faces, target=emotion, method=method, **options)
        rmaps = explain_faces(random_rec, faces, target=emotion, method=method, **options)
        print(
            f"    {emotion:8s} lower third {_mean_se(region_mass(maps, LOWER_THIRD))}  "
            f"eye band {_mean_se(region_mass(maps, EYE_REGION))}  | re-initialised: "
            f"lower {np.nanmean(region_mass(rmaps, LOWER_THIRD)):.3f} eye {np.nanmean(region_mass(rmaps, EYE_REGION)):.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "models", nargs="*", help="bundled model names or saved model directories (default: all bundled)"
    )
    parser.add_argument("--n", type=int, default=200, help="faces per class for the region masses (default 200)")
    parser.add_argument("--n-random", type=int, default=100, help="faces for the randomisation check (default 100)")
    parser.add_argument("--method", default="gradcam")
    parser.add_argument("--data", default=None, help="FER-2013 CSV or its folder (default: $EMOTIONKIT_DATA)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = args.models or list(bundled_models())
    if not models:
        print("No bundled models yet; pass a saved model directory (e.g. runs/cnn).")
        return 1
    start = time.perf_counter()
    test = read_fer2013(args.data, usage="PublicTest")
    print(f"PublicTest: {len(test)} faces ({time.perf_counter() - start:.1f}s to read)")
    for name in models:
        rec = EmotionRecognizer.from_pretrained(name, detector="none")
        acc = float((rec.predict_proba(test.images).argmax(axis=1) == test.labels).mean())
        print(f"\n{name}: backbone {rec.backbone_name}, PublicTest accuracy {acc:.3f}")
        t0 = time.perf_counter()
        variants = [{}, {"weighting": "elementwise"}] if args.method == "gradcam" else [{}]
        for options in variants:
            randomisation(rec, test.images[: args.n_random], args.method, options)
            masses(rec, test.images, test.labels, args.n, args.method, options)
        print(f"  ({time.perf_counter() - t0:.1f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
