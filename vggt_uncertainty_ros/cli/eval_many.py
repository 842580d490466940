"""``vggt-uncertainty eval-many``: evaluate many sequences, one report each plus a pooled one.

vggt-uncertainty eval-many (--manifest M [--role test] | --data PATH...) --run-model [...] --out DIR

Under ``torchrun --nproc_per_node N`` the sequences are shared among the N ranks; a rerun
skips sequences already evaluated. Options after the sequence selection are ``eval``'s.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vggt_uncertainty_ros.cli import eval as eval_cli
from vggt_uncertainty_ros.cli.options import backbone_spec

HELP = "evaluate a list of sequences (manifest role or paths): per-sequence reports + pooled.json; torchrun shards"

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``vggt-uncertainty eval-many``: eval's, with the sequences chosen by manifest or paths."""
    parser.add_argument("--manifest", type=Path, default=None, help="dataset manifest (YAML/JSON)")
    parser.add_argument("--role", default="test", help="manifest role to evaluate: train, val or test (default test)")
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=None,
        help="sequences (TUM folder, bag, image folder with its groundtruth.txt) instead of --manifest",
    )
    eval_cli.add_evaluation_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="output directory (one folder per sequence)")


def _entries(args: argparse.Namespace):
    from vggt_uncertainty_ros.data.manifest import ManifestEntry, detect_kind, sequences_by_role
    from vggt_uncertainty_ros.errors import ConfigError

    if (args.manifest is None) == (not args.data):
        raise ConfigError("give either --manifest (with --role) or --data PATH...")
    if args.manifest is not None:
        entries = sequences_by_role(args.manifest, args.role)
        if not entries:
            raise ConfigError(f"{args.manifest}: no sequence with role {args.role!r}")
        return entries
    paths = [Path(p).resolve() for p in args.data]
    names = [p.stem if p.is_file() else p.name for p in paths]
    if len(set(names)) < len(names):  # e.g. several ".../<sequence>/tum" folders: prefix the parent
        names = [f"{p.parent.name}_{n}" for p, n in zip(paths, names)]
    if len(set(names)) < len(names):
        names = [f"{i:03d}_{n}" for i, n in enumerate(names)]
    return [ManifestEntry(name=n, path=p, role="test", kind=detect_kind(p)) for n, p in zip(names, paths)]


def run(args: argparse.Namespace) -> int:
    """Evaluate the sequences; returns 0, or 1 when no window at all was evaluated."""
    # lazy: the evaluator (evo, GTSAM) and torch load only when this subcommand runs
    from vggt_uncertainty_ros.distributed import init_distributed, shutdown
    from vggt_uncertainty_ros.evaluate.batch import POOLED_FILE, evaluate_many
    from vggt_uncertainty_ros.model.device import resolve_device

    entries = _entries(args)
    backbone = backbone_spec(args)
    want = resolve_device(backbone.device) if args.poses_topic is None else "cpu"
    ctx = init_distributed(want)
    if ctx.device.type == "cuda":
        import dataclasses

        backbone = dataclasses.replace(backbone, device=str(ctx.device))
    base = eval_cli.eval_config(args, entries[0].path, backbone)
    try:
        result = evaluate_many(entries, base, args.out, ctx, progress=True)
    finally:
        shutdown(ctx)
    if not ctx.is_main:
        return 0
    pooled = result.pooled
    for name, seq in pooled["sequences"].items():
        print(f"{name}: {seq['n_windows']} windows, mean d2 rot {seq['d2_rot_mean']}, trans {seq['d2_trans_mean']}")
    cal = pooled["calibration"]
    if cal["rot"] is None:
        _log.error("no window evaluated in any sequence")
        return 1
    print(
        f"pooled over {pooled['n_sequences']} sequences, {pooled['n_windows']} windows: mean d2 rot "
        f"{cal['rot']['d2_mean']:.3f}, trans {cal['trans']['d2_mean']:.3f} (3 when calibrated)"
    )
    _log.info("pooled report: %s", Path(args.out) / POOLED_FILE)
    return 0
