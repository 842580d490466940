"""2-D rotary position embedding (RoPE) of VGGT's frame and global attention.

Each attention head's channels are split in two halves: the first half is rotated by the
token's patch *row* (y), the second by its patch *column* (x). Within a half of ``d``
channels, channel ``j`` and ``j + d/2`` form a rotation pair with angle
``position * base ** (-2 (j mod d/2) / d)``. Special (camera/register) tokens have
position (0, 0) and patch ``(r, c)`` has position ``(r + 1, c + 1)``, as in the official
model, so special tokens are never rotated.

Unlike the official implementation (which reads ``positions.max()`` on the host every
call), the cos/sin tables here are built from the grid size alone, so the forward pass
does no device-to-host copy and can be captured by CUDA graphs.
"""

from __future__ import annotations

import torch
from torch import nn


class RotaryPositionEmbedding2D(nn.Module):
    """2-D RoPE with per-grid cached tables (no parameters, nothing in the state_dict).

    Args:
        frequency: The base of the geometric frequency ladder (100 in VGGT).
    """

    def __init__(self, frequency: float = 100.0) -> None:
        super().__init__()
        self.frequency = float(frequency)
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def _axis_table(self, half_dim: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin of ``position * inv_freq`` for positions ``0..length-1``: ``[length, half_dim]`` each."""
        exponents = torch.arange(0, half_dim, 2, device=device).float() / half_dim
        inv_freq = 1.0 / (self.frequency**exponents)
        positions = torch.arange(length, device=device, dtype=inv_freq.dtype)
        angles = positions[:, None] * inv_freq[None, :]
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()

    def tables(
        self, grid_hw: tuple[int, int], n_special: int, head_dim: int, device: torch.device, frames: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token tables: ``cos[frames * P, head_dim]`` and signed ``sin[frames * P, head_dim]``.

        ``P = n_special + rows * cols``; token order is special tokens, then patches row-major,
        repeated for each of ``frames`` frames laid end to end (a global-attention sequence).
        The sign of ``sin`` folds in the ``(-x2, x1)`` half rotation, so that
        ``rope(x) = x * cos + swap_halves(x) * sin``. Tables are float32 and cached.
        """
        key = (int(grid_hw[0]), int(grid_hw[1]), int(n_special), int(head_dim), str(device), int(frames))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if frames > 1:
            cos, sin = self.tables(grid_hw, n_special, head_dim, device)
            self._cache[key] = (cos.repeat(frames, 1), sin.repeat(frames, 1))
            return self._cache[key]
        rows, cols = key[0], key[1]
        half = head_dim // 2
        cos_t, sin_t = self._axis_table(half, max(rows, cols) + 1, device)
        zeros = torch.zeros(n_special, dtype=torch.long, device=device)
        pos_y = torch.cat((zeros, torch.arange(rows, device=device).repeat_interleave(cols) + 1))
        pos_x = torch.cat((zeros, torch.arange(cols, device=device).repeat(rows) + 1))
        cos = torch.cat((cos_t[pos_y], cos_t[pos_x]), dim=-1)
        sign = torch.ones(half, device=device)
        sign[: half // 2] = -1.0
        sin = torch.cat((sin_t[pos_y] * sign, sin_t[pos_x] * sign), dim=-1)
        self._cache[key] = (cos, sin)
        return cos, sin

    @staticmethod
    def apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Rotate ``x[..., N, head_dim]`` with tables broadcastable to ``[N, head_dim]``."""
        d = x.shape[-1]
        swapped = x.unflatten(-1, (2, 2, d // 4)).flip(-2).flatten(-3)
        return x * cos.to(x.dtype) + swapped * sin.to(x.dtype)
