"""SE(3) exp/log in [rot, trans] order (checked against GTSAM Pose3), transforms, TUM rows."""

from __future__ import annotations

import gtsam
import numpy as np
import pytest

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry import (
    invert_transform,
    make_transform,
    pose_from_tum,
    pose_to_tum,
    se3_exp,
    se3_log,
    so3_exp,
)

ANGLES = [0.0, 1e-12, 1e-7, 1e-4, 0.999e-2, 1.001e-2, 0.5, 2.0, np.pi - 1e-4, np.pi - 1e-7]


def _tangents(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(len(ANGLES), 3))
    axes /= np.linalg.norm(axes, axis=-1, keepdims=True)
    rho = rng.normal(size=(len(ANGLES), 3)) * 2.0
    return np.concatenate([axes * np.asarray(ANGLES)[:, None], rho], axis=-1)


def test_se3_exp_log_equal_gtsam_pose3():
    for xi in _tangents(0):
        np.testing.assert_allclose(se3_exp(xi), gtsam.Pose3.Expmap(xi).matrix(), atol=1e-14)
        T = gtsam.Pose3.Expmap(xi)
        np.testing.assert_allclose(se3_log(T.matrix()), gtsam.Pose3.Logmap(T), atol=1e-9)


def test_se3_round_trip_near_zero_and_pi():
    xi = _tangents(1)
    back = se3_log(se3_exp(xi))
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, xi, rtol=0, atol=1e-12)


def test_se3_keeps_batch():
    xi = np.random.default_rng(2).normal(size=(2, 3, 6))
    T_np = se3_exp(xi)
    assert T_np.shape == (2, 3, 4, 4)
    np.testing.assert_allclose(se3_log(T_np), xi, atol=5e-14)


def test_se3_exp_of_pure_translation_and_rotation():
    np.testing.assert_array_equal(se3_exp(np.array([0, 0, 0, 1.0, -2.0, 3.0]))[:3, 3], [1.0, -2.0, 3.0])
    T = se3_exp(np.array([0, 0, np.pi / 2, 0, 0, 0]))
    np.testing.assert_allclose(T[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)


def test_make_and_invert_transform():
    rng = np.random.default_rng(3)
    R = so3_exp(rng.normal(size=(4, 3)))
    t = rng.normal(size=(4, 3))
    T = make_transform(R, t)
    np.testing.assert_array_equal(T[:, 3], np.broadcast_to([0, 0, 0, 1.0], (4, 4)))
    np.testing.assert_allclose(T @ invert_transform(T), np.broadcast_to(np.eye(4), (4, 4, 4)), atol=1e-15)
    np.testing.assert_allclose(invert_transform(T), np.linalg.inv(T), atol=1e-14)
    # broadcasting one rotation against several translations
    assert make_transform(R[0], t).shape == (4, 4, 4)


def test_tum_row_round_trip():
    rng = np.random.default_rng(4)
    q = rng.normal(size=(10, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    rows = np.concatenate([rng.normal(size=(10, 3)), q], axis=-1)
    back = pose_to_tum(pose_from_tum(rows))
    assert np.all(back[:, 6] >= 0)
    q_std = np.where(q[:, 3:] < 0, -q, q)
    np.testing.assert_allclose(back, np.concatenate([rows[:, :3], q_std], axis=-1), atol=1e-15)
    # p_world = T_world_cam @ p_cam: a point on the camera's z axis
    T = pose_from_tum(np.array([1.0, 2.0, 3.0, 0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4)]))
    np.testing.assert_allclose(T @ [1.0, 0, 0, 1], [1.0, 3.0, 3.0, 1.0], atol=1e-15)


def test_shape_errors():
    with pytest.raises(GeometryError, match=r"xi must have shape \[\.\.\., 6\]"):
        se3_exp(np.zeros(3))
    with pytest.raises(GeometryError, match=r"row7 must have shape"):
        pose_from_tum(np.zeros(8))


def test_pose_from_message_fields_normalises_or_returns_nan():
    from scipy.spatial.transform import Rotation

    from vggt_uncertainty_ros.geometry import pose_from_message_fields

    q = Rotation.from_rotvec([0.1, -0.2, 0.3]).as_quat()  # XYZW
    T = pose_from_message_fields([1.0, 2.0, 3.0], 2.5 * q)  # not unit: normalised
    np.testing.assert_allclose(T[:3, :3], Rotation.from_quat(q).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [1.0, 2.0, 3.0])
    for xyz, quat in (([np.nan, 0, 0], q), ([0, 0, 0], [0, 0, 0, 0]), ([0, 0, 0], [np.inf, 0, 0, 1])):
        assert np.isnan(pose_from_message_fields(xyz, quat)).all()
