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
        b, s, _ = tokens.shape
        normed = self.adaln_norm(tokens)
        pred: torch.Tensor | None = None
        pose_list: list[torch.Tensor] = []
        pre_list: list[torch.Tensor] = []
        trunk_out = tokens
        for _ in range(iters):
            if pred is None:
                cond = self.embed_pose(self.empty_pose_tokens.expand(b, s, -1))
            else:
                cond = self.embed_pose(pred.detach())
            shift, scale, gate = self.poseLN_modulation(cond).chunk(3, dim=-1)
            x = gate * (normed * (1 + scale) + shift) + tokens
            trunk_out = self.trunk(x)
            delta = self.pose_branch(self.trunk_norm(trunk_out))
            pred = delta if pred is None else pred + delta
            pre_list.append(pred)
            pose_list.append(activate_pose(pred))
        return CameraHeadOutput(pose_enc_list=pose_list, preact_list=pre_list, trunk_features=trunk_out)
