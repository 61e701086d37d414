"""Grad-CAM overlays: which face regions drive each model's decision.

Writes two figures:

- ``gradcam_photo.png``: for each bundled model, the photo with the heatmap mapped back
  onto it, and the face crop the model saw with its heatmap (and, for the ViT, its
  attention rollout);
- ``gradcam_faces.png``: one real FER-2013 PublicTest face per emotion with the default
  model's Grad-CAM and a caption "Predicted: happy (0.74)", as in the seed report's appendix
  (needs the data: set ``EMOTIONKIT_DATA`` to the folder holding ``fer2013/``).

    python examples/gradcam_overlays.py [--out DIR] [--allow-untrained]

With ``--allow-untrained`` and no bundled weights, an untrained cnn is used and the
figures say so: its heatmaps carry no meaning, they only show the plumbing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from emotionkit import EMOTIONS, EmotionRecognizer, FacePreprocessor, build_backbone, load_image  # noqa: E402
from emotionkit.detectors.mtcnn import MTCNNDetector  # noqa: E402
from emotionkit.explainers import explain_faces, heatmap_to_image  # noqa: E402
from emotionkit.io import sample_image_path  # noqa: E402
from emotionkit.recognizer import DEFAULT_MODEL, bundled_models  # noqa: E402
from emotionkit.registry import load_plugin  # noqa: E402


def recognizers(allow_untrained: bool) -> list[tuple[str, EmotionRecognizer]]:
    """The bundled models (default first), or an untrained cnn."""
    names = sorted(bundled_models(), key=lambda n: (n != DEFAULT_MODEL, n))
    if names:
        detector = MTCNNDetector()
        return [(name, EmotionRecognizer.from_pretrained(name, detector=detector)) for name in names]
    if not allow_untrained:
        raise SystemExit("No bundled weights yet; pass --allow-untrained to draw the figures with an untrained cnn.")
    torch.manual_seed(0)
    rec = EmotionRecognizer(build_backbone("cnn"), FacePreprocessor(), MTCNNDetector(), backbone_name="cnn")
    return [("cnn (UNTRAINED)", rec)]


def photo_figure(models: list[tuple[str, EmotionRecognizer]], photo: np.ndarray, out: Path) -> Path:
    methods_per_model = [load_plugin("backbones", rec.backbone_name).explainers for _, rec in models]
    columns = 1 + max(len(m) for m in methods_per_model)
    fig, axes = plt.subplots(len(models), columns, figsize=(2.6 * columns, 2.7 * len(models)), squeeze=False)
    for row, ((name, rec), methods) in enumerate(zip(models, methods_per_model)):
        for ax in axes[row]:
            ax.set_axis_off()
        faces = rec.explain(photo, method="gradcam")
        if not faces:
            axes[row][0].set_title(f"{name}: no face")
            continue
        face = faces[0]
        box = rec.preprocessor.crop_box(face.detection)
        full = heatmap_to_image(face.heatmap, box, photo.shape[:2])
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        y1, x1 = max(y1, 0), max(x1, 0)
        ax = axes[row][0]
        ax.imshow(photo[y1:y2, x1:x2])
        ax.imshow(full[y1:y2, x1:x2], cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(f"{name}\nGrad-CAM on the photo", fontsize=9)
        crop = rec.preprocessor.crops(photo, [face.detection])[0]
        gray = crop.mean(dim=0).numpy()
        for col, method in enumerate(methods, start=1):
            heatmap = face.heatmap if method == "gradcam" else rec.explain(photo, method=method)[0].heatmap
            ax = axes[row][col]
            ax.imshow(gray, cmap="gray")
            ax.imshow(heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            ax.set_title(
                f"{method} on the {gray.shape[0]}px crop\nPredicted: {face.label} ({face.confidence:.2f})", fontsize=9
            )
    fig.tight_layout()
    path = out / "gradcam_photo.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def faces_figure(name: str, rec: EmotionRecognizer, out: Path) -> Path:
    path = out / "gradcam_faces.png"
    try:
        from emotionkit.data.fer2013 import read_fer2013

        data = read_fer2013(usage="PublicTest", limit=300)
    except FileNotFoundError as exc:
        fig, ax = plt.subplots(figsize=(8, 1.2))
        ax.set_axis_off()
        ax.text(
            0.5, 0.5, f"FER-2013 not found, figure not drawn:\n{exc}", ha="center", va="center", fontsize=8, wrap=True
        )
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return path
    picks = [int(np.flatnonzero(data.labels == k)[0]) for k in range(len(EMOTIONS)) if (data.labels == k).any()]
    faces = data.images[picks]
    probs = rec.predict_proba(faces)
    maps = explain_faces(rec, faces, method="gradcam")
    fig, axes = plt.subplots(2, len(picks), figsize=(1.7 * len(picks), 4.0), squeeze=False)
    for col, (i, face, p, hm) in enumerate(zip(picks, faces, probs, maps)):
        top = int(p.argmax())
        axes[0][col].imshow(face, cmap="gray", vmin=0, vmax=255)
        axes[0][col].set_title(f"true: {EMOTIONS[int(data.labels[i])]}", fontsize=8)
        axes[1][col].imshow(face, cmap="gray", vmin=0, vmax=255)
        axes[1][col].imshow(hm, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        axes[1][col].set_title(f"Predicted: {rec.labels[top]} ({p[top]:.2f})", fontsize=8)
        axes[0][col].set_axis_off()
        axes[1][col].set_axis_off()
    fig.suptitle(f"Grad-CAM of {name} on FER-2013 PublicTest faces (first of each class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> list[Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=str(sample_image_path()), help="photo (default: the bundled sample)")
    parser.add_argument("--out", default=".", help="output folder")
    parser.add_argument(
        "--allow-untrained", action="store_true", help="use an untrained cnn when no weights are bundled"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = recognizers(args.allow_untrained)
    paths = [photo_figure(models, load_image(args.image), out), faces_figure(*models[0], out)]
    for path in paths:
        print(path)
    print(f"{len(models)} model(s), {time.perf_counter() - start:.1f} s")
    return paths


if __name__ == "__main__":
    main()
