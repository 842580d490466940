"""Our VGGT-Ω: DINOv3-style patch encoder + alternating-attention aggregator + camera head.

``VGGTOmega()`` is full size with the official state_dict names (``aggregator.*`` and
``camera_head.*``: 1,351 entries, parameters and buffers, 1,111,729,193 values), so the
official ``vggt_omega_1b_*.pt`` checkpoints load strictly once ``dense_head.*`` and
``text_alignment_head.*`` are dropped. ``VGGTOmega(config="tiny")`` is the same architecture
at a small width for tests.

Architecture (what differs from VGGT): 16-px patches; a ViT-L/16 patch encoder with a class
token, 4 storage tokens, axial RoPE (base 100, "max"-normalised coordinates) and key-bias
masking; an aggregator whose tokens per frame are 1 camera + 16 register + patch tokens
(first frame and the others use different learned camera/register tokens), 24 frame blocks
(axial RoPE on patches, qk-norm) and 24 inter-frame blocks (qk-norm, no RoPE) of which
blocks 2, 6, 9, 14, 20 attend only among camera and register tokens of all frames; the
camera head mixes the last layer's camera+register tokens across frames (4 blocks) and maps
the camera token to a 9-d pose encoding in one shot (no iterative refinement).

Numerics follow the official model: on CUDA the aggregator runs under bf16 autocast (see
:meth:`VGGTOmega.set_amp`) and the camera head in float32.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model.init import deterministic_init_
from vggt_uncertainty_ros.model.layers import Block
from vggt_uncertainty_ros.model.layers.attention import flash4_attention
from vggt_uncertainty_ros.model.network import CameraNetwork
from vggt_uncertainty_ros.model.omega.config import OmegaConfig, get_omega_config
from vggt_uncertainty_ros.model.omega.layers import AxialRope, HalfSwapRotation, KeyMaskedLinear
from vggt_uncertainty_ros.model.omega.pose import encoding_to_camera
from vggt_uncertainty_ros.model.token_cache import TokenCache

InitMode = Literal["auto", "torch", "deterministic", "empty", "meta"]

_RESNET_MEAN = (0.485, 0.456, 0.406)
_RESNET_STD = (0.229, 0.224, 0.225)
#: LayerNorm epsilon of every VGGT-Ω norm (blocks, qk-norm, encoder norm, head norms).
_EPS = 1e-5
#: Raw camera-branch bias of the tiny model: zero translation, identity quaternion (xyzw),
#: fields of view of ~1 rad, so that decoded cameras are finite and sensible.
_TINY_POSE_BIAS = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0)


def _block(dim: int, heads: int, *, qk_norm: bool, rope: bool) -> Block:
    """Pre-norm block with LayerScale, eps-1e-5 norms and a key-bias-masked ``qkv``."""
    blk = Block(
        dim,
        heads,
        mlp_ratio=4.0,
        init_values=1e-5,
        norm_layer=lambda d: nn.LayerNorm(d, eps=_EPS),
        qk_norm=qk_norm,
        rope=HalfSwapRotation() if rope else None,  # type: ignore[arg-type]  # duck-typed ``apply``
    )
    blk.attn.qkv = KeyMaskedLinear(dim, 3 * dim, bias=True)  # keys get no bias (DINOv3)
    return blk


class _ConvPatches(nn.Module):
    """Strided convolution (key ``proj``) turning ``[N, 3, H, W]`` into ``[N, HW/p², C]`` tokens."""

    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class PatchEncoder(nn.Module):
    """DINOv3-style ViT patch encoder (official keys under ``aggregator.patch_embed``).

    Sequence per image: class token, ``storage_tokens`` storage tokens, then patches
    row-major; RoPE rotates the patches only; the output is the final LayerNorm's patch tokens.
    """

    def __init__(self, cfg: OmegaConfig) -> None:
        super().__init__()
        c = cfg.embed_dim
        self.prefix = 1 + cfg.storage_tokens
        self.patch_size = cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        self.storage_tokens = nn.Parameter(torch.zeros(1, cfg.storage_tokens, c))
        self.mask_token = nn.Parameter(torch.zeros(1, c))
        self.patch_embed = _ConvPatches(cfg.patch_size, c)
        self.rope_embed = AxialRope(c // cfg.encoder_heads, cfg.rope_base)
        self.blocks = nn.ModuleList(
            [_block(c, cfg.encoder_heads, qk_norm=False, rope=True) for _ in range(cfg.encoder_depth)]
        )
        self.norm = nn.LayerNorm(c, eps=_EPS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` normalised images -> ``[N, (H/p)(W/p), C]`` normalised patch tokens."""
        n, _, h, w = images.shape
        x = self.patch_embed(images)
        # + 0 * mask_token: the official graph adds it (only a non-finite value would show)
        cls = self.cls_token + 0 * self.mask_token
        x = torch.cat((cls.expand(n, -1, -1), self.storage_tokens.expand(n, -1, -1), x), dim=1)
        tables = self.rope_embed.tables((h // self.patch_size, w // self.patch_size), self.prefix)
        for blk in self.blocks:
            x = blk(x, tables)
        return self.norm(x)[:, self.prefix :]


class OmegaAggregator(nn.Module):
    """Frame / inter-frame alternating attention over ``[camera, registers, patches]`` per frame."""

    def __init__(self, cfg: OmegaConfig) -> None:
        super().__init__()
        c = cfg.embed_dim
        self.cfg = cfg
        self.patch_embed = PatchEncoder(cfg)
        self.rope_embed = AxialRope(c // cfg.num_heads, cfg.rope_base)
        self.frame_blocks = nn.ModuleList([_block(c, cfg.num_heads, qk_norm=True, rope=True) for _ in range(cfg.depth)])
        # inter-frame attention has no positional rotation
        self.inter_frame_blocks = nn.ModuleList(
            [_block(c, cfg.num_heads, qk_norm=True, rope=False) for _ in range(cfg.depth)]
        )
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, c))
        self.register_token = nn.Parameter(torch.zeros(1, 2, cfg.num_register_tokens, c))
        self.register_blocks = frozenset(cfg.register_blocks)
        self.register_buffer("_mean", torch.tensor(_RESNET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(_RESNET_STD).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def reset_constants(self) -> None:
        """(Re)create the non-persistent normalisation constants, e.g. after loading onto a meta model."""
        dev = self.camera_token.device
        dev = torch.device("cpu") if dev.type == "meta" else dev
        self._mean = torch.tensor(_RESNET_MEAN, device=dev).view(1, 3, 1, 1)
        self._std = torch.tensor(_RESNET_STD, device=dev).view(1, 3, 1, 1)

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Recompute the RoPE periods (persistent, one meaningful value) and the constants."""
        self.reset_constants()
        for module in self.modules():
            if isinstance(module, AxialRope):
                module.reset_periods()

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``[N, 3, H, W]`` RGB in [0, 1] -> ``[N, P, C]`` encoder patch tokens (per frame, cacheable)."""
        p = self.cfg.patch_size
        h, w = images.shape[-2:]
        if h % p or w % p:
            raise ModelError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        return self.patch_embed((images - self._mean.to(images.dtype)) / self._std.to(images.dtype))

    def _special(self, param: torch.Tensor, b: int, s: int) -> torch.Tensor:
        """``[B, S, k, C]``: slot 0 of ``param`` for frame 0, slot 1 for the others."""
        first = param[:, :1].expand(b, 1, *param.shape[2:])
        rest = param[:, 1:].expand(b, s - 1, *param.shape[2:])
        return torch.cat((first, rest), dim=1)

    def forward(self, patch: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
        """Run the blocks on patch tokens ``[B, S, P, C]``; return the last layer's
        camera and register tokens ``[B, S, 1 + R, 2C]`` (frame-block half, inter-frame half)."""
        b, s, n_patch, c = patch.shape
        k = self.cfg.special_tokens
        special = torch.cat(
            (self._special(self.camera_token, b, s), self._special(self.register_token, b, s)), dim=2
        ).to(patch.dtype)
        x = torch.cat((special, patch), dim=2)  # [B, S, N, C]
        n = k + n_patch
        tables = self.rope_embed.tables(grid_hw, k)
        last = self.cfg.depth - 1
        frame_out = x
        for i in range(self.cfg.depth):
            x = self.frame_blocks[i](x.reshape(b * s, n, c), tables).view(b, s, n, c)
            frame_out = x
            if i in self.register_blocks:
                sp = self.inter_frame_blocks[i](x[:, :, :k].reshape(b, s * k, c)).view(b, s, k, c)
                x = torch.cat((sp, x[:, :, k:]), dim=2)
            elif i == last:
                # only the special tokens of the last layer are read: the others ask no query
                x = self._last_global(self.inter_frame_blocks[i], x, k)
            else:
                x = self.inter_frame_blocks[i](x.reshape(b, s * n, c)).view(b, s, n, c)
        return torch.cat((frame_out[:, :, :k], x[:, :, :k]), dim=-1)

    @staticmethod
    def _last_global(block: Block, x: torch.Tensor, k: int) -> torch.Tensor:
        """A global block whose outputs are only needed for each frame's first ``k`` tokens.

        Keys and values come from every token of every frame; queries, projection and MLP
        run on the ``S k`` special tokens only. Returns ``[B, S, k, C]``.
        """
        b, s, n, c = x.shape
        attn = block.attn
        h, d = attn.num_heads, attn.head_dim
        flat = block.norm1(x.reshape(b, s * n, c))
        qkv = attn.qkv(flat).reshape(b, s, n, 3, h, d)
        q = qkv[:, :, :k, 0].reshape(b, s * k, h, d).transpose(1, 2)
        kk = qkv[:, :, :, 1].reshape(b, s * n, h, d).transpose(1, 2)
        v = qkv[:, :, :, 2].reshape(b, s * n, h, d).transpose(1, 2)
        q, kk = attn.q_norm(q), attn.k_norm(kk)
        if attn.impl == "sdpa":
            o = F.scaled_dot_product_attention(q, kk, v)
        elif attn.impl == "flash4":
            o = flash4_attention(attn.flash, q, kk, v)
        else:
            o = ((q * attn.scale) @ kk.transpose(-2, -1)).softmax(dim=-1) @ v
        o = attn.proj(o.transpose(1, 2).reshape(b, s * k, c))
        y = x[:, :, :k].reshape(b, s * k, c) + block.ls1(o)
        y = y + block.ls2(block.mlp(block.norm2(y)))
        return y.view(b, s, k, c)


class OmegaCameraHead(nn.Module):
    """Camera head: norm, ``head_depth`` blocks over all frames' camera+register tokens, norm of
    the camera token, MLP to 9 values, activation (fov = ReLU + 0.01)."""

    def __init__(self, cfg: OmegaConfig) -> None:
        super().__init__()
        d = cfg.feature_dim
        self.token_norm = nn.LayerNorm(d, eps=_EPS)
        self.trunk = nn.ModuleList(
            [_block(d, cfg.head_heads, qk_norm=False, rope=False) for _ in range(cfg.head_depth)]
        )
        self.trunk_norm = nn.LayerNorm(d, eps=_EPS)
        self.camera_branch = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), nn.Linear(d // 2, 9))

    def forward(self, special: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, S, k, 2C]`` float32 -> (``[B, S, 9]`` activated pose encoding, ``[B, S, 2C]``
        trunk output at the camera slot, before ``trunk_norm``)."""
        b, s, k, d = special.shape
        x = self.token_norm(special).reshape(b, s * k, d)
        for blk in self.trunk:
            x = blk(x)
        trunk = x.view(b, s, k, d)[:, :, 0]
        raw = self.camera_branch(self.trunk_norm(trunk))
        return torch.cat((raw[..., :7], F.relu(raw[..., 7:]) + 0.01), dim=-1), trunk


class OmegaOutput(dict):
    """The forward output: a dict whose keys are also attributes (``out.pose_enc``)."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class VGGTOmega(CameraNetwork):
    """VGGT-Ω aggregator + camera head.

    Args:
        config: ``"full"`` (default), ``"tiny"`` or an :class:`OmegaConfig`.
        init: ``"deterministic"`` (seeded by name, default for ``tiny``), ``"torch"`` (PyTorch
            initialisers, default for ``full``), ``"empty"`` (uninitialised memory, to load a
            checkpoint into) or ``"meta"`` (no memory; ``load_state_dict(..., assign=True)``,
            then :meth:`reset_buffers`).

    Attributes:
        config: the resolved :class:`OmegaConfig`.
        feature_dim: width of the camera token the uncertainty head reads (2048 full size).
        amp_dtype: ``None`` (float32) or the aggregator's autocast dtype.
    """

    def __init__(self, config: str | OmegaConfig = "full", init: InitMode = "auto") -> None:
        super().__init__()
        self.config = get_omega_config(config)
        if init == "auto":
            init = "deterministic" if self.config.name == "tiny" else "torch"
        if init not in ("torch", "deterministic", "empty", "meta"):
            raise ModelError(f"unknown init mode {init!r}")
        if init in ("empty", "meta"):
            with torch.device("meta"):
                self._build()
            if init == "empty":
                self.to_empty(device="cpu")
                self.reset_buffers()
        else:
            self._build()
            if init == "deterministic":
                self._deterministic_init()
        self.feature_dim = self.config.feature_dim

    def _build(self) -> None:
        self.aggregator = OmegaAggregator(self.config)
        self.camera_head = OmegaCameraHead(self.config)

    @torch.no_grad()
    def _deterministic_init(self) -> None:
        deterministic_init_(self)  # parameters and buffers by name ...
        self.reset_buffers()  # ... then the buffers back to their only meaningful values
        last = self.camera_head.camera_branch[2]
        last.weight.mul_(0.01)
        last.bias.add_(torch.tensor(_TINY_POSE_BIAS))

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Set RoPE periods, key-bias masks and normalisation constants to their official values."""
        self.aggregator.reset_buffers()
        for module in self.modules():
            if isinstance(module, KeyMaskedLinear):
                module.reset_mask()

    def forward(
        self,
        images: torch.Tensor,
        *,
        frame_ids: Sequence[Hashable] | None = None,
        token_cache: TokenCache | None = None,
        decode: bool = True,
    ) -> OmegaOutput:
        """Predict the cameras of ``[B, S, 3, H, W]`` (or ``[S, 3, H, W]``) RGB in [0, 1].

        ``H``, ``W`` must be multiples of 16 (use :func:`load_and_preprocess_images`). Frame 0 of
        each sequence is the reference.

        Args:
            images: the frames.
            frame_ids: one hashable id per frame (``B == 1``) for ``token_cache``.
            token_cache: per-frame patch-encoder tokens shared by overlapping windows.
            decode: also return ``extrinsics``/``intrinsics``.

        Returns:
            :class:`OmegaOutput` with ``pose_enc`` ``[B, S, 9]`` (translation 3, quaternion xyzw 4,
            fov_h, fov_w rad of the camera-from-world extrinsics, backbone units),
            ``camera_and_register_tokens`` ``[B, S, 1 + R, 2C]`` (slot 0: camera token),
            ``camera_features`` ``[B, S, 2C]`` (= slot 0, the head input),
            ``camera_trunk_features`` ``[B, S, 2C]`` (camera-head trunk output at the camera
            slot, the alternative head input) and, with ``decode``,
            ``extrinsics`` ``[B, S, 3, 4]`` camera-from-world (OpenCV axes) and ``intrinsics``
            ``[B, S, 3, 3]`` in input pixels.

        Raises:
            ModelError: bad shapes, or a token cache without one id per frame.
        """
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if images.dim() != 5 or images.shape[2] != 3:
            raise ModelError(f"expected images [B, S, 3, H, W], got {tuple(images.shape)}")
        b, s, _, h, w = images.shape
        p = self.config.patch_size
        if h % p or w % p:
            raise ModelError(f"image size {h}x{w} is not a multiple of the patch size {p}")
        device = images.device
        with self._sdpa_preference(), self._autocast(device):
            if token_cache is not None:
                if frame_ids is None or len(frame_ids) != s or b != 1:
                    raise ModelError("token_cache needs B == 1 and one frame id per frame")
                patch = token_cache.get_or_compute(frame_ids, images[0], self.aggregator.patch_tokens)[None]
            else:
                patch = self.aggregator.patch_tokens(images.reshape(b * s, 3, h, w))
                patch = patch.view(b, s, *patch.shape[1:])
            special = self.aggregator(patch, (h // p, w // p))
        with self._sdpa_preference(), torch.autocast(device_type=device.type, enabled=False):
            special = special.float()
            pose_enc, trunk = self.camera_head(special)
        out = OmegaOutput(
            pose_enc=pose_enc,
            camera_and_register_tokens=special,
            camera_features=special[:, :, 0],
            camera_trunk_features=trunk,
        )
        if decode:
            out["extrinsics"], out["intrinsics"] = encoding_to_camera(pose_enc, (h, w))
        return out
