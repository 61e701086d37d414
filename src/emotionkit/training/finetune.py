"""Two-phase fine-tuning: train the head on a frozen base, then unfreeze the top N layers at a lower rate.

The "layers" are the model's parameterised modules in registration (forward) order, with
``nn.Sequential`` / ``nn.ModuleList`` containers opened up: for timm's MobileNetV2 that is
``conv_stem, bn1``, the 17 inverted-residual blocks, ``conv_head, bn2`` and the classifier,
much as Keras counts the layers of ``MobileNetV2`` when fine-tuning its top.
"""

from __future__ import annotations

from torch import nn

__all__ = ["layer_groups", "head_index", "set_trainable"]


def layer_groups(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return ``(name, module)`` for each layer that owns parameters, in order.

    Parameters
    ----------
    model : torch.nn.Module
        Any model.

    Returns
    -------
    list of (str, torch.nn.Module)
        The innermost modules with parameters of their own, with their dotted names.

    Examples
    --------
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))
    >>> [name for name, _ in layer_groups(net)]
    ['0', '2.1']
    """
    out: list[tuple[str, nn.Module]] = []

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, (nn.Sequential, nn.ModuleList)):
                visit(full, child)
            elif any(True for _ in child.parameters()):
                out.append((full, child))

    visit("", model)
    return out


def head_index(groups: list[tuple[str, nn.Module]], model: nn.Module | None = None) -> int:
    """Index of the classification head among ``groups``: timm's ``get_classifier()``, else the last ``nn.Linear``.

    Parameters
    ----------
    groups : list of (str, torch.nn.Module)
        What :func:`layer_groups` returns.
    model : torch.nn.Module, optional
        The model, to ask timm models for their classifier.

    Returns
    -------
    int
        Index into ``groups``.
    """
    get_classifier = getattr(model, "get_classifier", None) if model is not None else None
    head = get_classifier() if callable(get_classifier) else None
    for i in range(len(groups) - 1, -1, -1):
        module = groups[i][1]
        if (head is not None and module is head) or (head is None and isinstance(module, nn.Linear)):
            return i
    return len(groups) - 1


def set_trainable(model: nn.Module, phase: int, unfreeze_layers: int | None = None) -> list[nn.Module]:
    """Freeze and unfreeze parameters for a fine-tuning phase; return the frozen layers.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    phase : {1, 2}
        1: only the head (and any layer after it) trains. 2: the head and the top ``unfreeze_layers``
        layers before it train (all layers when ``None``).
    unfreeze_layers : int, optional
        Layers below the head to unfreeze in phase 2.

    Returns
    -------
    list of torch.nn.Module
        The frozen layers; keep them in ``eval()`` while training so batch-norm statistics stay put.

    Examples
    --------
    >>> net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    >>> len(set_trainable(net, 1)), len(set_trainable(net, 2, unfreeze_layers=1))
    (2, 1)
    """
    groups = layer_groups(model)
    head = head_index(groups, model)
    if phase == 1:
        first_trainable = head
    elif unfreeze_layers is None:
        first_trainable = 0
    else:
        first_trainable = max(head - int(unfreeze_layers), 0)
    for p in model.parameters(recurse=False):  # e.g. a ViT's class token and position embedding: the bottom
        p.requires_grad_(first_trainable == 0)
    frozen = []
    for i, (_, module) in enumerate(groups):
        trainable = i >= first_trainable
        for p in module.parameters():
            p.requires_grad_(trainable)
        if not trainable:
            frozen.append(module)
    return frozen
