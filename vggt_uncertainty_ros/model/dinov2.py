"""DINOv2 ViT with register tokens: VGGT's per-frame patch embedding.

Matches the official ``DinoVisionTransformer`` as VGGT configures it (ViT-L/14, 4 register
tokens, LayerScale 1.0, LayerNorm eps 1e-6, no block chunking) and returns the normalised
patch tokens (``x_norm_patchtokens``).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from vggt_uncertainty_ros.model.layers import Block, PatchEmbed


class DinoVisionTransformer(nn.Module):
    """Patch tokens of a DINOv2 ViT for a batch of images.

    State-dict keys (relative): ``cls_token [1,1,C]``, ``pos_embed [1,1+M*M,C]``,
    ``register_tokens [1,R,C]``, ``mask_token [1,C]`` (unused at inference, kept for strict
    loading), ``patch_embed.proj.*``, ``blocks.{i}.*``, ``norm.*``.

    Args:
        img_size: Training image side; the position embedding covers ``(img_size/patch)^2`` patches.
        patch_size: Patch side in pixels.
        embed_dim: Token width.
        depth: Number of blocks.
        num_heads: Attention heads.
        num_register_tokens: Register tokens inserted after the class token.
        init_values: LayerScale initial value.
    """

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        num_register_tokens: int = 4,
        init_values: float = 1.0,
    ) -> None:
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.embed_dim = embed_dim
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=3, embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        self.blocks = nn.ModuleList(
            [
                Block(embed_dim, num_heads, mlp_ratio=4.0, init_values=init_values, norm_layer=norm_layer)
                for _ in range(depth)
            ]
        )
        self.norm = norm_layer(embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)

    def interpolate_pos_encoding(self, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        """Position embedding ``[1, 1 + rows*cols, C]`` for a ``rows x cols`` patch grid.

        As the official model: the square table is used as is when the grid equals it;
        otherwise its patch part is resized in float32 with ``F.interpolate(mode="bicubic",
        antialias=True, size=(rows, cols))`` (VGGT sets ``interpolate_offset=0``, so an
        output size, not a scale factor, is given), then cast to ``dtype``.
        """
        n = self.pos_embed.shape[1] - 1
        if rows * cols == n and rows == cols:
            return self.pos_embed
        m = int(math.sqrt(n))
        pos = self.pos_embed.float()
        patch_pos = pos[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(rows, cols), mode="bicubic", antialias=True)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat((pos[:, :1], patch_pos), dim=1).to(dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised patch tokens.

        Args:
            images: ``[N, 3, H, W]`` ImageNet-normalised images, ``H`` and ``W`` multiples of
                the patch size.

        Returns:
            ``[N, (H/p)*(W/p), C]`` = the official ``x_norm_patchtokens``.
        """
        n_img, _, h, w = images.shape
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(n_img, -1, -1), x), dim=1)
        x = x + self.interpolate_pos_encoding(h // self.patch_size, w // self.patch_size, x.dtype)
        x = torch.cat((x[:, :1], self.register_tokens.expand(n_img, -1, -1), x[:, 1:]), dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x[:, 1 + self.num_register_tokens :]
