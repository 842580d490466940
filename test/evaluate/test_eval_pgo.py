"""Pose graph: GTSAM's tangent convention equals ours, and predicted weights pay off."""

from __future__ import annotations

import gtsam
import numpy as np
import pytest

from vggt_uncertainty_ros.calibration.trajectory import ate_rpe
from vggt_uncertainty_ros.evaluate.pgo import (
    Constraint,
    Weighting,
    chain_poses,
    optimize,
    translation_pieces,
    weighted_constraints,
)
from vggt_uncertainty_ros.geometry import (
    invert_transform,
    pose_residual,
    residual_cov_to_ros,
    ros_cov_to_residual_cov,
    se3_exp,
    se3_log,
)


def _random_pose(rng: np.random.Generator, rot: float = 1.0, trans: float = 1.0) -> np.ndarray:
    return se3_exp(np.concatenate([rng.normal(0, rot, 3), rng.normal(0, trans, 3)]))


def _random_cov(rng: np.random.Generator) -> np.ndarray:
    A = rng.normal(size=(6, 6)) * np.array([0.05] * 3 + [0.2] * 3)
    return A @ A.T + 1e-4 * np.eye(6)


def test_gtsam_retract_and_logmap_are_our_right_perturbation() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        T = _random_pose(rng)
        xi = rng.normal(0, 0.5, 6)
        np.testing.assert_allclose(gtsam.Pose3(T).retract(xi).matrix(), T @ se3_exp(xi), atol=1e-12)
        np.testing.assert_allclose(gtsam.Pose3.Logmap(gtsam.Pose3(T)), se3_log(T), atol=1e-10)


def test_between_factor_error_is_our_residual() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        Ta, Tb, meas = _random_pose(rng), _random_pose(rng), _random_pose(rng)
        factor = gtsam.BetweenFactorPose3(0, 1, gtsam.Pose3(meas), gtsam.noiseModel.Unit.Create(6))
        values = gtsam.Values()
        values.insert(0, gtsam.Pose3(Ta))
        values.insert(1, gtsam.Pose3(Tb))
        ours = pose_residual(meas, invert_transform(Ta) @ Tb)
        np.testing.assert_allclose(factor.unwhitenedError(values), ours, atol=1e-9)


def test_covariance_enters_gtsam_unchanged_monte_carlo() -> None:
    """Samples T_meas·Exp(r), r ~ N(0, Σ) through GTSAM's Logmap have covariance Σ, and a
    two-node graph's marginal equals Σ, also after a round trip through ROS order."""
    rng = np.random.default_rng(2)
    T_meas = _random_pose(rng, 0.7, 2.0)
    cov = _random_cov(rng)
    n = 4000
    r = rng.multivariate_normal(np.zeros(6), cov, size=n)
    samples = T_meas[None] @ se3_exp(r)
    p_meas = gtsam.Pose3(T_meas)
    tangent = np.array([p_meas.localCoordinates(gtsam.Pose3(S)) for S in samples])
    std_err = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(tangent.T) - cov) < 5 * std_err)

    cov_back = ros_cov_to_residual_cov(T_meas, residual_cov_to_ros(T_meas, cov))
    graph = gtsam.NonlinearFactorGraph()
    graph.add(gtsam.PriorFactorPose3(0, gtsam.Pose3(), gtsam.noiseModel.Isotropic.Sigma(6, 1e-9)))
    graph.add(gtsam.BetweenFactorPose3(0, 1, p_meas, gtsam.noiseModel.Gaussian.Covariance(cov_back)))
    values = gtsam.Values()
    values.insert(0, gtsam.Pose3())
    values.insert(1, p_meas)
    marginal = gtsam.Marginals(graph, values).marginalCovariance(1)
    np.testing.assert_allclose(marginal, cov, rtol=1e-6, atol=1e-12)


def test_chain_poses_counts_breaks() -> None:
    step = se3_exp(np.array([0, 0, 0.1, 1.0, 0, 0]))
    cons = [Constraint(0, 1, step, np.eye(6)), Constraint(2, 3, step, np.eye(6))]
    poses, breaks = chain_poses(4, cons)
    assert breaks == 1
    np.testing.assert_allclose(poses[1], step)
    np.testing.assert_allclose(poses[2], poses[1])
    np.testing.assert_allclose(poses[3], step @ step)
    optimised = optimize(4, cons, poses)
    np.testing.assert_allclose(invert_transform(optimised[2]) @ optimised[3], step, atol=1e-6)


def _heteroscedastic_windows(seed: int, n: int = 48, size: int = 8, stride: int = 4):
    rng = np.random.default_rng(seed)
    T = [np.eye(4)]
    for _ in range(n - 1):
        T.append(T[-1] @ se3_exp(np.concatenate([rng.normal(0, 0.03, 3), [0.05, 0, 0] + rng.normal(0, 0.01, 3)])))
    T_gt = np.asarray(T)
    cons = []
    for start in range(0, n - size + 1, stride):
        for i in range(start + 1, start + size):
            sigma = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), 6))
            rel = invert_transform(T_gt[start]) @ T_gt[i]
            meas = rel @ se3_exp(rng.normal(0, sigma))
            cons.append(Constraint(start, i, meas, np.diag(sigma**2)))
    return T_gt, cons


def test_predicted_weights_beat_uniform_and_constant() -> None:
    T_gt, cons = _heteroscedastic_windows(seed=3)
    n = len(T_gt)
    stamps = np.arange(n, dtype=np.int64) * 33_000_000 + 1_000_000_000
    init, breaks = chain_poses(n, cons)
    assert breaks == 0
    r = np.array([pose_residual(invert_transform(T_gt[c.a]) @ T_gt[c.b], c.T_a_b) for c in cons])
    tuned = np.mean(r**2, axis=0)
    ate = {}
    for scheme in Weighting:
        est = optimize(n, weighted_constraints(cons, scheme, tuned), init)
        ate[scheme] = ate_rpe(stamps, est, T_gt)["ate_rmse_m"]
    assert ate[Weighting.PREDICTED] < 0.7 * ate[Weighting.UNIFORM], ate
    assert ate[Weighting.PREDICTED] < ate[Weighting.CONSTANT_TUNED], ate


def test_constant_tuned_needs_positive_variances() -> None:
    from vggt_uncertainty_ros.errors import EvaluationError

    with pytest.raises(EvaluationError, match="6 positive variances"):
        weighted_constraints([], Weighting.CONSTANT_TUNED, np.zeros(6))


def test_translation_pieces_counts_parts_linked_by_rotation_only() -> None:
    rot_only = np.diag([1e-4] * 3 + [1e6] * 3)
    metric = np.diag([1e-4] * 3 + [1e-2] * 3)
    chain = [
        Constraint(0, 1, np.eye(4), metric),
        Constraint(1, 2, np.eye(4), rot_only),
        Constraint(2, 3, np.eye(4), metric),
    ]
    assert translation_pieces(chain, 1e3) == 2
    assert translation_pieces([*chain, Constraint(0, 3, np.eye(4), metric)], 1e3) == 1
    assert translation_pieces(chain, 1e7) == 1
