"""``vggt-uncertainty bench-calibration``: the synthetic heteroscedastic benchmark."""

from __future__ import annotations

import argparse
import logging

from vggt_uncertainty_ros.cli.benchmarks import import_benchmark

HELP = "train log_var and sqrt_info heads on synthetic heteroscedastic windows and compare calibration"

_log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's options."""
    parser.add_argument("--out", metavar="DIR", help="also write DIR/bench_calibration.json")
    parser.add_argument("--steps", type=int, help="optimizer steps per parameterization (default: config)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and initialisation (default 0)")
    parser.add_argument("--small", action="store_true", help="256-d features, 128 hidden: runs in seconds")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark, print the table, optionally write the JSON; exit status 0."""
    # lazy: the CLI starts fast; only the command that runs imports its stack
    import torch
    from tqdm import tqdm

    calibration = import_benchmark("calibration")

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict[str, int] = {"seed": args.seed}
    if args.steps is not None:
        if args.steps < 1:
            raise SystemExit("--steps must be >= 1")
        overrides["steps"] = args.steps
    cfg = calibration.BenchConfig.small(**overrides) if args.small else calibration.BenchConfig(**overrides)
    params = ("log_var", "sqrt_info")
    with tqdm(total=cfg.steps * len(params), desc="bench-calibration", unit="step", mininterval=2.0) as bar:

        def progress(parameterization: str, step: int, loss: float) -> None:
            bar.set_postfix_str(f"{parameterization} loss {loss:.3f}", refresh=False)
            bar.update(1)

        result = calibration.run_bench(cfg, params, progress)
    print(calibration.format_report(result))
    if args.out:
        path = calibration.write_json(result, args.out)
        _log.info("wrote %s", path)
    return 0
