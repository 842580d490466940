"""WindowEstimator: shapes, conventions, constant σ, NaN handling, tiny backbone end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.head import HeadMetadata, UncertaintyHead, save_head
from vggt_uncertainty_ros.model.device import resolve_device
from vggt_uncertainty_ros.model.spec import BackboneSpec
from vggt_uncertainty_ros.online.estimator import (
    InvalidWindowError,
    NonFiniteOutputError,
    WindowEstimator,
    build_estimator,
    constant_log_var,
)


class FakeBackbone(nn.Module):
    """Returns the documented output dict: camera i translated by (i, 0, 0) in world, no rotation."""

    feature_dim = 16

    def __init__(self, nan_in: str | None = None) -> None:
        super().__init__()
        self.nan_in = nan_in
        self.calls = 0

    def forward(self, images: torch.Tensor, **kwargs: object) -> dict[str, torch.Tensor]:
        self.calls += 1
        b, s, _, h, w = images.shape
        E = torch.zeros(b, s, 3, 4)
        E[..., :3, :3] = torch.eye(3)
        E[..., 0, 3] = -torch.arange(s, dtype=torch.float32)  # camera-from-world: t = -c
        K = torch.tensor([[100.0, 0.0, w / 2], [0.0, 100.0, h / 2], [0.0, 0.0, 1.0]]).expand(b, s, 3, 3)
        feats = images.mean(dim=(-1, -2)).repeat(1, 1, 6)[..., :16]
        out = {
            "pose_enc": torch.zeros(b, s, 9),
            "camera_features": feats,
            "camera_trunk_features": feats + 1.0,
            "extrinsics": E,
            "intrinsics": K.clone(),
        }
        if self.nan_in:
            out[self.nan_in] = out[self.nan_in].clone()
            out[self.nan_in][0, 1, 0] = float("nan")
        return out


def _images(n: int = 4, h: int = 48, w: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def test_constant_sigma_window_has_documented_shapes_and_poses() -> None:
    est = WindowEstimator(FakeBackbone(), None, "cpu", constant_sigma=(0.01, 0.05))
    out = est.estimate(_images(), stamps_ns=[10, 20, 30, 40])
    assert out.T_0_i.shape == (4, 4, 4) and out.T_0_i.dtype == np.float64
    np.testing.assert_array_equal(out.T_0_i[0], np.eye(4))
    np.testing.assert_allclose(out.T_0_i[:, 0, 3], [0.0, 1.0, 2.0, 3.0], atol=1e-6)  # camera i at x = i
    np.testing.assert_allclose(out.sigma, np.tile([0.01] * 3 + [0.05] * 3, (4, 1)))
    assert out.pose_enc.shape == (4, 9) and out.features.shape == (4, 16)
    assert out.stamps_ns.tolist() == [10, 20, 30, 40]
    assert est.scale_convention == "vggt"


def test_intrinsics_are_mapped_back_to_input_resolution() -> None:
    est = WindowEstimator(FakeBackbone(), None, "cpu", constant_sigma=0.1)
    out = est.estimate(_images(2, h=48, w=64))
    # crop mode: 64 px wide -> 518 px wide, principal point at the centre of the input
    np.testing.assert_allclose(out.intrinsics[0, 0, 0], 100.0 * 64 / 518, rtol=1e-9)
    np.testing.assert_allclose(out.intrinsics[0, :2, 2], [32.0, 24.0], atol=0.3)


def test_head_predictions_use_the_selected_feature() -> None:
    torch.manual_seed(0)
    head = UncertaintyHead(16, 8)
    est = WindowEstimator(FakeBackbone(), head, "cpu", input_feature="camera_trunk_features")
    out = est.estimate(_images(3))
    expected = head(torch.from_numpy(out.features)).detach().double().numpy()
    np.testing.assert_allclose(out.log_var, expected, rtol=1e-6)
    assert out.features.min() >= 1.0  # trunk features of the fake are offset by +1


@pytest.mark.parametrize("key", ["pose_enc", "camera_features", "extrinsics"])
def test_non_finite_outputs_raise_a_specific_error(key: str) -> None:
    est = WindowEstimator(FakeBackbone(nan_in=key), UncertaintyHead(16, 8), "cpu")
    with pytest.raises(NonFiniteOutputError, match="non-finite"):
        est.estimate(_images(3))
    assert issubclass(NonFiniteOutputError, ModelError)


def test_non_finite_head_output_raises() -> None:
    head = UncertaintyHead(16, 8)
    with torch.no_grad():
        head.fc2.bias[0] = float("nan")
    with pytest.raises(NonFiniteOutputError, match="log_var"):
        WindowEstimator(FakeBackbone(), head, "cpu").estimate(_images(2))


def test_bad_windows_are_rejected() -> None:
    est = WindowEstimator(FakeBackbone(), None, "cpu", constant_sigma=0.1)
    with pytest.raises(InvalidWindowError, match="at least one"):
        est.estimate([])
    with pytest.raises(InvalidWindowError, match="same size"):
        est.estimate([_images(1)[0], _images(1, h=40)[0]])
    with pytest.raises(InvalidWindowError, match="uint8"):
        est.estimate([np.zeros((48, 64, 3), dtype=np.float32)])
    with pytest.raises(InvalidWindowError, match="stamps"):
        est.estimate(_images(2), stamps_ns=[1])


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="constant_sigma"):
        WindowEstimator(FakeBackbone(), None, "cpu")
    with pytest.raises(ValueError, match="16"):
        WindowEstimator(FakeBackbone(), UncertaintyHead(32, 8), "cpu")
    with pytest.raises(ValueError, match="positive"):
        constant_log_var((0.1, -1.0))
    np.testing.assert_allclose(constant_log_var(0.5), np.full(6, 2 * math.log(0.5)))
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_tiny_backbone_end_to_end_with_head_checkpoint(tmp_path: Path) -> None:
    from vggt_uncertainty_ros.model import backbone_identity, load_backbone

    backbone = load_backbone("tiny")
    torch.manual_seed(0)
    head = UncertaintyHead(backbone.feature_dim, 32, init_sigma=(0.02, 0.05))
    path = save_head(
        tmp_path / "head.safetensors",
        head,
        HeadMetadata.for_head(head, backbone=backbone_identity(backbone), scale_convention="metric"),
    )
    est = build_estimator(BackboneSpec(device="cpu"), path)
    assert est.scale_convention == "metric"
    out = est.estimate(_images(3, h=42, w=56), stamps_ns=[1, 2, 3])
    assert out.T_0_i.shape == (3, 4, 4) and out.features.shape == (3, backbone.feature_dim)
    np.testing.assert_allclose(
        out.T_0_i[:, :3, :3] @ out.T_0_i[:, :3, :3].transpose(0, 2, 1), np.tile(np.eye(3), (3, 1, 1)), atol=1e-5
    )
    np.testing.assert_allclose(out.sigma[:, :3], 0.02, rtol=0.1)
    np.testing.assert_allclose(out.sigma[:, 3:], 0.05, rtol=0.1)
    assert np.isfinite(out.intrinsics).all() and out.intrinsics[0, 0, 0] > 0


def test_token_cache_reuses_shared_frames_without_changing_estimates(caplog: pytest.LogCaptureFixture) -> None:
    frames = _images(6, h=42, w=56)
    plain = build_estimator(BackboneSpec(device="cpu", token_cache=False), constant_sigma=0.1)
    with caplog.at_level("INFO", logger="vggt_uncertainty_ros.model.backbone"):
        cached = build_estimator(BackboneSpec(device="cpu"), constant_sigma=0.1, token_cache_frames=8)
    assert "only used on CUDA" in caplog.text  # compile is a CUDA-only speed-up: eager on the CPU
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in cached.backbone.model.modules())
    stamps = [10, 20, 30, 40, 50, 60]
    for start in (0, 2):  # two windows of 4 frames sharing 2
        window, ids = frames[start : start + 4], stamps[start : start + 4]
        a = plain.estimate(window, ids)
        b = cached.estimate(window, ids, frame_ids=ids)
        np.testing.assert_allclose(b.T_0_i, a.T_0_i, atol=1e-5)
    assert (cached.token_cache.hits, cached.token_cache.misses) == (2, 6)
    assert cached.n_preprocessed_frames == 4  # only the last window is kept
    assert plain.token_cache is None
