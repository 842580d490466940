"""Multi-head self-attention with optional qk-norm and 2-D RoPE (official key names)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend

from vggt_uncertainty_ros.model.layers.rope import RotaryPositionEmbedding2D

_log = logging.getLogger(__name__)

#: Attention kernels: "sdpa" (fused ``F.scaled_dot_product_attention``), "manual" (explicit
#: softmax(q k^T / sqrt(d)) v, the reference path used by tests) and "flash4" (FlashAttention-4's
#: CuTe-DSL kernels from the optional ``flash-attn-4`` package; CUDA SM90+, half precision).
ATTENTION_IMPLS = ("sdpa", "manual", "flash4")

#: Module that provides FlashAttention-4's ``flash_attn_func`` (``pip install flash-attn-4``).
FLASH4_MODULE = "flash_attn.cute"

FlashFunc = Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]


def load_flash4() -> FlashFunc | None:
    """FlashAttention-4's ``flash_attn_func``, or None when the package is not importable.

    Imported lazily: it is an optional dependency that compiles its kernels at run time.
    """
    try:
        return importlib.import_module(FLASH4_MODULE).flash_attn_func
    except Exception as err:  # ImportError, or a CUDA/driver error raised while importing
        _log.debug("flash-attn-4 is not usable: %s", err)
        return None


def flash4_attention(flash: FlashFunc, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q kᵀ / √d) v`` through a FlashAttention-style kernel.

    Args:
        flash: ``flash_attn_func(q, k, v, softmax_scale=None, causal=False)`` taking and returning
            ``[B, N, heads, head_dim]`` (the output first when it returns a tuple).
        q, k, v: ``[B, heads, N, head_dim]`` as the attention layers hold them.

    Returns:
        ``[B, heads, Nq, head_dim]``, the layout of ``F.scaled_dot_product_attention``.
    """
    out = flash(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=False)
    out = out[0] if isinstance(out, tuple) else out
    return out.transpose(1, 2)


def set_attention_impl(model: nn.Module, impl: str) -> None:
    """Set every attention layer of ``model`` to ``"sdpa"`` or ``"manual"`` (the reference path)."""
    if impl not in ("sdpa", "manual"):
        raise ValueError(f"attention impl must be sdpa or manual here, got {impl!r}; flash4: select_attention()")
    for module in model.modules():
        if isinstance(module, Attention):
            module.impl, module.flash = impl, None


def select_attention(model: nn.Module, backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """Set every attention layer of ``model`` to ``backend`` (``sdpa`` or ``flash4``).

    ``flash4`` runs only where it can: the package importable, a CUDA device and a half-precision
    autocast dtype; otherwise SDPA is used and a warning says why.

    Returns:
        The backend the layers now use.
    """
    flash = None
    if backend == "flash4":
        reason = None
        if device.type != "cuda" or dtype not in (torch.bfloat16, torch.float16):
            reason = f"it needs CUDA with bfloat16/float16, not {device.type} {dtype}"
        elif (flash := load_flash4()) is None:
            reason = "the flash-attn-4 package is not importable"
        if reason is not None:
            _log.warning("attention flash4 requested but %s: using sdpa", reason)
            backend = "sdpa"
    elif backend != "sdpa":
        raise ValueError(f"attention backend must be sdpa or flash4, got {backend!r}")
    for module in model.modules():
        if isinstance(module, Attention):
            module.impl, module.flash = backend, flash
    return backend


#: Kernel preference orders for ``F.scaled_dot_product_attention`` (the first that supports
#: the inputs runs). "auto" keeps PyTorch's own order, which on an H100 with torch 2.11
#: already runs cuDNN's fused attention, the fastest there for VGGT's 64-wide heads (the
#: README's performance section has the figures); the others are for other devices or
#: versions. cuDNN and flash take only fp16/bf16, so float32 calls fall through.
SDPA_BACKENDS: dict[str, tuple[SDPBackend, ...] | None] = {
    "auto": None,
    "cudnn": (SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH),
    "flash": (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH),
    "efficient": (SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH),
    "math": (SDPBackend.MATH,),
}


class Attention(nn.Module):
    """Self-attention over ``[B, N, C]`` tokens.

    Keys: ``qkv`` (C -> 3C), optional ``q_norm``/``k_norm`` (LayerNorm over the head
    dimension) and ``proj`` (C -> C).

    Args:
        dim: Token channels ``C``.
        num_heads: Number of heads (``C`` must be a multiple).
        qkv_bias: Bias of the ``qkv`` projection.
        proj_bias: Bias of the output projection.
        qk_norm: Apply a LayerNorm to queries and keys per head (VGGT aggregator blocks).
        norm_layer: Constructor of the qk-norm layer.
        rope: Shared 2-D RoPE module, or ``None`` for no positional rotation.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        qk_norm: bool = False,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        rope: RotaryPositionEmbedding2D | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not a multiple of num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.rope = rope
        self.impl = "sdpa"
        self.flash: FlashFunc | None = None  # set by select_attention() with impl "flash4"

    def forward(
        self,
        x: torch.Tensor,
        rope_tables: tuple[torch.Tensor, torch.Tensor] | None = None,
        query_step: int | None = None,
    ) -> torch.Tensor:
        """Attend over the token axis.

        Args:
            x: ``[B, N, C]`` tokens.
            rope_tables: ``(cos, sin)`` of shape ``[N, head_dim]`` from
                :meth:`RotaryPositionEmbedding2D.tables` (required when ``rope`` is set).
            query_step: Only tokens ``0, k, 2k, ...`` ask queries (every token still serves
                as key and value); ``None`` means every token.

        Returns:
            ``[B, N, C]``, or ``[B, ceil(N / query_step), C]`` with ``query_step``.
        """
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, N, head_dim] each
        if query_step is not None:
            q = q[:, :, ::query_step]  # [B, heads, Nq, head_dim]
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            if rope_tables is None:
                raise ValueError("this attention layer uses RoPE; pass rope_tables")
            cos, sin = rope_tables
            k = self.rope.apply(k, cos, sin)
            if query_step is not None:
                cos, sin = cos[::query_step], sin[::query_step]
            q = self.rope.apply(q, cos, sin)
        if self.impl == "sdpa":
            x = F.scaled_dot_product_attention(q, k, v)
        elif self.impl == "flash4":
            if self.flash is None:
                raise ValueError("attention impl flash4 without a kernel: use select_attention()")
            x = flash4_attention(self.flash, q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            x = attn.softmax(dim=-1) @ v
        x = x.transpose(1, 2).reshape(b, q.shape[2], c)
        return self.proj(x)
