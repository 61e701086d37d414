"""Real photos with known faces, for the speed and detection-recall benchmarks.

Three real photos with one face each: the astronaut (emotionkit's sample, NASA),
Grace Hopper (matplotlib's sample data) and the cameraman (scikit-image); install them
with ``pip install -e ".[bench]"``. Multi-face "group photos" of video and camera sizes
are composed from them, each pasted at several scales and mirrored, over a real photo
background (scikit-image's coffee, cat and rocket photos, which have no face).

The faces' boxes come from running facenet-pytorch's own MTCNN exhaustively
(``min_face_size=12``, full resolution) on each source photo once, then mapping the
box through the paste's scale and offset.

Only NumPy and Pillow are imported here so the ``fer`` side (its own venv) can
rebuild the exact same photos without torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

#: Face boxes (x1, y1, x2, y2) in each source photo, from facenet-pytorch's MTCNN at min_face_size=12
#: on the full-resolution photo (see ``reference_boxes``); one face per photo.
FACE_BOXES = {
    "astronaut": (181.04, 61.89, 267.74, 173.60),
    "hopper": (177.25, 118.09, 354.68, 339.41),
    "camera": (198.29, 116.76, 256.58, 197.88),
}


def _site(package: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"{package} is needed for the benchmark photos: pip install -e '.[bench]'")
    return Path(spec.origin).parent


def source_paths(paths_json: str | None = None) -> dict[str, Path]:
    """Paths of the source photos (from the main venv's packages, or a JSON written by :func:`dump_paths`)."""
    if paths_json:
        return {k: Path(v) for k, v in json.loads(Path(paths_json).read_text()).items()}
    skdata = _site("skimage") / "data"
    return {
        "astronaut": REPO / "src" / "emotionkit" / "assets" / "astronaut.jpg",
        "hopper": _site("matplotlib") / "mpl-data" / "sample_data" / "grace_hopper.jpg",
        "camera": skdata / "camera.png",
        "coffee": skdata / "coffee.png",
        "chelsea": skdata / "chelsea.png",
        "rocket": skdata / "rocket.jpg",
    }


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


@dataclass
class Photo:
    """A photo and the boxes of the faces in it."""

    name: str
    image: np.ndarray
    faces: list[tuple[float, float, float, float]] = field(default_factory=list)

    @property
    def size(self) -> str:
        return f"{self.image.shape[1]}x{self.image.shape[0]}"


def _group(name: str, width: int, height: int, cols: int, rows: int, src: dict[str, Path], seed: int) -> Photo:
    """Tile the face photos (random scale 0.6-1.0 of the cell, random mirror) over a background photo."""
    rng = np.random.default_rng(seed)
    background = _rgb(src[["coffee", "chelsea", "rocket"][seed % 3]]).resize((width, height), Image.Resampling.BILINEAR)
    canvas = background.copy()
    faces = []
    cell_w, cell_h = width // cols, height // rows
    names = ["astronaut", "hopper", "camera"]
    for r in range(rows):
        for c in range(cols):
            face_name = names[(r * cols + c + seed) % 3]
            im = _rgb(src[face_name])
            fit = min(cell_w / im.width, cell_h / im.height) * rng.uniform(0.6, 1.0)
            w, h = max(1, round(im.width * fit)), max(1, round(im.height * fit))
            tile = im.resize((w, h), Image.Resampling.LANCZOS)
            x1, y1, x2, y2 = FACE_BOXES[face_name]
            sx, sy = w / im.width, h / im.height
            faces.append(
                place(
                    canvas, tile, (x1 * sx, y1 * sy, x2 * sx, y2 * sy), (c * cell_w, r * cell_h), (cell_w, cell_h), rng
                )
            )
    return Photo(name, np.asarray(canvas), faces)


def place(
    canvas: Image.Image,
    tile: Image.Image,
    box: tuple[float, float, float, float],
    cell: tuple[int, int],
    cell_size: tuple[int, int],
    rng: np.random.Generator,
) -> tuple[float, float, float, float]:
    """Paste ``tile``, mirrored half the time, at a random place inside a cell of ``canvas``.

    ``box`` is the face's box in ``tile`` pixels; returns it in ``canvas`` pixels.
    """
    x1, y1, x2, y2 = box
    if rng.random() < 0.5:
        tile = ImageOps.mirror(tile)
        x1, x2 = tile.width - x2, tile.width - x1
    ox = cell[0] + int(rng.integers(0, cell_size[0] - tile.width + 1))
    oy = cell[1] + int(rng.integers(0, cell_size[1] - tile.height + 1))
    canvas.paste(tile, (ox, oy))
    return (ox + x1, oy + y1, ox + x2, oy + y2)


def photos(paths_json: str | None = None) -> list[Photo]:
    """The benchmark photos: the three real portraits, and group photos of video and camera sizes.

    Returns
    -------
    list of Photo
        ``astronaut`` 512x512 (1 face); ``hopper`` 512x600; ``camera`` 512x512;
        ``group_480p`` 640x480 (4 faces, 60-140 px); ``group_720p`` 1280x720 (12 faces);
        ``group_1080p`` 1920x1080 (24 faces, 25-110 px); ``group_12mp`` 4032x3024 (6 faces, 250-700 px).
    """
    src = source_paths(paths_json)
    out = [Photo(k, np.asarray(_rgb(src[k])), [FACE_BOXES[k]]) for k in ("astronaut", "hopper", "camera")]
    out.append(_group("group_480p", 640, 480, 2, 2, src, 1))
    out.append(_group("group_720p", 1280, 720, 4, 3, src, 2))
    out.append(_group("group_1080p", 1920, 1080, 6, 4, src, 3))
    out.append(_group("group_12mp", 4032, 3024, 3, 2, src, 4))
    return out


def dump_paths(path: Path) -> None:
    """Write the source photo paths as JSON (for a subprocess in another venv)."""
    path.write_text(json.dumps({k: str(v) for k, v in source_paths().items()}))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x1, y1, x2, y2)`` boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(truth: list[tuple[float, ...]], found: list[tuple[float, ...]], threshold: float = 0.4) -> tuple[int, int]:
    """Greedy matching by IoU; returns (faces found, false detections)."""
    used: set[int] = set()
    hits = 0
    for t in truth:
        best, best_j = threshold, -1
        for j, f in enumerate(found):
            if j not in used and iou(t, f) >= best:
                best, best_j = iou(t, f), j
        if best_j >= 0:
            used.add(best_j)
            hits += 1
    return hits, len(found) - len(used)


def reference_boxes() -> dict[str, list[list[float]]]:
    """Recompute :data:`FACE_BOXES` with facenet-pytorch's exhaustive MTCNN (needs torch)."""
    from facenet_pytorch import MTCNN

    net = MTCNN(keep_all=True, min_face_size=12)
    src = source_paths()
    out = {}
    for k in FACE_BOXES:
        boxes, probs = net.detect(np.asarray(_rgb(src[k])))
        out[k] = [[round(float(v), 2) for v in b] for b, p in zip(boxes, probs) if p >= 0.9]
    return out


if __name__ == "__main__":
    print(json.dumps(reference_boxes()))
    for p in photos():
        print(p.name, p.size, len(p.faces), [round(f[2] - f[0]) for f in p.faces])


#: Untimed calls before each timed cell, on both sides: the first calls on a new input size build oneDNN
#: primitives and grow the allocator's pools.
WARMUP_CALLS = 3


def timing_row(photo: Photo, walls: list[float], cpus: list[float], boxes: list[tuple[float, ...]]) -> dict:
    """One photo's end-to-end cell: median and best wall ms, median CPU ms, faces found and false detections."""
    hits, false = match(photo.faces, boxes)
    return {
        "size": photo.size,
        "wall_ms": float(np.median(walls)),
        "wall_min_ms": float(np.min(walls)),
        "cpu_ms": float(np.median(cpus)),
        "faces": len(photo.faces),
        "found": hits,
        "false": false,
        "runs": len(walls),
    }
