"""Generate ``generated/cli.md``: the ``--help`` of ``emotionkit`` and of each subcommand, from the real parser.

A subcommand whose module does not exist yet is listed as missing (info line, no warning),
so the page always matches ``emotionkit.cli.COMMANDS`` as it is.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from pathlib import Path
from typing import Any

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _help(parser: argparse.ArgumentParser) -> str:
    # A fixed width keeps the page stable whatever the terminal.
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100, max_help_position=36)
    return parser.format_help().rstrip()


def render() -> str:
    """Return the Markdown of the command-line reference."""
    from emotionkit import __version__, cli

    top = argparse.ArgumentParser(
        prog="emotionkit", description="Facial expression recognition for photos, video and face crops."
    )
    subparsers = top.add_subparsers(dest="command", metavar="COMMAND")
    parts: list[str] = []
    for name, module in cli.COMMANDS.items():
        full = f"emotionkit.commands.{module}"
        if importlib.util.find_spec(full) is None:
            logger.info(f"[ek_cli] {full} does not exist (yet); `emotionkit {name}` left out")
            continue
        mod = importlib.import_module(full)
        sub = mod.add_parser(subparsers)
        sub.prog = f"emotionkit {name}"
        parts.append(f"## `emotionkit {name}`\n\n```text\n{_help(sub)}\n```\n")
    out = [
        "# Command line",
        "",
        f"Generated from the parser of emotionkit {__version__} at documentation build time.",
        "Every command exits with status 2 and a one-line message on bad input.",
        "",
        f"```text\n{_help(top)}\n```",
        "",
        *parts,
    ]
    return "\n".join(out)


def generate(app: Any) -> None:
    """``builder-inited``: write ``generated/cli.md``."""
    path = Path(app.srcdir) / "generated" / "cli.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render()
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
