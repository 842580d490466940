"""``vggt-uncertainty synth``: render a synthetic TUM-style sequence (argument parsing only)."""

from __future__ import annotations

import argparse
import logging

HELP = "render a synthetic textured-room sequence as a TUM folder, a ROS 1 bag and/or a ROS 2 bag"

_log = logging.getLogger(__name__)


def _formats(text: str) -> list[str]:
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.data.synth import FORMATS

    items = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in FORMATS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"unknown format(s) {bad or text!r}; choose from {','.join(FORMATS)}")
    return items


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``synth``'s options."""
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0, help="scene/motion/stamp seed (default 0)")
    parser.add_argument("--frames", type=int, default=300, help="number of images (default 300)")
    parser.add_argument(
        "--format",
        type=_formats,
        default=["tum", "ros1", "ros2"],
        help="comma-separated: tum, ros1, ros2, ros2-mcap (default tum,ros1,ros2)",
    )
    parser.add_argument("--fps", type=float, default=30.0, help="image rate in Hz (default 30)")
    parser.add_argument("--width", type=int, default=640, help="image width in pixels (default 640)")
    parser.add_argument("--height", type=int, default=480, help="image height in pixels (default 480)")
    parser.add_argument(
        "--ros2-storage", choices=("sqlite3", "mcap"), default="sqlite3", help="storage of the ros2 bag"
    )
    parser.add_argument(
        "--difficulty",
        type=float,
        default=None,
        metavar="LEVEL",
        help="image degradations of level 0..1 (blur, noise, exposure/lighting changes, low texture, "
        "fast rotations, occluders), per-frame parameters in OUT/difficulty.csv (default: clean renders)",
    )


def run(args: argparse.Namespace) -> int:
    """Generate the sequence with a progress bar; returns 0."""
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from tqdm import tqdm

    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.data.synth import generate

    with tqdm(total=args.frames, unit="frame", desc="synth") as bar:
        result = generate(
            args.out,
            args.seed,
            args.frames,
            formats=args.format,
            width=args.width,
            height=args.height,
            fps=args.fps,
            ros2_storage=args.ros2_storage,
            difficulty=args.difficulty,
            progress=lambda n: bar.update(n - bar.n),
        )
    for fmt, path in result.paths.items():
        _log.info("%s: %s", fmt, path)
    _log.info(
        "%d frames in %.1f s (%.1f frames/s, rendering %.1f s)",
        result.n_frames,
        result.elapsed_s,
        result.n_frames / max(result.elapsed_s, 1e-9),
        result.render_s,
    )
    return 0
