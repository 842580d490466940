"""SO(3): exponential/logarithm maps and XYZW quaternions.

Conventions (docs/ARCHITECTURE.md):

* A rotation vector ``phi[..., 3]`` (axis × angle, radians) maps to ``R = Exp(phi)``, a
  3×3 rotation matrix; ``so3_log`` returns the vector with angle in ``[0, π]``.
* Quaternions are XYZW (ROS, scipy, TUM order). Functions returning one standardise to
  ``w ≥ 0``.

numpy inputs are computed in float64 with :mod:`scipy.spatial.transform`. torch inputs
(functions marked *t*) use closed forms written here, keep dtype and device, and are safe
for autograd (no NaN gradients at the identity). Both are accurate to float64 round-off
near the identity and near angle π.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial.transform import Rotation

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry._backend import Array, NumpyOps, TorchOps, check_last_dims, ops_for

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


def hat(phi: Array) -> Array:
    """Skew-symmetric matrix ``[phi]×`` with ``hat(a) @ b == cross(a, b)`` (*t*).

    Args:
        phi: vectors ``[..., 3]``.

    Returns:
        ``[..., 3, 3]`` matrices, same array type as the input.
    """
    check_last_dims(phi, (3,), "phi")
    ops = ops_for(phi)
    phi = ops.asarray(phi)
    x, y, z = phi[..., 0], phi[..., 1], phi[..., 2]
    zero = x * 0
    rows = [
        ops.stack([zero, -z, y], -1),
        ops.stack([z, zero, -x], -1),
        ops.stack([-y, x, zero], -1),
    ]
    return ops.stack(rows, -2)


def _flat(x: np.ndarray, tail: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """Reshape to ``[-1, *tail_shape]`` for scipy and return the batch shape."""
    batch = x.shape[: x.ndim - tail]
    return x.reshape((-1, *x.shape[x.ndim - tail :])), batch


def standardize_quat(q_xyzw: Array) -> Array:
    """Flip the sign of XYZW quaternions so that ``w ≥ 0`` (*t*)."""
    check_last_dims(q_xyzw, (4,), "q_xyzw")
    ops = ops_for(q_xyzw)
    q = ops.asarray(q_xyzw)
    return ops.where(q[..., 3:4] < 0, -q, q)


def quat_to_rotmat(q_xyzw: Array) -> Array:
    """Rotation matrices from XYZW quaternions (*t*).

    Non-unit quaternions are accepted: the result is the rotation of ``q/‖q‖`` (for torch,
    VGGT's formula dividing by ``‖q‖²``, identical to the official ``quat_to_mat``).

    Args:
        q_xyzw: ``[..., 4]`` quaternions, XYZW order.

    Returns:
        ``[..., 3, 3]`` rotation matrices.

    Raises:
        GeometryError: wrong shape, or (numpy) a zero-norm quaternion.
    """
    check_last_dims(q_xyzw, (4,), "q_xyzw")
    ops = ops_for(q_xyzw)
    if isinstance(ops, NumpyOps):
        q, batch = _flat(np.asarray(q_xyzw, dtype=np.float64), 1)
        try:
            mats = Rotation.from_quat(q).as_matrix()
        except ValueError as err:
            raise GeometryError(f"cannot convert quaternion(s) to rotation: {err}") from err
        return mats.reshape((*batch, 3, 3))
    return _quat_to_rotmat_formula(ops, ops.asarray(q_xyzw))


def _quat_to_rotmat_formula(ops: NumpyOps | TorchOps, q: Array) -> Array:
    """VGGT's ``quat_to_mat``: ``2/‖q‖²`` scaling, so any non-zero quaternion works."""
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    two_s = 2.0 / ops.sum(q * q, -1)
    rows = [
        ops.stack([1 - two_s * (y * y + z * z), two_s * (x * y - z * w), two_s * (x * z + y * w)], -1),
        ops.stack([two_s * (x * y + z * w), 1 - two_s * (x * x + z * z), two_s * (y * z - x * w)], -1),
        ops.stack([two_s * (x * z - y * w), two_s * (y * z + x * w), 1 - two_s * (x * x + y * y)], -1),
    ]
    return ops.stack(rows, -2)


def rotmat_to_quat(R: Array) -> Array:
    """XYZW unit quaternions (``w ≥ 0``) of rotation matrices (*t*).

    Args:
        R: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 4]`` quaternions, XYZW, standardised to ``w ≥ 0``.
    """
    check_last_dims(R, (3, 3), "R")
    ops = ops_for(R)
    if isinstance(ops, NumpyOps):
        mats, batch = _flat(np.asarray(R, dtype=np.float64), 2)
        q = _rotation_from_matrix(mats).as_quat()
        return standardize_quat(q).reshape((*batch, 4))
    return _rotmat_to_quat_formula(ops, ops.asarray(R))


def _rotation_from_matrix(mats: np.ndarray) -> Rotation:
    """scipy ``Rotation`` of ``[N, 3, 3]`` matrices; errors become :class:`GeometryError`."""
    try:
        return Rotation.from_matrix(mats)
    except ValueError as err:
        raise GeometryError(f"not a rotation matrix: {err}") from err


def _rotmat_to_quat_formula(ops: NumpyOps | TorchOps, R: Array) -> Array:
    """Shepperd's method: build the quaternion from its largest component (always ≥ 1/2)."""
    m00, m01, m02 = R[..., 0, 0], R[..., 0, 1], R[..., 0, 2]
    m10, m11, m12 = R[..., 1, 0], R[..., 1, 1], R[..., 1, 2]
    m20, m21, m22 = R[..., 2, 0], R[..., 2, 1], R[..., 2, 2]
    # 4*q_k^2 for k = x, y, z, w; their sum is 4, so the largest is >= 1.
    four_sq = ops.stack([1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22, 1 + m00 + m11 + m22], -1)
    # Clamping keeps the unselected candidates finite (and their gradients too).
    d = 2.0 * ops.sqrt(ops.clip_min(four_sq, 0.1))  # d_k = 4 |q_k| for the selected k
    dx, dy, dz, dw = d[..., 0], d[..., 1], d[..., 2], d[..., 3]
    cands = ops.stack(
        [
            ops.stack([dx / 4, (m01 + m10) / dx, (m02 + m20) / dx, (m21 - m12) / dx], -1),
            ops.stack([(m01 + m10) / dy, dy / 4, (m12 + m21) / dy, (m02 - m20) / dy], -1),
            ops.stack([(m02 + m20) / dz, (m12 + m21) / dz, dz / 4, (m10 - m01) / dz], -1),
            ops.stack([(m21 - m12) / dw, (m02 - m20) / dw, (m10 - m01) / dw, dw / 4], -1),
        ],
        -2,
    )  # [..., 4 candidates, 4 components]
    best = ops.argmax(four_sq, -1)
    q = ops.stack([ops.take_last(cands[..., k], best) for k in range(4)], -1)
    q = q / ops.sqrt(ops.sum(q * q, -1, keepdims=True))
    return ops.where(q[..., 3:4] < 0, -q, q)


def so3_exp(phi: Array) -> Array:
    """Rotation matrices ``Exp(phi)`` of rotation vectors (*t*).

    Args:
        phi: ``[..., 3]`` rotation vectors (axis × angle, radians).

    Returns:
        ``[..., 3, 3]`` rotation matrices.
    """
    check_last_dims(phi, (3,), "phi")
    ops = ops_for(phi)
    if isinstance(ops, NumpyOps):
        vecs, batch = _flat(np.asarray(phi, dtype=np.float64), 1)
        return Rotation.from_rotvec(vecs).as_matrix().reshape((*batch, 3, 3))
    phi = ops.asarray(phi)
    a, b = _exp_coeffs(ops, phi)
    K = hat(phi)
    return ops.eye(3, phi) + a[..., None, None] * K + b[..., None, None] * (K @ K)


def _exp_coeffs(ops: NumpyOps | TorchOps, phi: Array) -> tuple[Array, Array]:
    """``A = sin θ/θ`` and ``B = (1 - cos θ)/θ²`` with Taylor series near θ = 0."""
    theta2 = ops.sum(phi * phi, -1)
    small = theta2 < SMALL_ANGLE_RAD**2
    theta = ops.sqrt(ops.where(small, ops.full_like(theta2, 1.0), theta2))
    half_sin = ops.sin(theta / 2)
    a = ops.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, ops.sin(theta) / theta)
    b = ops.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, 2 * half_sin * half_sin / (theta * theta))
    return a, b


def so3_log(R: Array) -> Array:
    """Rotation vectors ``Log(R)`` with angle in ``[0, π]`` (*t*).

    At exactly π the axis sign is arbitrary (both are valid logarithms).

    Args:
        R: ``[..., 3, 3]`` rotation matrices.

    Returns:
        ``[..., 3]`` rotation vectors (radians).
    """
    check_last_dims(R, (3, 3), "R")
    ops = ops_for(R)
    if isinstance(ops, NumpyOps):
        mats, batch = _flat(np.asarray(R, dtype=np.float64), 2)
        return _rotation_from_matrix(mats).as_rotvec().reshape((*batch, 3))
    q = _rotmat_to_quat_formula(ops, ops.asarray(R))
    return quat_log(q)


def quat_log(q_xyzw: Array) -> Array:
    """Rotation vectors of unit XYZW quaternions, angle in ``[0, π]`` (*t*).

    Uses ``θ = 2·atan2(‖v‖, |w|)``, which is well conditioned at every angle.
    """
    check_last_dims(q_xyzw, (4,), "q_xyzw")
    ops = ops_for(q_xyzw)
    q = standardize_quat(ops.asarray(q_xyzw))
    v, w = q[..., :3], q[..., 3]
    n2 = ops.sum(v * v, -1)
    small = n2 < 1e-6  # ‖v‖ < 1e-3: series below (truncation error < 1e-19)
    n = ops.sqrt(ops.where(small, ops.full_like(n2, 1.0), n2))
    # θ/‖v‖ = 2 atan2(n, w)/n = (2/w)(1 - x²/3 + x⁴/5 - ...), x = n/w (w ≈ 1 there).
    w_safe = ops.where(small, w, ops.full_like(w, 1.0))
    x2 = n2 / (w_safe * w_safe)
    series = (2.0 / w_safe) * (1 - x2 / 3 + x2 * x2 / 5)
    scale = ops.where(small, series, 2.0 * ops.atan2(n, w) / n)
    return v * scale[..., None]
