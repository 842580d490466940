"""Pose covariances: our residual convention, ROS ``PoseWithCovariance`` and GTSAM ``Pose3``.

Three conventions meet here (docs/ARCHITECTURE.md):

* **Ours** (the head's output, the residual): ``T = T̄ @ Exp(r)``, ``r = [φ (3), ρ (3)]`` —
  rotation first, a *right* perturbation, so both blocks are expressed in the pose's own
  (child) frame. Units rad and translation units. Diagonal ``diag(exp(log_var))``.
* **GTSAM** ``Pose3``: tangent order ``[rot, trans]`` and ``retract``/``localCoordinates``
  perturb on the right, in the child frame — *identical to ours*. A covariance in our
  convention is passed to ``gtsam.noiseModel.Gaussian.Covariance`` for a ``Pose3`` factor
  unchanged (:func:`residual_cov_to_gtsam` only validates and copies).
* **ROS** ``geometry_msgs/PoseWithCovariance``: 6×6 row-major over ``[x, y, z, rotX, rotY,
  rotZ]`` — translation first — with both perturbations in the **header (parent) frame**:
  ``p = p̄ + δp``, ``R = Exp(δθ) @ R̄``.

For ``T = (R, t)`` to first order ``δθ = R φ`` and ``δp = R ρ``, so
``Σ_ros = J Σ_ours Jᵀ`` with ``J = [[0, R], [R, 0]]`` (``J`` is orthogonal, ``J⁻¹ = Jᵀ``).
The Monte-Carlo tests in ``test/geometry`` check this and :func:`compose_with_covariance`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry._shapes import as_float64
from vggt_uncertainty_ros.geometry.so3 import hat

__all__ = [
    "compose_with_covariance",
    "cov_to_ros_msg_list",
    "diag_to_cov",
    "residual_cov_to_gtsam",
    "residual_cov_to_ros",
    "ros_cov_to_residual_cov",
    "ros_msg_list_to_cov",
]


def _jacobian_ours_to_ros(R: np.ndarray) -> np.ndarray:
    """``J = [[0, R], [R, 0]]`` mapping ``[φ, ρ]`` (child frame) to ``[δp, δθ]`` (parent)."""
    J = np.zeros((*R.shape[:-2], 6, 6))
    J[..., :3, 3:] = R
    J[..., 3:, :3] = R
    return J


def _as_pose_and_cov(T: np.ndarray, cov: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    return as_float64(T, (4, 4), "T"), as_float64(cov, (6, 6), name)


def residual_cov_to_ros(T: np.ndarray, cov_ours: np.ndarray) -> np.ndarray:
    """Covariance of our right-perturbation residual → ROS ``PoseWithCovariance`` order.

    Args:
        T: ``[..., 4, 4]`` the pose ``T_parent_child`` (e.g. ``T_0_i``) the covariance belongs to.
        cov_ours: ``[..., 6, 6]`` covariance over ``[φ, ρ]`` in the child frame (rad², unit²).

    Returns:
        ``[..., 6, 6]`` covariance over ``[x, y, z, rotX, rotY, rotZ]`` in the parent (header)
        frame, float64.
    """
    T, cov = _as_pose_and_cov(T, cov_ours, "cov_ours")
    J = _jacobian_ours_to_ros(T[..., :3, :3])
    return J @ cov @ np.swapaxes(J, -1, -2)


def ros_cov_to_residual_cov(T: np.ndarray, cov_ros: np.ndarray) -> np.ndarray:
    """Inverse of :func:`residual_cov_to_ros`.

    Args:
        T: ``[..., 4, 4]`` the pose ``T_parent_child``.
        cov_ros: ``[..., 6, 6]`` ROS covariance (``[x, y, z, rotX, rotY, rotZ]``, parent frame).

    Returns:
        ``[..., 6, 6]`` covariance over our ``[φ, ρ]`` in the child frame (also GTSAM ``Pose3``).
    """
    T, cov = _as_pose_and_cov(T, cov_ros, "cov_ros")
    J = _jacobian_ours_to_ros(T[..., :3, :3])
    return np.swapaxes(J, -1, -2) @ cov @ J


def residual_cov_to_gtsam(cov_ours: np.ndarray) -> np.ndarray:
    """Covariance for a GTSAM ``Pose3`` noise model from one in our residual convention.

    GTSAM's ``Pose3`` tangent is ``[rot, trans]`` with right (child-frame) perturbation, the
    same as ours, so the matrix is returned unchanged (validated, float64, symmetrised).

    Args:
        cov_ours: ``[..., 6, 6]`` covariance over ``[φ, ρ]``.

    Returns:
        ``[..., 6, 6]`` float64, ready for ``gtsam.noiseModel.Gaussian.Covariance``.

    Raises:
        GeometryError: wrong shape, non-finite entries or a negative diagonal.
    """
    cov_ours = as_float64(cov_ours, (6, 6), "cov_ours")
    cov = np.asarray(cov_ours, dtype=np.float64)
    _check_cov(cov, "cov_ours")
    return 0.5 * (cov + np.swapaxes(cov, -1, -2))


def _check_cov(cov: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(cov)):
        raise GeometryError(f"{name} has non-finite entries")
    diag = np.diagonal(cov, axis1=-2, axis2=-1)
    if np.any(diag < 0):
        raise GeometryError(f"{name} has a negative variance on its diagonal: min {diag.min()!r}")


def diag_to_cov(var: np.ndarray) -> np.ndarray:
    """Diagonal covariance matrices from per-component variances.

    Args:
        var: ``[..., 6]`` variances (e.g. ``exp(log_var)`` in our order ``[rot, trans]``).

    Returns:
        ``[..., 6, 6]`` float64 with ``var`` on the diagonal.
    """
    var = as_float64(var, (6,), "var")
    return np.eye(6) * var[..., None, :]


def compose_with_covariance(
    T_a_b: np.ndarray, cov_ab_ros: np.ndarray, T_b_c: np.ndarray, cov_bc_ros: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Compose two independent uncertain poses, first-order covariance propagation.

    Each covariance is in ROS order ``[x, y, z, rotX, rotY, rotZ]`` and in its pose's header
    frame (``a`` for ``T_a_b``, ``b`` for ``T_b_c``). With ``T_a_c = T_a_b @ T_b_c``:
    ``δθ_ac = δθ_ab + R_ab δθ_bc`` and ``δp_ac = δp_ab - [R_ab t_bc]× δθ_ab + R_ab δp_bc``.

    Args:
        T_a_b: ``[..., 4, 4]``.
        cov_ab_ros: ``[..., 6, 6]`` covariance of ``T_a_b`` in frame ``a``.
        T_b_c: ``[..., 4, 4]``.
        cov_bc_ros: ``[..., 6, 6]`` covariance of ``T_b_c`` in frame ``b``.

    Returns:
        ``(T_a_c, cov_ac_ros)``: ``[..., 4, 4]`` and its ``[..., 6, 6]`` covariance in ROS
        order in frame ``a`` (float64).
    """
    T_ab, cov_ab = _as_pose_and_cov(T_a_b, cov_ab_ros, "cov_ab_ros")
    T_bc, cov_bc = _as_pose_and_cov(T_b_c, cov_bc_ros, "cov_bc_ros")
    R_ab = T_ab[..., :3, :3]
    batch = np.broadcast_shapes(T_ab.shape[:-2], T_bc.shape[:-2])
    J_ab = np.broadcast_to(np.eye(6), (*batch, 6, 6)).copy()
    J_ab[..., :3, 3:] = -hat((R_ab @ T_bc[..., :3, 3:4])[..., 0])
    J_bc = np.zeros((*batch, 6, 6))
    J_bc[..., :3, :3] = R_ab
    J_bc[..., 3:, 3:] = R_ab
    cov_ac = J_ab @ cov_ab @ np.swapaxes(J_ab, -1, -2) + J_bc @ cov_bc @ np.swapaxes(J_bc, -1, -2)
    return T_ab @ T_bc, cov_ac


def cov_to_ros_msg_list(cov: np.ndarray) -> list[float]:
    """The 36 row-major floats of a ``PoseWithCovariance.covariance`` field.

    Args:
        cov: ``[6, 6]`` covariance already in ROS order and header frame.

    Returns:
        36 Python floats, row-major.
    """
    cov = as_float64(cov, (6, 6), "cov")
    arr = np.asarray(cov, dtype=np.float64)
    if arr.ndim != 2:
        raise GeometryError(f"cov must be a single 6x6 matrix, got shape {list(arr.shape)}")
    return [float(v) for v in arr.reshape(36)]


def ros_msg_list_to_cov(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Inverse of :func:`cov_to_ros_msg_list`: 36 row-major floats → ``[6, 6]`` float64."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (36,):
        raise GeometryError(f"a ROS pose covariance has 36 values, got shape {list(arr.shape)}")
    return arr.reshape(6, 6).copy()
