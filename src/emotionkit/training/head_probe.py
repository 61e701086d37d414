"""Fit a new output head on a trained network's frozen features (a linear probe), leaving every other weight as it was.

A warm start that adds a head (``emotionkit train --init-from NAME --epochs 0 --ferplus-head W``) trains nothing
else: the new head's rows of the output layer are fitted to their targets (the FER+ vote distributions) on the
features the network already computes for the un-augmented training faces, so the model's own head, and every
score on it, stay exactly as they were.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["output_layer", "layer_inputs", "fit_linear_head"]


def output_layer(model: nn.Module, width: int) -> nn.Linear:
    """The network's output layer: its last ``nn.Linear`` with ``width`` outputs.

    Parameters
    ----------
    model : torch.nn.Module
        The network.
    width : int
        Its number of outputs (every head's columns).

    Returns
    -------
    torch.nn.Linear

    Raises
    ------
    ValueError
        No linear layer has ``width`` outputs.

    Examples
    --------
    >>> output_layer(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 5)), 5).in_features
    3
    """
    found = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == width]
    if not found:
        raise ValueError(f"The network has no linear layer with {width} outputs to hold the heads' rows.")
    return found[-1]


def layer_inputs(model: nn.Module, x: torch.Tensor, layer: nn.Module, batch_size: int = 256) -> torch.Tensor:
    """What ``layer`` receives for each face of ``x``, with ``model`` in eval mode.

    Parameters
    ----------
    model : torch.nn.Module
        The network (run in eval mode, without gradients).
    x : torch.Tensor
        ``(N, C, H, W)`` preprocessed faces.
    layer : torch.nn.Module
        A submodule of ``model``.
    batch_size : int, default 256
        Faces per forward pass.

    Returns
    -------
    torch.Tensor
        ``(N, in_features)`` float32.
    """
    seen: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda _m, args, _out: seen.append(args[0].detach().float().flatten(1)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                model(x[start : start + batch_size])
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(seen) if seen else torch.empty((0, 0))


def fit_linear_head(
    features: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    *,
    steps: int = 300,
    batch_size: int = 1024,
    lr: float = 1e-3,
    l2: float = 1e-4,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``softmax(features @ weight.T + bias)`` to target distributions (cross-entropy, Adam, from the given start).

    Parameters
    ----------
    features : torch.Tensor
        ``(N, D)`` inputs of the layer.
    targets : torch.Tensor
        ``(N, K)`` distributions.
    weight, bias : torch.Tensor
        ``(K, D)`` and ``(K,)``: the start (e.g. the model's own head).
    steps, batch_size, lr, l2, seed
        Adam steps on random batches of faces, its learning rate, the L2 penalty on ``weight``, the batches' seed.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The fitted weight and bias.

    Raises
    ------
    ValueError
        Shapes that do not line up, or no faces.

    Examples
    --------
    >>> f = torch.eye(2).repeat(50, 1); t = torch.eye(2).repeat(50, 1)
    >>> w, b = fit_linear_head(f, t, torch.zeros(2, 2), torch.zeros(2), steps=200, lr=0.1)
    >>> (f @ w.T + b).argmax(1).tolist()[:2]
    [0, 1]
    """
    if features.ndim != 2 or targets.shape[0] != features.shape[0] or features.shape[0] == 0:
        raise ValueError(
            f"Need (N, D) features and (N, K) targets with N > 0; got {tuple(features.shape)} and {tuple(targets.shape)}."
        )
    if tuple(weight.shape) != (targets.shape[1], features.shape[1]) or tuple(bias.shape) != (targets.shape[1],):
        raise ValueError(f"The start must be ({targets.shape[1]}, {features.shape[1]}) and ({targets.shape[1]},).")
    gen = torch.Generator().manual_seed(seed)
    w = weight.detach().float().clone().requires_grad_()
    b = bias.detach().float().clone().requires_grad_()
    opt = torch.optim.Adam([w, b], lr)
    with torch.enable_grad():
        for _ in range(steps):
            idx = torch.randint(0, features.shape[0], (min(batch_size, features.shape[0]),), generator=gen)
            logp = (features[idx] @ w.T + b).log_softmax(1)
            loss = -(targets[idx] * logp).sum(1).mean() + l2 * (w**2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return w.detach(), b.detach()
