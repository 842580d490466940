"""The geometric backbone (ORB + essential matrix) on synthetic renders: accuracy, failures, determinism."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vggt_uncertainty_ros.data.synth import plan_sequence, render_sequence_frames
from vggt_uncertainty_ros.errors import ConfigError, InvalidWindowError
from vggt_uncertainty_ros.model.geometric import (
    FEATURE_NAMES,
    GeometricBackbone,
    GeometricConfig,
    _ambiguity,
    _Pair,
    _pair_sigmas,
    build_geometric,
    default_camera_matrix,
)
from vggt_uncertainty_ros.model.spec import BackboneSpec
from vggt_uncertainty_ros.online.estimator import WindowEstimator


def _rot_err_deg(T_pred: np.ndarray, T_gt: np.ndarray) -> np.ndarray:
    dR = np.swapaxes(T_gt[:, :3, :3], 1, 2) @ T_pred[:, :3, :3]
    return np.degrees(np.arccos(np.clip((np.trace(dR, axis1=1, axis2=2) - 1) / 2, -1, 1)))


@pytest.fixture(scope="module")
def easy_window() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """8 clean 320x240 frames at 10 Hz, their relative ground truth T_0_i and K."""
    plan = plan_sequence(21, 8, 320, 240, 10.0)
    images, T_world, _ = render_sequence_frames(plan)
    T_gt = np.linalg.inv(T_world[0])[None] @ T_world
    return images, T_gt, plan.K


def _backbone(K: np.ndarray) -> GeometricBackbone:
    return GeometricBackbone(GeometricConfig(K=tuple(map(tuple, K))))


def test_easy_frames_recover_rotation_and_a_consistent_translation(easy_window) -> None:
    images, T_gt, K = easy_window
    bb = _backbone(K)
    pred = bb.predict(images)
    assert pred.valid.all() and bb.stats["frames_invalid"] == 0
    assert pred.features.shape == (8, bb.feature_dim) == (8, len(FEATURE_NAMES))
    assert pred.features.dtype == np.float32 and np.isfinite(pred.features).all()
    np.testing.assert_array_equal(pred.T_0_i[0], np.eye(4))
    np.testing.assert_allclose(pred.intrinsics, np.repeat(K[None], 8, 0))
    err = _rot_err_deg(pred.T_0_i, T_gt)
    true_angle = _rot_err_deg(np.repeat(np.eye(4)[None], 8, 0), T_gt)
    assert true_angle.max() > 5.0  # the window does rotate
    assert np.median(err[1:]) < 1.5 and err.max() < 5.0, err
    # translation: one scale for the whole window (window units), direction close to the truth
    moving = np.linalg.norm(T_gt[:, :3, 3], axis=1) > 0.02
    ratio = np.linalg.norm(pred.T_0_i[moving, :3, 3], axis=1) / np.linalg.norm(T_gt[moving, :3, 3], axis=1)
    assert np.median(np.abs(ratio / np.median(ratio) - 1.0)) < 0.15, ratio
    # direction: short baselines (a few cm at 2 m depth) are poorly conditioned; longer ones are not
    far = np.linalg.norm(T_gt[:, :3, 3], axis=1) > 0.05
    assert far.sum() >= 3
    cos = np.sum(pred.T_0_i[far, :3, 3] * T_gt[far, :3, 3], axis=1) / (
        np.linalg.norm(pred.T_0_i[far, :3, 3], axis=1) * np.linalg.norm(T_gt[far, :3, 3], axis=1)
    )
    direction_err = np.degrees(np.arccos(np.clip(cos, -1, 1)))
    assert np.median(direction_err) < 20.0, direction_err


def test_black_and_blank_frames_are_invalid_counted_and_never_identity(easy_window) -> None:
    images, _, K = easy_window
    broken = list(images)
    broken[3] = np.zeros_like(images[3])
    broken[5] = np.full_like(images[5], 128)
    bb = _backbone(K)
    pred = bb.predict(broken)
    assert pred.valid.tolist() == [True, True, True, False, True, False, True, True]
    assert bb.stats["frames_invalid"] == 2 and bb.stats["frames_invalid/too_few_matches"] == 2
    assert np.isnan(pred.T_0_i[[3, 5]]).all()  # no silent identity
    assert np.isfinite(pred.T_0_i[[0, 1, 2, 4, 6, 7]]).all()
    assert np.isfinite(pred.features).all()
    valid_col = FEATURE_NAMES.index("valid")
    assert pred.features[3, valid_col] == 0 and pred.features[4, valid_col] == 1


def test_output_is_deterministic_and_keypoint_reuse_does_not_change_it(easy_window) -> None:
    images, _, K = easy_window
    a = _backbone(K).predict(images)
    b = _backbone(K).predict(images)
    reused = _backbone(K)
    reused.predict(images, frame_ids=list(range(8)))
    c = reused.predict(images, frame_ids=list(range(8)))  # every frame from the cache
    for other in (b, c):
        np.testing.assert_array_equal(a.T_0_i, other.T_0_i)
        np.testing.assert_array_equal(a.features, other.features)
        np.testing.assert_array_equal(a.valid, other.valid)


def _rot(axis_angle_deg) -> np.ndarray:
    return cv2.Rodrigues(np.radians(np.asarray(axis_angle_deg, float)))[0]


def test_ambiguity_reads_the_near_optimal_minima_of_the_refinement() -> None:
    R, t = _rot([0, 5, 0]), np.array([1.0, 0.0, 0.0])
    assert _ambiguity([(100.0, R, t), (100.0 + 1e-9, R, -t)]) == (0.0, 0.0, 1.0)  # one solution (t sign-free)
    tilted = np.array([np.cos(np.radians(60)), 0.0, np.sin(np.radians(60))])
    rot, tdir, gap = _ambiguity([(100.0, R, t), (110.0, R @ _rot([0, 3, 0]), tilted), (200.0, _rot([9, 0, 0]), t)])
    assert rot == pytest.approx(3.0, abs=1e-6) and tdir == pytest.approx(60.0, abs=1e-6)
    assert gap == pytest.approx(0.1)  # the 3-degree minimum costs 10 % more
    # a clearly worse minimum (cost +100 %) is a different solution but not an ambiguity
    assert _ambiguity([(100.0, R, t), (200.0, _rot([9, 0, 0]), t)]) == (0.0, 0.0, 1.0)
    assert _ambiguity([(100.0, R, t), (150.0, _rot([9, 0, 0]), t)])[2] == pytest.approx(0.5)


def test_default_focal_guess_and_configured_k(easy_window) -> None:
    images, _, K = easy_window
    guess = default_camera_matrix(320, 240)
    assert guess[0, 0] == pytest.approx(160 / np.tan(np.radians(30)))
    pred = GeometricBackbone().predict(images[:3])
    np.testing.assert_allclose(pred.intrinsics[0], guess)
    bb = GeometricBackbone()
    bb.set_camera_matrix(K)
    np.testing.assert_allclose(bb.predict(images[:3]).intrinsics[2], K)
    with pytest.raises(ConfigError):
        bb.set_camera_matrix(np.zeros((3, 3)))


def test_bad_input_and_settings_are_refused(easy_window) -> None:
    images, _, _ = easy_window
    bb = GeometricBackbone()
    with pytest.raises(InvalidWindowError):
        bb.predict([images[0].astype(np.float32)])
    with pytest.raises(InvalidWindowError):
        bb.predict(images[:2], frame_ids=[1])
    with pytest.raises(ConfigError):
        GeometricConfig(detector="akaze")
    with pytest.raises(ConfigError, match="ambiguity_probes"):
        GeometricConfig(ambiguity_probes=7)


def test_built_from_the_backbone_spec() -> None:
    bb = build_geometric(BackboneSpec(name="geometric"))
    assert bb.name == "geometric" and bb.feature_dim == len(FEATURE_NAMES)
    assert bb.identity() == GeometricBackbone().identity() != GeometricBackbone(GeometricConfig(seed=1)).identity()


def test_a_still_camera_gets_rotation_from_the_homography_and_no_translation(easy_window) -> None:
    images, _, K = easy_window
    bb = _backbone(K)
    pred = bb.predict([images[0], images[0], images[1]])
    assert pred.valid.all() and bb.stats["frames_invalid"] == 0
    np.testing.assert_allclose(pred.T_0_i[1], np.eye(4), atol=1e-6)  # estimated, not assumed
    assert pred.features[1, FEATURE_NAMES.index("rotation_only")] == 1.0
    assert not pred.aux["translation_valid"][1] and pred.features[1, FEATURE_NAMES.index("translation_valid")] == 0


def test_pair_sigmas_match_the_monte_carlo_spread_of_the_two_view_solution() -> None:
    """The first-order σ of a pair's rotation and translation direction (the ``sigma_rot`` /
    ``sigma_tdir`` cues) against the spread of the estimate over 150 draws of 0.3 px noise
    (USAC with local optimisation and a 1 px threshold, as the backbone runs it)."""
    rng = np.random.default_rng(3)
    K = np.array([[262.5, 0.0, 159.5], [0.0, 262.5, 119.5], [0.0, 0.0, 1.0]])
    X = np.column_stack([rng.uniform(-2, 2, 300), rng.uniform(-1.5, 1.5, 300), rng.uniform(2, 6, 300)])
    R_true = cv2.Rodrigues(np.array([0.02, -0.05, 0.01]))[0]
    t_true = np.array([0.3, 0.05, 0.1])

    def project(P: np.ndarray) -> np.ndarray:
        q = P @ K.T
        return q[:, :2] / q[:, 2:3]

    p0_clean, pi_clean = project(X), project(X @ R_true.T + t_true)
    rot_err, dir_err, pred_rot, pred_dir = [], [], [], []
    for _ in range(150):
        p0 = p0_clean + rng.normal(0, 0.3, p0_clean.shape)
        pi = pi_clean + rng.normal(0, 0.3, pi_clean.shape)
        E, _ = cv2.findEssentialMat(p0, pi, K, method=cv2.USAC_ACCURATE, prob=0.999, threshold=1.0)
        _, R, t, _ = cv2.recoverPose(E[:3], p0, pi, K)
        pair = _Pair(R=R, t=t.ravel() / np.linalg.norm(t), p0=p0, pi=pi)
        s_rot, s_dir = _pair_sigmas(pair, np.linalg.inv(K))
        pred_rot.append(s_rot)
        pred_dir.append(s_dir)
        rot_err.append(cv2.Rodrigues(R @ R_true.T)[0].ravel())
        u = t_true / np.linalg.norm(t_true)
        dir_err.append(np.arccos(np.clip(pair.t @ u, -1.0, 1.0)))
    emp_rot = np.sqrt(np.mean(np.sum(np.square(rot_err), axis=1)) / 3.0)
    emp_dir = np.sqrt(np.mean(np.square(dir_err)) / 2.0)  # angle² of a 2-D tangent error = sum of 2 variances
    assert np.mean(pred_rot) == pytest.approx(emp_rot, rel=0.3)
    assert np.mean(pred_dir) == pytest.approx(emp_dir, rel=0.3)


def test_the_estimator_hands_camera_info_k_to_the_geometric_backbone(easy_window) -> None:
    images, _, K = easy_window
    est = WindowEstimator(GeometricBackbone(), None, "cpu", constant_sigma=0.1)
    assert est.use_camera_matrix(K)
    np.testing.assert_allclose(est.estimate(images[:3]).intrinsics[1], K)
