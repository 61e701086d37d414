"""Run the example scripts that draw the documentation's figures into ``generated/figures/``.

The figures are never pasted in by hand: every build runs the scripts below (in
parallel, no network), so they show what the code does today. A script that
fails is a warning (an error under ``-W``) with the end of its output.

Set ``EMOTIONKIT_DOCS_REUSE_FIGURES=1`` to keep figures that already exist
(handy while editing prose; CI never sets it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sphinx.util import logging

logger = logging.getLogger(__name__)

#: script (relative to the repository root) -> (extra arguments, figures it writes)
SCRIPTS: dict[str, tuple[list[str], list[str]]] = {
    "examples/annotate_photo.py": (["--allow-untrained"], ["annotated_photo.png"]),
    "examples/gradcam_overlays.py": (["--allow-untrained"], ["gradcam_photo.png", "gradcam_faces.png"]),
    "examples/training_report.py": ([], ["training_curves.png", "confusion_matrix.png", "per_class_f1.png"]),
}
TIMEOUT_S = 300


def generate(app: Any) -> None:
    """``builder-inited``: run every script, wait for all, report failures."""
    root = Path(app.srcdir).parent
    out = Path(app.srcdir) / "generated" / "figures"
    out.mkdir(parents=True, exist_ok=True)
    reuse = os.environ.get("EMOTIONKIT_DOCS_REUSE_FIGURES", "") not in ("", "0")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    running = []
    for script, (args, figures) in SCRIPTS.items():
        if reuse and all((out / f).is_file() for f in figures):
            continue
        cmd = [sys.executable, str(root / script), *args, "--out", str(out)]
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        running.append((script, figures, proc, time.perf_counter()))
    for script, figures, proc, start in running:
        try:
            output, _ = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            logger.warning(f"[ek_figures] {script} ran past {TIMEOUT_S} s and was stopped:\n{output[-2000:]}")
            continue
        seconds = time.perf_counter() - start
        missing = [f for f in figures if not (out / f).is_file()]
        if proc.returncode != 0 or missing:
            logger.warning(
                f"[ek_figures] {script} failed (exit {proc.returncode}, missing {missing}):\n{output[-3000:]}"
            )
        else:
            logger.info(f"[ek_figures] {script}: {', '.join(figures)} in {seconds:.1f} s")


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
