"""``vggt-uncertainty cache``: the trainer's feature-cache step on its own, sharded under torchrun.

Alone it runs in one process; ``torchrun --nproc_per_node N vggt-uncertainty cache ...`` splits
the windows among N ranks (see :mod:`vggt_uncertainty_ros.trainer.shards`). A later
``vggt-uncertainty train`` with the same config finds every sequence cached.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "build the trainer's backbone feature cache (sharded across ranks under torchrun; resumable)"

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vggt-uncertainty cache``."""
    parser.add_argument("--config", type=Path, default=None, help="trainer YAML config (e.g. config/train.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=None, help="cache directory (overrides output.cache_dir)")
    parser.add_argument(
        "--shard-windows",
        type=int,
        default=0,
        help="windows per shard (default 64; keep it equal between runs that must match bit for bit)",
    )
    parser.add_argument("--keep-shards", action="store_true", help="keep the shard files after merging")


def run(args: argparse.Namespace) -> int:
    """Build the cache; returns the exit status."""
    # lazy: torch and the trainer load only when this subcommand runs (CLI start-up)
    import torch

    from vggt_uncertainty_ros.distributed import all_ok, init_distributed, shutdown
    from vggt_uncertainty_ros.errors import DataError, VggtUncertaintyError
    from vggt_uncertainty_ros.model.device import resolve_device
    from vggt_uncertainty_ros.trainer import load_config
    from vggt_uncertainty_ros.trainer.data import split_sequences
    from vggt_uncertainty_ros.trainer.shards import build_cache, open_feature_cache

    overrides = list(args.overrides)
    if args.out is not None:
        overrides.append(f"output.cache_dir={args.out}")
    cfg = load_config(args.config, overrides)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    ctx = init_distributed(resolve_device(cfg.backbone.device))
    try:
        # rank 0 writes any synthetic sequences first; the others then find them finished
        error: VggtUncertaintyError | None = None
        if ctx.is_main:
            try:
                split_sequences(cfg.data, cfg.output.cache_dir, cfg.train.seed)
            except VggtUncertaintyError as err:
                error = err
        if not all_ok(ctx, error is None):  # every rank stops, none waits for a failed rank 0
            raise error or DataError("rank 0 could not resolve the sequences; see its log")
        train_specs, val_specs = split_sequences(cfg.data, cfg.output.cache_dir, cfg.train.seed)
        cache = open_feature_cache(cfg, ctx.device, args.shard_windows)
        report = build_cache([*train_specs, *val_specs], cache, ctx, keep_shards=args.keep_shards)
    finally:
        shutdown(ctx)
    if ctx.is_main:
        _log.info(
            "feature cache %s: %d sequence(s), %d window(s); this rank built %d shard(s), skipped %d",
            cfg.output.cache_dir,
            len(report.files),
            sum(report.n_windows),
            len(report.built),
            len(report.skipped),
        )
    return 0
