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
from vggt_uncertainty_ros.geometry._shapes import as_float64
from vggt_uncertainty_ros.geometry.so3 import _quat_to_rotmat_formula, rotmat_to_quat

__all__ = ["extri_intri_to_pose_encoding", "pose_encoding_to_extri_intri"]


def _hw(image_size_hw: tuple[int, int] | np.ndarray) -> tuple[float, float]:
    """``(H, W)`` as floats from a tuple, list or array of two numbers."""
    try:
        h, w = (float(v) for v in image_size_hw)
    except (TypeError, ValueError) as err:
        raise GeometryError(f"image_size_hw must be two numbers (H, W), got {image_size_hw!r}") from err
    if h <= 0 or w <= 0:
        raise GeometryError(f"image_size_hw must be positive, got {(h, w)}")
    return h, w


def pose_encoding_to_extri_intri(
    pose_enc: np.ndarray, image_size_hw: tuple[int, int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Decode VGGT pose encodings into extrinsics and intrinsics.

    Args:
        pose_enc: ``[..., 9]`` = ``[t (3), q_xyzw (4), fov_h, fov_w]`` (radians).
        image_size_hw: ``(H, W)`` in pixels of the image the encoding refers to.

    Returns:
        ``(E, K)``: ``E[..., 3, 4] = [R | t]`` camera-from-world (OpenCV axes, VGGT units) and
        ``K[..., 3, 3]`` pinhole intrinsics in pixels, principal point at ``(W/2, H/2)``.
        Both float64. The torch version the model uses is
        :func:`vggt_uncertainty_ros.model.pose_encoding.pose_encoding_to_extri_intri`.
    """
    enc = as_float64(pose_enc, (9,), "pose_enc")
    h, w = _hw(image_size_hw)
    R = _quat_to_rotmat_formula(enc[..., 3:7])
    E = np.concatenate([R, enc[..., :3, None]], -1)
    with np.errstate(divide="ignore"):
        fy = (h / 2.0) / np.tan(enc[..., 7] / 2.0)
        fx = (w / 2.0) / np.tan(enc[..., 8] / 2.0)
    zero = fx * 0
    K = np.stack(
        [
            np.stack([fx, zero, zero + w / 2.0], -1),
            np.stack([zero, fy, zero + h / 2.0], -1),
            np.stack([zero, zero, zero + 1.0], -1),
        ],
        -2,
    )
    return E, K


def extri_intri_to_pose_encoding(
    extrinsics: np.ndarray, intrinsics: np.ndarray, image_size_hw: tuple[int, int] | np.ndarray
) -> np.ndarray:
    """Encode extrinsics and intrinsics as VGGT pose encodings.

    Args:
        extrinsics: ``[..., 3, 4]`` (or ``[..., 4, 4]``) camera-from-world ``[R | t]``.
        intrinsics: ``[..., 3, 3]`` pinhole intrinsics (only ``fx``, ``fy`` are used).
        image_size_hw: ``(H, W)`` in pixels.

    Returns:
        ``[..., 9]`` = ``[t, q_xyzw (w ≥ 0), fov_h, fov_w]`` with
        ``fov_h = 2·atan((H/2)/fy)``, ``fov_w = 2·atan((W/2)/fx)``.
    """
    E = np.asarray(extrinsics, dtype=np.float64)
    if tuple(E.shape[-2:]) == (4, 4):
        E = E[..., :3, :]
    E = as_float64(E, (3, 4), "extrinsics")
    K = as_float64(intrinsics, (3, 3), "intrinsics")
    h, w = _hw(image_size_hw)
    quat = rotmat_to_quat(E[..., :3, :3])
    fov_h = 2 * np.arctan((h / 2.0) / K[..., 1, 1])
    fov_w = 2 * np.arctan((w / 2.0) / K[..., 0, 0])
    return np.concatenate([E[..., :3, 3], quat, fov_h[..., None], fov_w[..., None]], -1)
