"""``vggt-uncertainty calibrate``: post-hoc per-block variance factors on held-out sequences."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "fit per-block variance factors of a trained head on held-out sequences (robust quantile fit)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vggt-uncertainty calibrate``."""
    parser.add_argument("--run", type=Path, required=True, help="training run directory (its config.yaml is used)")
    parser.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="SEQ",
        help="held-out validation sequences (TUM folders or bags); several are recommended",
    )
    parser.add_argument("--out", type=Path, required=True, help="recalibrated head checkpoint to write")
    parser.add_argument("--head", default="best", help="best, last or a checkpoint path (default: best)")
    parser.add_argument(
        "--method",
        choices=("quantile", "coverage", "median", "mean"),
        default="quantile",
        help="quantile (default): match the 68 %% and 95 %% quantiles of d² to chi2(3)'s, robust to "
        "heavy tails; coverage: minimise the larger of the 68 %% and 95 %% coverage errors; "
        "median: f = median(d²)/2.366; mean: f = mean(d²)/3 (not robust)",
    )
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates of the reported intervals")


def run(args: argparse.Namespace) -> int:
    """Fit, print the before/after tables, write the checkpoint."""
    from vggt_uncertainty_ros.trainer.recalibrate import recalibrate_run

    report = recalibrate_run(args.run, args.data, args.out, head=args.head, method=args.method, n_boot=args.n_boot)
    print(report.table)
    print(f"\nwritten: {report.out}")
    return 0
