"""Losses: closed-form NLL values, equivalence of parameterizations, weights and masks."""

from __future__ import annotations

import math

import pytest
import torch

from vggt_uncertainty_ros.head import (
    LossConfig,
    beta_weights,
    gaussian_nll_log_var,
    gaussian_nll_sqrt_info,
    motion_weights,
    pose_uncertainty_loss,
    sqrt_info_prior,
    window_frame_mask,
)


def test_nll_log_var_closed_form_and_minimum_at_true_variance() -> None:
    r = torch.tensor([0.3])
    lv = torch.tensor([math.log(0.09)])
    expected = 0.5 * (1.0 + math.log(0.09))
    torch.testing.assert_close(gaussian_nll_log_var(r, lv), torch.tensor([expected]))
    grid = torch.linspace(-6, 2, 801, dtype=torch.float64)
    nll = gaussian_nll_log_var(torch.full_like(grid, 0.3), grid)
    assert abs(float(grid[nll.argmin()]) - math.log(0.09)) < 0.02


def test_nll_log_var_clamps_log_var() -> None:
    r = torch.tensor([1.0])
    torch.testing.assert_close(
        gaussian_nll_log_var(r, torch.tensor([-100.0])), gaussian_nll_log_var(r, torch.tensor([-20.0]))
    )
    lv = torch.tensor([30.0], requires_grad=True)
    gaussian_nll_log_var(r, lv).sum().backward()
    assert float(lv.grad) == 0.0


def test_sqrt_info_nll_equals_log_var_nll() -> None:
    torch.manual_seed(0)
    r = torch.randn(10, 6, dtype=torch.float64) * 0.05
    s = torch.rand(10, 6, dtype=torch.float64) * 150 + 1
    torch.testing.assert_close(gaussian_nll_sqrt_info(r, s), gaussian_nll_log_var(r, -2 * torch.log(s)))


def test_sqrt_info_prior_zero_at_prior_and_quadratic_in_log() -> None:
    lv = torch.full((4, 6), -2 * math.log(10.0), dtype=torch.float64)
    torch.testing.assert_close(sqrt_info_prior(lv, 10.0), torch.zeros(4, dtype=torch.float64))
    lv2 = torch.full((1, 6), -2 * math.log(10.0 * math.e), dtype=torch.float64)
    torch.testing.assert_close(sqrt_info_prior(lv2, 10.0), torch.tensor([6.0], dtype=torch.float64))


def test_window_frame_mask_excludes_frame_zero() -> None:
    mask = window_frame_mask(2, 4)
    assert mask.tolist() == [[False, True, True, True]] * 2


def test_motion_weights_normalise_and_clamp() -> None:
    t = torch.zeros(3, 3, 3)
    t[0, 1:, 0] = 1.0  # mean norm over frames 1..2: 1.0
    t[1, 1:, 0] = 0.01  # tiny motion -> clamped at 0.1
    t[2, 1:, 0] = 5.0  # large motion -> clamped at 2
    w = motion_weights(t)
    mean = (1.0 + 0.01 + 5.0) / 3
    torch.testing.assert_close(w, torch.tensor([1.0 / mean, 0.1, 2.0]))
    torch.testing.assert_close(motion_weights(torch.zeros(2, 3, 3)), torch.ones(2))


def test_beta_weights_are_detached_powers_of_sigma() -> None:
    lv = torch.tensor([math.log(4.0)], requires_grad=True)
    w = beta_weights(lv, 0.5)
    torch.testing.assert_close(w, torch.tensor([2.0]))
    assert not w.requires_grad
    torch.testing.assert_close(beta_weights(lv, 0.0), torch.ones(1))


def test_pose_loss_ignores_frame_zero_and_averages_over_frames() -> None:
    r = torch.full((2, 3, 6), 0.1)
    lv = torch.zeros(2, 3, 6)
    r[:, 0] = 100.0  # frame 0 must not matter
    out = pose_uncertainty_loss(r, lv)
    per_frame = 6 * 0.5 * 0.01
    torch.testing.assert_close(out.loss, torch.tensor(per_frame))
    assert out.components["n_frames"] == 4.0
    assert out.components["nll_rot"] == pytest.approx(per_frame / 2)


def test_pose_loss_motion_weighting_scales_translation_only() -> None:
    r = torch.full((2, 2, 6), 1.0)
    lv = torch.zeros(2, 2, 6)
    t = torch.zeros(2, 2, 3)
    t[0, 1, 0], t[1, 1, 0] = 1.0, 3.0  # weights 0.5 and 1.5
    out = pose_uncertainty_loss(r, lv, config=LossConfig(motion_weighting=True), t_gt=t)
    expected = (3 * 0.5 + 3 * 0.5 * 0.5 + 3 * 0.5 + 3 * 0.5 * 1.5) / 2
    torch.testing.assert_close(out.loss, torch.tensor(expected))
    with pytest.raises(ValueError, match="t_gt"):
        pose_uncertainty_loss(r, lv, config=LossConfig(motion_weighting=True))


def test_pose_loss_prior_and_beta_change_loss_as_documented() -> None:
    r = torch.full((1, 2, 6), 0.5)
    lv = torch.full((1, 2, 6), math.log(4.0))
    base = pose_uncertainty_loss(r, lv).loss
    beta = pose_uncertainty_loss(r, lv, config=LossConfig(beta_nll=0.5)).loss
    torch.testing.assert_close(beta, 2.0 * base)
    prior = pose_uncertainty_loss(r, lv, config=LossConfig(prior_alpha=0.1, prior_sqrt_info0=1.0))
    expected_prior = 0.1 * 6 * (0.5 * math.log(4.0)) ** 2
    assert prior.components["prior"] == pytest.approx(expected_prior)
    torch.testing.assert_close(prior.loss, base + expected_prior)


def test_pose_loss_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\[B, S, 6\]"):
        pose_uncertainty_loss(torch.zeros(2, 6), torch.zeros(2, 6))
