"""Extra output heads: a second label set read from the same network (no torch import: the Keras side uses it too).

A model's network ends in one linear layer. Its first ``len(labels)`` outputs are the model's own
classes (FER-2013's labels for the bundled models); a model may carry more columns after them, each
group an *extra head* with its own name, class names and softmax temperature. The bundled use is
``"ferplus"``: the same seven emotions trained on the FER+ crowd's vote distribution, which is what
people agree a face shows rather than FER-2013's single label (the two agree on about two faces in
three). One network then answers both questions for the price of one.

``config.json`` records them as::

    "heads": {"ferplus": {"labels": ["angry", ...], "temperature": 1.0}}

and the network's output width is ``len(labels) + sum(len(head["labels"]))``, columns in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import InvalidOptionError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "FERPLUS_HEAD",
    "OutputHead",
    "parse_heads",
    "heads_to_dict",
    "output_width",
    "head_columns",
    "match_heads",
    "own_head_state",
    "output_layer_keys",
]

#: Name of the head trained on the FER+ vote distribution.
FERPLUS_HEAD = "ferplus"


@dataclass(frozen=True)
class OutputHead:
    """One extra head: its class names and calibrated softmax temperature.

    Parameters
    ----------
    labels : tuple of str
        Class names, in the head's column order.
    temperature : float, default 1.0
        Softmax temperature of this head's logits.
    """

    labels: tuple[str, ...]
    temperature: float = 1.0


def parse_heads(raw: Any) -> dict[str, OutputHead]:
    """Validate a ``"heads"`` mapping (as ``config.json`` stores it) into :class:`OutputHead` objects.

    Parameters
    ----------
    raw : mapping or None
        ``{name: {"labels": [...], "temperature": float}}``; ``None`` means no extra head.

    Returns
    -------
    dict
        Head name to :class:`OutputHead`, in the order of the columns.

    Raises
    ------
    InvalidOptionError
        Not a mapping of names to objects with a non-empty ``labels`` list of names and a positive
        ``temperature``; the message says which part is wrong.

    Examples
    --------
    >>> parse_heads({"ferplus": {"labels": ["happy", "sad"]}})
    {'ferplus': OutputHead(labels=('happy', 'sad'), temperature=1.0)}
    """
    if raw is None:
        return {}
    if isinstance(raw, Mapping) and all(isinstance(v, OutputHead) for v in raw.values()):
        return dict(raw)
    if not isinstance(raw, Mapping):
        raise InvalidOptionError(f"'heads' must map head names to objects, got {type(raw).__name__}.")
    heads = {}
    for name, head in raw.items():
        if not isinstance(name, str) or not name:
            raise InvalidOptionError(f"A head name must be a non-empty string, got {name!r}.")
        labels = head.get("labels") if isinstance(head, Mapping) else None
        if not (isinstance(labels, list | tuple) and labels and all(isinstance(x, str) for x in labels)):
            raise InvalidOptionError(f"Head {name!r} needs 'labels', a non-empty list of class names; got {head!r}.")
        temperature = head.get("temperature", 1.0)
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not temperature > 0:
            raise InvalidOptionError(f"Head {name!r} needs a positive 'temperature', got {temperature!r}.")
        heads[name] = OutputHead(tuple(labels), float(temperature))
    return heads


def heads_to_dict(heads: Mapping[str, OutputHead]) -> dict[str, dict[str, Any]]:
    """The JSON form of :func:`parse_heads`'s result (what ``config.json`` stores).

    Parameters
    ----------
    heads : mapping
        Head name to :class:`OutputHead`.

    Returns
    -------
    dict

    Examples
    --------
    >>> heads_to_dict({"ferplus": OutputHead(("happy",), 0.9)})
    {'ferplus': {'labels': ['happy'], 'temperature': 0.9}}
    """
    return {name: {"labels": list(h.labels), "temperature": h.temperature} for name, h in heads.items()}


def output_width(labels: Sequence[str], heads: Mapping[str, OutputHead]) -> int:
    """Outputs of a network with these classes and extra heads.

    Parameters
    ----------
    labels : sequence of str
        The model's own classes (the first columns).
    heads : mapping
        Its extra heads.

    Returns
    -------
    int

    Examples
    --------
    >>> output_width(["a", "b"], {"x": OutputHead(("a", "b", "c"))})
    5
    """
    return len(labels) + sum(len(h.labels) for h in heads.values())


def head_columns(labels: Sequence[str], heads: Mapping[str, OutputHead], head: str | None) -> slice:
    """The output columns of ``head`` (``None``: the model's own classes).

    Parameters
    ----------
    labels : sequence of str
        The model's own classes.
    heads : mapping
        Its extra heads, in column order.
    head : str or None
        Which head.

    Returns
    -------
    slice

    Raises
    ------
    InvalidOptionError
        ``head`` is not one of the model's heads (the message lists them).

    Examples
    --------
    >>> head_columns(["a", "b"], {"x": OutputHead(("a", "b"))}, "x")
    slice(2, 4, None)
    """
    if head is None:
        return slice(0, len(labels))
    start = len(labels)
    for name, spec in heads.items():
        if name == head:
            return slice(start, start + len(spec.labels))
        start += len(spec.labels)
    have = ", ".join(repr(n) for n in heads) or "none"
    raise InvalidOptionError(
        f"This model has no output head {head!r}; its extra heads: {have}. Use head=None for its own classes"
        + (", or one of those." if heads else " (a model gets a 'ferplus' head from emotionkit train --ferplus-head).")
    )


def _row_sources(
    source_labels: Sequence[str],
    source_heads: Mapping[str, OutputHead],
    labels: Sequence[str],
    heads: Mapping[str, OutputHead],
) -> list[int | None]:
    """For each output row of the new layout, the source row it starts from (``None``: none fits)."""
    own = {name: i for i, name in enumerate(source_labels)}
    rows: list[int | None] = [own.get(name) for name in labels]
    for head, spec in heads.items():
        cols = head_columns(source_labels, source_heads, head) if head in source_heads else None
        same = {n: cols.start + i for i, n in enumerate(source_heads[head].labels)} if cols is not None else {}
        rows += [same.get(name, own.get(name)) for name in spec.labels]
    return rows


def output_layer_keys(state: Mapping[str, Any], width: int) -> list[str]:
    """The state-dict keys of a network's output layer: the only 2-D weight with ``width`` rows, and its bias.

    Parameters
    ----------
    state : mapping
        A state dict (any key order; torch tensors or arrays).
    width : int
        The network's number of outputs (every head's columns).

    Returns
    -------
    list of str
        ``[weight_key]`` or ``[weight_key, bias_key]``.

    Raises
    ------
    InvalidOptionError
        No single 2-D weight has ``width`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> output_layer_keys({"body.weight": np.zeros((3, 2)), "head.weight": np.zeros((5, 3)), "head.bias": np.zeros(5)}, 5)
    ['head.weight', 'head.bias']
    """
    weights = [
        k for k, v in state.items() if k.endswith("weight") and getattr(v, "ndim", 0) == 2 and v.shape[0] == width
    ]
    if len(weights) != 1:
        raise InvalidOptionError(
            f"Cannot tell the output layer of a {width}-output network: 2-D weights with {width} rows: "
            f"{weights or 'none'}. The weights do not match the model's labels and heads."
        )
    bias = weights[0].removesuffix("weight") + "bias"
    return [weights[0], bias] if bias in state else weights


def match_heads(
    state: dict[str, torch.Tensor], source: Any, labels: Sequence[str], heads: Mapping[str, OutputHead]
) -> dict[str, torch.Tensor]:
    """Re-lay a warm start's output layer for another set of heads.

    A source network's output layer has one row per output (its ``labels``, then its heads'); the new
    network's rows start from the source row of the same head and class, or else from the source's own
    class of that name (a new ``"ferplus"`` head starts as a copy of the FER-2013 head), or else zero.
    Every other tensor is returned as it was.

    Parameters
    ----------
    state : dict
        The source's state dict.
    source : InferenceModel
        The source model (anything with its ``labels`` and ``heads``).
    labels : sequence of str
        The new model's own classes.
    heads : mapping
        The new model's extra heads.

    Returns
    -------
    dict
        ``state`` with the output layer's tensors re-laid (unchanged when the layouts are the same).

    Raises
    ------
    InvalidOptionError
        The output layer cannot be told in ``state``.
    """
    layout = [tuple(labels), *((n, h.labels) for n, h in heads.items())]
    if layout == [tuple(source.labels), *((n, h.labels) for n, h in source.heads.items())]:
        return state
    rows = _row_sources(source.labels, source.heads, labels, heads)
    out = dict(state)
    for key in output_layer_keys(state, output_width(source.labels, source.heads)):
        tensor = state[key]
        new = tensor.new_zeros((len(rows), *tensor.shape[1:]))
        for i, row in enumerate(rows):
            if row is not None:
                new[i] = tensor[row]
        out[key] = new
    return out


def own_head_state(state: Mapping[str, Any], labels: Sequence[str], heads: Mapping[str, OutputHead]) -> dict[str, Any]:
    """A state dict with its output layer cut to the model's own classes: what a one-head copy (a Keras twin) loads.

    The output layer (:func:`output_layer_keys`) keeps its first ``len(labels)`` rows.

    Parameters
    ----------
    state : mapping
        A state dict whose network has ``output_width(labels, heads)`` outputs (in any key order).
    labels : sequence of str
        The model's own classes.
    heads : mapping
        Its extra heads.

    Returns
    -------
    dict
        ``state`` unchanged without heads, else with the output layer's rows cut.

    Raises
    ------
    InvalidOptionError
        The output layer cannot be told in ``state``.

    Examples
    --------
    >>> import numpy as np
    >>> state = {"body.weight": np.zeros((3, 2)), "head.weight": np.zeros((5, 3)), "head.bias": np.zeros(5)}
    >>> cut = own_head_state(state, ["a", "b"], {"x": OutputHead(("a", "b", "c"))})
    >>> [tuple(v.shape) for v in cut.values()]
    [(3, 2), (2, 3), (2,)]
    """
    out = dict(state)
    if heads:
        for key in output_layer_keys(state, output_width(labels, heads)):
            out[key] = out[key][: len(labels)]
    return out
