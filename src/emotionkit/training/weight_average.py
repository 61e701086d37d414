"""An exponential moving average of a network's weights during training (``emotionkit train --ema-decay``).

Averaging the weights a run passes through finds a flatter point than any one of them (Polyak and
Juditsky 1992; Izmailov et al. 2018 for SWA; timm's ``ModelEmaV2`` keeps one beside every ImageNet
run). Here the average starts from the weights the run starts from, so a warm restart's average
begins at the trained model and takes in the new steps slowly, and the learning rate's first rise
does not knock it out of its basin. The trainer scores the average on the validation faces beside
the raw weights after every epoch and keeps whichever is better (:mod:`emotionkit.training.trainer`).

Batch-norm running statistics are averaged alike, and the trainer's batch-norm re-estimation
afterwards replaces them when that scores better.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..exceptions import InvalidOptionError, InvalidWeightsError

__all__ = ["WeightAverage", "check_decay"]


def check_decay(decay: object, name: str = "The weight average's decay") -> float:
    """Return ``decay`` as a float, or raise a clear error when it is not a number in (0, 1).

    Parameters
    ----------
    decay : object
        The value given.
    name : str, optional
        What to call it in the message (``"ema_decay"`` for the trainer's setting).

    Returns
    -------
    float

    Raises
    ------
    InvalidOptionError
        ``decay`` is not a number strictly between 0 and 1.
    """
    if isinstance(decay, bool) or not isinstance(decay, float | int) or not 0.0 < float(decay) < 1.0:
        raise InvalidOptionError(
            f"{name} must be a number in (0, 1), e.g. 0.999 (an average of about the last 1000 steps); got {decay!r}."
        )
    return float(decay)


class WeightAverage:
    """``average = decay * average + (1 - decay) * weights`` after every optimiser step.

    Parameters
    ----------
    model : torch.nn.Module
        The network being trained; the average starts as a copy of its state.
    decay : float
        In (0, 1): the share of the old average kept at each step. About ``1 / (1 - decay)`` steps
        make up the average (0.999: the last thousand or so).

    Raises
    ------
    InvalidOptionError
        ``decay`` outside (0, 1).

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> average = WeightAverage(net, decay=0.5)
    >>> before = net.weight.detach().clone()
    >>> with torch.no_grad():
    ...     _ = net.weight.add_(2.0)
    >>> average.update(net)
    >>> with average.applied(net):  # net holds the average here: half the step
    ...     round(float((net.weight - before).max()), 4)
    1.0
    >>> round(float((net.weight - before).max()), 4)  # and its own weights afterwards
    2.0
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = check_decay(decay)
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Take one step of ``model``'s weights into the average.

        Parameters
        ----------
        model : torch.nn.Module
            The network the average was made from, after an optimiser step.
        """
        for key, value in model.state_dict().items():
            average = self.state[key]
            if average.is_floating_point():
                average.mul_(self.decay).add_(value.detach().to(average.dtype), alpha=1.0 - self.decay)
            else:  # counters such as batch norm's num_batches_tracked follow the weights
                average.copy_(value)
        self.updates += 1

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block, ``model`` holds the average; its own weights come back afterwards.

        Parameters
        ----------
        model : torch.nn.Module
            The network the average was made from.

        Yields
        ------
        torch.nn.Module
            ``model``, holding the averaged weights.
        """
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state)
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict[str, Any]:
        """Return what a checkpoint keeps to resume the average.

        Returns
        -------
        dict
            ``decay``, ``updates`` and the averaged tensors (``state``).
        """
        return {"decay": self.decay, "updates": self.updates, "state": self.state}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`'s output.

        Parameters
        ----------
        saved : dict
            What :meth:`state_dict` returned for the same network.

        Raises
        ------
        InvalidWeightsError
            ``saved`` has other tensors, or other shapes, than this average.
        """
        tensors = saved.get("state") if isinstance(saved, dict) else None
        if not isinstance(tensors, dict) or set(tensors) != set(self.state):
            raise InvalidWeightsError(
                "The checkpoint's weight average does not match this network's tensors; resume with the same "
                "backbone and config, or train into a new --out."
            )
        for key, value in tensors.items():
            if tuple(value.shape) != tuple(self.state[key].shape):
                raise InvalidWeightsError(
                    f"The checkpoint's weight average has {key!r} of shape {tuple(value.shape)}, the network "
                    f"{tuple(self.state[key].shape)}; resume with the same backbone and config."
                )
            self.state[key].copy_(value)
        self.updates = int(saved.get("updates", 0))
