"""What our camera networks (VGGT, VGGT-Ω) share: autocast, SDPA kernel preference, compiled blocks."""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.attention import sdpa_kernel

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model.layers import SDPA_BACKENDS, Block

#: dynamo's per-function recompile limit while blocks are compiled: every block kind and DINOv2
#: batch size shares ``Block.forward``; past the limit dynamo would silently run them eagerly.
COMPILE_GRAPH_LIMIT = 64


class CameraNetwork(nn.Module):
    """Base of :class:`~vggt_uncertainty_ros.model.VGGT` and ``VGGTOmega``.

    Attributes:
        amp_dtype: ``None`` (float32 throughout) or the aggregator's autocast dtype
            (``torch.bfloat16`` for the official GPU numerics, or ``torch.float16``); the camera
            head always runs in float32. May be reassigned between calls.
        sdpa_backend: preferred fused-attention kernel, a key of :data:`SDPA_BACKENDS`.
    """

    def __init__(self, amp_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if amp_dtype not in (None, torch.bfloat16, torch.float16):
            raise ModelError(f"amp_dtype must be None, torch.bfloat16 or torch.float16, got {amp_dtype!r}")
        self.amp_dtype: torch.dtype | None = amp_dtype
        self.sdpa_backend = "auto"

    def set_sdpa_backend(self, name: str) -> None:
        """Prefer a fused-attention kernel: a key of :data:`SDPA_BACKENDS` ("auto", "cudnn", ...).

        Blocks compiled by :meth:`compile_blocks` keep the kernel chosen when they were
        compiled: set the backend first.
        """
        if name not in SDPA_BACKENDS:
            raise ModelError(f"unknown SDPA backend {name!r}; expected one of {sorted(SDPA_BACKENDS)}")
        self.sdpa_backend = name

    def compile_blocks(self, **kwargs: object) -> None:
        """``torch.compile`` every transformer block in place (fuses norms, RoPE, GELU, casts).

        Blocks of one kind share a compiled graph, so this compiles a handful of graphs instead
        of the whole unrolled model. Shapes are static (``dynamic=False``): each patch-embedding
        batch size the token cache produces gets its own specialised graph rather than slower
        shape-generic kernels; the recompile limit is raised to :data:`COMPILE_GRAPH_LIMIT`.
        ``kwargs`` go to :meth:`nn.Module.compile`.
        """
        import torch._dynamo.config as dynamo_config  # lazy: dynamo only when compiling

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, COMPILE_GRAPH_LIMIT)
        kwargs.setdefault("dynamic", False)
        for module in self.modules():
            if isinstance(module, Block):
                module.compile(**kwargs)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype)

    def _sdpa_preference(self) -> contextlib.AbstractContextManager:
        order = SDPA_BACKENDS[self.sdpa_backend]
        return contextlib.nullcontext() if order is None else sdpa_kernel(list(order), set_priority=True)
