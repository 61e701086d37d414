"""Find every face in a photo, classify its expression, and draw the result.

Writes ``annotated_photo.png``: the photo with each face's box, landmarks, label and
confidence drawn by :func:`emotionkit.drawing.annotate` (what ``emotionkit predict --out``
writes), beside a bar chart of the seven scores of the first face.

    python examples/annotate_photo.py                       # the bundled sample photo, default model
    python examples/annotate_photo.py photo.jpg --model vit --out figures/

The documentation build runs it with ``--allow-untrained`` so the figure exists even
before weights are bundled; the figure then says "untrained" in its title.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from emotionkit import EmotionRecognizer, FacePreprocessor, NoBundledWeightsError, build_backbone, load_image  # noqa: E402
from emotionkit.detectors.mtcnn import MTCNNDetector  # noqa: E402
from emotionkit.drawing import annotate  # noqa: E402
from emotionkit.io import sample_image_path  # noqa: E402


def load_recognizer(model: str | None, allow_untrained: bool) -> tuple[EmotionRecognizer, str]:
    """Return the bundled model, or (with ``allow_untrained``) an untrained cnn, and a title for it."""
    try:
        rec = EmotionRecognizer.from_pretrained(model)
        return rec, f"model {rec.backbone_name!r}"
    except NoBundledWeightsError:
        if not allow_untrained:
            raise
        torch.manual_seed(0)
        rec = EmotionRecognizer(build_backbone("cnn"), FacePreprocessor(), MTCNNDetector(), backbone_name="cnn")
        return rec, "UNTRAINED cnn (no bundled weights yet): scores are meaningless"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "image", nargs="?", default=str(sample_image_path()), help="photo (default: the bundled sample)"
    )
    parser.add_argument(
        "--model", default=None, help="bundled model name or model directory (default: the default model)"
    )
    parser.add_argument("--out", default=".", help="output folder")
    parser.add_argument(
        "--allow-untrained", action="store_true", help="fall back to an untrained cnn when no weights are bundled"
    )
    args = parser.parse_args(argv)

    start = time.perf_counter()
    rec, title = load_recognizer(args.model, args.allow_untrained)
    photo = load_image(args.image)
    faces = rec.predict(photo)

    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(9, 4.4), gridspec_kw={"width_ratios": [1.15, 1]})
    # What `emotionkit predict --out annotated.png` writes: boxes, captions and landmarks drawn on the photo.
    ax_img.imshow(annotate(photo, faces))
    ax_img.set_axis_off()
    ax_img.set_title(f"{len(faces)} face(s) found", fontsize=10)
    if faces:
        scores = faces[0].scores
        names = list(scores)
        ax_bar.barh(
            names, [scores[n] for n in names], color=["#00a152" if n == faces[0].label else "#9e9e9e" for n in names]
        )
        ax_bar.invert_yaxis()
        ax_bar.set_xlim(0, 1)
        ax_bar.set_xlabel("probability")
        ax_bar.set_title("scores of the first face", fontsize=10)
    else:
        ax_bar.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "annotated_photo.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"{path} ({len(faces)} faces, {time.perf_counter() - start:.1f} s)")
    return path


if __name__ == "__main__":
    main()
