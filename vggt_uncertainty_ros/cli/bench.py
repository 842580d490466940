"""``vggt-uncertainty bench``: time network backbones (VGGT, VGGT-Ω) on one window and on sliding windows."""

from __future__ import annotations

import argparse
import json

from vggt_uncertainty_ros.cli.benchmarks import import_benchmark
from vggt_uncertainty_ros.errors import ConfigError

HELP = "benchmark backbones side by side (latency, memory, sliding-window frames/s, FLOP efficiency)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the bench options."""
    parser.add_argument(
        "--backbone",
        default="vggt",
        help="comma-separated backbones to time side by side: vggt, vggt-omega (default vggt)",
    )
    parser.add_argument(
        "--config", choices=("tiny", "full"), default=None, help="model size (default: tiny on cpu, full on cuda)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device (default cpu)")
    parser.add_argument("--frames", type=int, default=8, help="window size S (default 8)")
    parser.add_argument(
        "--height", type=int, default=None, help="input height in px (default: what 640x480 maps to per backbone)"
    )
    parser.add_argument("--width", type=int, default=None, help="input width in px (default: vggt 518, vggt-omega 592)")
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
    bench = import_benchmark("backbone")

    names = [n.strip() for n in str(args.backbone).split(",") if n.strip()]
    unknown = [n for n in names if n not in bench.BENCH_BACKBONES]
    if not names or unknown:
        raise ConfigError(
            f"--backbone {args.backbone!r}: expected a comma-separated list of {sorted(bench.BENCH_BACKBONES)}"
        )
    if args.frames < 1 or args.iters < 1:
        raise ConfigError("--frames and --iters must be >= 1")
    config = args.config or ("full" if args.device == "cuda" else "tiny")
    all_settings = []
    for name in names:
        patch = bench.BENCH_BACKBONES[name]
        default_h, default_w = bench.default_input_hw(name)
        height = args.height if args.height is not None else default_h
        width = args.width if args.width is not None else default_w
        for flag, value in (("height", height), ("width", width)):
            if value % patch:
                raise ConfigError(f"--{flag} {value} is not a multiple of {patch} (the {name} patch size)")
        all_settings.append(
            bench.BackboneBenchConfig(
                config=config,
                device=args.device,
                backbone=name,
                frames=args.frames,
                height=height,
                width=width,
                iters=args.iters,
                warmup=args.warmup,
                compile=args.compile,
                sdpa_backend=args.sdpa_backend,
            )
        )
    if len(all_settings) == 1:
        results = [bench.run_backbone_bench(all_settings[0])]
    elif args.device == "cpu":  # one process each: the max-RSS figure must be each backbone's own
        results = [bench.run_isolated(s) for s in all_settings]
    else:
        results = [bench.run_backbone_bench(s) for s in all_settings]
    if args.json:
        figures = [r.to_dict() for r in results]
        print(json.dumps(figures[0] if len(figures) == 1 else figures, indent=1))
        return 0
    for r in results:
        print("\n".join(r.lines()))
        print()
    if len(results) > 1:
        print("\n".join(bench.side_by_side(results)))
    return 0
