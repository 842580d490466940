"""SE(3): homogeneous transforms, exponential/logarithm in our ``[rot, trans]`` order, TUM rows.

Conventions (docs/ARCHITECTURE.md):

* ``T_a_b`` (4×4) maps points of frame ``b`` into frame ``a``: ``p_a = T_a_b @ p_b``.
* A tangent vector is ``xi = [φx, φy, φz, ρx, ρy, ρz]`` — **rotation first** (radians, then
  translation units) — and ``Exp(xi) = [[Exp_SO3(φ), V(φ) ρ], [0, 1]]``. This is GTSAM's
  ``Pose3.Expmap``/``Logmap`` order and formula.
* A TUM row is ``[tx, ty, tz, qx, qy, qz, qw]`` (XYZW quaternion) of ``T_world_cam``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vggt_uncertainty_ros.geometry._shapes import as_float64
from vggt_uncertainty_ros.geometry.so3 import (
    SMALL_ANGLE_RAD,
    hat,
    quat_to_rotmat,
    rotmat_to_quat,
    so3_exp,
    so3_log,
)

__all__ = [
    "invert_transform",
    "make_transform",
    "pose_from_message_fields",
    "pose_from_tum",
    "pose_to_tum",
    "se3_exp",
    "se3_log",
]


def make_transform(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Assemble 4×4 homogeneous transforms.

    Args:
        R: ``[..., 3, 3]`` rotation matrices.
        t: ``[..., 3]`` translations (broadcast against ``R``'s batch shape).

    Returns:
        ``[..., 4, 4]`` transforms ``[[R, t], [0, 0, 0, 1]]``.
    """
    R = as_float64(R, (3, 3), "R")
    t = as_float64(t, (3,), "t")
    batch = np.broadcast_shapes(tuple(R.shape[:-2]), tuple(t.shape[:-1]))
    R = np.broadcast_to(R, (*batch, 3, 3))
    t = np.broadcast_to(t, (*batch, 3))
    top = np.concatenate([R, t[..., None]], -1)
    bottom = np.broadcast_to(_bottom_row(), (*batch, 1, 4))
    return np.concatenate([top, bottom], -2)


def _bottom_row() -> np.ndarray:
    """``[[0, 0, 0, 1]]``."""
    row = np.zeros((1, 4))
    row[0, 3] = 1.0
    return row


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms, ``inv(T_a_b) = T_b_a``.

    Args:
        T: ``[..., 4, 4]`` rigid transforms.

    Returns:
        ``[..., 4, 4]`` inverses (exact rigid inverse, not a general matrix inverse).
    """
    T = as_float64(T, (4, 4), "T")
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    t_inv = -(Rt @ T[..., :3, 3:4])[..., 0]
    return make_transform(Rt, t_inv)


def _v_coeffs(theta2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of ``V = I + B K + C K²``: ``B = (1-cos θ)/θ²``, ``C = (θ-sin θ)/θ³``."""
    small = theta2 < SMALL_ANGLE_RAD**2
    theta = np.sqrt(np.where(small, np.full_like(theta2, 1.0), theta2))
    half_sin = np.sin(theta / 2)
    b = np.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, 2 * half_sin * half_sin / (theta * theta))
    c = np.where(
        small, 1.0 / 6 - theta2 / 120 + theta2 * theta2 / 5040, (theta - np.sin(theta)) / (theta * theta * theta)
    )
    return b, c


def _vinv_coeff(theta2: np.ndarray) -> np.ndarray:
    """``D`` of ``V⁻¹ = I - K/2 + D K²``: ``D = (1 - (θ/2)·cot(θ/2))/θ²`` (finite at θ = π)."""
    small = theta2 < SMALL_ANGLE_RAD**2
    theta = np.sqrt(np.where(small, np.full_like(theta2, 1.0), theta2))
    half = theta / 2
    direct = (1 - half * np.cos(half) / np.sin(half)) / (theta * theta)
    return np.where(small, 1.0 / 12 + theta2 / 720 + theta2 * theta2 / 30240, direct)


def se3_exp(xi: np.ndarray) -> np.ndarray:
    """SE(3) exponential of tangent vectors in our order ``[rot, trans]``.

    Args:
        xi: ``[..., 6]`` = ``[φ (rad), ρ (translation units)]``.

    Returns:
        ``[..., 4, 4]`` transforms ``[[Exp(φ), V(φ) ρ], [0, 1]]`` (equal to GTSAM ``Pose3.Expmap``).
    """
    xi = as_float64(xi, (6,), "xi")
    phi, rho = xi[..., :3], xi[..., 3:]
    R = so3_exp(phi)
    K = hat(phi)
    b, c = _v_coeffs(np.sum(phi * phi, -1))
    V = np.eye(3) + b[..., None, None] * K + c[..., None, None] * (K @ K)
    return make_transform(R, (V @ rho[..., None])[..., 0])


def se3_log(T: np.ndarray) -> np.ndarray:
    """SE(3) logarithm in our order ``[rot, trans]``.

    Args:
        T: ``[..., 4, 4]`` rigid transforms.

    Returns:
        ``[..., 6]`` = ``[φ (rad, angle in [0, π]), ρ = V(φ)⁻¹ t]`` (GTSAM ``Pose3.Logmap``).
    """
    T = as_float64(T, (4, 4), "T")
    phi = so3_log(T[..., :3, :3])
    K = hat(phi)
    d = _vinv_coeff(np.sum(phi * phi, -1))
    V_inv = np.eye(3) - 0.5 * K + d[..., None, None] * (K @ K)
    rho = (V_inv @ T[..., :3, 3:4])[..., 0]
    return np.concatenate([phi, rho], -1)


def pose_from_tum(row7: np.ndarray) -> np.ndarray:
    """Transforms from TUM pose rows.

    Args:
        row7: ``[..., 7]`` = ``[tx, ty, tz, qx, qy, qz, qw]`` of ``T_world_cam`` (metres; the
            quaternion need not be exactly unit, it is normalised).

    Returns:
        ``[..., 4, 4]`` ``T_world_cam``.
    """
    row7 = as_float64(row7, (7,), "row7")
    return make_transform(quat_to_rotmat(row7[..., 3:]), row7[..., :3])


def pose_from_message_fields(xyz: Sequence[float], q_xyzw: Sequence[float]) -> np.ndarray:
    """4x4 transform from a message's position and XYZW orientation, or all-NaN if invalid.

    For poses read from messages (``geometry_msgs/Pose``, odometry) where a bad value must be
    counted by the caller rather than raise: a non-finite entry or a (near-)zero quaternion
    gives a 4x4 NaN matrix. The quaternion is normalised.

    Args:
        xyz: position ``[x, y, z]`` (the message's units, metres for ROS).
        q_xyzw: orientation quaternion, XYZW order.

    Returns:
        ``[4, 4]`` float64 transform ``T_parent_child``, or NaN everywhere.
    """
    t = np.asarray(xyz, dtype=np.float64)
    q = np.asarray(q_xyzw, dtype=np.float64)
    norm = float(np.linalg.norm(q)) if np.isfinite(q).all() else 0.0
    if t.shape != (3,) or q.shape != (4,) or not np.isfinite(t).all() or norm < 1e-12:
        return np.full((4, 4), np.nan)
    return np.asarray(make_transform(quat_to_rotmat(q / norm), t), dtype=np.float64)


def pose_to_tum(T: np.ndarray) -> np.ndarray:
    """TUM pose rows of transforms.

    Args:
        T: ``[..., 4, 4]`` transforms (e.g. ``T_world_cam``).

    Returns:
        ``[..., 7]`` = ``[tx, ty, tz, qx, qy, qz, qw]`` with ``qw ≥ 0``.
    """
    T = as_float64(T, (4, 4), "T")
    return np.concatenate([T[..., :3, 3], rotmat_to_quat(T[..., :3, :3])], -1)
