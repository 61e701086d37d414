"""Batch jobs over folders, globs, path lists and tables of paths.

One row per face, one row per photo without a face, one row per file that could not be read (with its error):
a bad file never stops the job. Results are written in parts as the job goes, so a killed job loses at most the
part in flight, and a rerun with the same output skips every photo already done.

>>> from emotionkit.batch import expand_inputs
>>> from emotionkit.io import sample_image_path
>>> [p.endswith("astronaut.jpg") for p in expand_inputs(str(sample_image_path()))]
[True]
"""

from __future__ import annotations

from .inputs import IMAGE_SUFFIXES, expand_inputs
from .local import BatchSummary, predict_files
from .rows import COLUMNS, model_identity, rows_for_error, rows_for_faces
from .sink import FORMATS, PartWriter, read_results

__all__ = [
    "BatchSummary",
    "COLUMNS",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "PartWriter",
    "expand_inputs",
    "model_identity",
    "predict_files",
    "read_results",
    "rows_for_error",
    "rows_for_faces",
]
