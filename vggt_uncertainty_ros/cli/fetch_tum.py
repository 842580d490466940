"""``vggt-uncertainty fetch-tum NAME... --out DIR``: download TUM RGB-D sequences (resumable)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vggt_uncertainty_ros.data.fetch import TUM_BASE_URL, fetch_tum, read_checksums

HELP = "download TUM RGB-D sequences (.tgz extracted and/or .bag), resumable, checksum-verified"

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vggt-uncertainty fetch-tum``."""
    parser.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="sequences, e.g. freiburg1_xyz fr1_desk rgbd_dataset_freiburg3_long_office_household",
    )
    parser.add_argument("--out", type=Path, required=True, help="download folder")
    parser.add_argument(
        "--format",
        choices=["tgz", "bag", "both"],
        default="tgz",
        help="tgz (TUM folder, extracted), bag (ROS 1 bag) or both (default tgz)",
    )
    parser.add_argument("--base-url", default=TUM_BASE_URL, help=f"server or mirror root (default {TUM_BASE_URL})")
    parser.add_argument(
        "--checksums",
        type=Path,
        default=None,
        help="sha256sum-style file of expected SHA-256 per file name (verified when listed)",
    )
    parser.add_argument("--keep-archive", action="store_true", help="keep the .tgz after extracting it")
    parser.add_argument("--retries", type=int, default=3, help="resume attempts after a dropped connection")
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout, seconds")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Fetch the sequences; returns the exit status."""
    formats = ("tgz", "bag") if args.format == "both" else (args.format,)
    checksums = read_checksums(args.checksums) if args.checksums else None
    paths = fetch_tum(
        args.names,
        args.out,
        formats=formats,
        base_url=args.base_url,
        checksums=checksums,
        keep_archive=args.keep_archive,
        retries=args.retries,
        timeout_s=args.timeout,
        progress=not args.no_progress,
    )
    for path in paths:
        print(path)
    return 0
