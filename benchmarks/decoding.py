"""Decoding throughput of the sequence readers (frames/s), e.g. for the >= 300 frames/s target.

``python -m benchmarks.decoding [SEQUENCE ...]`` prints frames/s for each sequence;
without arguments it first synthesises a 300-frame 640x480 sequence in every format.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vggt_uncertainty_ros.data import open_sequence
from vggt_uncertainty_ros.data.synth import generate

__all__ = ["DecodeBenchmark", "benchmark_decoding"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeBenchmark:
    """Result of :func:`benchmark_decoding`.

    Attributes:
        path: The sequence.
        n_frames: Frames streamed.
        wall_s: Wall time from open to the last frame, seconds.
        cpu_s: Process CPU time over the same span, seconds (all threads).
    """

    path: Path
    n_frames: int
    wall_s: float
    cpu_s: float

    @property
    def frames_per_s(self) -> float:
        """Frames per wall-clock second."""
        return self.n_frames / max(self.wall_s, 1e-9)

    @property
    def frames_per_cpu_s(self) -> float:
        """Frames per CPU second (robust to a busy machine)."""
        return self.n_frames / max(self.cpu_s, 1e-9)


def benchmark_decoding(path: str | Path, *, with_depth: bool = False, max_frames: int | None = None) -> DecodeBenchmark:
    """Stream a sequence through :func:`open_sequence` (images decoded, ground truth looked up).

    Args:
        path: TUM folder, ROS 1 bag or ROS 2 bag.
        with_depth: Also decode and associate depth.
        max_frames: Stop after this many frames.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    with open_sequence(path, with_depth=with_depth) as seq:
        for frame in seq.frames():
            if frame.image.shape[-1] != 3:  # touch the result
                raise AssertionError("decoded image is not RGB")
            n += 1
            if max_frames is not None and n >= max_frames:
                break
    return DecodeBenchmark(Path(path), n, time.perf_counter() - t0, time.process_time() - c0)


def main(argv: list[str] | None = None) -> int:
    """Print decoding frames/s for the given (or freshly synthesised) sequences."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="sequences (default: synthesise 300 frames)")
    parser.add_argument("--with-depth", action="store_true", help="also decode depth")
    args = parser.parse_args(argv)
    paths = list(args.paths)
    tmp = None
    if not paths:
        tmp = tempfile.TemporaryDirectory(prefix="vggt_bench_")
        result = generate(tmp.name, seed=0, n_frames=300, formats=("tum", "ros1", "ros2", "ros2-mcap"))
        paths = list(result.paths.values())
    try:
        for p in paths:
            r = benchmark_decoding(p, with_depth=args.with_depth)
            print(
                f"{p}: {r.n_frames} frames in {r.wall_s:.2f} s -> {r.frames_per_s:.0f} frames/s "
                f"({r.frames_per_cpu_s:.0f} frames per CPU-second)"
            )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
