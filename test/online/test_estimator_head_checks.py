"""Start-up checks of a head against the backbone (feature size); head conventions applied by the estimator."""

from __future__ import annotations

from pathlib import Path

import pytest

from vggt_uncertainty_ros.errors import CheckpointError
from vggt_uncertainty_ros.head import HeadMetadata, UncertaintyHead, save_head
from vggt_uncertainty_ros.model import load_backbone
from vggt_uncertainty_ros.model.spec import BackboneSpec
from vggt_uncertainty_ros.online.estimator import WindowEstimator, build_estimator


def test_estimator_refuses_a_head_of_another_feature_size() -> None:
    backbone = load_backbone("tiny", "cpu", None)
    head = UncertaintyHead(in_dim=int(backbone.feature_dim) + 1, hidden=8)
    with pytest.raises(ValueError, match="features"):
        WindowEstimator(backbone, head)


def test_build_estimator_refuses_a_mismatched_checkpoint(tmp_path: Path) -> None:
    head = UncertaintyHead(in_dim=7, hidden=8)
    path = save_head(tmp_path / "h.safetensors", head, HeadMetadata.for_head(head))
    with pytest.raises((ValueError, CheckpointError), match="7"):
        build_estimator(BackboneSpec(weights="tiny", device="cpu", dtype="float32"), path)


def test_estimator_applies_the_stored_recalibration_and_relative_convention(tmp_path: Path) -> None:
    import numpy as np
    import torch

    from vggt_uncertainty_ros.geometry import window_motion
    from vggt_uncertainty_ros.head import load_head

    backbone = load_backbone("tiny", "cpu", None)
    head = UncertaintyHead(in_dim=int(backbone.feature_dim), hidden=8)
    rec = {"factors": {"rot": 4.0, "trans": 0.25}, "method": "quantile", "sequences": ["v"]}
    path = save_head(
        tmp_path / "r.safetensors", head, HeadMetadata.for_head(head, scale_convention="relative", recalibration=rec)
    )
    head2, meta = load_head(path)
    est = WindowEstimator(backbone, head2, head_metadata=meta)
    assert est.recalibration == {"rot": 4.0, "trans": 0.25} and est.scale_convention == "vggt"
    images = [np.full((48, 64, 3), 40 * k, np.uint8) for k in range(4)]
    out = est.estimate(images)
    with torch.no_grad():
        raw = head2(torch.from_numpy(out.features).float()).double().numpy()
    m = float(window_motion(out.T_0_i[:, :3, 3]))
    np.testing.assert_allclose(out.log_var[:, :3], raw[:, :3] + np.log(4.0), atol=1e-5)
    np.testing.assert_allclose(out.log_var[:, 3:], raw[:, 3:] + np.log(0.25) + 2 * np.log(m), atol=1e-5)
