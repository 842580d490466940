"""VGGT's 9-dim camera encoding ``absT_quaR_FoV`` and its extrinsics/intrinsics.

``pose_enc = [tx, ty, tz, qx, qy, qz, qw, fov_h, fov_w]`` where ``[R | t]`` is VGGT's
extrinsic ``E = T_cam_world`` (camera-from-world, OpenCV axes, VGGT's normalised units),
the quaternion is XYZW, and the fields of view are in radians. The intrinsics are pinhole
with the principal point at the image centre:
``fx = (W/2)/tan(fov_w/2)``, ``fy = (H/2)/tan(fov_h/2)``, ``cx = W/2``, ``cy = H/2``.

Both directions match the official ``vggt/utils/pose_enc.py`` (commit 44b3afb), including
``quat_to_mat`` dividing by ``‖q‖²`` (so unnormalised quaternions work) and ``mat_to_quat``
standardising to ``w ≥ 0``. A zero ``fov`` gives an infinite focal length, as upstream.
"""

from __future__ import annotations

import numpy as np

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry._backend import Array, check_last_dims, ops_for
from vggt_uncertainty_ros.geometry.so3 import _quat_to_rotmat_formula, rotmat_to_quat

__all__ = ["extri_intri_to_pose_encoding", "pose_encoding_to_extri_intri"]


def _hw(image_size_hw: tuple[int, int] | Array) -> tuple[float, float]:
    """``(H, W)`` as floats from a tuple, list, array or tensor of two numbers."""
    try:
        h, w = (float(v) for v in image_size_hw)
    except (TypeError, ValueError) as err:
        raise GeometryError(f"image_size_hw must be two numbers (H, W), got {image_size_hw!r}") from err
    if h <= 0 or w <= 0:
        raise GeometryError(f"image_size_hw must be positive, got {(h, w)}")
    return h, w


def pose_encoding_to_extri_intri(pose_enc: Array, image_size_hw: tuple[int, int] | Array) -> tuple[Array, Array]:
    """Decode VGGT pose encodings into extrinsics and intrinsics (*t*).

    Args:
        pose_enc: ``[..., 9]`` = ``[t (3), q_xyzw (4), fov_h, fov_w]`` (radians).
        image_size_hw: ``(H, W)`` in pixels of the image the encoding refers to.

    Returns:
        ``(E, K)``: ``E[..., 3, 4] = [R | t]`` camera-from-world (OpenCV axes, VGGT units) and
        ``K[..., 3, 3]`` pinhole intrinsics in pixels, principal point at ``(W/2, H/2)``.
        numpy inputs give float64; torch inputs keep their dtype and device.
    """
    check_last_dims(pose_enc, (9,), "pose_enc")
    h, w = _hw(image_size_hw)
    ops = ops_for(pose_enc)
    enc = ops.asarray(pose_enc)
    R = _quat_to_rotmat_formula(ops, enc[..., 3:7])
    E = ops.concat([R, enc[..., :3, None]], -1)
    with np.errstate(divide="ignore"):
        fy = (h / 2.0) / ops.tan(enc[..., 7] / 2.0)
        fx = (w / 2.0) / ops.tan(enc[..., 8] / 2.0)
    zero = fx * 0
    K = ops.stack(
        [
            ops.stack([fx, zero, zero + w / 2.0], -1),
            ops.stack([zero, fy, zero + h / 2.0], -1),
            ops.stack([zero, zero, zero + 1.0], -1),
        ],
        -2,
    )
    return E, K


def extri_intri_to_pose_encoding(extrinsics: Array, intrinsics: Array, image_size_hw: tuple[int, int] | Array) -> Array:
    """Encode extrinsics and intrinsics as VGGT pose encodings (*t*).

    Args:
        extrinsics: ``[..., 3, 4]`` (or ``[..., 4, 4]``) camera-from-world ``[R | t]``.
        intrinsics: ``[..., 3, 3]`` pinhole intrinsics (only ``fx``, ``fy`` are used).
        image_size_hw: ``(H, W)`` in pixels.

    Returns:
        ``[..., 9]`` = ``[t, q_xyzw (w ≥ 0), fov_h, fov_w]`` with
        ``fov_h = 2·atan((H/2)/fy)``, ``fov_w = 2·atan((W/2)/fx)``.
    """
    if tuple(extrinsics.shape[-2:]) == (4, 4):
        extrinsics = extrinsics[..., :3, :]
    check_last_dims(extrinsics, (3, 4), "extrinsics")
    check_last_dims(intrinsics, (3, 3), "intrinsics")
    h, w = _hw(image_size_hw)
    ops = ops_for(extrinsics, intrinsics)
    E = ops.asarray(extrinsics)
    K = ops.asarray(intrinsics)
    quat = rotmat_to_quat(E[..., :3, :3])
    fov_h = 2 * ops.atan((h / 2.0) / K[..., 1, 1])
    fov_w = 2 * ops.atan((w / 2.0) / K[..., 0, 0])
    return ops.concat([E[..., :3, 3], quat, fov_h[..., None], fov_w[..., None]], -1)
