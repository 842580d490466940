"""SO(3) exp/log and quaternions (numpy, scipy), near 0 and near π."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry import (
    hat,
    quat_to_rotmat,
    rotmat_to_quat,
    so3_exp,
    so3_log,
    standardize_quat,
)

# Angles in the regimes that break naive formulas: exactly 0, tiny, around the Taylor
# switch (1e-2), generic, and approaching π from below.
ANGLES = [0.0, 1e-15, 1e-9, 1e-5, 1e-3, 0.999e-2, 1.001e-2, 0.3, 1.0, 2.5, np.pi - 1e-3, np.pi - 1e-6, np.pi - 1e-9]


def _rotvecs(rng: np.random.Generator) -> np.ndarray:
    axes = rng.normal(size=(len(ANGLES), 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    return axes * np.asarray(ANGLES)[:, None]


def _rodrigues_reference(phi: np.ndarray) -> np.ndarray:
    """Textbook Rodrigues in float64 (valid away from 0, used as an independent check)."""
    theta = np.linalg.norm(phi)
    K = hat(phi / theta)
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def test_hat_is_cross_product():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose((hat(a) @ b[..., None])[..., 0], np.cross(a, b), atol=1e-15)


def test_so3_exp_log_round_trip_near_zero_and_pi():
    phi = _rotvecs(np.random.default_rng(1))
    R = so3_exp(phi)
    back = so3_log(R)
    np.testing.assert_allclose(R @ np.swapaxes(R, -1, -2), np.broadcast_to(np.eye(3), R.shape), atol=1e-15)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-14)
    np.testing.assert_allclose(back, phi, rtol=0, atol=5e-15)


def test_so3_exp_matches_rodrigues_and_first_order():
    phi = _rotvecs(np.random.default_rng(2))
    R = so3_exp(phi)
    for p, r in zip(phi, R, strict=True):
        if np.linalg.norm(p) > 1e-3:
            np.testing.assert_allclose(r, _rodrigues_reference(p), atol=2e-15)
        else:  # second-order Taylor is exact to O(θ³) here
            K = hat(p)
            np.testing.assert_allclose(r, np.eye(3) + K + K @ K / 2, atol=np.linalg.norm(p) ** 3 + 1e-16)


def test_so3_log_at_exactly_pi_returns_a_valid_logarithm():
    for axis in np.eye(3):
        for phi in (np.pi * axis, -np.pi * axis):
            R = so3_exp(phi)
            back = so3_log(R)
            assert np.isclose(np.linalg.norm(back), np.pi, atol=1e-15)
            np.testing.assert_allclose(so3_exp(back), R, atol=1e-15)


def test_batch_shapes_kept_and_lists_accepted():
    phi = np.random.default_rng(0).normal(size=(2, 5, 3))
    R = so3_exp(phi)
    assert R.shape == (2, 5, 3, 3) and R.dtype == np.float64
    np.testing.assert_allclose(so3_log(R), phi, rtol=0, atol=1e-12)
    assert so3_exp(np.zeros((4, 1, 3))).shape == (4, 1, 3, 3)
    np.testing.assert_array_equal(so3_exp([0.0, 0.0, 0.0]), np.eye(3))


def test_quaternion_round_trip_and_standardisation():
    rng = np.random.default_rng(4)
    q = rng.normal(size=(200, 4))
    # quaternions with w ≈ 0 (angle ≈ π) and each of x, y, z dominant exercise every branch
    q[:3] = np.array([[1, 1e-3, 0, 1e-9], [0, 1, 1e-3, -1e-9], [1e-3, 0, 1, 0]])
    qn = standardize_quat(q / np.linalg.norm(q, axis=-1, keepdims=True))
    assert np.all(qn[:, 3] >= 0)
    R = quat_to_rotmat(q * 1.7)  # non-unit input is normalised
    back = rotmat_to_quat(R)
    assert np.all(back[:, 3] >= 0)
    np.testing.assert_allclose(back, qn, atol=2e-15)
    np.testing.assert_allclose(quat_to_rotmat(q), quat_to_rotmat(-q), atol=1e-15)


def test_quaternion_matches_rotation_vector():
    # q = [sin(θ/2) n, cos(θ/2)] is the quaternion of Exp(θ n)
    theta, n = 2.0, np.array([2.0, -1.0, 2.0]) / 3.0
    q = np.concatenate([np.sin(theta / 2) * n, [np.cos(theta / 2)]])
    np.testing.assert_allclose(quat_to_rotmat(q), so3_exp(theta * n), atol=1e-15)


def test_errors_name_the_bad_input():
    with pytest.raises(GeometryError, match=r"phi must have shape \[\.\.\., 3\], got \[4\]"):
        so3_exp(np.zeros(4))
    with pytest.raises(GeometryError, match="R must have shape"):
        so3_log(np.zeros((3, 4)))
    with pytest.raises(GeometryError, match="quaternion"):
        quat_to_rotmat(np.zeros(4))
    with pytest.raises(GeometryError, match="not a rotation matrix"):
        so3_log(np.diag([1.0, 1.0, -1.0]))


def test_geometry_and_calibration_import_without_torch():
    code = (
        "import sys, vggt_uncertainty_ros.geometry, vggt_uncertainty_ros.calibration;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
