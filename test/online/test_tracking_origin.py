"""The odometry origin's covariance floor (``origin_cov``): positive definite from the first pose."""

from __future__ import annotations

import numpy as np

from vggt_uncertainty_ros.geometry import make_transform, se3_exp, so3_exp
from vggt_uncertainty_ros.online.tracking import TrajectoryTracker


def test_origin_floor_makes_the_first_pose_spd_and_propagates():
    T_base_cam = make_transform(so3_exp(np.array([-1.2, 1.2, -1.2])), np.array([0.2, 0.0, 0.5]))
    floor = np.diag([1e-6] * 3 + [4e-6] * 3)
    rng = np.random.default_rng(0)
    T_0_i = np.stack([np.eye(4)] + [se3_exp(rng.normal(size=6) * 0.1) for _ in range(3)])
    log_var = np.full((4, 6), -6.0)
    stamps = [10, 20, 30, 40]
    with_floor = TrajectoryTracker(T_base_cam, origin_cov=floor).process(stamps, T_0_i, log_var, 0)
    without = TrajectoryTracker(T_base_cam).process(stamps, T_0_i, log_var, 0)
    np.testing.assert_allclose(with_floor.poses[0].T_odom_base, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(with_floor.poses[0].cov_ros, floor, rtol=1e-9, atol=1e-18)
    assert not np.any(without.poses[0].cov_ros)  # the old behaviour: singular
    for a, b in zip(with_floor.poses[1:], without.poses[1:], strict=True):
        assert np.linalg.eigvalsh(a.cov_ros).min() > 0
        assert np.linalg.eigvalsh(a.cov_ros - b.cov_ros).min() > -1e-15  # the prior only adds
