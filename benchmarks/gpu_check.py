"""One-shot GPU check of the backbone: precision parity, sync-freedom, CUDA graphs, speed.

Run on a CUDA machine (a few minutes on an H100 for the full model, mostly torch.compile)::

    python -m benchmarks.gpu_check            # full model, cuda
    python -m benchmarks.gpu_check --device cpu --config tiny --height 126 --width 182  # dry run

It prints every figure; a line starting with ``FAIL`` marks a failed check and the exit
status is the number of failed checks. Order: kernel micro-benchmarks (attention kernels,
the four linear-layer shapes), correctness checks, a table of forward-pass variants
(attention kernel x torch.compile x CUDA graph), a kernel-time profile of the fastest, and
the full ``bench`` figures of the fastest graph-free variant. ``--out DIR`` also writes
the figures as JSON and the profile table as text.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

from benchmarks.backbone import (
    BackboneBenchConfig,
    build_bench_model,
    measure_matmul_peak,
    run_backbone_bench,
    set_amp,
    set_attention_impl,
    uncompile_blocks,
    vggt_flops,
)
from vggt_uncertainty_ros.model import preprocess_images_with_transforms
from vggt_uncertainty_ros.model.config import get_config
from vggt_uncertainty_ros.model.token_cache import TokenCache
from vggt_uncertainty_ros.online.estimator import WindowEstimator

#: bf16-autocast vs float32 limits (max abs); the golden README saw 2.0e-2 (tokens) and
#: 4.9e-3 (pose) on CPU for 3 small frames.
TOKEN_TOL = 0.1
POSE_TOL = 0.05

#: Kernel-name fragments -> category of the profile summary (first match wins).
KERNEL_CATEGORIES = (
    ("fused elementwise (triton)", ("triton",)),  # first: Inductor names kernels after the ops they feed
    ("attention", ("flash", "fmha", "cudnn", "attention", "sdpa")),
    ("matmul", ("gemm", "nvjet", "cutlass", "xmma", "gemv", "sm90_")),
)


def _report(ok: bool, what: str, failures: list[str]) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
    if not ok:
        failures.append(what)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def time_ms(fn: Callable[[], object], iters: int, device: torch.device, warmup: int = 2) -> tuple[float, float]:
    """Median and minimum wall time of ``fn`` in ms (device events on CUDA)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def attention_microbench(device: torch.device, cfg_name: str, frames: int, height: int, width: int) -> list[dict]:
    """Time every SDPA kernel on the frame- and global-attention shapes of one window (bf16)."""
    cfg = get_config(cfg_name)
    n = 1 + cfg.num_register_tokens + (height // cfg.patch_size) * (width // cfg.patch_size)
    heads, head_dim = cfg.num_heads, cfg.embed_dim // cfg.num_heads
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rows = []
    for label, batch, length in (("frame", frames, n), ("global", 1, frames * n)):
        q, k, v = (torch.randn(batch, heads, length, head_dim, device=device, dtype=dtype) for _ in range(3))
        flops = 4.0 * batch * heads * length * length * head_dim
        ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        for name, backend in (
            ("default", None),
            ("flash", SDPBackend.FLASH_ATTENTION),
            ("efficient", SDPBackend.EFFICIENT_ATTENTION),
            ("cudnn", SDPBackend.CUDNN_ATTENTION),
        ):

            def call(backend: SDPBackend | None = backend, q=q, k=k, v=v) -> torch.Tensor:  # noqa: ANN001
                if backend is None:
                    return F.scaled_dot_product_attention(q, k, v)
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, k, v)

            try:
                err = _max_diff(call(), ref)
                med, _ = time_ms(call, 20, device)
                row = {"shape": label, "kernel": name, "ms": med, "tflops": flops / med / 1e9, "max_err": err}
                print(
                    f"     attention {label:6s} [{batch},{heads},{length},{head_dim}] {name:9s}: {med:7.3f} ms, "
                    f"{row['tflops']:6.1f} TFLOP/s, max err vs fp32 {err:.1e}",
                    flush=True,
                )
            except RuntimeError as err:
                row = {"shape": label, "kernel": name, "error": str(err).splitlines()[0]}
                print(f"     attention {label:6s} {name:9s}: unavailable ({row['error'][:80]})", flush=True)
            rows.append(row)
    return rows


def linear_microbench(device: torch.device, cfg_name: str, frames: int, height: int, width: int) -> list[dict]:
    """Time the four linear-layer shapes of an aggregator block (bf16 on CUDA)."""
    cfg = get_config(cfg_name)
    tokens = frames * (1 + cfg.num_register_tokens + (height // cfg.patch_size) * (width // cfg.patch_size))
    c = cfg.embed_dim
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rows = []
    for name, c_in, c_out in (("qkv", c, 3 * c), ("proj", c, c), ("fc1", c, 4 * c), ("fc2", 4 * c, c)):
        x = torch.randn(tokens, c_in, device=device, dtype=dtype)
        w = torch.randn(c_out, c_in, device=device, dtype=dtype) * 0.02
        b = torch.randn(c_out, device=device, dtype=dtype)
        med, _ = time_ms(lambda x=x, w=w, b=b: F.linear(x, w, b), 20, device)
        tflops = 2.0 * tokens * c_in * c_out / med / 1e9
        rows.append({"layer": name, "ms": med, "tflops": tflops})
        print(f"     linear {name:4s} [{tokens}x{c_in}] -> {c_out}: {med:6.3f} ms, {tflops:6.1f} TFLOP/s", flush=True)
    return rows


def _capture_graph(fn: Callable[[], dict]) -> tuple[torch.cuda.CUDAGraph, dict]:
    """Capture ``fn`` (after warm-up on a side stream) as one CUDA graph; returns it and its outputs."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


def profile_summary(fn: Callable[[], object], runs: int = 3) -> tuple[list[str], str]:
    """Device time per forward by kernel category, and the full kernel table."""
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(runs):
            fn()
        torch.cuda.synchronize()
    events = prof.key_averages()
    totals: dict[str, float] = {}
    kernels = []
    for ev in events:
        t = getattr(ev, "device_time_total", None)
        if t is None:
            t = ev.cuda_time_total
        if t <= 0:
            continue
        name = ev.key.lower()
        cat = next((c for c, keys in KERNEL_CATEGORIES if any(k in name for k in keys)), "other")
        totals[cat] = totals.get(cat, 0.0) + t / 1e3 / runs
        kernels.append((t / 1e3 / runs, ev.count // runs, ev.key))
    kernels.sort(reverse=True)
    lines = [f"     {cat:28s}: {ms:7.2f} ms per forward" for cat, ms in sorted(totals.items(), key=lambda kv: -kv[1])]
    lines.append(f"     {'sum of kernel time':28s}: {sum(totals.values()):7.2f} ms per forward")
    lines += [f"       {ms:7.3f} ms x{n:<4d} {name[:110]}" for ms, n, name in kernels[:12]]
    table = "\n".join(f"{ms:9.3f} ms  x{n:<5d} {name}" for ms, n, name in kernels)
    return lines, table


def estimator_bench(model: torch.nn.Module, device: torch.device, frames: int, windows: int = 12) -> dict:
    """Wall time of :meth:`WindowEstimator.estimate` (preprocessing included) as the node calls it."""
    rng = np.random.default_rng(0)
    stride = max(1, frames // 2)
    n = frames + stride * (windows - 1)
    images = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(n)]
    window = images[:frames]
    prep, _ = time_ms(lambda: preprocess_images_with_transforms(window, mode="crop"), 5, torch.device("cpu"))
    print(f"     preprocessing alone (CPU, PIL bicubic, {frames} frames): {prep:.1f} ms", flush=True)
    result: dict = {"preprocess_ms": prep}
    for label, cache in (("no token cache", None), ("token cache", TokenCache(max_frames=2 * frames))):
        est = WindowEstimator(
            model,
            None,
            device,
            torch.bfloat16 if device.type == "cuda" else None,
            constant_sigma=0.1,
            token_cache=cache,
        )
        times = []
        for w in range(windows):
            ids = list(range(w * stride, w * stride + frames))
            t = time.perf_counter()
            est.estimate([images[i] for i in ids], ids, frame_ids=ids)
            times.append((time.perf_counter() - t) * 1e3)
        steady = sorted(times[2:])
        result[label] = {"median_ms": steady[len(steady) // 2], "first_ms": times[0]}
        print(
            f"     {label:15s}: median {result[label]['median_ms']:6.1f} ms per window "
            f"(first window {times[0]:.0f} ms)",
            flush=True,
        )
    return result


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:  # noqa: C901 - one linear script of checks
    """Run the checks; returns the number of failures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--config", default="full")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=392)
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variants")
    parser.add_argument("--out", type=Path, default=None, help="folder for figures.json and profile.txt")
    args = parser.parse_args(argv)
    failures: list[str] = []
    figures: dict[str, object] = {}
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    print(f"torch {torch.__version__}, device {name}", flush=True)
    figures.update(torch=torch.__version__, device=name)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        if args.out:
            (args.out / "figures.json").write_text(json.dumps(figures, indent=1))

    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    window = (args.config, args.frames, args.height, args.width)
    print("--- kernels", flush=True)
    figures["matmul_peak_tflops"] = measure_matmul_peak(device, torch.bfloat16 if cuda else torch.float32)
    print(f"     square matmul peak: {figures['matmul_peak_tflops']:.0f} TFLOP/s", flush=True)
    figures["attention"] = attention_microbench(device, *window)
    figures["linear"] = linear_microbench(device, *window)
    save()

    print("--- correctness", flush=True)
    t0 = time.perf_counter()
    settings = BackboneBenchConfig(
        config=args.config,
        device=args.device,
        frames=args.frames,
        height=args.height,
        width=args.width,
        iters=args.iters,
    )
    model = build_bench_model(settings, inference_precision=False)  # float32 reference first
    print(f"model built in {time.perf_counter() - t0:.1f} s", flush=True)
    gen = torch.Generator().manual_seed(0)
    seq = torch.rand((args.frames + 1, 3, args.height, args.width), generator=gen).to(device)
    images = seq[: args.frames].unsqueeze(0)

    ref = model(images)
    if args.frames * args.height * args.width <= 8 * 392 * 518:
        set_attention_impl(model, "manual")
        man = model(images)
        set_attention_impl(model, "sdpa")
        d = _max_diff(ref["pose_enc_preact_list"][-1], man["pose_enc_preact_list"][-1])
        _report(d < 1e-4, f"float32 sdpa vs manual attention: raw pose max diff {d:.2e}", failures)
        del man
    full_last = model(images, keep_layers=(-1,))
    d = _max_diff(ref["camera_features"], full_last["camera_features"])
    _report(d < 1e-4, f"float32 camera-only last global block vs full block: max diff {d:.2e}", failures)
    del full_last
    set_amp(model, torch.bfloat16, compact_weights=cuda)

    def check_bf16(out: dict, label: str) -> None:
        dt = _max_diff(out["camera_features"], ref["camera_features"])
        dp = max(_max_diff(a, b) for a, b in zip(out["pose_enc_preact_list"], ref["pose_enc_preact_list"]))
        _report(
            dt < TOKEN_TOL and dp < POSE_TOL,
            f"{label} vs float32: camera features max diff {dt:.2e} (< {TOKEN_TOL}), raw pose {dp:.2e} (< {POSE_TOL})",
            failures,
        )
        figures.setdefault("bf16_vs_fp32", {})[label] = {"camera_features": dt, "pose_enc_raw": dp}

    out = model(images)
    check_bf16(out, "bf16 autocast")
    _report(out["pose_enc"].dtype == torch.float32, f"camera head output dtype {out['pose_enc'].dtype}", failures)
    if cuda:
        model.set_sdpa_backend("cudnn")
        check_bf16(model(images), "bf16 autocast, cuDNN attention first")
        model.set_sdpa_backend("auto")

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
    save()

    print("--- forward variants (one window, median / min of device-event times)", flush=True)
    variants = [("eager", "auto", False), ("eager", "cudnn", False)]
    if not args.no_compile:
        variants += [("compiled", "cudnn", True), ("compiled", "auto", True)]
    results: list[dict] = []
    for label, backend, compiled in variants:
        t = time.perf_counter()
        try:
            torch._dynamo.reset()
            model.set_sdpa_backend(backend)
            if compiled:
                model.compile_blocks()
            run = lambda: model(images)  # noqa: E731
            res = run()
            check_bf16(res, f"{label}/{backend}")
            med, low = time_ms(run, args.iters, device)
            row = {"mode": label, "sdpa": backend, "graph": False, "median_ms": med, "min_ms": low}
            results.append(row)
            print(
                f"     {label:8s} {backend:6s}: median {med:6.1f} ms, min {low:6.1f} ms "
                f"(set-up {time.perf_counter() - t:.0f} s)",
                flush=True,
            )
            if cuda:
                graph, g_out = _capture_graph(run)
                graph.replay()
                d = _max_diff(g_out["pose_enc"], res["pose_enc"])
                what = f"{label}/{backend} CUDA graph replay equals the forward: pose diff {d:.2e}"
                _report(d < 1e-3, what, failures)
                gmed, glow = time_ms(graph.replay, args.iters, device)
                results.append({"mode": label, "sdpa": backend, "graph": True, "median_ms": gmed, "min_ms": glow})
                print(
                    f"     {label:8s} {backend:6s} + CUDA graph: median {gmed:6.1f} ms, min {glow:6.1f} ms", flush=True
                )
                del graph, g_out
        except Exception as err:  # noqa: BLE001 - report any variant failure and go on
            _report(False, f"variant {label}/{backend}: {type(err).__name__}: {str(err)[:300]}", failures)
        finally:
            if compiled:
                uncompile_blocks(model)
        figures["variants"] = results
        save()
    if not results:
        print(f"{len(failures)} failed checks", flush=True)
        return len(failures) or 1

    best = min(results, key=lambda r: r["median_ms"])
    best_free = min((r for r in results if not r["graph"]), key=lambda r: r["median_ms"])
    flops = vggt_flops(get_config(args.config), args.frames, args.height, args.width)
    print(
        f"--- fastest: {best['mode']}/{best['sdpa']}{' + CUDA graph' if best['graph'] else ''}, "
        f"{best['median_ms']:.1f} ms = {flops / best['median_ms'] / 1e9:.0f} TFLOP/s",
        flush=True,
    )
    torch._dynamo.reset()
    model.set_sdpa_backend(best_free["sdpa"])
    if best_free["mode"] == "compiled":
        model.compile_blocks()
    if cuda:
        lines, table = profile_summary(lambda: model(images))
        print("--- kernel time of the fastest graph-free variant", flush=True)
        print("\n".join(lines), flush=True)
        if args.out:
            (args.out / "profile.txt").write_text(table + "\n")
    print("--- bench (fastest graph-free variant)", flush=True)
    try:
        bench = run_backbone_bench(
            BackboneBenchConfig(**{**settings.__dict__, "sdpa_backend": best_free["sdpa"], "compile": False}),
            model=model,
        )
        bench.compiled = best_free["mode"] == "compiled"
        print("\n".join(bench.lines()), flush=True)
        figures["bench"] = bench.to_dict()
    except Exception as err:  # noqa: BLE001
        _report(False, f"bench: {type(err).__name__}: {err}", failures)
    print("--- node path: WindowEstimator.estimate on 640x480 uint8 frames, stride-4 windows", flush=True)
    try:
        figures["estimator"] = estimator_bench(model, device, args.frames)
    except Exception as err:  # noqa: BLE001
        _report(False, f"estimator: {type(err).__name__}: {err}", failures)
    figures["failures"] = failures
    save()
    print("--- summary", flush=True)
    for r in results:
        print(
            f"     {r['mode']:8s} {r['sdpa']:6s}{' + graph' if r['graph'] else '        '}: "
            f"{r['median_ms']:6.1f} ms median, {r['min_ms']:6.1f} ms min",
            flush=True,
        )
    print(f"{len(failures)} failed checks", flush=True)
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
