"""SO(3): exponential/logarithm maps and XYZW quaternions.

Conventions (docs/ARCHITECTURE.md):

* A rotation vector ``phi[..., 3]`` (axis × angle, radians) maps to ``R = Exp(phi)``, a
  3×3 rotation matrix; ``so3_log`` returns the vector with angle in ``[0, π]``.
* Quaternions are XYZW (ROS, scipy, TUM order). Functions returning one standardise to
  ``w ≥ 0``.

Inputs are converted to float64 numpy arrays and computed with
:mod:`scipy.spatial.transform` (accurate to float64 round-off near the identity and near
angle π). Torch versions for the model live in :mod:`vggt_uncertainty_ros.model.pose_encoding`.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry._shapes import as_float64

logger = logging.getLogger(__name__)

SMALL_ANGLE_RAD = 1e-2
"""Below this angle the closed forms switch to Taylor series (truncation error < 1e-17)."""

__all__ = [
    "hat",
    "quat_log",
    "quat_to_rotmat",
    "rotmat_to_quat",
    "so3_exp",
    "so3_log",
    "standardize_quat",
]


def hat(phi: np.ndarray) -> np.ndarray:
    """Skew-symmetric matrix ``[phi]×`` with ``hat(a) @ b == cross(a, b)``.

    Args:
        phi: vectors ``[..., 3]``.

    Returns:
        ``[..., 3, 3]`` matrices, same array type as the input.
    """
    phi = as_float64(phi, (3,), "phi")
    x, y, z = phi[..., 0], phi[..., 1], phi[..., 2]
    zero = x * 0
    rows = [
        np.stack([zero, -z, y], -1),
        np.stack([z, zero, -x], -1),
        np.stack([-y, x, zero], -1),
    ]
    return np.stack(rows, -2)


def _flat(x: np.ndarray, tail: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Reshape to ``[-1, *tail_shape]`` for scipy and return the batch shape."""
    batch = x.shape[: x.ndim - tail]
    return x.reshape((-1, *x.shape[x.ndim - tail :])), batch


def standardize_quat(q_xyzw: np.ndarray) -> np.ndarray:
    """Flip the sign of XYZW quaternions so that ``w ≥ 0``."""
    q = as_float64(q_xyzw, (4,), "q_xyzw")
    return np.where(q[..., 3:4] < 0, -q, q)


def quat_to_rotmat(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation matrices from XYZW quaternions.

    Non-unit quaternions are accepted: the result is the rotation of ``q/‖q‖``.

    Args:
        q_xyzw: ``[..., 4]`` quaternions, XYZW order.

    Returns:
        ``[..., 3, 3]`` rotation matrices.

    Raises:
        GeometryError: wrong shape, or (numpy) a zero-norm quaternion.
    """
    q_xyzw = as_float64(q_xyzw, (4,), "q_xyzw")
    q, batch = _flat(q_xyzw, 1)
    try:
        mats = Rotation.from_quat(q).as_matrix()
    except ValueError as err:
        raise GeometryError(f"cannot convert quaternion(s) to rotation: {err}") from err
    return mats.reshape((*batch, 3, 3))


def _quat_to_rotmat_formula(q: np.ndarray) -> np.ndarray:
    """VGGT's ``quat_to_mat``: ``2/‖q‖²`` scaling, so any non-zero quaternion works."""
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    two_s = 2.0 / np.sum(q * q, -1)
    rows = [
        np.stack([1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w)], -1),
        np.stack([two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w)], -1),
        np.stack([two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y)], -1),
    ]
    return np.stack(rows, -2)


def rotmat_to_quat(R: np.ndarray) -> np.ndarray:
    """XYZW unit quaternions (``w ≥ 0``) of rotation matrices.

    Args:
        R: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 4]`` quaternions, XYZW, standardised to ``w ≥ 0``.
    """
    R = as_float64(R, (3, 3), "R")
    mats, batch = _flat(R, 2)
    q = _rotation_from_matrix(mats).as_quat()
    return standardize_quat(q).reshape((*batch, 4))


def _rotation_from_matrix(mats: np.ndarray) -> Rotation:
    """scipy ``Rotation`` of ``[N, 3, 3]`` matrices; errors become :class:`GeometryError`."""
    try:
        return Rotation.from_matrix(mats)
    except ValueError as err:
        raise GeometryError(f"not a rotation matrix: {err}") from err


def so3_exp(phi: np.ndarray) -> np.ndarray:
    """Rotation matrices ``Exp(phi)`` of rotation vectors.

    Args:
        phi: ``[..., 3]`` rotation vectors (axis × angle, radians).

    Returns:
        ``[..., 3, 3]`` rotation matrices.
    """
    phi = as_float64(phi, (3,), "phi")
    vecs, batch = _flat(phi, 1)
    return Rotation.from_rotvec(vecs).as_matrix().reshape((*batch, 3, 3))


def so3_log(R: np.ndarray) -> np.ndarray:
    """Rotation vectors ``Log(R)`` with angle in ``[0, π]``.

    At exactly π the axis sign is arbitrary (both are valid logarithms).

    Args:
        R: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 3]`` rotation vectors (radians).
    """
    R = as_float64(R, (3, 3), "R")
    mats, batch = _flat(R, 2)
    return _rotation_from_matrix(mats).as_rotvec().reshape((*batch, 3))


def quat_log(q_xyzw: np.ndarray) -> np.ndarray:
    """Rotation vectors of unit XYZW quaternions, angle in ``[0, π]``.

    Uses ``θ = 2·atan2(‖v‖, |w|)``, which is well conditioned at every angle.
    """
    q_xyzw = as_float64(q_xyzw, (4,), "q_xyzw")
    q = standardize_quat(q_xyzw)
    v, w = q[..., :3], q[..., 3]
    n2 = np.sum(v * v, -1)
    small = n2 < 1e-6  # ‖v‖ < 1e-3: series below (truncation error < 1e-19)
    n = np.sqrt(np.where(small, np.full_like(n2, 1.0), n2))
    # θ/‖v‖ = 2 atan2(n, w)/n = (2/w)(1 - x²/3 + x⁴/5 - ...), x = n/w (w ≈ 1 there).
    w_safe = np.where(small, w, np.full_like(w, 1.0))
    x2 = n2 / (w_safe * w_safe)
    series = (2.0 / w_safe) * (1 - x2 / 3 + x2 * x2 / 5)
    scale = np.where(small, series, 2.0 * np.arctan2(n, w) / n)
    return v * scale[..., None]
