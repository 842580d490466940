"""``vggt-uncertainty charts``: the analysis' figures of a training run, from its local log."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "draw the training analysis' charts (PNG) and a summary table from a run directory"

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vggt-uncertainty charts``."""
    parser.add_argument("--run", type=Path, required=True, help="run directory (holds metrics.jsonl)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: RUN/charts)")


def run(args: argparse.Namespace) -> int:
    """Draw the charts; returns the exit status."""
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.trainer.charts import draw_charts

    out = args.out if args.out is not None else args.run / "charts"
    for path in draw_charts(args.run, out):
        _log.info("wrote %s", path)
    return 0
