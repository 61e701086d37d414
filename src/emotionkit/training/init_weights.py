"""Starting weights from a local file (``emotionkit train --init PATH``): strict by name, a fresh head.

The file is a safetensors file or a torch state dict (``.pt``/``.pth``, loaded with
``weights_only=True``) whose tensor names are the backbone's own, as a converter in ``tools/``
writes them (e.g. ``tools/convert_imagenet_mobilenetv2.py``). Every tensor of the model must be
in the file with the same shape, except the classification head's, which may be absent (a
pretrained network's head has other classes; a fresh 7-class head is trained). Anything else
missing, any extra tensor or any shape mismatch is refused with the names listed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..exceptions import IncompatibleComponentsError, InvalidOptionError
from ..weights import sha256sum
from .finetune import head_index, layer_groups

__all__ = ["read_init_file", "load_init_weights", "is_init_path"]

_LISTED = 8  # names shown per problem in an error message


def is_init_path(init: str) -> bool:
    """Whether a ``--init`` value names a file rather than ``scratch`` / ``imagenet``.

    Parameters
    ----------
    init : str
        The value of ``--init`` (``TrainConfig.init``).

    Returns
    -------
    bool

    Examples
    --------
    >>> is_init_path("scratch"), is_init_path("imagenet"), is_init_path("start.safetensors")
    (False, False, True)
    """
    return init not in ("scratch", "imagenet")


def read_init_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read the tensors and the metadata of a starting-weights file.

    Parameters
    ----------
    path : str or Path
        A ``.safetensors`` file or a torch state dict (``.pt``, ``.pth``, ``.bin``; a dict
        holding a ``state_dict`` or ``model`` entry is opened up).

    Returns
    -------
    (dict, dict)
        Tensors by name, and the file's string metadata (safetensors) or ``{}``.

    Raises
    ------
    InvalidOptionError
        The file does not exist or holds no tensors.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidOptionError(
            f"--init {str(path)!r}: no such file. Give 'scratch', 'imagenet' or a local .safetensors/.pt state dict "
            "(tools/convert_imagenet_mobilenetv2.py writes one)."
        )
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return tensors, meta
    try:
        obj: Any = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidOptionError(
            f"--init {str(path)!r} is neither safetensors nor a torch state dict that loads with weights_only=True: "
            f"{exc}"
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InvalidOptionError(f"--init {str(path)!r} holds no tensors (got {type(obj).__name__}).")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, {}


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LISTED])
    return shown + (f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else "")


def load_init_weights(model: nn.Module, path: str | Path, *, backbone: str = "the backbone") -> dict[str, Any]:
    """Load a starting-weights file into ``model``: every tensor but the head's must match by name and shape.

    Parameters
    ----------
    model : torch.nn.Module
        The freshly built backbone.
    path : str or Path
        See :func:`read_init_file`.
    backbone : str
        The backbone's name, for messages.

    Returns
    -------
    dict
        What was loaded, for the model's record: ``path``, ``sha256``, ``tensors``, ``fresh``
        (the head's tensors that kept their new initialisation) and the file's ``metadata``.

    Raises
    ------
    IncompatibleComponentsError
        Tensors missing from the file (other than the head's), tensors the model does not have,
        or shapes that differ; the message names them.

    Examples
    --------
    >>> import tempfile, os
    >>> from safetensors.torch import save_file
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4, 7))
    >>> path = os.path.join(tempfile.mkdtemp(), "start.safetensors")
    >>> save_file({"0.weight": torch.ones(4, 1, 3, 3), "0.bias": torch.zeros(4)}, path)
    >>> info = load_init_weights(net, path)
    >>> info["fresh"], float(net[0].weight.detach().sum())
    (['2.bias', '2.weight'], 36.0)
    """
    tensors, meta = read_init_file(path)
    own = model.state_dict()
    groups = layer_groups(model)
    head_name = groups[head_index(groups, model)][0] if groups else ""
    head_keys = {k for k in own if head_name and k.startswith(head_name + ".")}
    missing = sorted(k for k in own if k not in tensors and k not in head_keys)
    unexpected = sorted(k for k in tensors if k not in own)
    shapes = sorted(
        f"{k} {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in tensors and tuple(tensors[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing from the file ({len(missing)}): {_names(missing)}")
        if unexpected:
            problems.append(f"not in the model ({len(unexpected)}): {_names(unexpected)}")
        if shapes:
            problems.append(f"shapes differ, file vs model ({len(shapes)}): {_names(shapes)}")
        raise IncompatibleComponentsError(
            f"--init {str(path)!r} does not fit {backbone} as configured: {'; '.join(problems)}. "
            "Only the head may be absent. Check --config (variant, in_channels) against the file, or convert the "
            "source with a tools/ script so its tensor names are the backbone's."
        )
    state = {k: tensors[k].to(own[k].dtype) if k in tensors else own[k] for k in own}
    model.load_state_dict(state, strict=True)
    return {
        "path": str(path),
        "sha256": sha256sum(path),
        "tensors": len([k for k in own if k in tensors]),
        "fresh": sorted(k for k in own if k not in tensors),
        "metadata": meta,
    }
