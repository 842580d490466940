"""``vggt-uncertainty bench-unseen``: calibration on sequences the head never saw (issue 12)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vggt_uncertainty_ros.cli.benchmarks import import_benchmark

HELP = "train on synthetic sequences, recalibrate on validation, evaluate unseen test sequences (DIR/unseen.json)"

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's options."""
    parser.add_argument("--backbone", default="geometric", help="backbone (default: geometric, CPU)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="writes DIR/unseen.json")
    parser.add_argument("--small", action="store_true", help="the CI variant (3/1/2 short sequences)")
    parser.add_argument("--seed", type=int, default=0, help="base seed of scenes, renders and training")
    parser.add_argument("--steps", type=int, help="head training steps (default: config)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes synthesising and scoring sequences (default 2; 1: serial)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the report; exit status 0."""
    unseen = import_benchmark("unseen")
    unseen.main_threads(args.threads)
    overrides: dict[str, object] = {"backbone": args.backbone, "seed": args.seed}
    if args.steps is not None:
        if args.steps < 1:
            raise SystemExit("--steps must be >= 1")
        overrides["steps"] = args.steps
    if args.workers < 1:
        raise SystemExit("--workers must be >= 1")
    cfg = unseen.UnseenConfig.small(**overrides) if args.small else unseen.UnseenConfig(**overrides)
    doc, details = unseen.run_unseen(cfg, args.out, progress=lambda text: _log.info("%s", text), workers=args.workers)
    print(unseen.format_report(doc, details))
    _log.info("wrote %s", args.out / "unseen.json")
    return 0
