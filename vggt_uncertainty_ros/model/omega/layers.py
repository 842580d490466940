"""VGGT-Ω's layer variants on top of our shared transformer layers.

* :class:`KeyMaskedLinear`: the ``qkv`` projection whose bias is multiplied by a stored
  ``bias_mask`` buffer (1 for the query and value thirds, 0 for the key third), so keys get
  no bias, as in DINOv3.
  Our :class:`~vggt_uncertainty_ros.model.layers.Attention` gets it as its ``qkv``.
* :class:`AxialRope`: DINOv3's axial RoPE tables (``periods`` buffer, coordinates of patch
  centres normalised by the longer grid side into [-1, 1]); prefix tokens (class/storage or
  camera/register) are left unrotated by cos = 1, sin = 0 rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class KeyMaskedLinear(nn.Linear):
    """``nn.Linear`` (out = 3 x in thirds q, k, v) with ``bias * bias_mask``; ``bias_mask`` is a buffer."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        if out_features % 3:
            raise ValueError(f"qkv width {out_features} is not a multiple of 3")
        if bias:
            self.register_buffer("bias_mask", torch.ones(out_features))
            self.reset_mask()

    @torch.no_grad()
    def reset_mask(self) -> None:
        """Set the mask to its only meaningful value: 1 for q and v, 0 for k."""
        if self.bias is not None:
            third = self.out_features // 3
            self.bias_mask.fill_(1.0)
            self.bias_mask[third : 2 * third] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x W^T + bias * bias_mask``."""
        bias = None if self.bias is None else self.bias * self.bias_mask.to(self.bias.dtype)
        return F.linear(x, self.weight, bias)


class HalfSwapRotation:
    """Applies DINOv3's rotation: channel ``j`` pairs with ``j + d/2`` (no state, not a module)."""

    @staticmethod
    def apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """``x * cos + roll(x, d/2) * sin`` (``sin`` carries the sign of the first half), computed in
        the tables' dtype (float32) and cast back to ``x``'s, as the official model does under autocast."""
        d = x.shape[-1]
        xf = x.to(cos.dtype)
        swapped = torch.cat((xf[..., d // 2 :], xf[..., : d // 2]), dim=-1)
        return (xf * cos + swapped * sin).to(x.dtype)


class AxialRope(nn.Module):
    """DINOv3 axial RoPE tables; state_dict key ``periods`` ([head_dim / 4] float32 buffer).

    Args:
        head_dim: attention head width (multiple of 4).
        base: period base (100 in VGGT-Ω).
    """

    def __init__(self, head_dim: int, base: float = 100.0) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"head_dim {head_dim} must be a multiple of 4")
        self.head_dim = head_dim
        self.base = float(base)
        self.register_buffer("periods", torch.empty(head_dim // 4))
        self.reset_periods()

    @torch.no_grad()
    def reset_periods(self) -> None:
        """``base ** (2 j / (head_dim / 2))`` for ``j < head_dim / 4``, as the official constructor."""
        quarter = self.head_dim // 4
        exps = 2 * torch.arange(quarter, dtype=torch.float32, device=self.periods.device) / (self.head_dim // 2)
        self.periods.copy_(self.base**exps)

    def tables(self, grid_hw: tuple[int, int], prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)`` float32 ``[prefix + H W, head_dim]`` for one frame's token sequence.

        Patch ``(r, c)`` (row-major after ``prefix`` unrotated tokens) sits at
        ``2 (r + 0.5) / max(H, W) - 1``, ``2 (c + 0.5) / max(H, W) - 1``; the first half of
        the channels' angles is rows then columns (``head_dim / 4`` each), repeated for the
        second half. ``sin``'s first half is negated (see :class:`HalfSwapRotation`).
        Built on the device of ``periods`` without a host sync.
        """
        h, w = int(grid_hw[0]), int(grid_hw[1])
        dev = self.periods.device
        longest = max(h, w)
        ys = torch.arange(0.5, h, dtype=torch.float32, device=dev) / longest
        xs = torch.arange(0.5, w, dtype=torch.float32, device=dev) / longest
        coords = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).flatten(0, 1)  # [HW, 2]
        coords = 2.0 * coords - 1.0
        angles = 2 * math.pi * coords[:, :, None] / self.periods.float()[None, None, :]  # [HW, 2, d/4]
        angles = angles.flatten(1, 2).tile(2)  # [HW, d]
        cos, sin = torch.cos(angles), torch.sin(angles)
        half = self.head_dim // 2
        sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)
        ones = torch.ones(prefix, self.head_dim, dtype=torch.float32, device=dev)
        return torch.cat((ones, cos)), torch.cat((ones * 0, sin))
