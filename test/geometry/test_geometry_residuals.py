"""Window-relative poses, the per-window scale fit and the residual: closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry import (
    MIN_RELATIVE_MOTION,
    SCALE_REASONS,
    fit_scale,
    invert_transform,
    make_transform,
    pose_residual,
    relative_from_extrinsics,
    se3_exp,
    so3_exp,
    window_motion,
    window_relative,
)


def _random_poses(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_transform(so3_exp(rng.normal(size=(*shape, 3))), rng.normal(size=(*shape, 3)))


def test_window_relative_closed_form():
    T = _random_poses(0, (3, 8))  # [W, S, 4, 4] T_world_cam
    rel = window_relative(T)
    np.testing.assert_allclose(rel[:, 0], np.broadcast_to(np.eye(4), (3, 4, 4)), atol=1e-15)
    np.testing.assert_allclose(rel[1, 5], np.linalg.inv(T[1, 0]) @ T[1, 5], atol=1e-13)
    # invariant to the world frame: left-multiplying every pose changes nothing
    G = _random_poses(1, ())
    np.testing.assert_allclose(window_relative(G @ T), rel, atol=1e-13)


def test_relative_from_extrinsics_equals_window_relative_of_camera_poses():
    T_world_cam = _random_poses(2, (2, 8))
    E = invert_transform(T_world_cam)[..., :3, :]  # VGGT extrinsics: camera-from-world
    np.testing.assert_allclose(relative_from_extrinsics(E), window_relative(T_world_cam), atol=1e-13)


def test_window_functions_need_a_frame_axis():
    with pytest.raises(GeometryError, match="S, 4, 4"):
        window_relative(np.eye(4))
    with pytest.raises(GeometryError, match="S, 3, 4"):
        relative_from_extrinsics(np.eye(4)[:3])


def _translations() -> np.ndarray:
    return np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.2, 0.05], [0.3, -0.1, 0.2], [0.01, 0, 0]])


def test_fit_scale_recovers_exact_scale_and_ignores_static_frames():
    t_gt = _translations()
    t_pred = t_gt / 3.0
    t_pred[4] = [5.0, 5.0, 5.0]  # below the 2 cm threshold: must not take part
    fit = fit_scale(t_gt, t_pred)
    assert fit.scale == pytest.approx(3.0, rel=1e-14)
    assert int(fit.n_valid) == 3
    np.testing.assert_array_equal(fit.valid, [False, True, True, True, False])


def test_fit_scale_least_squares_formula():
    rng = np.random.default_rng(3)
    t_gt = rng.normal(size=(8, 3))
    t_pred = rng.normal(size=(8, 3))
    expected = np.sum(t_gt * t_pred) / np.sum(t_pred * t_pred)
    fit = fit_scale(t_gt, t_pred, clamp=(1e-9, 1e9))
    assert float(fit.raw) == pytest.approx(expected)
    assert bool(fit.ok) == (expected > 0)


def test_fit_scale_protocol_flags_instead_of_falling_back_or_clamping():
    t_gt = _translations()
    ok = fit_scale(t_gt, t_gt / 3.0)
    assert bool(ok.ok) and int(ok.reason) == 0 and SCALE_REASONS[0] == "ok"
    # only one moving frame -> not enough motion: flagged, the scale is a placeholder
    one = t_gt.copy()
    one[2:4] = [0.015, 0.0, 0.0]
    fit = fit_scale(one, one * 7)
    assert not bool(fit.ok) and SCALE_REASONS[int(fit.reason)] == "low_motion" and int(fit.n_valid) == 1
    assert np.isnan(fit.raw)
    # motion exactly at the threshold is not "above" it
    at = np.array([[0.0, 0, 0], [0.02, 0, 0], [0, 0.02, 0]])
    assert int(fit_scale(at, at).n_valid) == 0
    # all predicted translations zero
    zero = fit_scale(t_gt, np.zeros_like(t_gt))
    assert not bool(zero.ok) and SCALE_REASONS[int(zero.reason)] == "zero_prediction"
    # out of range: flagged, never clamped into the range
    for t_pred, raw in ((t_gt * 1000, 1e-3), (t_gt / 1000, 1000.0), (-t_gt, -1.0)):
        fit = fit_scale(t_gt, t_pred)
        assert not bool(fit.ok) and SCALE_REASONS[int(fit.reason)] == "out_of_range"
        assert float(fit.raw) == pytest.approx(raw)


def test_window_motion_is_the_mean_norm_of_frames_after_the_reference():
    t = np.array([[[5.0, 0, 0], [0.3, 0.4, 0], [0, 0, 1.0]]])
    np.testing.assert_allclose(window_motion(t), [0.75])
    assert float(window_motion(np.zeros((3, 3)))) == MIN_RELATIVE_MOTION
    t_nan = t.copy()
    t_nan[0, 2] = np.nan  # a frame without a pose does not count
    np.testing.assert_allclose(window_motion(t_nan), [0.5])
    t_zero = t.copy()
    t_zero[0, 2] = 0.0  # nor one whose translation was not observed (exactly zero)
    np.testing.assert_allclose(window_motion(t_zero), [0.5])


def test_fit_scale_batched():
    t_gt = np.stack([_translations(), _translations() * 0.05])  # second window: no valid frame
    t_pred = t_gt / 2.0
    fit = fit_scale(t_gt, t_pred)
    np.testing.assert_allclose(fit.scale, [2.0, 1.0])
    np.testing.assert_array_equal(fit.n_valid, [3, 0])
    np.testing.assert_array_equal(fit.ok, [True, False])
    np.testing.assert_array_equal(fit.reason, [0, 1])


def test_fit_scale_rejects_shape_mismatch():
    with pytest.raises(GeometryError, match="equal shapes"):
        fit_scale(np.zeros((4, 3)), np.zeros((5, 3)))


def test_pose_residual_inverts_right_perturbation():
    rng = np.random.default_rng(4)
    T_gt = _random_poses(5, (6,))
    r = rng.normal(size=(6, 6)) * 0.1
    T_pred = T_gt @ se3_exp(r)
    out = pose_residual(T_gt, T_pred)
    np.testing.assert_allclose(out, r, atol=1e-13)


def test_pose_residual_translation_block_is_in_the_gt_camera_frame():
    T_gt = _random_poses(6, ())
    delta_world = np.array([0.01, -0.02, 0.03])  # translation error expressed in frame 0
    T_pred = T_gt.copy()
    T_pred[:3, 3] += delta_world
    r = pose_residual(T_gt, T_pred)
    np.testing.assert_allclose(r[:3], 0, atol=1e-15)
    np.testing.assert_allclose(r[3:], T_gt[:3, :3].T @ delta_world, atol=1e-15)
