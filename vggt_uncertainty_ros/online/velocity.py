"""Body-frame twist of the robot from consecutive keyframes, with its covariance (ROS-free).

The node's ``~/odometry`` carries, besides the chained pose, the twist of ``base_frame``
expressed in ``base_frame`` at the message stamp (``nav_msgs/Odometry`` convention), so
robot_localization can fuse it as a velocity (``odomN`` with ``vx, vy, vz, vroll, vpitch,
vyaw``) instead of an absolute pose.

The twist between keyframes ``a`` and ``b`` (stamps ``t_a < t_b``, ``dt = t_b - t_a``) comes
from the relative pose ``T_a_b = (R, t)`` of base ``b`` in base ``a``:

* angular velocity ``ω = Log(R) / dt`` (the same vector in frames ``a`` and ``b``, because
  ``R Log(R) = Log(R)``);
* linear velocity ``v = Rᵀ t / dt``: the mean velocity over the interval, in frame ``b``.

Covariances are 6x6 in ROS order. The relative pose's covariance ``Σ_ab`` is over
``[δp, δθ]`` in frame ``a`` (``t = t̄ + δp``, ``R = Exp(δθ) R̄``, as in
``PoseWithCovariance``). To first order ``δv = Rᵀ (δp + [t]× δθ) / dt`` and
``δω = J_l⁻¹(Log R) δθ / dt``, so ``Σ_twist = G Σ_ab Gᵀ`` with
``G = [[Rᵀ, Rᵀ [t]×], [0, J_l⁻¹]] / dt`` (a Monte-Carlo test checks it).

Within one window the relative pose of consecutive frames is ``T_{i-1,i} = T_0_{i-1}⁻¹ T_0_i``;
the head's per-frame covariances of ``T_0_{i-1}`` and ``T_0_i`` are taken as independent (the
head's own model), and the camera-frame result is moved to the base frame with the static
extrinsic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry import compose_with_covariance, hat, invert_transform, so3_log

_ZERO_COV = np.zeros((6, 6))


@dataclass(frozen=True)
class BodyTwist:
    """Twist of the base at ``stamp_ns`` in its own frame.

    Attributes:
        stamp_ns: stamp of the later keyframe, ns.
        twist: ``[vx, vy, vz, wx, wy, wz]`` (node scale units / s, rad / s) in ``base_frame``.
        cov: 6x6 covariance of ``twist`` in the same order.
    """

    stamp_ns: int
    twist: np.ndarray
    cov: np.ndarray


def invert_with_covariance(T_a_b: np.ndarray, cov_ab_ros: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``T_b_a = T_a_b⁻¹`` and its covariance, both in ROS order and header-frame convention.

    With ``p' = -Rᵀ p`` and ``R' = Rᵀ``, to first order ``δθ' = -Rᵀ δθ`` and
    ``δp' = -Rᵀ (δp + [p]× δθ)``; the covariance of ``T_b_a`` is expressed in frame ``b``.
    """
    T = np.asarray(T_a_b, dtype=np.float64)
    R, p = T[:3, :3], T[:3, 3]
    J = np.zeros((6, 6))
    J[:3, :3] = -R.T
    J[:3, 3:] = -R.T @ hat(p)
    J[3:, 3:] = -R.T
    return invert_transform(T), J @ np.asarray(cov_ab_ros, dtype=np.float64) @ J.T


def _so3_left_jacobian_inverse(phi: np.ndarray) -> np.ndarray:
    theta = float(np.linalg.norm(phi))
    K = hat(phi)
    if theta < 1e-6:
        return np.eye(3) - 0.5 * K + K @ K / 12.0
    coeff = 1.0 / theta**2 - (1.0 + np.cos(theta)) / (2.0 * theta * np.sin(theta))
    return np.eye(3) - 0.5 * K + coeff * (K @ K)


def twist_from_relative_pose(T_a_b: np.ndarray, cov_ab_ros: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Body twist in frame ``b`` and its covariance from the relative pose of ``b`` in ``a``.

    Args:
        T_a_b: 4x4 pose of base ``b`` in base ``a``.
        cov_ab_ros: its 6x6 covariance, ROS order ``[x, y, z, rotX, rotY, rotZ]`` in frame ``a``.
        dt_s: ``t_b - t_a`` in seconds, > 0.

    Returns:
        ``(twist, cov)``: ``[vx, vy, vz, wx, wy, wz]`` and its 6x6 covariance.

    Raises:
        GeometryError: ``dt_s`` is not a positive finite number.
    """
    if not (np.isfinite(dt_s) and dt_s > 0):
        raise GeometryError(f"twist needs a positive time step, got {dt_s!r} s")
    T = np.asarray(T_a_b, dtype=np.float64)
    R, t = T[:3, :3], T[:3, 3]
    phi = so3_log(R)
    twist = np.concatenate([R.T @ t, phi]) / dt_s
    G = np.zeros((6, 6))
    G[:3, :3] = R.T
    G[:3, 3:] = R.T @ hat(t)
    G[3:, 3:] = _so3_left_jacobian_inverse(phi)
    G /= dt_s
    cov = G @ np.asarray(cov_ab_ros, dtype=np.float64) @ G.T
    return twist, 0.5 * (cov + cov.T)


def consecutive_relative_pose(
    T_0_a: np.ndarray, cov_0a: np.ndarray, T_0_b: np.ndarray, cov_0b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``T_a_b = T_0_a⁻¹ T_0_b`` from two poses in a common frame ``0`` with independent covariances.

    Covariances are ROS order in frame ``0``; the result's covariance is in frame ``a``.
    """
    T_a_0, cov_a0 = invert_with_covariance(T_0_a, cov_0a)
    return compose_with_covariance(T_a_0, cov_a0, T_0_b, cov_0b)


def window_twists(
    stamps_ns: Sequence[int],
    T_0_i: Sequence[np.ndarray],
    cov_0i: Sequence[np.ndarray],
    T_base_cam: np.ndarray,
) -> dict[int, BodyTwist]:
    """Twist of the base at every window frame i ≥ 1, from frame i-1 of the same window.

    Args:
        stamps_ns: the window's stamps, frame 0 (the anchor) first, strictly increasing.
        T_0_i: 4x4 poses of camera i in camera 0, one per stamp (``T_0_0 = I``), node scale.
        cov_0i: their 6x6 covariances, ROS order in the anchor camera frame (zeros for frame 0).
        T_base_cam: static 4x4 pose of the camera in the base frame.

    Returns:
        Stamp (ns) -> :class:`BodyTwist` for frames 1..S-1.
    """
    T_cam_base = invert_transform(np.asarray(T_base_cam, dtype=np.float64))
    out: dict[int, BodyTwist] = {}
    for i in range(1, len(stamps_ns)):
        T_cam, cov_cam = consecutive_relative_pose(T_0_i[i - 1], cov_0i[i - 1], T_0_i[i], cov_0i[i])
        # base a -> camera a -> camera b -> base b; the extrinsic is exact
        T_base, cov_base = compose_with_covariance(T_base_cam, _ZERO_COV, T_cam, cov_cam)
        T_base, cov_base = compose_with_covariance(T_base, cov_base, T_cam_base, _ZERO_COV)
        dt_s = (int(stamps_ns[i]) - int(stamps_ns[i - 1])) * 1e-9
        twist, cov = twist_from_relative_pose(T_base, cov_base, dt_s)
        out[int(stamps_ns[i])] = BodyTwist(int(stamps_ns[i]), twist, cov)
    return out
