"""``vggt-uncertainty bench``: time the VGGT backbone on one window and on sliding windows."""

from __future__ import annotations

import argparse
import json

from vggt_uncertainty_ros.cli.benchmarks import import_benchmark
from vggt_uncertainty_ros.errors import ConfigError

HELP = "benchmark the VGGT backbone (latency, memory, sliding-window frames/s, FLOP efficiency)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the bench options."""
    parser.add_argument(
        "--config", choices=("tiny", "full"), default=None, help="model size (default: tiny on cpu, full on cuda)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default cpu)")
    parser.add_argument("--frames", type=int, default=8, help="window size S (default 8)")
    parser.add_argument("--height", type=int, default=392, help="input height in px, multiple of 14 (default 392)")
    parser.add_argument("--width", type=int, default=518, help="input width in px, multiple of 14 (default 518)")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up iterations (default 2)")
    parser.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    parser.add_argument(
        "--sdpa-backend",
        choices=("auto", "cudnn", "flash", "efficient", "math"),
        default="auto",
        help="preferred fused-attention kernel (default auto: PyTorch's order)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print its figures."""
    backbone = import_benchmark("backbone")

    for name in ("height", "width"):
        if getattr(args, name) % 14:
            raise ConfigError(f"--{name} {getattr(args, name)} is not a multiple of 14")
    if args.frames < 1 or args.iters < 1:
        raise ConfigError("--frames and --iters must be >= 1")
    config = args.config or ("full" if args.device == "cuda" else "tiny")
    settings = backbone.BackboneBenchConfig(
        config=config,
        device=args.device,
        frames=args.frames,
        height=args.height,
        width=args.width,
        iters=args.iters,
        warmup=args.warmup,
        compile=args.compile,
        sdpa_backend=args.sdpa_backend,
    )
    result = backbone.run_backbone_bench(settings)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print("\n".join(result.lines()))
    return 0
