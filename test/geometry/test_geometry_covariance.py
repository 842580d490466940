"""Covariance conventions, proven by Monte Carlo: perturb in one convention, measure in the other.

Agreement criterion for every entry (i, j) of the 6×6 matrices:
``|Σ̂_ij - Σ_ij| ≤ 2 % · sqrt(Σ_ii Σ_jj)``, i.e. 2 % per entry on the diagonal and 2 % of the
correlation scale off the diagonal. With N = 200 000 samples the sampling standard error of
each entry is at most ``sqrt(2/N) ≈ 0.32 %`` of that scale, so the test has > 6σ margin while
a convention error (wrong frame, order or sign) moves entries by tens of percent.
"""

from __future__ import annotations

import gtsam
import numpy as np
import pytest

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry import (
    compose_with_covariance,
    cov_to_ros_msg_list,
    diag_to_cov,
    invert_transform,
    make_transform,
    residual_cov_to_gtsam,
    residual_cov_to_ros,
    ros_cov_to_residual_cov,
    ros_msg_list_to_cov,
    se3_exp,
    se3_log,
    so3_exp,
    so3_log,
)

N_SAMPLES = 200_000
REL_TOL = 0.02


def _assert_cov_close(measured: np.ndarray, predicted: np.ndarray) -> None:
    scale = np.sqrt(np.outer(np.diag(predicted), np.diag(predicted)))
    err = np.abs(measured - predicted) / scale
    assert err.max() <= REL_TOL, f"max relative error {err.max():.4f} at {np.unravel_index(err.argmax(), err.shape)}"


def _ros_deviation(T: np.ndarray, T_ref: np.ndarray) -> np.ndarray:
    """``[δp, δθ]`` as ROS defines them: ``p = p̄ + δp``, ``R = Exp(δθ) R̄`` (header frame)."""
    dp = T[..., :3, 3] - T_ref[:3, 3]
    dtheta = so3_log(T[..., :3, :3] @ T_ref[:3, :3].T)
    return np.concatenate([dp, dtheta], axis=-1)


def _perturb_ros(T: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Apply ROS-convention perturbations ``[δp, δθ]`` (header frame) to ``T``."""
    return make_transform(so3_exp(delta[:, 3:]) @ T[:3, :3], T[:3, 3] + delta[:, :3])


T_GT = make_transform(so3_exp(np.array([0.7, -0.9, 0.4])), np.array([1.0, -2.0, 0.5]))


def test_residual_cov_to_ros_monte_carlo():
    rng = np.random.default_rng(20240611)
    # our order: [rot (rad²), trans (m²)]; small σ so that first order holds
    var = np.array([0.010, 0.020, 0.015, 0.020, 0.008, 0.012]) ** 2
    cov_ours = diag_to_cov(var)
    r = rng.normal(size=(N_SAMPLES, 6)) * np.sqrt(var)
    samples = T_GT @ se3_exp(r)  # right perturbation, residual convention
    measured = np.cov(_ros_deviation(samples, T_GT), rowvar=False)
    predicted = residual_cov_to_ros(T_GT, cov_ours)
    _assert_cov_close(measured, predicted)
    # the naive conversion (only swapping the blocks, no rotation into the header frame) is
    # clearly rejected by the same measurement
    naive = np.block([[cov_ours[3:, 3:], cov_ours[3:, :3]], [cov_ours[:3, 3:], cov_ours[:3, :3]]])
    with pytest.raises(AssertionError):
        _assert_cov_close(measured, naive)


def test_ros_cov_to_residual_cov_monte_carlo():
    rng = np.random.default_rng(7)
    L = rng.normal(size=(6, 6)) * 0.006
    cov_ros = L @ L.T + np.diag([1e-4, 2e-4, 1e-4, 5e-5, 1e-4, 8e-5])
    delta = rng.multivariate_normal(np.zeros(6), cov_ros, size=N_SAMPLES)
    samples = _perturb_ros(T_GT, delta)
    r = se3_log(invert_transform(T_GT) @ samples)  # our residual convention
    measured = np.cov(r, rowvar=False)
    _assert_cov_close(measured, ros_cov_to_residual_cov(T_GT, cov_ros))


def test_compose_with_covariance_monte_carlo():
    rng = np.random.default_rng(99)
    T_a_b = make_transform(so3_exp(np.array([0.3, 0.8, -0.2])), np.array([0.5, 1.0, -0.3]))
    T_b_c = make_transform(so3_exp(np.array([-0.5, 0.1, 0.6])), np.array([2.0, 0.3, 1.0]))
    L = rng.normal(size=(6, 6)) * 0.005
    cov_ab = L @ L.T + np.diag([1e-4, 1e-4, 2e-4, 5e-5, 1e-4, 5e-5])  # correlated, frame a
    cov_bc = np.diag([2e-4, 1e-4, 1e-4, 1e-4, 4e-5, 6e-5])  # frame b
    d_ab = rng.multivariate_normal(np.zeros(6), cov_ab, size=N_SAMPLES)
    d_bc = rng.multivariate_normal(np.zeros(6), cov_bc, size=N_SAMPLES)
    samples = _perturb_ros(T_a_b, d_ab) @ _perturb_ros(T_b_c, d_bc)
    T_a_c, cov_ac = compose_with_covariance(T_a_b, cov_ab, T_b_c, cov_bc)
    np.testing.assert_allclose(T_a_c, T_a_b @ T_b_c, atol=1e-15)
    measured = np.cov(_ros_deviation(samples, T_a_c), rowvar=False)
    _assert_cov_close(measured, cov_ac)
    # ignoring the lever arm [R_ab t_bc]× would fail the same check
    _, no_lever = compose_with_covariance(T_a_b, cov_ab, make_transform(T_b_c[:3, :3], np.zeros(3)), cov_bc)
    with pytest.raises(AssertionError):
        _assert_cov_close(measured, no_lever)


def test_conversions_are_inverse_and_batched():
    rng = np.random.default_rng(1)
    T = make_transform(so3_exp(rng.normal(size=(4, 3))), rng.normal(size=(4, 3)))
    L = rng.normal(size=(4, 6, 6))
    cov = L @ np.swapaxes(L, -1, -2)
    ros = residual_cov_to_ros(T, cov)
    assert ros.shape == (4, 6, 6)
    np.testing.assert_allclose(ros_cov_to_residual_cov(T, ros), cov, atol=1e-12)
    np.testing.assert_allclose(ros, np.swapaxes(ros, -1, -2), atol=1e-12)


def test_identity_pose_only_swaps_blocks():
    var = np.arange(1.0, 7.0)
    np.testing.assert_array_equal(np.diag(residual_cov_to_ros(np.eye(4), diag_to_cov(var))), [4, 5, 6, 1, 2, 3])


def test_diag_to_cov_and_message_list_round_trip():
    var = np.array([1e-4, 2e-4, 3e-4, 1e-2, 2e-2, 3e-2])
    cov = diag_to_cov(var)
    np.testing.assert_array_equal(np.diag(cov), var)
    assert np.count_nonzero(cov) == 6
    values = cov_to_ros_msg_list(cov)
    assert len(values) == 36 and all(isinstance(v, float) for v in values)
    assert values[7] == var[1]  # row-major: (1, 1) is index 7
    np.testing.assert_array_equal(ros_msg_list_to_cov(values), cov)
    with pytest.raises(GeometryError, match="36 values"):
        ros_msg_list_to_cov(values[:35])
    with pytest.raises(GeometryError, match="single 6x6"):
        cov_to_ros_msg_list(np.zeros((2, 6, 6)))


def test_gtsam_pose3_uses_our_convention():
    """GTSAM's Pose3 retract/localCoordinates are our right perturbation in [rot, trans] order."""
    rng = np.random.default_rng(3)
    pose = gtsam.Pose3(T_GT)
    for xi in rng.normal(size=(5, 6)) * 0.05:
        np.testing.assert_allclose(
            pose.retract(xi).matrix(), T_GT @ se3_exp(xi), atol=1e-5 * np.linalg.norm(xi) ** 2 + 1e-14
        )
        other = gtsam.Pose3(T_GT @ se3_exp(xi))
        np.testing.assert_allclose(pose.localCoordinates(other), xi, atol=1e-4 * np.linalg.norm(xi) ** 2 + 1e-12)
    cov = diag_to_cov(np.array([1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 6e-4]))
    np.testing.assert_array_equal(residual_cov_to_gtsam(cov), cov)
    with pytest.raises(GeometryError, match="negative variance"):
        residual_cov_to_gtsam(-cov)
