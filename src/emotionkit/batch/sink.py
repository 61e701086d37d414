"""Results written in parts: each part appears whole (written aside, then renamed) or not at all.

A job's output is a folder of ``part-000000.parquet`` (or ``.jsonl``) files, the layout Spark, Ray and
``pyarrow.dataset`` read as one table. Resuming reads back which paths the finished parts hold.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..exceptions import InvalidOptionError, MissingDependencyError

__all__ = ["FORMATS", "PartWriter", "arrow_schema", "read_results", "import_pyarrow"]

#: Output formats: Parquet (needs pyarrow: ``pip install "emotionkit[batch]"``) and JSON lines.
FORMATS = ("parquet", "jsonl")

_PART = re.compile(r"^part-(\d{6})\.(parquet|jsonl)$")


def import_pyarrow() -> Any:
    """Import pyarrow (with ``pyarrow.parquet``), or say how to install it.

    Returns
    -------
    module
        :mod:`pyarrow`.

    Raises
    ------
    MissingDependencyError
        pyarrow is not installed.
    """
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingDependencyError(
            'Parquet needs pyarrow: pip install "emotionkit[batch]" (or write JSON lines with --format jsonl).'
        ) from exc
    return pyarrow


def arrow_schema(columns: Sequence[str]) -> Any:
    """The Arrow schema of result rows: text columns, ``face`` as int32, every other column float64.

    Parameters
    ----------
    columns : sequence of str
        The rows' columns, in order.

    Returns
    -------
    pyarrow.Schema
    """
    pa = import_pyarrow()
    text = {"path", "label", "model", "weights_sha256", "error"}
    return pa.schema([(c, pa.string() if c in text else pa.int32() if c == "face" else pa.float64()) for c in columns])


def _parts(folder: Path) -> list[tuple[int, Path]]:
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            match = _PART.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
    return sorted(found)


def _format_of(folder: Path, requested: str | None) -> str:
    formats = {path.suffix[1:] for _, path in _parts(folder)}
    if len(formats) > 1:
        raise InvalidOptionError(f"The output folder {str(folder)!r} mixes Parquet and JSON-lines parts.")
    existing = formats.pop() if formats else None
    if requested is not None and requested not in FORMATS:
        raise InvalidOptionError(f"Unknown output format {requested!r}. Allowed: {', '.join(FORMATS)}.")
    if existing and requested and existing != requested:
        raise InvalidOptionError(
            f"The output folder {str(folder)!r} already holds {existing} parts; asked for {requested}. "
            f"Resume with --format {existing}, or write to a new folder."
        )
    return existing or requested or "parquet"


def _read_part(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        with open(path, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    return import_pyarrow().parquet.read_table(path).to_pylist()


def read_results(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Read every finished part of a job's output folder, in the order the parts were written.

    Parameters
    ----------
    folder : str or os.PathLike
        What the job was given as ``out``.

    Returns
    -------
    list of dict
        One dict per row (see :func:`emotionkit.batch.columns`).
    """
    return [row for _, path in _parts(Path(folder)) for row in _read_part(path)]


class PartWriter:
    """Append rows to a job's output folder, one whole part at a time.

    Parameters
    ----------
    folder : str or os.PathLike
        Created if missing. Parts already there are kept, and new ones are numbered after them.
    columns : sequence of str
        The columns of every row, in order.
    format : {"parquet", "jsonl"}, optional
        Default: the format of the parts already there, else Parquet.

    Raises
    ------
    InvalidOptionError
        ``folder`` is a file, holds parts of another format than ``format``, or ``format`` is unknown.
    MissingDependencyError
        Parquet without pyarrow.
    """

    def __init__(self, folder: str | os.PathLike, columns: Sequence[str], format: str | None = None) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise InvalidOptionError(
                f"The output {str(self.folder)!r} is a file; results are written as a folder of parts. "
                "Pass a folder path (it is created)."
            )
        self.format = _format_of(self.folder, format)
        if self.format == "parquet":
            import_pyarrow()
        self.columns = tuple(columns)
        parts = _parts(self.folder)
        self._next = parts[-1][0] + 1 if parts else 0

    def done_paths(self) -> set[str]:
        """The paths that finished parts already hold (the photos a resumed job skips).

        Returns
        -------
        set of str
        """
        return {row["path"] for _, path in _parts(self.folder) for row in _read_part(path)}

    def write(self, rows: Sequence[dict[str, Any]]) -> Path | None:
        """Write ``rows`` as the next part, whole or not at all (staged, then renamed).

        Parameters
        ----------
        rows : sequence of dict
            Rows with the writer's columns.

        Returns
        -------
        pathlib.Path or None
            The part written; ``None`` (and nothing written) for no rows.
        """
        if not rows:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"part-{self._next:06d}.{self.format}"
        staging = self.folder / f".{final.name}.tmp"
        if self.format == "jsonl":
            with open(staging, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps({c: row.get(c) for c in self.columns}) + "\n")
        else:
            pa = import_pyarrow()
            pa.parquet.write_table(pa.Table.from_pylist(list(rows), schema=arrow_schema(self.columns)), staging)
        os.replace(staging, final)
        self._next += 1
        return final

    def _schema(self, pa: Any) -> Any:
        text = {"path", "label", "model", "weights_sha256", "error"}
        fields = [(c, pa.string() if c in text else pa.int32() if c == "face" else pa.float64()) for c in self.columns]
        return pa.schema(fields)


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    """Split ``items`` into lists of at most ``size``."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
