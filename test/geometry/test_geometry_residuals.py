"""Window-relative poses, the per-window scale fit and the residual: closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry import (
    fit_scale,
    invert_transform,
    make_transform,
    pose_residual,
    relative_from_extrinsics,
    se3_exp,
    so3_exp,
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
    assert fit_scale(t_gt, t_pred, clamp=(1e-9, 1e9)).scale == pytest.approx(np.clip(expected, 1e-9, 1e9))


def test_fit_scale_fallbacks_and_clamp():
    t_gt = _translations()
    # only one moving frame -> 1.0
    one = t_gt.copy()
    one[2:4] = [0.015, 0.0, 0.0]
    fit = fit_scale(one, one * 7)
    assert fit.scale == 1.0 and int(fit.n_valid) == 1
    # motion exactly at the threshold is not "above" it
    at = np.array([[0.0, 0, 0], [0.02, 0, 0], [0, 0.02, 0]])
    assert int(fit_scale(at, at).n_valid) == 0
    # all predicted translations zero -> 1.0
    assert fit_scale(t_gt, np.zeros_like(t_gt)).scale == 1.0
    # clamp
    assert fit_scale(t_gt, t_gt * 1000).scale == pytest.approx(0.01)
    assert fit_scale(t_gt, t_gt / 1000).scale == pytest.approx(100.0)
    assert fit_scale(t_gt, -t_gt).scale == pytest.approx(0.01)


def test_fit_scale_batched():
    t_gt = np.stack([_translations(), _translations() * 0.05])  # second window: no valid frame
    t_pred = t_gt / 2.0
    fit = fit_scale(t_gt, t_pred)
    np.testing.assert_allclose(fit.scale, [2.0, 1.0])
    np.testing.assert_array_equal(fit.n_valid, [3, 0])


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
