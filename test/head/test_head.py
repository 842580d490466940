"""UncertaintyHead: shapes, parameter count, initial σ, parameterizations and clamps."""

from __future__ import annotations

import math

import pytest
import torch

from vggt_uncertainty_ros.head import (
    LOG_VAR_BOUNDS,
    SQRT_INFO_MAX,
    UncertaintyHead,
    initial_log_var,
    log_var_to_sqrt_info,
    scale_translation_log_var,
    sqrt_info_to_log_var,
)


def test_full_size_head_has_about_2_1_million_parameters() -> None:
    head = UncertaintyHead(in_dim=2048, hidden=1024)
    assert 2.09e6 < head.n_parameters() < 2.12e6


@pytest.mark.parametrize("parameterization", ["log_var", "sqrt_info"])
def test_forward_shape_and_initial_sigma(parameterization: str) -> None:
    torch.manual_seed(0)
    head = UncertaintyHead(in_dim=32, hidden=16, parameterization=parameterization, init_sigma=(0.01, 0.04))
    out = head(torch.randn(3, 8, 32))
    assert out.shape == (3, 8, 6)
    sigma = torch.exp(0.5 * out)
    torch.testing.assert_close(sigma[..., :3], torch.full((3, 8, 3), 0.01), rtol=0.05, atol=0.0)
    torch.testing.assert_close(sigma[..., 3:], torch.full((3, 8, 3), 0.04), rtol=0.05, atol=0.0)


def test_log_var_native_output_is_log_var_and_clamped() -> None:
    head = UncertaintyHead(in_dim=4, hidden=4, input_norm=False)
    with torch.no_grad():
        head.fc2.bias.copy_(torch.tensor([-50.0, 0.0, 50.0, -3.0, 3.0, 0.0]))
        head.fc2.weight.zero_()
    with torch.no_grad():
        native = head.forward_native(torch.zeros(1, 4))
        torch.testing.assert_close(native, head(torch.zeros(1, 4)))
    assert float(native.min()) == LOG_VAR_BOUNDS[0]
    assert float(native.max()) == LOG_VAR_BOUNDS[1]


def test_sqrt_info_is_clamped_per_block_and_converted_to_log_var() -> None:
    head = UncertaintyHead(in_dim=4, hidden=4, parameterization="sqrt_info", input_norm=False)
    with torch.no_grad():
        head.fc2.weight.zero_()
        head.fc2.bias.fill_(1000.0)
    native = head.forward_native(torch.zeros(2, 4))
    torch.testing.assert_close(native[0], torch.tensor([SQRT_INFO_MAX[0]] * 3 + [SQRT_INFO_MAX[1]] * 3))
    log_var = head(torch.zeros(2, 4))
    torch.testing.assert_close(log_var[0, 3], torch.tensor(-2.0 * math.log(SQRT_INFO_MAX[1])))
    with torch.no_grad():
        head.fc2.bias.fill_(-1000.0)
    assert bool((head.forward_native(torch.zeros(1, 4)) > 0).all())


def test_conversions_round_trip() -> None:
    lv = torch.linspace(-15, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(sqrt_info_to_log_var(log_var_to_sqrt_info(lv)), lv)
    torch.testing.assert_close(initial_log_var(0.1), torch.full((6,), 2 * math.log(0.1), dtype=torch.float64))


def test_scale_translation_log_var_multiplies_sigma_trans_only() -> None:
    lv = torch.zeros(2, 6)
    out = scale_translation_log_var(lv, torch.tensor([2.0, 0.5]))
    torch.testing.assert_close(torch.exp(0.5 * out[:, 3:]), torch.tensor([[2.0] * 3, [0.5] * 3]))
    torch.testing.assert_close(out[:, :3], lv[:, :3])
    with pytest.raises(ValueError, match="positive"):
        scale_translation_log_var(lv, 0.0)


def test_invalid_arguments_raise() -> None:
    with pytest.raises(NotImplementedError, match="unknown parameterization 'softmax'"):
        UncertaintyHead(8, 4, parameterization="softmax")
    with pytest.raises(ValueError, match="init_sigma"):
        UncertaintyHead(8, 4, init_sigma=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match=r"features \[..., 8\]"):
        UncertaintyHead(8, 4)(torch.zeros(2, 7))


def test_gradients_reach_every_parameter() -> None:
    head = UncertaintyHead(in_dim=8, hidden=4)
    head(torch.randn(5, 8)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())
