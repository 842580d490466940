"""Pre-norm transformer block: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from vggt_uncertainty_ros.model.layers.attention import Attention
from vggt_uncertainty_ros.model.layers.layer_scale import LayerScale
from vggt_uncertainty_ros.model.layers.mlp import Mlp
from vggt_uncertainty_ros.model.layers.rope import RotaryPositionEmbedding2D


class Block(nn.Module):
    """One transformer block with official key names (``norm1, attn, ls1, norm2, mlp, ls2``).

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        mlp_ratio: Hidden width of the MLP relative to ``dim``.
        qkv_bias, proj_bias, ffn_bias: Biases of the projections.
        init_values: LayerScale initial value; ``None`` disables LayerScale (``nn.Identity``).
        norm_layer: Constructor of ``norm1``/``norm2`` (eps matters: 1e-6 in DINOv2,
            1e-5 in the aggregator and camera head).
        qk_norm: Per-head LayerNorm of queries and keys.
        rope: Shared 2-D RoPE module or ``None``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        init_values: float | None = None,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        qk_norm: bool = False,
        rope: RotaryPositionEmbedding2D | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, qk_norm=qk_norm, rope=rope
        )
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        rope_tables: tuple[torch.Tensor, torch.Tensor] | None = None,
        query_step: int | None = None,
    ) -> torch.Tensor:
        """Apply the block to ``[B, N, C]`` tokens (``rope_tables`` as in :class:`Attention`).

        With ``query_step`` only tokens ``0, k, 2k, ...`` are updated and returned
        (``[B, ceil(N / k), C]``); they still attend to all ``N`` tokens.
        """
        attended = self.attn(self.norm1(x), rope_tables, query_step)
        if query_step is not None:
            x = x[:, ::query_step]
        x = x + self.ls1(attended)
        return x + self.ls2(self.mlp(self.norm2(x)))
