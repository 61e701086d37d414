"""``emotionkit compare``: one table across finished runs (accuracy, class F1, time per epoch, size, speed)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``compare``."""
    p = subparsers.add_parser(
        "compare", help="compare finished runs: accuracy, F1, time per epoch, parameters, faces/s"
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories (emotionkit train --out)")
    p.add_argument("--out", default=None, help="also write comparison.json and comparison.md here")
    p.add_argument("--batch-size", type=int, default=64, help="batch of the inference-speed measurement (default 64)")
    p.add_argument("--no-speed", action="store_true", help="skip the inference-speed measurement")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the speed measurement")
    p.add_argument("--json", action="store_true", help="print JSON instead of the Markdown table")
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``compare``."""
    import torch

    from ..training.reports import compare_runs, comparison_markdown, write_comparison

    if args.threads:
        torch.set_num_threads(args.threads)
    comparison = compare_runs(args.runs, speed=not args.no_speed, batch_size=args.batch_size)
    if args.out:
        write_comparison(comparison, args.out)
    print(
        json.dumps(comparison, indent=2) if args.json else comparison_markdown(comparison),
        end="" if not args.json else "\n",
    )
    return 0
