"""Command-line options shared by subcommands: the backbone settings (:class:`BackboneSpec`)."""

from __future__ import annotations

import argparse

from vggt_uncertainty_ros.model.spec import BACKBONES, DTYPES, PREPROCESS_MODES, BackboneSpec


def add_backbone_arguments(parser: argparse.ArgumentParser, defaults: BackboneSpec | None = None) -> None:
    """``--backbone --weights --device --dtype --preprocess-mode`` with ``defaults``' values."""
    d = defaults or BackboneSpec()
    group = parser.add_argument_group("backbone")
    group.add_argument("--backbone", choices=BACKBONES, default=d.name, help=f"backbone family (default {d.name})")
    group.add_argument(
        "--weights", default=d.weights, help=f"'tiny', a local weights file or a Hugging Face id (default {d.weights})"
    )
    group.add_argument("--device", default=d.device, help=f"auto | cpu | cuda | cuda:N (default {d.device})")
    group.add_argument("--dtype", choices=DTYPES, default=d.dtype, help=f"autocast dtype (default {d.dtype})")
    group.add_argument("--preprocess-mode", choices=PREPROCESS_MODES, default=d.preprocess_mode)


def backbone_spec(args: argparse.Namespace) -> BackboneSpec:
    """The :class:`BackboneSpec` the options of :func:`add_backbone_arguments` name."""
    return BackboneSpec(
        name=args.backbone,
        weights=args.weights,
        device=args.device,
        dtype=args.dtype,
        preprocess_mode=args.preprocess_mode,
    )
