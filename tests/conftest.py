"""Shared fixtures: real FER-2013 faces from ../shared (skipped with a reason when absent) and real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
REPO = Path(__file__).resolve().parents[1]
# The one documented setting: EMOTIONKIT_DATA, the folder holding fer2013/ (default ../shared/data from the repo root).
os.environ.setdefault("EMOTIONKIT_DATA", str(REPO.parent / "shared" / "data"))


def _fer_csv() -> Path | None:
    from emotionkit.data.fer2013 import fer2013_path

    try:
        return fer2013_path()
    except FileNotFoundError:
        return None


@pytest.fixture(scope="session")
def fer_csv() -> Path:
    """Path of the real FER-2013 CSV; skips when EMOTIONKIT_DATA has no fer2013/."""
    path = _fer_csv()
    if path is None:
        pytest.skip(f"FER-2013 not found under EMOTIONKIT_DATA={os.environ['EMOTIONKIT_DATA']!r}; set it to the folder holding fer2013/")
    return path


@pytest.fixture(scope="session")
def fer_train_small(fer_csv):
    """The first 600 FER-2013 Training rows (real 48x48 faces)."""
    from emotionkit.data.fer2013 import read_fer2013

    return read_fer2013(fer_csv, usage="Training", limit=600)


@pytest.fixture(scope="session")
def fer_faces(fer_train_small) -> np.ndarray:
    """64 real FER-2013 faces, (64, 48, 48) uint8."""
    return fer_train_small.images[:64]


@pytest.fixture(scope="session")
def sample_photo() -> Path:
    """The bundled sample photo (one face)."""
    from emotionkit.io import sample_image_path

    return sample_image_path()
