"""Latency of the node's path against the model alone, per window, in one run.

``python -m benchmarks.latency [--device cuda] [--weights PATH|HF-ID] [--windows 1000]``

* **node path**: what the node's inference thread does for one window of uint8 frames as they
  arrive: official preprocessing (only frames new to this window; shared frames reuse theirs),
  host-to-device copy, backbone, head, device-to-host copy of the results, and chaining into
  the trajectory — from "the window's last image is in" to "the pose can be published".
* **model alone**: the backbone's forward on an already preprocessed, already resident batch.

Both print median, p99 and max over ``--windows`` windows at stride ``--stride``; the ratio of
medians is the issue's "node path <= 1.1x the model alone" figure. On the CPU the defaults are
small (tiny model, 40 windows) so that it runs in seconds; the GPU figures need ``--device cuda``
and official-size weights (random weights time the same).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vggt_uncertainty_ros.model.spec import BackboneSpec
from vggt_uncertainty_ros.online.estimator import WindowEstimator, build_estimator


@dataclass(frozen=True)
class LatencyStats:
    """Per-window wall times, milliseconds."""

    median_ms: float
    p99_ms: float
    max_ms: float
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> LatencyStats:
        ms = np.asarray(seconds) * 1e3
        return cls(float(np.median(ms)), float(np.percentile(ms, 99)), float(ms.max()), len(ms))

    def line(self, name: str) -> str:
        return (
            f"{name:<12} median {self.median_ms:8.2f} ms   p99 {self.p99_ms:8.2f} ms   "
            f"max {self.max_ms:8.2f} ms   (n={self.n})"
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def stream(n_frames: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """``n_frames`` random-texture RGB uint8 frames (timing does not depend on the content)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return [np.roll(base, 3 * i, axis=1) for i in range(n_frames)]


def measure(
    estimator: WindowEstimator, frames: list[np.ndarray], size: int, stride: int, warmup: int
) -> tuple[LatencyStats, LatencyStats]:
    """(node path, model alone) over the sliding windows of ``frames``."""
    device = estimator.device
    starts = list(range(0, len(frames) - size + 1, stride))
    node: list[float] = []
    for k, start in enumerate(starts):
        ids = list(range(start, start + size))
        window = frames[start : start + size]
        seconds = _timed(lambda w=window, i=ids: estimator.estimate(w, stamps_ns=i, frame_ids=i), device)
        if k >= warmup:
            node.append(seconds)
    backbone = estimator.backbone
    network = getattr(backbone, "model", None)  # a camera network (VGGT, VGGT-Ω) behind the protocol
    if network is not None:
        batch, _ = backbone.preprocess(frames[:size])
        batch = batch.to(device)[None]

        def model_alone() -> object:
            return network(batch)
    else:  # no separate network (the geometric backbone): its whole prediction on one window

        def model_alone() -> object:
            return backbone.predict(frames[:size])

    model: list[float] = []
    with torch.inference_mode():
        for k in range(len(starts)):
            seconds = _timed(model_alone, device)
            if k >= warmup:
                model.append(seconds)
    return LatencyStats.of(node), LatencyStats.of(model)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--attention", default="sdpa", choices=("sdpa", "flash4"))
    parser.add_argument("--windows", type=int, default=None, help="timed windows (default 1000 cuda, 40 cpu)")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)
    spec = BackboneSpec(weights=args.weights, device=args.device, dtype=args.dtype, attention=args.attention)
    estimator = build_estimator(spec, constant_sigma=0.1, token_cache_frames=2 * args.size)
    n_windows = args.windows or (1000 if estimator.device.type == "cuda" else 40)
    frames = stream(args.size + (n_windows + args.warmup - 1) * args.stride, args.height, args.width)
    node, model = measure(estimator, frames, args.size, args.stride, args.warmup)
    print(
        f"{args.size} frames {args.width}x{args.height} at stride {args.stride}, {spec.weights} on "
        f"{estimator.device} ({estimator.dtype}), attention {spec.attention}"
    )
    print(node.line("node path"))
    print(model.line("model alone"))
    ratio = node.median_ms / model.median_ms
    print(f"ratio of medians {ratio:.3f}; p99/median node {node.p99_ms / node.median_ms:.3f}")
    if estimator.device.type == "cuda":
        print(f"peak memory {torch.cuda.max_memory_allocated(estimator.device) / 2**30:.2f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
