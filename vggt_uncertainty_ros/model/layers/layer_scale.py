"""Per-channel residual-branch scaling (LayerScale, as in CaiT / DINOv2)."""

from __future__ import annotations

import torch
from torch import nn


class LayerScale(nn.Module):
    """Multiply the last axis by a learned vector ``gamma`` (state_dict key ``gamma``).

    Args:
        dim: Number of channels.
        init_value: Initial value of every entry of ``gamma``.
    """

    def __init__(self, dim: int, init_value: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x * gamma`` (not in place)."""
        return x * self.gamma
