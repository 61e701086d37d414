"""Weights specs and checksum-verified safetensors I/O.

As in torchvision's multi-weight API, a :class:`WeightsSpec` knows where its
file is, its sha256, how to build the preprocessing it was trained with, and
its metadata (labels, parameters, metrics and the protocol behind them).
Weights are read with :mod:`safetensors` only, so loading never executes code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .exceptions import ChecksumMismatchError, InvalidWeightsError, WeightsNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .preprocessing import FacePreprocessor

__all__ = [
    "WeightsSpec",
    "sha256sum",
    "load_weights",
    "save_weights",
    "CONFIG_NAME",
    "PREPROCESSOR_NAME",
    "WEIGHTS_NAME",
]

#: File of a saved model's configuration (backbone, its config, labels, temperature, metadata).
CONFIG_NAME = "config.json"
#: File of a saved model's :class:`~emotionkit.preprocessing.FacePreprocessor` config.
PREPROCESSOR_NAME = "preprocessor.json"
#: File of a saved model's weights (safetensors).
WEIGHTS_NAME = "model.safetensors"


def sha256sum(path: str | Path) -> str:
    """Return the hex sha256 of a file.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_weights(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file after verifying its checksum.

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` file.
    sha256 : str, optional
        The expected hex digest; when given, a mismatch raises before anything is loaded.

    Returns
    -------
    dict of str to torch.Tensor
        The state dict, on the CPU.

    Raises
    ------
    WeightsNotFoundError
        The file does not exist (also a ``FileNotFoundError``).
    ChecksumMismatchError
        The file's sha256 differs from ``sha256`` (an :class:`InvalidWeightsError`, also a ``ValueError``).
    InvalidWeightsError
        The file is empty, truncated or not safetensors.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"Weights file not found: {str(path)!r}. Check the path, or re-save the model.")
    if sha256 is not None:
        actual = sha256sum(path)
        if actual != sha256.lower():
            raise ChecksumMismatchError(
                f"Checksum mismatch for {str(path)!r}: expected sha256 {sha256}, got {actual}. "
                "The file is corrupt or was replaced; reinstall emotionkit or re-save the model."
            )
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError (and OSError) for empty, cut or foreign files
        size = path.stat().st_size
        raise InvalidWeightsError(
            f"Cannot read {str(path)!r} ({size} bytes) as safetensors weights ({type(exc).__name__}: {exc}). "
            "The file is empty, truncated or in another format; re-save the model (save_pretrained or "
            "emotionkit train) or copy the file again."
        ) from exc


def save_weights(state_dict: Mapping[str, torch.Tensor], path: str | Path, *, half: bool = False) -> str:
    """Write a state dict as safetensors and return its sha256.

    Parameters
    ----------
    state_dict : mapping of str to torch.Tensor
        What ``module.state_dict()`` returns.
    path : str or Path
        Where to write.
    half : bool, default False
        Store floating-point tensors as float16 (half the size); integer buffers are kept.

    Returns
    -------
    str
        The sha256 of the written file.
    """
    import torch
    from safetensors.torch import save

    tensors = {}
    for key, value in state_dict.items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point():
            value = value.to(torch.float16)
        tensors[key] = value
    data = save(tensors, metadata={"format": "pt"})
    # Written with open(), not safetensors' save_file (which creates 0600 files): the mode follows the umask
    # (0644 under umask 022), like the config files beside it.
    tmp = Path(path).with_name(Path(path).name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class WeightsSpec:
    """Pretrained weights shipped inside a Python package.

    Parameters
    ----------
    name : str
        Identifier, e.g. ``"cnn_fer2013"``.
    package : str
        The importable package that holds the files.
    directory : str
        Folder inside ``package`` holding ``config.json``, ``preprocessor.json``
        and ``model.safetensors`` (the layout :meth:`EmotionRecognizer.save_pretrained` writes).
    sha256 : str, optional
        Expected sha256 of ``model.safetensors``. By default it is read once from the directory's
        ``config.json`` (``weights_sha256``, written by :meth:`EmotionRecognizer.save_pretrained`),
        so the bundled weights record their checksum in one place.
    meta : mapping
        Extra metadata; the model card (``card.json`` in ``directory``) is merged in by :meth:`card`.
    """

    name: str
    package: str
    directory: str
    sha256: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.sha256 is None and (self.path / CONFIG_NAME).is_file():
            object.__setattr__(self, "sha256", json.loads((self.path / CONFIG_NAME).read_text()).get("weights_sha256"))

    @property
    def path(self) -> Path:
        """The folder holding the files."""
        return Path(str(resources.files(self.package).joinpath(self.directory)))

    def exists(self) -> bool:
        """Whether the weights file is present.

        Returns
        -------
        bool
            ``True`` when ``model.safetensors`` exists in :attr:`path`.
        """
        return (self.path / WEIGHTS_NAME).is_file()

    def config(self) -> dict[str, Any]:
        """Return the saved ``config.json``.

        Returns
        -------
        dict
            Backbone name and config, labels, temperature, weights sha256, metadata.
        """
        return dict(json.loads((self.path / CONFIG_NAME).read_text()))

    def preprocessor(self) -> FacePreprocessor:
        """Build the preprocessing these weights were trained with.

        Returns
        -------
        FacePreprocessor
            Read from ``preprocessor.json``.
        """
        from .preprocessing import FacePreprocessor

        return FacePreprocessor.from_dict(json.loads((self.path / PREPROCESSOR_NAME).read_text()))

    def card(self) -> dict[str, Any]:
        """Return the model card: ``meta`` updated with ``card.json`` when present.

        Returns
        -------
        dict
            Architecture, training command, metrics and the protocol behind them (whatever the card holds).
        """
        out = dict(self.meta)
        card = self.path / "card.json"
        if card.is_file():
            out.update(json.loads(card.read_text()))
        return out

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Load the verified state dict.

        Returns
        -------
        dict of str to torch.Tensor
            The weights, on the CPU.

        Raises
        ------
        ChecksumMismatchError
            The file's sha256 differs from :attr:`sha256`.
        """
        return load_weights(self.path / WEIGHTS_NAME, self.sha256)
