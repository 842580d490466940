"""VGGT camera head: adaLN-modulated trunk with iterative pose refinement.

Reads the camera token of the aggregator's last layer and refines a 9-dim pose encoding
``[t (3), q_xyzw (4), fov_h, fov_w]`` (translation of the camera-from-world extrinsics in
VGGT's normalised units, unit quaternion XYZW of its rotation, field of view in radians)
over ``iters`` iterations, each conditioned on the previous (detached) estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vggt_uncertainty_ros.model.config import VGGTConfig
from vggt_uncertainty_ros.model.layers import Block, Mlp

POSE_ENC_DIM = 9


def activate_pose(raw: torch.Tensor) -> torch.Tensor:
    """Official activation of a raw ``[..., 9]`` encoding: identity on t and q, ReLU on the fovs."""
    return torch.cat((raw[..., :7], F.relu(raw[..., 7:])), dim=-1)


@dataclass
class CameraHeadOutput:
    """Camera-head outputs.

    Attributes:
        pose_enc_list: Activated ``[B, S, 9]`` encodings after each iteration.
        preact_list: Raw accumulated ``[B, S, 9]`` predictions before activation.
        trunk_features: ``[B, S, 2C]`` trunk output (before ``trunk_norm``) at the last iteration.
    """

    pose_enc_list: list[torch.Tensor]
    preact_list: list[torch.Tensor]
    trunk_features: torch.Tensor


class CameraHead(nn.Module):
    """Camera head with official key names (``token_norm, trunk, trunk_norm, empty_pose_tokens,
    embed_pose, poseLN_modulation.1, pose_branch``).

    Args:
        cfg: Architecture preset; the head works on ``dim = 2 * embed_dim`` channels.
    """

    def __init__(self, cfg: VGGTConfig) -> None:
        super().__init__()
        dim = cfg.feature_dim
        self.iters = cfg.pose_iters
        self.trunk = nn.Sequential(
            *[Block(dim, cfg.head_heads, mlp_ratio=4.0, init_values=0.01) for _ in range(cfg.head_depth)]
        )
        self.token_norm = nn.LayerNorm(dim)
        self.trunk_norm = nn.LayerNorm(dim)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_ENC_DIM))
        self.embed_pose = nn.Linear(POSE_ENC_DIM, dim)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim, dim // 2, POSE_ENC_DIM)
        self._first_modulation: tuple[torch.Tensor, ...] | None = None
        self._first_modulation_key: tuple[int, ...] | None = None

    def first_modulation(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(shift, scale, gate)`` of the first iteration, each ``[1, 1, dim]``.

        The first iteration is conditioned on the learned ``empty_pose_tokens`` only, so its
        modulation does not depend on the input: outside training it is computed once and
        reused (recomputed when the weights change: the key is the parameters' versions and
        storage, so ``load_state_dict`` and optimiser steps invalidate it). This saves one
        pass over ``embed_pose`` and ``poseLN_modulation`` (3·dim² weights) per window.
        """
        params = (
            self.empty_pose_tokens,
            self.embed_pose.weight,
            self.embed_pose.bias,
            self.poseLN_modulation[1].weight,
            self.poseLN_modulation[1].bias,
        )
        key = tuple(v for p in params for v in (p._version, p.data_ptr()))
        if self.training or torch.is_grad_enabled() or key != self._first_modulation_key:
            cond = self.embed_pose(self.empty_pose_tokens)
            modulation = tuple(self.poseLN_modulation(cond).chunk(3, dim=-1))
            if self.training or torch.is_grad_enabled():
                return modulation  # type: ignore[return-value]
            self._first_modulation, self._first_modulation_key = modulation, key
        assert self._first_modulation is not None
        return self._first_modulation  # type: ignore[return-value]

    def forward(self, camera_tokens: torch.Tensor, iters: int | None = None) -> CameraHeadOutput:
        """Predict pose encodings.

        Args:
            camera_tokens: ``[B, S, 2C]`` camera token of the aggregator's last layer.
            iters: Refinement iterations (default: the config's, 4).

        Returns:
            :class:`CameraHeadOutput`.
        """
        iters = self.iters if iters is None else iters
        tokens = self.token_norm(camera_tokens)
        normed = self.adaln_norm(tokens)
        pred: torch.Tensor | None = None
        pose_list: list[torch.Tensor] = []
        pre_list: list[torch.Tensor] = []
        trunk_out = tokens
        for _ in range(iters):
            if pred is None:
                shift, scale, gate = self.first_modulation()
            else:
                shift, scale, gate = self.poseLN_modulation(self.embed_pose(pred.detach())).chunk(3, dim=-1)
            x = gate * (normed * (1 + scale) + shift) + tokens
            trunk_out = self.trunk(x)
            delta = self.pose_branch(self.trunk_norm(trunk_out))
            pred = delta if pred is None else pred + delta
            pre_list.append(pred)
            pose_list.append(activate_pose(pred))
        return CameraHeadOutput(pose_enc_list=pose_list, preact_list=pre_list, trunk_features=trunk_out)
