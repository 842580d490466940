"""Micro-benchmarks behind the GPU path's kernel choices (run on a CUDA machine).

    python -m benchmarks.gpu_kernels [--whole-compile]

1. The camera head's float32 linear layers see only S = 8 tokens: which formulation of
   ``[8, K] x [K, N]`` streams its weights fastest (cuBLAS picks a small-N GEMV otherwise).
2. fc1 + exact GELU of an aggregator block: separate kernels vs cuBLASLt's fused epilogue.
3. ``--whole-compile``: compile time and latency of the whole aggregator as one graph.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from benchmarks.backbone import BackboneBenchConfig, build_bench_model, set_amp, uncompile_blocks
from benchmarks.gpu_check import time_ms
from vggt_uncertainty_ros.model.layers import Mlp


def _graph_ms(fn: Callable[[], object], iters: int = 30) -> float:
    """Median replay time of ``fn`` captured ``reps`` times in one CUDA graph (launch gaps removed)."""
    reps = 20
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(reps):
            fn()
    return time_ms(graph.replay, iters, torch.device("cuda"))[0] / reps


def skinny_f32(device: torch.device) -> None:
    print("--- camera head: float32 [8, K] x [K, N] (weights streamed once per call)", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    for k, n in ((2048, 6144), (2048, 2048), (2048, 8192), (8192, 2048)):
        x = torch.randn(1, 8, k, device=device)
        w = torch.randn(n, k, device=device) * 0.02
        b = torch.randn(n, device=device)
        wt = w.t().contiguous()
        ref = F.linear(x.double(), w.double(), b.double())
        cands = {
            "F.linear [1,8,K]": lambda x=x, w=w, b=b: F.linear(x, w, b),
            "F.linear [8,K]": lambda x=x, w=w, b=b: F.linear(x[0], w, b),
            "addmm x @ Wt(KxN)": lambda x=x, wt=wt, b=b: torch.addmm(b, x[0], wt),
            "(W @ x^T)^T": lambda x=x, w=w, b=b: (w @ x[0].t()).t() + b,
            "pad to 16 rows": lambda x=x, w=w, b=b: F.linear(F.pad(x[0], (0, 0, 0, 8)), w, b)[:8],
            "pad to 64 rows": lambda x=x, w=w, b=b: F.linear(F.pad(x[0], (0, 0, 0, 56)), w, b)[:8],
        }
        for name, fn in cands.items():
            err = float((fn().double().reshape(8, n) - ref.reshape(8, n)).abs().max())
            ms = _graph_ms(fn)
            gbs = w.numel() * 4 / ms / 1e6
            print(
                f"     K={k:5d} N={n:5d} {name:20s}: {ms * 1e3:7.1f} us, {gbs:6.0f} GB/s, max err {err:.1e}", flush=True
            )


def fc1_gelu(device: torch.device) -> None:
    print("--- fc1 + GELU, bf16 [8328, 1024] -> 4096", flush=True)
    x = torch.randn(8328, 1024, device=device, dtype=torch.bfloat16)
    w = torch.randn(4096, 1024, device=device, dtype=torch.bfloat16) * 0.03
    b = torch.randn(4096, device=device, dtype=torch.bfloat16) * 0.1
    exact = F.gelu(F.linear(x.float(), w.float(), b.float()))
    cands = {
        "linear + gelu(erf)": lambda: F.gelu(F.linear(x, w, b)),
        "linear + gelu(tanh)": lambda: F.gelu(F.linear(x, w, b), approximate="tanh"),
        "_addmm_activation": lambda: torch._addmm_activation(b, x, w.t(), use_gelu=True),
        "linear only": lambda: F.linear(x, w, b),
    }
    for name, fn in cands.items():
        out = fn()
        err = float((out.float() - exact).abs().max()) if out.shape == exact.shape else float("nan")
        print(f"     {name:20s}: {_graph_ms(fn) * 1e3:7.1f} us, max err vs fp32 erf-GELU {err:.2e}", flush=True)
    lin = torch.nn.Linear(1024, 4096, device=device, dtype=torch.bfloat16)
    comp = torch.compile(lambda t: F.gelu(lin(t), approximate="tanh"))
    comp(x)
    print(f"     compiled linear+gelu(tanh): {_graph_ms(lambda: comp(x)) * 1e3:7.1f} us", flush=True)


def whole_compile(device: torch.device) -> None:
    print("--- whole-aggregator torch.compile", flush=True)
    model = build_bench_model(BackboneBenchConfig(config="full", device=str(device)))
    images = torch.rand(1, 8, 3, 392, 518, device=device)
    with torch.no_grad():
        ref = model(images)
        model.aggregator.compile()
        t = time.perf_counter()
        out = model(images)
        torch.cuda.synchronize()
        print(f"     first call (compile) {time.perf_counter() - t:.0f} s", flush=True)
        d = float((out["pose_enc"] - ref["pose_enc"]).abs().max())
        ms = time_ms(lambda: model(images), 20, device)[0]
        print(f"     pose diff vs eager {d:.2e}; latency {ms:.1f} ms", flush=True)


def model_gelu_epilogue(device: torch.device) -> None:
    """Per-block-compiled full model with exact GELU vs cuBLASLt's fused tanh-GELU epilogue."""
    print("--- full model, per-block compile: fc1 + GELU as cuBLASLt epilogue", flush=True)
    model = build_bench_model(BackboneBenchConfig(config="full", device=str(device)), inference_precision=False)
    images = torch.rand(1, 8, 3, 392, 518, device=device)
    with torch.no_grad():
        ref = model(images)
        set_amp(model, torch.bfloat16, compact_weights=True)
        original = Mlp.forward

        def epilogue(self: Mlp, x: torch.Tensor) -> torch.Tensor:
            if x.dtype != torch.bfloat16 and not torch.is_autocast_enabled():
                return original(self, x)
            lead = x.shape[:-1]
            w = self.fc1.weight.to(torch.bfloat16)
            h = torch._addmm_activation(
                self.fc1.bias.to(torch.bfloat16), x.reshape(-1, x.shape[-1]).to(torch.bfloat16), w.t(), use_gelu=True
            )
            return self.fc2(h.reshape(*lead, -1))

        for label, fwd in (("exact GELU", original), ("tanh-GELU epilogue", epilogue)):
            torch._dynamo.reset()
            Mlp.forward = fwd
            uncompile_blocks(model)
            model.compile_blocks()
            out = model(images)
            dt = float((out["camera_features"].float() - ref["camera_features"]).abs().max())
            pairs = zip(out["pose_enc_preact_list"], ref["pose_enc_preact_list"])
            dp = max(float((a - b).abs().max()) for a, b in pairs)
            ms = time_ms(lambda: model(images), 20, device)[0]
            print(f"     {label:20s}: {ms:6.1f} ms; vs fp32: camera features {dt:.2e}, raw pose {dp:.2e}", flush=True)
        Mlp.forward = original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whole-compile", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}", flush=True)
    with torch.no_grad():
        skinny_f32(device)
        fc1_gelu(device)
    model_gelu_epilogue(device)
    if args.whole_compile:
        whole_compile(device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
