"""``vggt-uncertainty train``: train the uncertainty head on cached frozen-backbone features."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from vggt_uncertainty_ros.errors import ConfigError

HELP = "train the pose-uncertainty head (feature cache, validation, checkpoints, resume)"

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vggt-uncertainty train``."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML config (e.g. config/train.yaml); with --resume, defaults to OUT/config.yaml",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one key, e.g. --set optim.lr=1e-3 (repeatable; value parsed as YAML)",
    )
    parser.add_argument("--out", type=Path, default=None, help="run directory (overrides output.run_dir)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in the run directory from its state/latest"
    )


def run(args: argparse.Namespace) -> int:
    """Load the config, train, log where the results are; returns the exit status."""
    # lazy: the CLI starts fast; only the command that runs imports its stack
    from vggt_uncertainty_ros.trainer import load_config, train

    if int(os.environ.get("WORLD_SIZE", "1") or "1") > 1:
        raise ConfigError(
            "train runs in one process (the head is small); under torchrun run `vggt-uncertainty cache` "
            "with the same config, then `vggt-uncertainty train` alone: it reuses the finished cache"
        )
    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"output.run_dir={args.out}")
    config_path = args.config
    if args.resume and config_path is None:
        if args.out is None:
            raise ConfigError("--resume needs --out RUN_DIR (or --config with output.run_dir)")
        config_path = args.out / "config.yaml"
    cfg = load_config(config_path, overrides)
    result = train(cfg, resume=args.resume)
    _log.info(
        "%s after %d steps; best checkpoint %s (score %.3f at step %d)",
        result.status,
        result.step,
        Path(result.run_dir) / "checkpoints" / "best.safetensors",
        result.best_score,
        result.best_step,
    )
    return 130 if result.status == "interrupted" else 0
