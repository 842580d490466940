"""A head whose input size differs from the backbone's feature size is refused at start-up."""

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
