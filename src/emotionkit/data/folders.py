"""Reading class-per-folder image trees (``root/<emotion>/*.jpg`` or ``root/train/<emotion>/*.jpg``).

Images of any size and colour become faces exactly as :class:`~emotionkit.preprocessing.FacePreprocessor`
prepares them at inference: either the whole image resized (pre-cropped faces, like
:meth:`~emotionkit.EmotionRecognizer.predict_proba`), or, with a detector, the most confident face
cropped with the preprocessor's margin (like :meth:`~emotionkit.EmotionRecognizer.predict`), then
stored as uint8 (``48x48`` grayscale by default).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..exceptions import ImageNotFoundError, InvalidDataError, InvalidImageError, suggest
from ..interfaces import FaceDetector
from ..io import decode_image, to_uint8_rgb
from ..preprocessing import FacePreprocessor
from ..types import EMOTIONS
from .fer2013 import FaceDataset
from .splits import SPLIT_ALIASES, canonical_usage

__all__ = ["EMOTION_ALIASES", "IMAGE_SUFFIXES", "canonical_emotion", "read_image_folder"]

#: Folder names accepted for each emotion (compared case-insensitively, ``_``/``-``/spaces ignored).
EMOTION_ALIASES: dict[str, str] = {
    **{name: name for name in EMOTIONS},
    **{str(i): name for i, name in enumerate(EMOTIONS)},  # FER-2013 label numbers
    "anger": "angry",
    "mad": "angry",
    "disgusted": "disgust",
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "surprised": "surprise",
    "neutrality": "neutral",
}

#: File suffixes read as images; other files among the images are skipped with a warning.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"})


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")


def canonical_emotion(name: str) -> str | None:
    """Return the canonical emotion for a folder name, or ``None`` when it is not one.

    Parameters
    ----------
    name : str
        A folder name; case, spaces, ``_`` and ``-`` are ignored.

    Returns
    -------
    str or None
        One of :data:`~emotionkit.EMOTIONS`, or ``None``.

    Examples
    --------
    >>> canonical_emotion("Anger"), canonical_emotion("happiness"), canonical_emotion("surprised")
    ('angry', 'happy', 'surprise')
    >>> canonical_emotion("contempt") is None
    True
    """
    return EMOTION_ALIASES.get(_key(name))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _unknown_folder_error(folder: Path, kind: str) -> InvalidDataError:
    emotions = ", ".join(EMOTIONS)
    aliases = ", ".join(sorted(k for k in EMOTION_ALIASES if not k.isdigit() and k not in EMOTIONS))
    splits = ", ".join(sorted(SPLIT_ALIASES))
    choices: Iterable[str]
    if kind == "emotion":
        what, allowed, choices = "is not a known emotion", f"{emotions} or the aliases {aliases}", EMOTION_ALIASES
    elif kind == "split":
        what, allowed, choices = "is not a split folder (its neighbours are)", splits, SPLIT_ALIASES
    else:
        what = "is neither an emotion nor a split folder"
        allowed = f"emotion folders ({emotions}; aliases {aliases}) or split folders ({splits})"
        choices = [*EMOTION_ALIASES, *SPLIT_ALIASES]
    return InvalidDataError(
        f"Unknown folder {str(folder)!r}: {folder.name!r} {what}. Allowed: {allowed}."
        f"{suggest(folder.name.lower(), choices)} Rename it, or leave it out with ignore=[{folder.name!r}] (--ignore {folder.name})."
    )


def _class_folders(root: Path, ignore: set[str]) -> list[tuple[Path, str, str | None]]:
    """Return ``(folder, emotion, usage)`` for every class folder of the tree."""
    top = [d for d in _subdirs(root) if _key(d.name) not in ignore]
    if not top:
        raise InvalidDataError(
            f"No class folders in {str(root)!r}. Expected root/<emotion>/*.jpg or root/train/<emotion>/*.jpg "
            f"(emotions: {', '.join(EMOTIONS)})."
        )
    splits = [canonical_usage(d.name) for d in top]
    if any(s is not None for s in splits):
        out: list[tuple[Path, str, str | None]] = []
        for folder, usage in zip(top, splits):
            if usage is None:
                raise _unknown_folder_error(folder, "split")
            classes = [d for d in _subdirs(folder) if _key(d.name) not in ignore]
            if not classes:
                raise InvalidDataError(
                    f"Split folder {str(folder)!r} holds no class folders (expected {folder}/<emotion>/*.jpg)."
                )
            for d in classes:
                emotion = canonical_emotion(d.name)
                if emotion is None:
                    raise _unknown_folder_error(d, "emotion")
                out.append((d, emotion, usage))
        return out
    out2: list[tuple[Path, str, str | None]] = []
    for d in top:
        emotion = canonical_emotion(d.name)
        if emotion is None:
            raise _unknown_folder_error(d, "other")
        out2.append((d, emotion, None))
    return out2


def _list_images(folder: Path, max_images: int | None) -> list[Path]:
    files, skipped, nested = [], [], []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            nested.append(p.name)
        elif p.suffix.lower() in IMAGE_SUFFIXES:
            files.append(p)
        else:
            skipped.append(str(p))
    if skipped:
        shown = ", ".join(repr(s) for s in skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warnings.warn(
            f"Skipped {len(skipped)} non-image file(s) among the images of {str(folder)!r}: {shown}. "
            f"Image files end in {', '.join(sorted(IMAGE_SUFFIXES))}.",
            stacklevel=4,
        )
    if nested:
        warnings.warn(
            f"Skipped sub-folders of class folder {str(folder)!r}: {', '.join(nested[:5])} (only its own files are read).",
            stacklevel=4,
        )
    if not files:
        raise InvalidDataError(
            f"Class folder {str(folder)!r} holds no images. Add images ({', '.join(sorted(IMAGE_SUFFIXES))}) or remove the folder."
        )
    return files[:max_images] if max_images is not None else files


def _make_detector(detector: str | FaceDetector | None, options: dict[str, Any] | None) -> FaceDetector | None:
    if detector is None or detector == "none":
        return None
    if isinstance(detector, str):
        from ..registry import load_plugin

        return load_plugin("detectors", detector).build(**dict(options or {}))
    return detector


def read_image_folder(
    root: str | os.PathLike,
    *,
    detector: str | FaceDetector | None = None,
    detector_options: dict[str, Any] | None = None,
    size: int = 48,
    channels: Literal[1, 3] = 1,
    margin: float = 0.1,
    usage: str | Sequence[str] | None = None,
    max_per_class: int | None = None,
    ignore: Sequence[str] = (),
    on_bad_file: Literal["raise", "warn"] = "raise",
    no_face: Literal["skip", "whole"] = "skip",
    batch_size: int = 32,
    progress: bool = False,
) -> FaceDataset:
    """Read a class-per-folder image tree into face crops with canonical labels.

    Two layouts are recognised: ``root/<emotion>/*`` (no official split) and
    ``root/<split>/<emotion>/*`` with split folders such as ``train``, ``val`` and ``test``
    (they become the usages ``Training``, ``Validation``, ``Test``; ``PublicTest`` and
    ``PrivateTest`` keep their names). Emotion folder names map to the canonical order
    (:data:`~emotionkit.EMOTIONS`) through :data:`EMOTION_ALIASES` (``anger``, ``happiness``,
    ``surprised``, FER-2013's ``0``-``6``...).

    Parameters
    ----------
    root : str or os.PathLike
        The tree's top folder.
    detector : str or FaceDetector, optional
        ``"mtcnn"`` (or any registered detector, or an instance) to crop the most confident face
        of each image, as the seed's cleaning step did; ``None`` uses whole images.
    detector_options : dict, optional
        Keyword arguments of the detector's constructor (e.g. ``{"max_side": 640}``).
    size : int, default 48
        Side of the stored faces.
    channels : {1, 3}, default 1
        Grayscale (PIL luma weights, as FER-2013) or RGB.
    margin : float, default 0.1
        Margin around detected faces (as :class:`FacePreprocessor`).
    usage : str or sequence of str, optional
        Read only these split folders (``"train"``, ``"Test"``...).
    max_per_class : int, optional
        Read at most this many images (in file-name order) from each class folder.
    ignore : sequence of str, default ()
        Folder names to leave out (e.g. ``["contempt"]``).
    on_bad_file : {"raise", "warn"}, default "raise"
        What to do with an image file that cannot be decoded.
    no_face : {"skip", "whole"}, default "skip"
        With a detector: leave out images without a face (one warning lists them), or keep the whole image.
    batch_size : int, default 32
        Images decoded and detected together.
    progress : bool, default False
        Show a progress bar on stderr.

    Returns
    -------
    FaceDataset
        ``images`` ``(N, size, size)`` (or ``(N, size, size, 3)``) uint8; ``ids`` are paths relative
        to ``root``; ``usage`` the canonical split names (``None`` for a tree without splits).

    Raises
    ------
    ImageNotFoundError
        ``root`` does not exist.
    InvalidDataError
        An unknown folder name, an empty class folder, an undecodable image (``on_bad_file="raise"``),
        or no image left; the message names the folder or file.

    Warns
    -----
    UserWarning
        Non-image files among the images, undecodable files with ``on_bad_file="warn"``, images
        without a face; the message names them.
    """
    base = Path(root)
    if not base.is_dir():
        raise ImageNotFoundError(
            f"Image folder not found: {str(base)!r} (expected a folder with one sub-folder per emotion)."
        )
    entries = _image_entries(base, ignore, usage, max_per_class)
    pre = FacePreprocessor(size=size, channels=channels, margin=margin)
    det = _make_detector(detector, detector_options)
    images, kept, bad, faceless = _read_faces(
        [path for path, _, _ in entries], pre, det, on_bad_file, no_face, batch_size, progress
    )
    _warn_skipped(bad, faceless)
    if not images:
        raise InvalidDataError(
            f"No usable images in {str(base)!r} ({len(entries)} files, {len(bad)} unreadable, {len(faceless)} without a face)."
        )
    usages = [entries[i][2] for i in kept]
    return FaceDataset(
        np.stack(images),
        np.asarray([entries[i][1] for i in kept], dtype=np.int64),
        EMOTIONS,
        None if usages[0] is None else np.asarray(usages),
        np.asarray([str(entries[i][0].relative_to(base)) for i in kept]),
    )


def _image_entries(
    base: Path, ignore: Sequence[str], usage: str | Sequence[str] | None, max_per_class: int | None
) -> list[tuple[Path, int, str | None]]:
    """``(image file, label index, usage)`` for every image to read, class folder by class folder."""
    folders = _select_usage(_class_folders(base, {_key(i) for i in ignore}), usage, base)
    entries: list[tuple[Path, int, str | None]] = []
    for folder, emotion, u in folders:  # a loop, not a comprehension: _list_images' stacklevel counts frames
        entries.extend((path, EMOTIONS.index(emotion), u) for path in _list_images(folder, max_per_class))
    return entries


def _select_usage(
    folders: list[tuple[Path, str, str | None]], usage: str | Sequence[str] | None, base: Path
) -> list[tuple[Path, str, str | None]]:
    """Keep the class folders of the wanted split folders (all of them when ``usage`` is ``None``)."""
    if usage is None:
        return folders
    wanted = {canonical_usage(u) or u for u in ([usage] if isinstance(usage, str) else usage)}
    present = sorted({u for _, _, u in folders if u is not None})
    selected = [f for f in folders if f[2] in wanted]
    if not selected:
        raise InvalidDataError(
            f"No split folder {sorted(wanted)} in {str(base)!r}. Split folders present: {', '.join(present) or 'none'}"
            + ("." if present else " (a tree without split folders has no official split: use a stratified split).")
        )
    return selected


def _warn_skipped(bad: list[str], faceless: list[str]) -> None:
    """One warning (to :func:`read_image_folder`'s caller) per kind of file left out, naming the first five."""
    for what, names in (
        ("unreadable image file(s) skipped", bad),
        ("image(s) without a detected face skipped", faceless),
    ):
        if names:
            shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            warnings.warn(f"{len(names)} {what}: {shown}.", stacklevel=3)


def _read_faces(
    paths: list[Path],
    pre: FacePreprocessor,
    detector: FaceDetector | None,
    on_bad_file: str,
    no_face: str,
    batch_size: int,
    progress: bool,
) -> tuple[list[np.ndarray], list[int], list[str], list[str]]:
    """Decode and crop ``paths`` in batches: ``(faces, indices kept, unreadable files, files without a face)``."""
    images: list[np.ndarray] = []
    kept: list[int] = []
    bad: list[str] = []
    faceless: list[str] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), desc="reading images", unit="img", file=sys.stderr)
    for start in range(0, len(paths), batch_size):
        chunk = range(start, min(start + batch_size, len(paths)))
        arrays: dict[int, np.ndarray] = {}
        for i in chunk:
            try:
                arrays[i] = decode_image(paths[i])
            except InvalidImageError as exc:
                if on_bad_file == "raise":
                    raise InvalidDataError(
                        f"Cannot read {str(paths[i])!r} as an image ({exc}). Remove or replace the file, or pass "
                        "on_bad_file='warn' to skip unreadable files."
                    ) from exc
                bad.append(str(paths[i]))
        order = list(arrays)
        for i, face in zip(order, _faces(pre, detector, [arrays[i] for i in order], no_face)):
            if face is None:
                faceless.append(str(paths[i]))
            else:
                images.append(face)
                kept.append(i)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return images, kept, bad, faceless


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(N, C, H, W)`` float in [0, 1] -> ``(N, H, W)`` or ``(N, H, W, 3)`` uint8."""
    out = (x.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out[..., 0] if out.shape[-1] == 1 else out


def _faces(
    pre: FacePreprocessor, detector: FaceDetector | None, arrays: list[np.ndarray], no_face: str
) -> list[np.ndarray | None]:
    """One face per image (``None`` when a detector finds none and ``no_face == "skip"``)."""
    out: list[np.ndarray | None] = [None] * len(arrays)
    whole: list[int] = list(range(len(arrays)))
    if detector is not None:
        whole = []
        found = detector.detect_batch([to_uint8_rgb(a) for a in arrays])  # the detector takes uint8 RGB
        for i, (arr, dets) in enumerate(zip(arrays, found)):
            if dets:
                out[i] = _to_uint8(pre.crops(arr, [max(dets, key=lambda d: d.score)]))[0]
            elif no_face == "whole":
                whole.append(i)
    alike: dict[tuple[tuple[int, ...], str], list[int]] = {}  # stacked together: same shape and dtype
    for i in whole:
        alike.setdefault((arrays[i].shape, arrays[i].dtype.str), []).append(i)
    for indices in alike.values():
        batch = _to_uint8(pre.faces(np.stack([arrays[i] for i in indices])))
        for i, face in zip(indices, batch):
            out[i] = face
    return out
