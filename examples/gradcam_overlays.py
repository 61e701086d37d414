"""Grad-CAM overlays: which face regions drive each model's decision.

Writes two figures with :mod:`emotionkit.visualize`:

- ``gradcam_photo.png``: for each bundled model, the photo with the heatmap mapped back onto
  it (:func:`~emotionkit.visualize.overlay_on_photo`), and the face crop the model saw with each
  heatmap it supports (:func:`~emotionkit.visualize.overlay_heatmap`: Grad-CAM, and attention
  rollout for the ViT);
- ``gradcam_faces.png``: one real FER-2013 PublicTest face per emotion with the default model's
  Grad-CAM and captions "Predicted: happy (0.74)" / "True: ..." as in the seed report's appendix
  (:func:`~emotionkit.visualize.prediction_grid`; needs ``EMOTIONKIT_DATA``, the folder holding
  ``fer2013/``).

    python examples/gradcam_overlays.py [--out DIR] [--allow-untrained]

With ``--allow-untrained`` and no bundled weights, an untrained cnn is used and the figures
say so: its heatmaps carry no meaning, they only show the plumbing.
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
from PIL import Image, ImageDraw  # noqa: E402

from emotionkit import EMOTIONS, EmotionRecognizer, FacePreprocessor, build_backbone, load_image  # noqa: E402
from emotionkit.detectors.mtcnn import MTCNNDetector  # noqa: E402
from emotionkit.explainers import explain_faces  # noqa: E402
from emotionkit.io import sample_image_path  # noqa: E402
from emotionkit.recognizer import DEFAULT_MODEL, bundled_models  # noqa: E402
from emotionkit.registry import load_plugin  # noqa: E402
from emotionkit.visualize import face_crops, overlay_heatmap, overlay_on_photo, prediction_grid  # noqa: E402


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
    fig, axes = plt.subplots(len(models), columns, figsize=(2.8 * columns, 2.9 * len(models)), squeeze=False)
    for row, ((name, rec), methods) in enumerate(zip(models, methods_per_model)):
        for ax in axes[row]:
            ax.set_axis_off()
        faces = rec.explain(photo, method="gradcam")
        if not faces:
            axes[row][0].set_title(f"{name}: no face")
            continue
        face = faces[0]
        x1, y1, x2, y2 = (int(round(v)) for v in rec.preprocessor.crop_box(face.detection))
        pad = (x2 - x1) // 2  # show the face and its surroundings
        region = (max(0, x1 - pad), max(0, y1 - pad), min(photo.shape[1], x2 + pad), min(photo.shape[0], y2 + pad))
        axes[row][0].imshow(overlay_on_photo(photo, faces, rec.preprocessor, captions=False).crop(region))
        axes[row][0].set_title(f"{name}\nGrad-CAM on the photo", fontsize=9)
        crop = face_crops(photo, [face], rec.preprocessor)[0]
        for col, method in enumerate(methods, start=1):
            heatmap = face.heatmap if method == "gradcam" else rec.explain(photo, method=method)[0].heatmap
            axes[row][col].imshow(overlay_heatmap(crop, heatmap, alpha=0.45))
            axes[row][col].set_title(
                f"{method} on the face crop\nPredicted: {face.label} ({face.confidence:.2f})", fontsize=9
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
        note = Image.new("RGB", (720, 60), (255, 255, 255))
        ImageDraw.Draw(note).text((8, 8), f"FER-2013 not found, figure not drawn:\n{exc}"[:300], fill=(0, 0, 0))
        note.save(path)
        return path
    picks = [int(np.flatnonzero(data.labels == k)[0]) for k in range(len(EMOTIONS)) if (data.labels == k).any()]
    faces = data.images[picks]
    grid = prediction_grid(
        faces,
        rec.predict_proba(faces),
        labels=rec.labels,
        true_labels=[int(k) for k in data.labels[picks]],
        heatmaps=explain_faces(rec, faces, method="gradcam"),
        columns=len(picks),
        cell=128,
    )
    title = Image.new("RGB", (grid.width, 24), (255, 255, 255))
    ImageDraw.Draw(title).text(
        (6, 6), f"Grad-CAM of {name} on FER-2013 PublicTest faces (first of each class)", fill=(0, 0, 0)
    )
    figure = Image.new("RGB", (grid.width, grid.height + title.height), (255, 255, 255))
    figure.paste(title, (0, 0))
    figure.paste(grid, (0, title.height))
    figure.save(path)
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
