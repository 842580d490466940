"""One-shot GPU check of VGGT-Ω: precision, sync-freedom, CUDA graph, compiled speed, side by side with VGGT.

For a session with a CUDA machine (about 5 minutes on an H100/H200, mostly torch.compile)::

    python -m benchmarks.omega_gpu_check --out DIR
    python -m benchmarks.omega_gpu_check --device cpu --config tiny --frames 2   # dry run

Input: 8 frames at the size TUM's 640x480 maps to (VGGT-Ω 448x592, VGGT 392x518), random
weights. Checks (a line starting with ``FAIL`` marks a failure; the exit status counts them):
bf16 autocast vs float32 on the same weights, no host<->device synchronisation in the forward
(``torch.cuda.set_sync_debug_mode("error")``), a captured CUDA graph replays the eager outputs;
then eager / compiled latencies, the token cache's sliding-window rate and the ``bench``
figures of both backbones (compiled). ``--out DIR`` writes them as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from benchmarks.backbone import BackboneBenchConfig, build_bench_model, default_input_hw, run_backbone_bench

#: bf16-autocast vs float32 limits (max abs), as for VGGT.
TOKEN_TOL = 0.1
POSE_TOL = 0.05


def _report(ok: bool, what: str, failures: list[str]) -> None:
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def main(argv: list[str] | None = None) -> int:
    """Run the checks; returns the number of failures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--config", default="full")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    h, w = default_input_hw("vggt-omega")
    if not cuda:
        h, w = 64, 96  # dry run
    settings = BackboneBenchConfig(
        config=args.config, device=args.device, backbone="vggt-omega", frames=args.frames, height=h, width=w,
        iters=args.iters, warmup=2,
    )  # fmt: skip
    failures: list[str] = []
    figures: dict = {"device": torch.cuda.get_device_name(device) if cuda else "cpu", "input_hw": [h, w]}
    images = torch.rand(1, args.frames, 3, h, w, generator=torch.Generator().manual_seed(0)).to(device)

    with torch.no_grad():
        model = build_bench_model(settings, inference_precision=False)  # float32 weights
        ref = model(images)
        model.amp_dtype = torch.bfloat16 if cuda else None
        out = model(images)
        tok = (out.camera_and_register_tokens - ref.camera_and_register_tokens).abs().max().item()
        pose = (out.pose_enc - ref.pose_enc).abs().max().item()
        figures["bf16_vs_fp32_max_abs"] = {"tokens": tok, "pose_enc": pose}
        _report(tok < TOKEN_TOL and pose < POSE_TOL, f"bf16 vs float32: tokens {tok:.2e}, pose {pose:.2e}", failures)
        if cuda:
            torch.cuda.set_sync_debug_mode("error")
            try:
                model(images)
                _report(True, "forward makes no host<->device synchronisation", failures)
            except RuntimeError as err:
                _report(False, f"forward synchronises: {err}", failures)
            finally:
                torch.cuda.set_sync_debug_mode("default")
            static = images.clone()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                model(static)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                captured = model(static)
            graph.replay()
            torch.cuda.synchronize()
            diff = (captured.pose_enc - out.pose_enc).abs().max().item()
            _report(diff < 1e-3, f"CUDA graph replay equals eager (pose {diff:.1e})", failures)
        del model

    compiled = dataclasses.replace(settings, compile=cuda)
    results = {}
    for name in ("vggt", "vggt-omega"):
        bh, bw = default_input_hw(name) if cuda else ((56, 98) if name == "vggt" else (h, w))
        s = dataclasses.replace(compiled, backbone=name, height=bh, width=bw)
        r = run_backbone_bench(s)
        results[name] = r.to_dict()
        print("\n".join(r.lines()), "\n", flush=True)
    figures["bench"] = results
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "omega_gpu_check.json").write_text(json.dumps(figures, indent=1))
    print(f"{len(failures)} failed check(s)")
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
