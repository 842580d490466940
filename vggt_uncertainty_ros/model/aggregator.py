"""VGGT aggregator: DINOv2 patch tokens + alternating frame/global attention.

Token layout per frame: ``[camera (1), registers (R), patches (rows*cols)]``;
``patch_start_idx = 1 + R``. Camera and register tokens come in two learned versions:
slot 0 for the first frame of each sequence, slot 1 for all other frames.
Each of the ``depth`` layers runs one frame block (attention within each frame) and one
global block (attention across all frames); layer ``i``'s output is the channel
concatenation ``[frame_i, global_i]`` of width ``2C``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model.config import VGGTConfig
from vggt_uncertainty_ros.model.dinov2 import DinoVisionTransformer
from vggt_uncertainty_ros.model.layers import Block, RotaryPositionEmbedding2D

#: ImageNet normalisation applied inside the model (inputs are RGB in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class AggregatorOutput:
    """What the aggregator keeps of its 24 layers.

    Attributes:
        camera_last: ``[B, S, 2C]`` camera token of the last layer (the camera head's input).
        layers: ``{layer index: [B, S, P, 2C]}`` for every index requested in ``keep_layers``.
        camera_tokens: ``[L, B, S, 2C]`` camera-token column of every layer, or ``None``
            unless requested.
        patch_start_idx: Index of the first patch token.
    """

    camera_last: torch.Tensor
    layers: dict[int, torch.Tensor] = field(default_factory=dict)
    camera_tokens: torch.Tensor | None = None
    patch_start_idx: int = 5


def expand_special_tokens(token: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    """``[1, 2, n, C]`` (slot 0: first frame, slot 1: others) -> ``[B*S, n, C]``."""
    first = token[:, :1].expand(batch, 1, *token.shape[2:])
    others = token[:, 1:].expand(batch, frames - 1, *token.shape[2:])
    return torch.cat((first, others), dim=1).reshape(batch * frames, *token.shape[2:])


class Aggregator(nn.Module):
    """Alternating-attention aggregator with official key names.

    Args:
        cfg: Architecture preset.
    """

    def __init__(self, cfg: VGGTConfig) -> None:
        super().__init__()
        c = cfg.embed_dim
        self.patch_size = cfg.patch_size
        self.depth = cfg.depth
        self.patch_embed = DinoVisionTransformer(
            img_size=cfg.img_size,
            patch_size=cfg.patch_size,
            embed_dim=c,
            depth=cfg.dino_depth,
            num_heads=cfg.dino_heads,
            num_register_tokens=cfg.num_register_tokens,
        )
        self.rope = RotaryPositionEmbedding2D(frequency=cfg.rope_freq)

        def make_block() -> Block:
            return Block(c, cfg.num_heads, mlp_ratio=4.0, init_values=0.01, qk_norm=True, rope=self.rope)

        self.frame_blocks = nn.ModuleList([make_block() for _ in range(cfg.depth)])
        self.global_blocks = nn.ModuleList([make_block() for _ in range(cfg.depth)])
        self.camera_token = nn.Parameter(torch.zeros(1, 2, 1, c))
        self.register_token = nn.Parameter(torch.zeros(1, 2, cfg.num_register_tokens, c))
        self.patch_start_idx = 1 + cfg.num_register_tokens
        self.head_dim = c // cfg.num_heads
        self.register_buffer("_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def reset_buffers(self) -> None:
        """Rewrite the non-persistent ImageNet statistics on the parameters' device.

        Needed after ``to_empty`` or after loading a state_dict into a meta-device model.
        """
        device = torch.device("cpu") if self.camera_token.is_meta else self.camera_token.device
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def patch_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """DINOv2 patch tokens of ``[N, 3, H, W]`` images in [0, 1]: ``[N, rows*cols, C]``.

        This is the per-frame quarter of the work that :class:`~.token_cache.TokenCache` caches.
        """
        return self.patch_embed((images - self._mean) / self._std)

    def forward(
        self,
        images: torch.Tensor | None = None,
        *,
        patch_tokens: torch.Tensor | None = None,
        image_hw: tuple[int, int] | None = None,
        keep_layers: Sequence[int] = (),
        camera_token_layers: bool = False,
    ) -> AggregatorOutput:
        """Run the aggregator.

        Args:
            images: ``[B, S, 3, H, W]`` RGB in [0, 1]; or give ``patch_tokens`` instead.
            patch_tokens: ``[B, S, rows*cols, C]`` precomputed DINOv2 tokens (then
                ``image_hw`` is required).
            image_hw: ``(H, W)`` in pixels when ``patch_tokens`` is given.
            keep_layers: Layer indices whose full ``[B, S, P, 2C]`` output to return.
            camera_token_layers: Also return the camera-token column of every layer.

        Returns:
            :class:`AggregatorOutput`.

        Raises:
            ModelError: On inconsistent shapes.
        """
        if patch_tokens is None:
            if images is None or images.dim() != 5 or images.shape[2] != 3:
                shape = None if images is None else tuple(images.shape)
                raise ModelError(f"expected images [B, S, 3, H, W], got {shape}")
            b, s, _, h, w = images.shape
            patch_tokens = self.patch_tokens(images.reshape(b * s, 3, h, w)).reshape(
                b, s, -1, self.camera_token.shape[-1]
            )
        else:
            if image_hw is None:
                raise ModelError("image_hw is required with patch_tokens")
            h, w = image_hw
            b, s = patch_tokens.shape[:2]
        if h % self.patch_size or w % self.patch_size:
            raise ModelError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        rows, cols = h // self.patch_size, w // self.patch_size
        if patch_tokens.shape[2] != rows * cols:
            raise ModelError(f"{patch_tokens.shape[2]} patch tokens do not match a {rows}x{cols} grid")
        c = patch_tokens.shape[-1]
        tokens = torch.cat(
            (
                expand_special_tokens(self.camera_token, b, s),
                expand_special_tokens(self.register_token, b, s),
                patch_tokens.reshape(b * s, rows * cols, c),
            ),
            dim=1,
        )
        p = tokens.shape[1]
        frame_rope = self.rope.tables((rows, cols), self.patch_start_idx, self.head_dim, tokens.device)
        global_rope = self.rope.tables((rows, cols), self.patch_start_idx, self.head_dim, tokens.device, frames=s)
        keep = {i % self.depth for i in keep_layers}
        cam_cols: list[torch.Tensor] = []
        layers: dict[int, torch.Tensor] = {}
        for i in range(self.depth):
            tokens = self.frame_blocks[i](tokens.reshape(b * s, p, c), frame_rope)
            frame_out = tokens.reshape(b, s, p, c)
            if i == self.depth - 1 and i not in keep:
                # Only the camera tokens of the last layer are read (by the camera head):
                # the last global block updates just those S tokens (token k * P is frame k's
                # camera token), attending to all S * P tokens as usual.
                global_cam = self.global_blocks[i](tokens.reshape(b, s * p, c), global_rope, query_step=p)
                cam_cols.append(torch.cat((frame_out[:, :, 0], global_cam), dim=-1))
                break
            tokens = self.global_blocks[i](tokens.reshape(b, s * p, c), global_rope)
            global_out = tokens.reshape(b, s, p, c)
            if camera_token_layers or i == self.depth - 1:
                cam_cols.append(torch.cat((frame_out[:, :, 0], global_out[:, :, 0]), dim=-1))
            if i in keep:
                layers[i] = torch.cat((frame_out, global_out), dim=-1)
        out = AggregatorOutput(camera_last=cam_cols[-1], layers=layers, patch_start_idx=self.patch_start_idx)
        if camera_token_layers:
            out.camera_tokens = torch.stack(cam_cols)
        return out
