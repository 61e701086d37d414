"""Subcommands of the ``emotionkit`` command line, one module each."""

import argparse


def detector_options(text: str) -> dict:
    """Parse a ``--detector-options`` value: a JSON object of detector keyword arguments.

    Parameters
    ----------
    text : str
        What the user passed, e.g. ``'{"min_face_size": 40}'``.

    Returns
    -------
    dict

    Raises
    ------
    InvalidOptionError
        Not JSON, or JSON that is not an object.
    """
    import json

    from ..exceptions import InvalidOptionError

    try:
        options = json.loads(text)
    except json.JSONDecodeError:
        options = None
    if not isinstance(options, dict):
        raise InvalidOptionError(
            f"--detector-options must be a JSON object such as '{{\"min_face_size\": 20}}', got {text!r}."
        )
    return options


def add_head_flag(p: argparse.ArgumentParser) -> None:
    """Add ``--head NAME`` (``args.head``: ``None`` answers with the model's own labels)."""
    p.add_argument(
        "--head",
        default=None,
        metavar="NAME",
        help="answer with one of the model's extra output heads, e.g. ferplus (what the FER+ crowd would say a "
        "face shows), where it has one; default: its own labels (FER-2013's for the bundled models)",
    )


def add_flip_tta_flag(p: argparse.ArgumentParser) -> None:
    """Add ``--flip-tta`` / ``--no-flip-tta`` (``args.flip_tta``: ``None`` keeps the model's own choice)."""
    p.add_argument(
        "--flip-tta",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average each face with its mirror image (--no-flip-tta: one crop, half the classifier's work); "
        "default: as the model was scored (its card says which)",
    )
