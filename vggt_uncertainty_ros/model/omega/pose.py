"""VGGT-Ω's 9-d pose encoding and its decoding (the official ``encoding_to_camera``).

Encoding ``[..., 9]``: translation ``t`` (3) and unit quaternion ``q`` (4, scalar last: x, y,
z, w) of the camera-from-world extrinsics ``[R | t]`` (OpenCV axes: x right, y down, z
forward; translation in the backbone's normalised units), then the vertical and horizontal
fields of view ``fov_h``, ``fov_w`` (rad).
"""

from __future__ import annotations

import torch

from vggt_uncertainty_ros.errors import ModelError


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """``[..., 4]`` quaternions (x, y, z, w; any norm, normalised here) -> ``[..., 3, 3]`` rotations."""
    x, y, z, w = q.unbind(-1)
    s = 2.0 / (q * q).sum(-1)
    rows = (
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).unflatten(-1, (3, 3))


def encoding_to_camera(
    pose_enc: torch.Tensor, image_hw: tuple[int, int], build_intrinsics: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decode ``[B, S, 9]`` encodings into extrinsics and intrinsics.

    Args:
        pose_enc: the encodings (see the module docstring).
        image_hw: ``(H, W)`` of the network input in pixels.
        build_intrinsics: also build ``K``.

    Returns:
        ``extrinsics`` ``[B, S, 3, 4]`` camera-from-world ``[R | t]``, and ``intrinsics``
        ``[B, S, 3, 3]`` (``fx = W / 2 / tan(fov_w / 2)``, ``fy = H / 2 / tan(fov_h / 2)``,
        principal point at ``(W / 2, H / 2)``) in input pixels, or ``None``.

    Raises:
        ModelError: the last axis is not 9.
    """
    if pose_enc.shape[-1] != 9:
        raise ModelError(f"expected [..., 9] pose encodings, got {tuple(pose_enc.shape)}")
    rot = quaternion_to_matrix(pose_enc[..., 3:7])
    extrinsics = torch.cat((rot, pose_enc[..., :3, None]), dim=-1)
    if not build_intrinsics:
        return extrinsics, None
    h, w = image_hw
    fy = (h / 2.0) / torch.tan(pose_enc[..., 7] / 2.0)
    fx = (w / 2.0) / torch.tan(pose_enc[..., 8] / 2.0)
    k = torch.zeros(*pose_enc.shape[:-1], 3, 3, dtype=pose_enc.dtype, device=pose_enc.device)
    k[..., 0, 0] = fx
    k[..., 1, 1] = fy
    k[..., 0, 2] = w / 2
    k[..., 1, 2] = h / 2
    k[..., 2, 2] = 1.0
    return extrinsics, k
