"""The ``emotionkit`` command line: one module per subcommand under :mod:`emotionkit.commands`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .exceptions import EmotionKitError, one_line

__all__ = ["main", "COMMANDS"]

#: Subcommand name -> module under ``emotionkit.commands`` defining ``add_parser(subparsers)`` and ``run(args) -> int``.
COMMANDS: dict[str, str] = {
    "predict": "predict",
    "batch": "batch",
    "models": "models",
    "train": "train",
    "evaluate": "evaluate",
    "compare": "compare",
    "explain": "explain",
    "video": "video",
    "export": "export",
}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand registered."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="emotionkit", description="Facial expression recognition for photos, video and face crops."
    )
    parser.add_argument("--version", action="version", version=f"emotionkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in COMMANDS.values():
        mod = importlib.import_module(f".commands.{module}", __package__)
        sub = mod.add_parser(subparsers)
        sub.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 for bad input, with a one-line message; 130 on Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args._argv = argv  # for commands that start copies of themselves (train --nproc)
    try:
        return int(args._run(args) or 0)
    except EmotionKitError as exc:
        print(f"emotionkit {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"emotionkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `emotionkit models cnn | head`: the reader left; no traceback
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python would flush into it again
        except (OSError, ValueError):
            pass
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
