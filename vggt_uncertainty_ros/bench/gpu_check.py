"""One-shot GPU check of the backbone: precision parity, sync-freedom, CUDA graphs, speed.

Run on a CUDA machine (about 2-4 minutes on an H100 for the full model)::

    python -m vggt_uncertainty_ros.bench.gpu_check            # full model, cuda
    python -m vggt_uncertainty_ros.bench.gpu_check --device cpu --config tiny --height 126 --width 182  # dry run

It prints every figure; a line starting with ``FAIL`` marks a failed check and the exit
status is the number of failed checks.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from vggt_uncertainty_ros.bench.backbone import (
    BenchSettings,
    build_bench_model,
    run_backbone_bench,
)
from vggt_uncertainty_ros.model.token_cache import TokenCache

#: bf16-autocast vs float32 limits (max abs); the golden README saw 2.0e-2 (tokens) and
#: 4.9e-3 (pose) on CPU for 3 small frames.
TOKEN_TOL = 0.1
POSE_TOL = 0.05


def _report(ok: bool, what: str, failures: list[str]) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        failures.append(what)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    """Run the checks; returns the number of failures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--config", default="full")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=392)
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile (per block) variant")
    args = parser.parse_args(argv)
    failures: list[str] = []
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    print(f"torch {torch.__version__}, device {torch.cuda.get_device_name(device) if cuda else 'cpu'}", flush=True)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    t0 = time.perf_counter()
    settings = BenchSettings(config=args.config, device=args.device, frames=args.frames, height=args.height,
                             width=args.width, iters=args.iters)
    model = build_bench_model(settings, inference_precision=False)  # float32 reference first
    print(f"model built in {time.perf_counter() - t0:.1f} s", flush=True)
    gen = torch.Generator().manual_seed(0)
    seq = torch.rand((args.frames + 1, 3, args.height, args.width), generator=gen).to(device)
    images = seq[: args.frames].unsqueeze(0)

    ref = model(images)
    if args.frames * args.height * args.width <= 8 * 392 * 518:
        model.set_attention_impl("manual")
        man = model(images)
        model.set_attention_impl("sdpa")
        d = _max_diff(ref["pose_enc_preact_list"][-1], man["pose_enc_preact_list"][-1])
        _report(d < 1e-4, f"float32 sdpa vs manual attention: raw pose max diff {d:.2e}", failures)
        del man
    amp_dtype = torch.bfloat16
    model.set_amp(amp_dtype, compact_weights=cuda)
    out = model(images)
    dt = _max_diff(out["camera_features"], ref["camera_features"])
    dp = max(_max_diff(a, b) for a, b in zip(out["pose_enc_preact_list"], ref["pose_enc_preact_list"]))
    _report(dt < TOKEN_TOL, f"bf16 autocast vs float32: camera features max diff {dt:.2e} (< {TOKEN_TOL})", failures)
    _report(dp < POSE_TOL, f"bf16 autocast vs float32: raw pose enc max diff {dp:.2e} (< {POSE_TOL})", failures)
    _report(out["pose_enc"].dtype == torch.float32, f"camera head output dtype {out['pose_enc'].dtype}", failures)

    cache = TokenCache()
    model(seq[: args.frames].unsqueeze(0), frame_ids=list(range(args.frames)), token_cache=cache)
    cached = model(seq[1:].unsqueeze(0), frame_ids=list(range(1, args.frames + 1)), token_cache=cache)
    plain = model(seq[1:].unsqueeze(0))
    d = _max_diff(cached["pose_enc_preact_list"][-1], plain["pose_enc_preact_list"][-1])
    _report(
        d < 1e-3 and cache.misses == args.frames + 1,
        f"token cache vs recompute: pose diff {d:.2e}, misses {cache.misses}",
        failures,
    )

    if cuda:
        try:
            torch.cuda.set_sync_debug_mode("error")
            model(images)
            _report(True, "forward without host<->device synchronisation", failures)
        except RuntimeError as err:
            _report(False, f"forward synchronises: {err}", failures)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        try:
            static = images.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    model(static)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                g_out = model(static)
            graph.replay()
            torch.cuda.synchronize()
            d = _max_diff(g_out["pose_enc"], out["pose_enc"])
            _report(d < 1e-3, f"CUDA graph capture and replay: pose diff {d:.2e}", failures)
            times = []
            for _ in range(args.iters):
                torch.cuda.synchronize()
                t = time.perf_counter()
                graph.replay()
                torch.cuda.synchronize()
                times.append((time.perf_counter() - t) * 1e3)
            times.sort()
            print(f"     CUDA graph replay: median {times[len(times) // 2]:.1f} ms, min {times[0]:.1f} ms", flush=True)
            del graph, g_out
        except Exception as err:  # noqa: BLE001 - report any capture failure and go on
            _report(False, f"CUDA graph capture: {type(err).__name__}: {err}", failures)

    print("--- bench (eager)", flush=True)
    result = run_backbone_bench(settings, model=model)
    print("\n".join(result.lines()), flush=True)
    if not args.no_compile:
        print("--- bench (torch.compile)", flush=True)
        try:
            t = time.perf_counter()
            comp = run_backbone_bench(BenchSettings(**{**settings.__dict__, "compile": True, "iters": 10}), model=model)
            print("\n".join(comp.lines()), flush=True)
            print(f"     (compile + bench took {time.perf_counter() - t:.0f} s)", flush=True)
        except Exception as err:  # noqa: BLE001
            _report(False, f"torch.compile: {type(err).__name__}: {err}", failures)
    print(f"{len(failures)} failed checks", flush=True)
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
