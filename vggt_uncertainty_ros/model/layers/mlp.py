"""Two-layer feed-forward network (``fc1`` -> activation -> ``fc2``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class Mlp(nn.Module):
    """The transformer feed-forward block with official key names ``fc1``/``fc2``.

    Args:
        in_features: Input channels.
        hidden_features: Hidden channels (defaults to ``in_features``).
        out_features: Output channels (defaults to ``in_features``).
        act_layer: Activation constructor (exact GELU by default, as DINOv2/VGGT).
        bias: Whether both linear layers have a bias.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        bias: bool = True,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``fc2(act(fc1(x)))`` over the last axis."""
        return self.fc2(self.act(self.fc1(x)))
