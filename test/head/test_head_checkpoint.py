"""Head checkpoints: round trip, metadata, atomic write, pickle-free, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from vggt_uncertainty_ros.errors import CheckpointError
from vggt_uncertainty_ros.head import (
    HeadMetadata,
    UncertaintyHead,
    load_head,
    read_head_metadata,
    save_head,
)
from vggt_uncertainty_ros.head.checkpoint import METADATA_KEY


def _head(parameterization: str = "sqrt_info") -> UncertaintyHead:
    torch.manual_seed(1)
    return UncertaintyHead(
        in_dim=24, hidden=12, parameterization=parameterization, init_sigma=(0.03, 0.2), input_norm=False
    )


def test_round_trip_restores_outputs_and_metadata(tmp_path: Path) -> None:
    head = _head()
    meta = HeadMetadata.for_head(
        head,
        input_feature="camera_trunk_features",
        backbone="tiny:abc123",
        scale_convention="metric",
        config={"lr": 1e-4, "window": {"size": 8}},
        metrics={"calibration/d2_rot_mean": 3.1},
    )
    path = save_head(tmp_path / "sub" / "best.safetensors", head, meta)
    assert [p.name for p in path.parent.iterdir()] == ["best.safetensors"]  # no temp file left
    loaded, got = load_head(path)
    x = torch.randn(4, 24)
    torch.testing.assert_close(loaded(x), head.eval()(x))
    assert loaded.parameterization.value == "sqrt_info" and not loaded.training
    assert got.input_feature == "camera_trunk_features"
    assert got.backbone == "tiny:abc123" and got.scale_convention == "metric"
    assert got.config == {"lr": 1e-4, "window": {"size": 8}}
    assert got.metrics == {"calibration/d2_rot_mean": 3.1}
    assert got.created and got.package_version
    assert got.head_config["init_sigma"] == pytest.approx([0.03] * 3 + [0.2] * 3)
    assert read_head_metadata(path) == got


def test_file_is_plain_safetensors_with_json_metadata(tmp_path: Path) -> None:
    path = save_head(tmp_path / "h.safetensors", _head("log_var"))
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()[METADATA_KEY])
        keys = set(f.keys())
    assert meta["parameterization"] == "log_var" and meta["in_dim"] == 24
    assert "fc1.weight" in keys and "sqrt_info_max" not in keys


def test_overwrite_replaces_file(tmp_path: Path) -> None:
    path = tmp_path / "h.safetensors"
    save_head(path, _head("log_var"))
    save_head(path, _head("sqrt_info"))
    assert load_head(path)[1].parameterization == "sqrt_info"


def test_mismatched_metadata_is_refused(tmp_path: Path) -> None:
    head = _head()
    meta = HeadMetadata(parameterization="log_var", in_dim=24, hidden=12)
    with pytest.raises(CheckpointError, match="does not match head"):
        save_head(tmp_path / "h.safetensors", head, meta)


def test_invalid_enum_value_is_refused() -> None:
    with pytest.raises(CheckpointError, match="invalid scale_convention 'feet'"):
        HeadMetadata(scale_convention="feet")


def test_bad_files_raise_checkpoint_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_head(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_head(junk)
    good = save_head(tmp_path / "good.safetensors", _head())
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated.safetensors"):
        load_head(truncated)


def test_foreign_safetensors_and_wrong_weights_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="no 'vggt_uncertainty_head' metadata"):
        load_head(foreign)
    head = _head()
    meta = HeadMetadata.for_head(head)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"fc1.weight": torch.zeros(3, 3)}, str(wrong), metadata={METADATA_KEY: meta.to_json()})
    with pytest.raises(CheckpointError, match="do not match the head architecture"):
        load_head(wrong)
