"""Decoding VGGT's 9-dim camera encoding on torch tensors (the model's own output).

``pose_enc = [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]``: ``[R | t]`` is the extrinsic
``E = T_cam_world`` (camera-from-world, OpenCV axes, VGGT's normalised units), the quaternion
is XYZW and the fields of view are in radians. Intrinsics are pinhole with the principal point
at the image centre: ``fx = (W/2)/tan(fov_w/2)``, ``fy = (H/2)/tan(fov_h/2)``, ``cx = W/2``,
``cy = H/2``. Matches the official ``vggt/utils/pose_enc.py`` (commit 44b3afb), including
``quat_to_mat`` dividing by ``‖q‖²``. The numpy version (float64, with the inverse
encoding) is :mod:`vggt_uncertainty_ros.geometry.pose_encoding`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vggt_uncertainty_ros.errors import ModelError

__all__ = ["pose_encoding_to_extri_intri", "quat_to_rotmat"]


def quat_to_rotmat(q_xyzw: torch.Tensor) -> torch.Tensor:
    """VGGT's ``quat_to_mat``: rotation matrices ``[..., 3, 3]`` of XYZW quaternions ``[..., 4]``.

    Scales by ``2/‖q‖²``, so any non-zero quaternion gives the rotation of ``q/‖q‖``; dtype
    and device are kept.
    """
    x, y, z, w = q_xyzw.unbind(-1)
    two_s = 2.0 / (q_xyzw * q_xyzw).sum(-1)
    rows = [
        torch.stack([1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w)], -1),
        torch.stack([two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w)], -1),
        torch.stack([two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y)], -1),
    ]
    return torch.stack(rows, -2)


def pose_encoding_to_extri_intri(
    pose_enc: torch.Tensor, image_size_hw: Sequence[int] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode VGGT pose encodings into extrinsics and intrinsics.

    Args:
        pose_enc: ``[..., 9]`` = ``[t (3), q_xyzw (4), fov_h, fov_w]`` (radians), floating point.
        image_size_hw: ``(H, W)`` in pixels of the image the encoding refers to.

    Returns:
        ``(E, K)``: ``E[..., 3, 4] = [R | t]`` camera-from-world (OpenCV axes, VGGT units) and
        ``K[..., 3, 3]`` pinhole intrinsics in pixels, principal point at ``(W/2, H/2)``; both
        with ``pose_enc``'s dtype and device. A zero fov gives an infinite focal length, as upstream.

    Raises:
        ModelError: ``pose_enc`` is not ``[..., 9]`` floating point, or the size is not two positive numbers.
    """
    if pose_enc.shape[-1:] != (9,) or not pose_enc.is_floating_point():
        raise ModelError(f"pose_enc must be a floating tensor [..., 9], got {pose_enc.dtype} {list(pose_enc.shape)}")
    try:
        h, w = (float(v) for v in image_size_hw)
    except (TypeError, ValueError) as err:
        raise ModelError(f"image_size_hw must be two numbers (H, W), got {image_size_hw!r}") from err
    if h <= 0 or w <= 0:
        raise ModelError(f"image_size_hw must be positive, got {(h, w)}")
    R = quat_to_rotmat(pose_enc[..., 3:7])
    E = torch.cat([R, pose_enc[..., :3, None]], -1)
    fy = (h / 2.0) / torch.tan(pose_enc[..., 7] / 2.0)
    fx = (w / 2.0) / torch.tan(pose_enc[..., 8] / 2.0)
    zero = torch.zeros_like(fx)
    K = torch.stack(
        [
            torch.stack([fx, zero, zero + w / 2.0], -1),
            torch.stack([zero, fy, zero + h / 2.0], -1),
            torch.stack([zero, zero, zero + 1.0], -1),
        ],
        -2,
    )
    return E, K
