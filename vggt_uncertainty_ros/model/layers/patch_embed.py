"""Non-overlapping patch embedding (a strided convolution, key ``proj``)."""

from __future__ import annotations

import torch
from torch import nn

from vggt_uncertainty_ros.errors import ModelError


class PatchEmbed(nn.Module):
    """Split an image into ``patch_size`` x ``patch_size`` patches and project each one.

    Args:
        patch_size: Patch side in pixels.
        in_chans: Input channels.
        embed_dim: Output channels per patch.
    """

    def __init__(self, patch_size: int = 14, in_chans: int = 3, embed_dim: int = 1024) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``[N, C, H, W]`` to ``[N, (H/p)*(W/p), D]`` tokens in row-major patch order.

        Raises:
            ModelError: If ``H`` or ``W`` is not a multiple of the patch size.
        """
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ModelError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)
