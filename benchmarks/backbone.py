"""Backbone benchmark: latency, memory, sliding-window throughput and FLOP efficiency.

Library part of ``vggt-uncertainty bench``, for the network backbones ``vggt`` and
``vggt-omega`` (side by side with ``--backbone vggt,vggt-omega``). Weights are random (timing
does not depend on them); CUDA runs the official GPU numerics (bf16 autocast aggregator,
float32 camera head) with bf16-stored matrix weights, CPU runs float32. The default input is
the size TUM's 640x480 frames map to under each backbone's default preprocessing (VGGT
``crop``: 392x518; VGGT-Ω ``balanced`` at 512: 448x592).
"""

from __future__ import annotations

import logging
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model.checkpoint import compact_matrix_weights
from vggt_uncertainty_ros.model.config import VGGTConfig, get_config
from vggt_uncertainty_ros.model.layers import Attention
from vggt_uncertainty_ros.model.omega import OmegaConfig, VGGTOmega, get_omega_config
from vggt_uncertainty_ros.model.omega.preprocess import target_shape
from vggt_uncertainty_ros.model.token_cache import TokenCache
from vggt_uncertainty_ros.model.vggt import VGGT

#: Backbones this benchmark can time (network backbones) and their patch sizes.
BENCH_BACKBONES: dict[str, int] = {"vggt": 14, "vggt-omega": 16}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneBenchConfig:
    """What to benchmark.

    Attributes:
        backbone: ``"vggt"`` or ``"vggt-omega"``.
        config: ``"tiny"`` or ``"full"``.
        device: ``"cpu"`` or ``"cuda"``.
        frames: Window size S.
        height, width: Input size in pixels (multiples of the patch: 14 VGGT, 16 VGGT-Ω).
        iters: Timed forward passes (and sliding windows per variant).
        warmup: Untimed forward passes first.
        compile: ``torch.compile`` every transformer block (:meth:`VGGT.compile_blocks`).
        sdpa_backend: Preferred fused-attention kernel (:meth:`VGGT.set_sdpa_backend`).
    """

    config: str = "tiny"
    device: str = "cpu"
    backbone: str = "vggt"
    frames: int = 8
    height: int = 392
    width: int = 518
    iters: int = 10
    warmup: int = 2
    compile: bool = False
    sdpa_backend: str = "auto"


@dataclass
class BenchResult:
    """Measured figures (times in ms, memory in bytes, FLOPs counted as 2 per multiply-add)."""

    device_name: str
    torch_version: str
    config: str
    compute_dtype: str
    frames: int
    height: int
    width: int
    latency_ms_median: float
    latency_ms_min: float
    peak_memory_bytes: int
    peak_memory_kind: str
    sliding_fps_no_cache: float
    sliding_fps_cache: float
    flops_per_window: float
    matmul_peak_tflops: float
    achieved_fraction_of_peak: float
    compiled: bool
    sdpa_backend: str
    backbone: str = "vggt"
    flops_saved_by_register_blocks: float = 0.0

    def to_dict(self) -> dict:
        """Plain dict (for JSON)."""
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable report lines."""
        gib = self.peak_memory_bytes / 2**30
        return [
            f"device            : {self.device_name} (torch {self.torch_version})",
            (
                f"model             : {self.backbone} {self.config}, {self.compute_dtype}"
                f"{', torch.compile' if self.compiled else ''}, attention kernel preference {self.sdpa_backend}"
            ),
            f"window            : {self.frames} x {self.height}x{self.width}",
            f"latency           : median {self.latency_ms_median:.1f} ms, min {self.latency_ms_min:.1f} ms",
            f"peak memory       : {gib:.2f} GiB ({self.peak_memory_kind})",
            (
                f"sliding stride 1  : {self.sliding_fps_no_cache:.2f} frames/s without token cache, "
                f"{self.sliding_fps_cache:.2f} frames/s with it"
            ),
            f"analytic FLOPs    : {self.flops_per_window / 1e12:.3f} TFLOP per window"
            + (
                f" (register-only blocks save {100 * self.flops_saved_by_register_blocks:.1f} %)"
                if self.flops_saved_by_register_blocks
                else ""
            ),
            f"matmul peak       : {self.matmul_peak_tflops:.3g} TFLOP/s ({self.compute_dtype}, measured)",
            f"achieved          : {100 * self.achieved_fraction_of_peak:.1f} % of peak at the median latency",
        ]


def _linear_flops(tokens: int, c_in: int, c_out: int) -> float:
    return 2.0 * tokens * c_in * c_out


def _block_flops(n_seq: int, seq_len: int, dim: int, mlp_ratio: float = 4.0) -> float:
    """One transformer block over ``n_seq`` independent sequences of ``seq_len`` tokens."""
    tokens = n_seq * seq_len
    hidden = int(dim * mlp_ratio)
    linear = _linear_flops(tokens, dim, 3 * dim) + _linear_flops(tokens, dim, dim)
    linear += _linear_flops(tokens, dim, hidden) + _linear_flops(tokens, hidden, dim)
    attention = 2 * 2.0 * n_seq * seq_len * seq_len * dim  # q k^T and attn v
    return linear + attention


def vggt_flops(cfg: VGGTConfig, frames: int, height: int, width: int, batch: int = 1) -> float:
    """Analytic FLOPs (2 per multiply-add) of one forward pass: matmuls and attention only.

    Covers the patch convolution, the DINOv2 blocks, the frame and global blocks (the last
    global block updating only the camera tokens, as the model does) and the camera head
    (4 iterations); norms, activations and RoPE are ignored (< 1 %).
    """
    c, p = cfg.embed_dim, cfg.patch_size
    n_patch = (height // p) * (width // p)
    images = batch * frames
    flops = _linear_flops(images * n_patch, 3 * p * p, c)
    dino_len = 1 + cfg.num_register_tokens + n_patch
    flops += cfg.dino_depth * _block_flops(images, dino_len, c)
    agg_len = 1 + cfg.num_register_tokens + n_patch
    flops += cfg.depth * _block_flops(images, agg_len, c) + (cfg.depth - 1) * _block_flops(batch, frames * agg_len, c)
    # the last global block updates only the S camera tokens: qkv over every token, then
    # S queries against all keys, and proj + MLP over S tokens
    flops += _linear_flops(images * agg_len, c, 3 * c) + 2 * 2.0 * images * frames * agg_len * c
    flops += _linear_flops(images, c, c) + 2 * _linear_flops(images, c, 4 * c)
    d = cfg.feature_dim
    per_iter = _linear_flops(images, 9, d) + _linear_flops(images, d, 3 * d)
    per_iter += cfg.head_depth * _block_flops(batch, frames, d)
    per_iter += _linear_flops(images, d, d // 2) + _linear_flops(images, d // 2, 9)
    return flops + cfg.pose_iters * per_iter


def dino_flops(cfg: VGGTConfig, height: int, width: int) -> float:
    """FLOPs of the DINOv2 part for one frame (what the token cache saves per cached frame)."""
    n_patch = (height // cfg.patch_size) * (width // cfg.patch_size)
    return _linear_flops(n_patch, 3 * cfg.patch_size**2, cfg.embed_dim) + cfg.dino_depth * _block_flops(
        1, 1 + cfg.num_register_tokens + n_patch, cfg.embed_dim
    )


def omega_flops(
    cfg: OmegaConfig, frames: int, height: int, width: int, batch: int = 1, registers: bool = True
) -> float:
    """Analytic FLOPs (2 per multiply-add) of one VGGT-Ω forward: matmuls and attention only.

    Covers the patch convolution, the patch-encoder blocks, the frame blocks, the inter-frame
    blocks (global over all tokens of all frames, or, for ``cfg.register_blocks``, over the
    ``S (1 + R)`` camera/register tokens only; the last one asks queries of the special tokens
    only, as our model does) and the camera head. ``registers=False`` counts every
    inter-frame block as global (what the register-only blocks save).
    """
    c, p, k = cfg.embed_dim, cfg.patch_size, cfg.special_tokens
    n_patch = (height // p) * (width // p)
    images = batch * frames
    n = k + n_patch
    flops = _linear_flops(images * n_patch, 3 * p * p, c)
    flops += cfg.encoder_depth * _block_flops(images, 1 + cfg.storage_tokens + n_patch, c)
    flops += cfg.depth * _block_flops(images, n, c)
    for i in range(cfg.depth):
        if registers and i in cfg.register_blocks:
            flops += _block_flops(batch, frames * k, c)
        elif i == cfg.depth - 1:
            flops += _linear_flops(images * n, c, 3 * c) + 2 * 2.0 * images * k * frames * n * c
            flops += _linear_flops(images * k, c, c) + 2 * _linear_flops(images * k, c, 4 * c)
        else:
            flops += _block_flops(batch, frames * n, c)
    d = cfg.feature_dim
    flops += cfg.head_depth * _block_flops(batch, frames * k, d)
    flops += _linear_flops(images, d, d // 2) + _linear_flops(images, d // 2, 9)
    return flops


def default_input_hw(backbone: str, original_hw: tuple[int, int] = (480, 640)) -> tuple[int, int]:
    """Network input size for ``original_hw`` frames under the backbone's default preprocessing."""
    h, w = original_hw
    if backbone == "vggt-omega":
        return target_shape(h, w, "balanced", 512, 16)
    new_h = round(h * (518 / w) / 14) * 14  # VGGT "crop": width 518, height to a multiple of 14
    return min(new_h, 518), 518


@torch.no_grad()
def random_weights_(model: nn.Module, seed: int = 0) -> None:
    """Fast on-device random weights with sane activations (timing only)."""
    gen = torch.Generator(device=next(model.parameters()).device)
    gen.manual_seed(seed)
    for name, t in model.state_dict().items():
        if not torch.is_floating_point(t):
            continue
        last = name.rsplit(".", 1)[-1]
        if last == "gamma":
            t.fill_(0.1)
        elif last == "bias":
            t.zero_()
        elif last == "weight" and t.dim() == 1:
            t.fill_(1.0)
        elif last == "weight":
            t.normal_(0.0, 0.02, generator=gen)
        else:
            t.normal_(0.0, 1.0, generator=gen)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_peak(device: torch.device, dtype: torch.dtype, n: int | None = None, iters: int = 10) -> float:
    """Measured dense matmul throughput in TFLOP/s for ``n x n`` operands."""
    n = n or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    return 2.0 * n**3 * iters / (time.perf_counter() - t0) / 1e12


def set_attention_impl(model: nn.Module, impl: str) -> None:
    """Select ``"sdpa"`` (fused, default) or ``"manual"`` (explicit softmax) attention in every block."""
    if impl not in ("sdpa", "manual"):  # flash4 needs its kernel: model.layers.select_attention
        raise ModelError(f"attention implementation must be 'sdpa' or 'manual', got {impl!r}")
    for module in model.modules():
        if isinstance(module, Attention):
            module.impl = impl


def set_amp(model: VGGT, dtype: torch.dtype | None, compact_weights: bool = False) -> None:
    """Run the aggregator under autocast with ``dtype`` (``None``: float32 throughout).

    With ``compact_weights`` the aggregator's matrix weights are also stored in ``dtype``
    (:func:`~vggt_uncertainty_ros.model.checkpoint.compact_matrix_weights`); the camera head
    always stays float32.
    """
    if compact_weights and dtype is None:
        raise ModelError("compact_weights needs an autocast dtype")
    model.amp_dtype = dtype
    if compact_weights:
        compact_matrix_weights(model.aggregator, dtype)


def uncompile_blocks(model: nn.Module) -> None:
    """Undo ``VGGT.compile_blocks`` (blocks run eagerly again; dynamo's caches are kept)."""
    for module in model.modules():
        module._compiled_call_impl = None


def build_bench_model(settings: BackboneBenchConfig, inference_precision: bool = True) -> VGGT | VGGTOmega:
    """Model on the target device with random weights.

    With ``inference_precision`` a CUDA model gets the bf16 GPU path (autocast and
    bf16-stored matrix weights); otherwise it stays float32.
    """
    device = torch.device(settings.device)
    if settings.backbone not in BENCH_BACKBONES:
        raise ValueError(f"cannot benchmark backbone {settings.backbone!r}; expected one of {sorted(BENCH_BACKBONES)}")
    model = (VGGTOmega if settings.backbone == "vggt-omega" else VGGT)(settings.config, init="meta")
    model.to_empty(device=device)
    random_weights_(model)
    # buffers with one meaningful value (RoPE periods, key-bias masks) after the random fill
    (model.reset_buffers if isinstance(model, VGGTOmega) else model.aggregator.reset_buffers)()
    model.eval().requires_grad_(False)
    if device.type == "cuda" and inference_precision:
        set_amp(model, torch.bfloat16, compact_weights=True)
    return model


def _time_calls(fn: Callable[[], object], n: int, device: torch.device) -> list[float]:
    times = []
    for _ in range(n):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return times


@torch.no_grad()
def run_backbone_bench(settings: BackboneBenchConfig, model: VGGT | None = None) -> BenchResult:
    """Benchmark one window size; see :class:`BenchResult` for the figures."""
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda requested but torch.cuda.is_available() is False")
    omega = settings.backbone == "vggt-omega"
    cfg = get_omega_config(settings.config) if omega else get_config(settings.config)
    model = model or build_bench_model(settings)
    model.set_sdpa_backend(settings.sdpa_backend)
    if settings.compile:
        model.compile_blocks()
    run = model
    s, h, w = settings.frames, settings.height, settings.width
    gen = torch.Generator(device="cpu").manual_seed(0)
    n_seq = s + settings.iters + 2
    sequence = torch.rand((n_seq, 3, h, w), generator=gen).to(device)
    window = sequence[:s].unsqueeze(0)

    if device.type == "cuda":
        torch.cuda.empty_cache()
    for _ in range(settings.warmup):
        run(window)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    lat = _time_calls(lambda: run(window), settings.iters, device)
    if device.type == "cuda":
        peak, peak_kind = torch.cuda.max_memory_allocated(device), "torch.cuda.max_memory_allocated, weights included"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if platform.system() == "Darwin" else 1024)
        peak_kind = "process max RSS"

    def sliding(use_cache: bool) -> float:
        cache = TokenCache(max_frames=2 * s) if use_cache else None
        warm = 2  # untimed: fill the cache, then one one-new-frame window (compiles that shape)
        for k in range(warm):
            win = sequence[k : k + s].unsqueeze(0)
            if cache is None:
                run(win)
            else:
                run(win, frame_ids=list(range(k, k + s)), token_cache=cache)
        _sync(device)
        t0 = time.perf_counter()
        for k in range(warm, settings.iters + warm):
            win = sequence[k : k + s].unsqueeze(0)
            if cache is None:
                run(win)
            else:
                run(win, frame_ids=list(range(k, k + s)), token_cache=cache)
        _sync(device)
        return settings.iters / (time.perf_counter() - t0)

    fps_plain = sliding(False)
    fps_cache = sliding(True)
    compute_dtype = "bf16 autocast" if model.amp_dtype == torch.bfloat16 else "float32"
    peak_dtype = model.amp_dtype or torch.float32
    peak_tflops = measure_matmul_peak(device, peak_dtype)
    flops = omega_flops(cfg, s, h, w) if omega else vggt_flops(cfg, s, h, w)
    saved = 1.0 - flops / omega_flops(cfg, s, h, w, registers=False) if omega else 0.0
    med = statistics.median(lat)
    return BenchResult(
        device_name=torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (platform.processor() or "cpu") + f" ({torch.get_num_threads()} threads)",
        torch_version=torch.__version__,
        config=cfg.name,
        compute_dtype=compute_dtype,
        frames=s,
        height=h,
        width=w,
        latency_ms_median=med,
        latency_ms_min=min(lat),
        peak_memory_bytes=int(peak),
        peak_memory_kind=peak_kind,
        sliding_fps_no_cache=fps_plain,
        sliding_fps_cache=fps_cache,
        flops_per_window=flops,
        matmul_peak_tflops=peak_tflops,
        achieved_fraction_of_peak=flops / (med / 1e3) / (peak_tflops * 1e12),
        compiled=settings.compile,
        sdpa_backend=settings.sdpa_backend,
        backbone=settings.backbone,
        flops_saved_by_register_blocks=saved,
    )


def _bench_worker(settings: BackboneBenchConfig) -> dict:
    return run_backbone_bench(settings).to_dict()


def run_isolated(settings: BackboneBenchConfig) -> BenchResult:
    """:func:`run_backbone_bench` in a fresh process, so that the CPU's max-RSS figure is this
    backbone's alone (side-by-side runs would otherwise all report the largest)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return BenchResult(**pool.submit(_bench_worker, settings).result())


def side_by_side(results: list[BenchResult]) -> list[str]:
    """A table of the main figures, one column per backbone."""
    rows = [
        ("backbone", [f"{r.backbone} ({r.config})" for r in results]),
        ("input", [f"{r.frames} x {r.height}x{r.width}" for r in results]),
        ("latency median", [f"{r.latency_ms_median:.1f} ms" for r in results]),
        ("peak memory", [f"{r.peak_memory_bytes / 2**30:.2f} GiB" for r in results]),
        ("TFLOP / window", [f"{r.flops_per_window / 1e12:.4g}" for r in results]),
        ("fraction of peak", [f"{100 * r.achieved_fraction_of_peak:.1f} %" for r in results]),
        ("sliding fps (cache)", [f"{r.sliding_fps_no_cache:.2f} ({r.sliding_fps_cache:.2f})" for r in results]),
    ]
    width = max(len(v) for _, vals in rows for v in vals) + 2
    lines = [f"{name:<20}" + "".join(f"{v:>{width}}" for v in vals) for name, vals in rows]
    lines.append(f"device: {results[0].device_name}, {results[0].compute_dtype}; memory: {results[0].peak_memory_kind}")
    return lines
