"""``vggt-uncertainty demo``: synth -> train -> node over DDS -> record -> evaluate, in one go."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

HELP = "run the whole loop (synthetic data, training, the real node over DDS, evaluation) on an embedded default"

_log = logging.getLogger(__name__)

_TINY_NOTICE = (
    "Node loop backbone: the TINY randomly initialised VGGT configuration. Its poses are not meaningful "
    "(the same pose for every frame), so the node-loop table above only shows the plumbing. "
    "The default backbone is the CPU geometric one; set VGGT_WEIGHTS=<model.safetensors or facebook/VGGT-1B> "
    "(and use a GPU) to run the real model."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.demo import DemoConfig

    d = DemoConfig()
    parser.add_argument("--out", type=Path, default=d.out_dir, help="output folder (recreated)")
    parser.add_argument(
        "--backbone",
        default=os.environ.get("VGGT_WEIGHTS") or d.backbone,
        help="node-loop backbone: 'geometric' (CPU, no weights), 'tiny' (random VGGT, plumbing only), a local "
        "VGGT checkpoint or a Hugging Face id (default: $VGGT_WEIGHTS or geometric)",
    )
    parser.add_argument("--device", default=None, help="cpu | cuda (default: cuda with official weights if available)")
    parser.add_argument("--train-frames", type=int, default=d.train_frames)
    parser.add_argument("--eval-frames", type=int, default=d.eval_frames)
    parser.add_argument("--fps", type=float, default=d.fps, help="frame rate of the synthetic sequences (Hz)")
    parser.add_argument("--iterations", type=int, default=d.iterations, help="head training steps")
    parser.add_argument("--window-size", type=int, default=d.window_size)
    parser.add_argument("--window-stride", type=int, default=d.window_stride)
    parser.add_argument("--width", type=int, default=d.width)
    parser.add_argument("--height", type=int, default=d.height)


def _device(requested: str | None, backbone: str) -> str:
    if requested:
        return requested
    if backbone in ("tiny", "geometric"):
        return "cpu"
    # lazy: the CLI starts fast; only the command that runs imports its stack
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.demo import DemoConfig, run_demo
    from vggt_uncertainty_ros.evaluate.plots import summary_lines

    cfg = DemoConfig(
        out_dir=args.out,
        backbone=args.backbone,
        device=_device(args.device, args.backbone),
        train_frames=args.train_frames,
        eval_frames=args.eval_frames,
        fps=args.fps,
        iterations=args.iterations,
        window_size=args.window_size,
        window_stride=args.window_stride,
        width=args.width,
        height=args.height,
    )
    tiny = cfg.backbone == "tiny"
    _log.info(_TINY_NOTICE if tiny else "Backbone: %s on %s", *(() if tiny else (cfg.backbone, cfg.device)))
    result = run_demo(cfg)
    print(
        "\n".join(
            [
                "",
                "# Node output evaluated against ground truth"
                + (" (plumbing; see the notice below)" if tiny else f" (backbone {cfg.backbone})"),
                "",
                *summary_lines(result.report),
                "",
            ]
        )
    )
    print("# Calibration on unseen sequences (geometric backbone, recalibrated on validation)\n")
    print(result.unseen_table + "\n")
    print(f"Report with plots: {result.report_md}")
    print(f"Training charts:   {result.charts[0].parent if result.charts else '-'}")
    print(f"Head checkpoint:   {result.head}")
    if tiny:
        print("\n" + _TINY_NOTICE)
    return 0
