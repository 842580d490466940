"""``vggt-uncertainty eval``: calibration, trajectory error and pose-graph benefit of a sequence.

vggt-uncertainty eval --data PATH [--gt groundtruth.txt]
    (--run-model [--weights tiny|PATH|HF-ID] [--head CKPT] [--params config/params.yaml]
     | --poses-topic TOPIC)
    [--scale-mode per-window-gt|none] [--sigma-rot R --sigma-trans T] --out DIR
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from vggt_uncertainty_ros.cli.options import add_backbone_arguments, backbone_spec

if TYPE_CHECKING:
    from vggt_uncertainty_ros.evaluate import EvalConfig
    from vggt_uncertainty_ros.model.spec import BackboneSpec

HELP = "evaluate predicted covariances, trajectory error (evo) and pose-graph benefit (GTSAM) of a sequence"

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vggt-uncertainty eval`` (defaults are :class:`EvalConfig`'s)."""
    parser.add_argument(
        "--data", type=Path, required=True, help="TUM folder, ROS 1 .bag, or ROS 2 bag (directory or .mcap)"
    )
    parser.add_argument(
        "--gt",
        type=Path,
        default=None,
        help="TUM groundtruth.txt (T_world_cam, metres); default: the data's own ground truth",
    )
    add_evaluation_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output directory")


def add_evaluation_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared with ``eval-many``: source, backbone, head, scale mode, sigma, thresholds."""
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.evaluate.config import EvalConfig, ScaleMode

    default = {name: f.default for name, f in EvalConfig.__dataclass_fields__.items()}
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--run-model", action="store_true", help="run backbone + head offline on the images")
    mode.add_argument(
        "--poses-topic",
        metavar="TOPIC",
        help="evaluate recorded PoseWithCovarianceStamped relative poses of the node on TOPIC",
    )
    add_backbone_arguments(parser)
    parser.add_argument(
        "--head",
        type=Path,
        default=None,
        help="head checkpoint (.safetensors); without it sigma is the constant --sigma-rot/--sigma-trans",
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="the node's params.yaml (window size, stride, keyframe rule); default config/params.yaml",
    )
    parser.add_argument("--image-topic", default=None, help="image topic of a bag (default: the reader's)")
    parser.add_argument(
        "--scale-mode",
        choices=[m.value for m in ScaleMode],
        default=default["scale_mode"].value,
        help="per-window-gt: s* fit per window (metres); none: measurements as published",
    )
    parser.add_argument(
        "--sigma-rot",
        type=float,
        default=default["sigma_rot_rad"],
        help="constant rotation sigma without --head, rad",
    )
    parser.add_argument(
        "--sigma-trans",
        type=float,
        default=default["sigma_trans"],
        help="constant translation sigma without --head, VGGT units (scaled like the translation)",
    )
    parser.add_argument(
        "--max-dt", type=float, default=default["max_dt_s"], help="ground-truth association tolerance, s"
    )
    parser.add_argument(
        "--huber-k", type=float, default=default["huber_k"], help="Huber threshold of the robust pose graph"
    )
    parser.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--no-plots", action="store_true", help="skip PNG plots and report.md")


def eval_config(args: argparse.Namespace, data: Path, backbone: BackboneSpec, *, gt: Path | None = None) -> EvalConfig:
    """The :class:`EvalConfig` the options of :func:`add_evaluation_arguments` name, for ``data``."""
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.evaluate import EvalConfig, SourceKind

    return EvalConfig(
        data=data,
        out_dir=args.out,
        source=SourceKind.POSES_TOPIC if args.poses_topic else SourceKind.RUN_MODEL,
        gt=gt,
        backbone=backbone,
        head=args.head,
        params=args.params,
        poses_topic=args.poses_topic,
        image_topic=args.image_topic,
        scale_mode=args.scale_mode,
        sigma_rot_rad=args.sigma_rot,
        sigma_trans=args.sigma_trans,
        max_dt_s=args.max_dt,
        huber_k=args.huber_k,
        max_frames=args.max_frames,
        plots=not args.no_plots,
    )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation; returns 0, or 1 when no window could be evaluated."""
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.evaluate import evaluate

    cfg = eval_config(args, args.data, backbone_spec(args), gt=args.gt)
    result = evaluate(cfg, progress=True)
    report = result.report
    if not result.ok:
        _log.error("no window evaluated; warnings: %s", report["warnings"])
        return 1
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.evaluate.plots import summary_lines

    print("\n".join(summary_lines(report)))
    _log.info("report: %s", result.files["report_json"])
    return 0
