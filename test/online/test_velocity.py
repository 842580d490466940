"""Body twist from consecutive keyframes: values, and covariances checked by Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry import make_transform, se3_exp, so3_exp, so3_log
from vggt_uncertainty_ros.online.velocity import (
    consecutive_relative_pose,
    invert_with_covariance,
    twist_from_relative_pose,
    window_twists,
)

N_SAMPLES = 200_000


def _random_spd(rng: np.random.Generator, scale: float) -> np.ndarray:
    A = rng.normal(size=(6, 6)) * scale
    return A @ A.T + np.eye(6) * scale**2


def _sample_ros(rng: np.random.Generator, T: np.ndarray, cov: np.ndarray, n: int) -> np.ndarray:
    """Poses ``(Exp(δθ) R̄, t̄ + δp)`` with ``[δp, δθ] ~ N(0, cov)`` (ROS header-frame convention)."""
    d = rng.multivariate_normal(np.zeros(6), cov, size=n)
    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, :3, :3] = so3_exp(d[:, 3:]) @ T[:3, :3]
    out[:, :3, 3] = T[:3, 3] + d[:, :3]
    return out


def _ros_perturbation(T_ref: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """``[δp, δθ]`` of each sample around ``T_ref`` in the ROS convention."""
    dtheta = so3_log(samples[:, :3, :3] @ T_ref[:3, :3].T)
    return np.concatenate([samples[:, :3, 3] - T_ref[:3, 3], dtheta], axis=1)


def _assert_cov_close(empirical: np.ndarray, analytic: np.ndarray, rel: float = 0.03) -> None:
    scale = np.sqrt(np.outer(np.diag(analytic), np.diag(analytic)))
    np.testing.assert_array_less(np.abs(empirical - analytic) / scale, rel)


def test_constant_body_twist_is_recovered():
    xi = np.array([0.1, -0.2, 0.3, 0.4, 0.05, -0.1])  # [rot, trans] per second
    T = se3_exp(xi * 0.5)  # 0.5 s of that motion
    twist, _ = twist_from_relative_pose(T, np.eye(6) * 1e-4, 0.5)
    np.testing.assert_allclose(twist[3:], xi[:3], atol=1e-12)  # ω
    # mean linear velocity over the interval in frame b: Rᵀ t / dt
    np.testing.assert_allclose(twist[:3], T[:3, :3].T @ T[:3, 3] / 0.5, atol=1e-12)
    with pytest.raises(GeometryError, match="positive time step"):
        twist_from_relative_pose(T, np.eye(6), 0.0)


def test_twist_covariance_matches_monte_carlo():
    rng = np.random.default_rng(0)
    T = make_transform(so3_exp(np.array([0.3, -0.5, 0.2])), np.array([0.4, 0.1, -0.3]))
    cov = _random_spd(rng, 0.01)
    dt = 0.2
    twist, analytic = twist_from_relative_pose(T, cov, dt)
    samples = _sample_ros(rng, T, cov, N_SAMPLES)
    R, t = samples[:, :3, :3], samples[:, :3, 3]
    sampled = np.concatenate([np.einsum("nji,nj->ni", R, t), so3_log(R)], axis=1) / dt
    np.testing.assert_allclose(sampled.mean(0), twist, atol=0.02 * np.sqrt(np.diag(analytic)).max())
    _assert_cov_close(np.cov(sampled.T), analytic)
    assert np.linalg.eigvalsh(analytic).min() > 0


def test_inverse_and_consecutive_relative_pose_covariances_match_monte_carlo():
    rng = np.random.default_rng(1)
    T_a = make_transform(so3_exp(np.array([0.2, 0.4, -0.1])), np.array([1.0, -0.5, 0.3]))
    T_b = make_transform(so3_exp(np.array([-0.1, 0.6, 0.2])), np.array([1.3, -0.2, 0.1]))
    cov_a, cov_b = _random_spd(rng, 0.01), _random_spd(rng, 0.01)
    T_inv, cov_inv = invert_with_covariance(T_a, cov_a)
    sa = _sample_ros(rng, T_a, cov_a, N_SAMPLES)
    _assert_cov_close(np.cov(_ros_perturbation(T_inv, np.linalg.inv(sa)).T), cov_inv)
    T_ab, cov_ab = consecutive_relative_pose(T_a, cov_a, T_b, cov_b)
    np.testing.assert_allclose(T_ab, np.linalg.inv(T_a) @ T_b, atol=1e-12)
    sb = _sample_ros(rng, T_b, cov_b, N_SAMPLES)
    _assert_cov_close(np.cov(_ros_perturbation(T_ab, np.linalg.inv(sa) @ sb).T), cov_ab)


def test_window_twists_cover_every_frame_after_the_anchor_with_spd_covariances():
    rng = np.random.default_rng(2)
    stamps = [0, 100_000_000, 200_000_000, 350_000_000]
    T = [np.eye(4)] + [se3_exp(rng.normal(size=6) * 0.1) for _ in range(3)]
    cov = [np.zeros((6, 6))] + [_random_spd(rng, 0.01) for _ in range(3)]
    T_base_cam = make_transform(so3_exp(np.array([-1.2, 1.2, -1.2])), np.array([0.1, 0.0, 0.3]))
    twists = window_twists(stamps, T, cov, T_base_cam)
    assert sorted(twists) == stamps[1:]
    for tw in twists.values():
        np.testing.assert_allclose(tw.cov, tw.cov.T, atol=0)
        assert np.linalg.eigvalsh(tw.cov).min() > 0
    # a pure camera rotation about its optical axis is the same rotation rate in the base frame
    T_rot = make_transform(so3_exp(np.array([0.0, 0.0, 0.05])), np.zeros(3))
    only = window_twists([0, 500_000_000], [np.eye(4), T_rot], [np.zeros((6, 6)), np.eye(6) * 1e-4], T_base_cam)
    np.testing.assert_allclose(only[500_000_000].twist[3:], T_base_cam[:3, :3] @ [0.0, 0.0, 0.1], atol=1e-9)
