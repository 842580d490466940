"""Our VGGT: aggregator + camera head, with official state_dict names.

``VGGT()`` is the full-size model (1,125,286,930 parameters in 1279 keys, which equal the
``aggregator.*`` and ``camera_head.*`` keys of the official ``facebook/VGGT-1B``
checkpoint); ``VGGT(config="tiny")`` is the same architecture at a small width for fast
tests of everything downstream.

Numerics follow the official model: on CUDA with ``amp_dtype=torch.bfloat16`` the
aggregator runs under bf16 autocast (matmuls and attention in bf16; LayerNorms, the
residual stream and the returned tokens in float32) and the camera head runs in float32
with autocast disabled.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Hashable, Sequence
from typing import Literal

import torch
from torch import nn
from torch.nn.attention import sdpa_kernel

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model.aggregator import Aggregator
from vggt_uncertainty_ros.model.camera_head import CameraHead
from vggt_uncertainty_ros.model.config import VGGTConfig, get_config
from vggt_uncertainty_ros.model.init import deterministic_init_
from vggt_uncertainty_ros.model.layers import ATTENTION_IMPLS, SDPA_BACKENDS, Attention
from vggt_uncertainty_ros.model.token_cache import TokenCache

logger = logging.getLogger(__name__)

InitMode = Literal["auto", "torch", "deterministic", "empty", "meta"]

#: Compiled variants of ``Block.forward`` allowed by :meth:`VGGT.compile_blocks`: about 6
#: block kinds x the DINOv2 batch sizes of a window (1..S new frames) x grad modes.
COMPILE_GRAPH_LIMIT = 64


class VGGT(nn.Module):
    """VGGT aggregator + camera head.

    Args:
        config: ``"full"`` (default), ``"tiny"`` or a :class:`VGGTConfig`.
        init: ``"deterministic"`` (seeded, name-based; the default for ``tiny``), ``"torch"``
            (PyTorch's default initialisers; the default for ``full``), or ``"empty"``
            (uninitialised memory, for loading a checkpoint right after), or ``"meta"``
            (no memory at all; load with ``load_state_dict(..., assign=True)`` and call
            ``aggregator.reset_buffers()``).

    Attributes:
        config: The resolved :class:`VGGTConfig`.
        feature_dim: Width of ``camera_features`` (2048 for ``full``).
        amp_dtype: ``None`` for plain float32, or the autocast dtype of the aggregator.
    """

    def __init__(self, config: str | VGGTConfig = "full", init: InitMode = "auto") -> None:
        super().__init__()
        self.config = get_config(config)
        if init == "auto":
            init = "deterministic" if self.config.name == "tiny" else "torch"
        if init in ("empty", "meta"):
            with torch.device("meta"):
                self._build()
            if init == "empty":
                self.to_empty(device="cpu")
                self.aggregator.reset_buffers()
        else:
            self._build()
            if init == "deterministic":
                deterministic_init_(self, pose_iters=self.config.pose_iters)
            elif init != "torch":
                raise ModelError(f"unknown init mode {init!r}")
        self.feature_dim = self.config.feature_dim
        self.amp_dtype: torch.dtype | None = None
        self.sdpa_backend = "auto"

    def _build(self) -> None:
        self.aggregator = Aggregator(self.config)
        self.camera_head = CameraHead(self.config)

    # ------------------------------------------------------------------ settings
    def set_attention_impl(self, impl: str) -> None:
        """Select ``"sdpa"`` (fused, default) or ``"manual"`` (explicit softmax) attention."""
        if impl not in ATTENTION_IMPLS:
            raise ModelError(f"unknown attention implementation {impl!r}; expected {ATTENTION_IMPLS}")
        for module in self.modules():
            if isinstance(module, Attention):
                module.impl = impl

    def set_sdpa_backend(self, name: str) -> None:
        """Prefer a fused-attention kernel: a key of :data:`SDPA_BACKENDS` ("auto", "cudnn", ...).

        Blocks compiled by :meth:`compile_blocks` keep the kernel chosen when they were
        compiled: set the backend first.
        """
        if name not in SDPA_BACKENDS:
            raise ModelError(f"unknown SDPA backend {name!r}; expected one of {sorted(SDPA_BACKENDS)}")
        self.sdpa_backend = name

    def set_amp(self, dtype: torch.dtype | None, compact_weights: bool = False) -> None:
        """Run the aggregator under autocast with ``dtype`` (``None``: float32 throughout).

        Args:
            dtype: ``torch.bfloat16`` (official GPU numerics), ``torch.float16`` or ``None``.
            compact_weights: Also store the aggregator's matrix weights (Linear, Conv) in
                ``dtype``; autocast casts them to ``dtype`` anyway, so the outputs are
                unchanged while weight memory and per-call casts are saved. Norms, biases,
                LayerScales and tokens stay float32. The camera head always stays float32.
        """
        self.amp_dtype = dtype
        if compact_weights:
            if dtype is None:
                raise ModelError("compact_weights needs an autocast dtype")
            for module in self.aggregator.modules():
                if isinstance(module, (nn.Linear, nn.Conv2d)):
                    module.weight.data = module.weight.data.to(dtype)

    def compile_blocks(self, **kwargs: object) -> None:
        """``torch.compile`` every transformer block in place (fuses norms, RoPE, GELU, casts).

        Blocks of one kind share a compiled graph, so this compiles a handful of graphs
        instead of the whole unrolled model. Shapes are static (``dynamic=False``): each
        DINOv2 batch size the token cache produces gets its own specialised graph rather
        than slower shape-generic kernels. All block kinds (DINOv2, frame, global, the
        camera-only last global block, camera head) and batch sizes share ``Block.forward``,
        so dynamo's per-function recompile limit is raised to :data:`COMPILE_GRAPH_LIMIT`;
        past it dynamo would silently run the remaining variants eagerly. ``kwargs`` go to
        :meth:`nn.Module.compile`.
        """
        import torch._dynamo.config as dynamo_config

        from vggt_uncertainty_ros.model.layers import Block

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, COMPILE_GRAPH_LIMIT)
        kwargs.setdefault("dynamic", False)
        for module in self.modules():
            if isinstance(module, Block):
                module.compile(**kwargs)

    def uncompile_blocks(self) -> None:
        """Undo :meth:`compile_blocks` (blocks run eagerly again; dynamo's caches are kept)."""
        for module in self.modules():
            module._compiled_call_impl = None

    # ------------------------------------------------------------------ forward
    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype)

    def _sdpa_preference(self) -> contextlib.AbstractContextManager:
        order = SDPA_BACKENDS[self.sdpa_backend]
        if order is None:
            return contextlib.nullcontext()
        return sdpa_kernel(list(order), set_priority=True)

    def forward(
        self,
        images: torch.Tensor,
        *,
        frame_ids: Sequence[Hashable] | None = None,
        token_cache: TokenCache | None = None,
        keep_layers: Sequence[int] = (),
        camera_token_layers: bool = False,
        iters: int | None = None,
        decode: bool = True,
    ) -> dict[str, object]:
        """Predict camera poses of one or more image sequences.

        Args:
            images: ``[B, S, 3, H, W]`` (or ``[S, 3, H, W]``) RGB in [0, 1]; ``H``, ``W``
                multiples of 14. Frame 0 of each sequence is the reference frame.
            frame_ids: One hashable id per frame (``B == 1``) for the DINOv2 token cache.
            token_cache: Cache of per-frame DINOv2 patch tokens; with ``frame_ids``, only
                frames not cached yet go through DINOv2.
            keep_layers: Aggregator layer indices whose full tokens to return (tests).
            camera_token_layers: Also return the camera-token column of all layers (tests).
            iters: Camera-head refinement iterations (default 4).
            decode: Decode extrinsics/intrinsics (needs ``vggt_uncertainty_ros.geometry``).

        Returns:
            A dict with

            * ``pose_enc_list``: list of ``[B, S, 9]`` activated encodings, one per iteration;
            * ``pose_enc``: ``[B, S, 9]`` the last one: ``[t (3), q_xyzw (4), fov_h, fov_w]``
              of the camera-from-world extrinsics, translation in VGGT's normalised units,
              fovs in rad;
            * ``pose_enc_preact_list``: the raw encodings before the fov ReLU;
            * ``camera_features``: ``[B, S, 2C]`` camera token of the last aggregator layer
              (what the uncertainty head reads);
            * ``camera_trunk_features``: ``[B, S, 2C]`` camera-head trunk output at the last
              iteration;
            * ``extrinsics``: ``[B, S, 3, 4]`` camera-from-world ``T_cam_world`` (OpenCV axes,
              VGGT units); ``intrinsics``: ``[B, S, 3, 3]`` in pixels of the ``H x W`` input
              (principal point at the image centre) -- when ``decode``;
            * ``aggregated_layers`` (``{i: [B, S, P, 2C]}``), ``camera_tokens_all_layers``
              (``[L, B, S, 2C]``) when requested; ``patch_start_idx``.

        Raises:
            ModelError: On bad shapes or a cache without frame ids.
        """
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if images.dim() != 5 or images.shape[2] != 3:
            raise ModelError(f"expected images [B, S, 3, H, W], got {tuple(images.shape)}")
        b, s, _, h, w = images.shape
        device = images.device
        with self._sdpa_preference(), self._autocast(device):
            if token_cache is not None:
                if frame_ids is None or len(frame_ids) != s or b != 1:
                    raise ModelError("token_cache needs B == 1 and one frame id per frame")
                patch = token_cache.get_or_compute(frame_ids, images[0], self.aggregator.patch_tokens)
                agg = self.aggregator(
                    patch_tokens=patch.unsqueeze(0),
                    image_hw=(h, w),
                    keep_layers=keep_layers,
                    camera_token_layers=camera_token_layers,
                )
            else:
                agg = self.aggregator(images, keep_layers=keep_layers, camera_token_layers=camera_token_layers)
        camera_features = agg.camera_last
        with self._sdpa_preference(), torch.autocast(device_type=device.type, enabled=False):
            head = self.camera_head(camera_features.float(), iters=iters)
        out: dict[str, object] = {
            "pose_enc_list": head.pose_enc_list,
            "pose_enc": head.pose_enc_list[-1],
            "pose_enc_preact_list": head.preact_list,
            "camera_features": camera_features,
            "camera_trunk_features": head.trunk_features,
            "patch_start_idx": agg.patch_start_idx,
        }
        if keep_layers:
            out["aggregated_layers"] = agg.layers
        if camera_token_layers:
            out["camera_tokens_all_layers"] = agg.camera_tokens
        if decode:
            from vggt_uncertainty_ros.geometry import pose_encoding_to_extri_intri

            extrinsics, intrinsics = pose_encoding_to_extri_intri(out["pose_enc"], (h, w))
            out["extrinsics"] = extrinsics
            out["intrinsics"] = intrinsics
        return out
