"""Torch pose decoding of the model against the golden fixture of the official implementation.

The fixture is ``test/geometry/data/golden_pose_enc.safetensors`` (official
``vggt/utils/pose_enc.py`` in float32; its sha256 is checked in test/geometry).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model.pose_encoding import pose_encoding_to_extri_intri

GOLDEN = Path(__file__).resolve().parents[1] / "geometry" / "data" / "golden_pose_enc.safetensors"
HW = (294, 518)
TOL = {"rtol": 1e-6, "atol": 1e-6}


@pytest.fixture(scope="module")
def golden() -> dict[str, torch.Tensor]:
    g = load_file(str(GOLDEN))
    assert tuple(int(v) for v in g["image_size_hw"]) == HW
    return g


def test_decode_float32_keeps_dtype(golden):
    E, K = pose_encoding_to_extri_intri(golden["pose_enc"], torch.tensor(HW))
    assert E.dtype == torch.float32 and K.dtype == torch.float32
    assert E.shape == (2, 16, 3, 4) and K.shape == (2, 16, 3, 3)
    torch.testing.assert_close(E, golden["extrinsics"], **TOL)
    torch.testing.assert_close(K, golden["intrinsics"], **TOL)


def test_decode_float64_matches_float32_reference(golden):
    E, K = pose_encoding_to_extri_intri(golden["pose_enc"].double(), HW)
    assert E.dtype == torch.float64
    torch.testing.assert_close(E, golden["extrinsics"].double(), **TOL)
    torch.testing.assert_close(K, golden["intrinsics"].double(), **TOL)


def test_decode_unnormalised_quaternion(golden):
    E, _ = pose_encoding_to_extri_intri(golden["pose_enc_unnormalized_quat"], HW)
    torch.testing.assert_close(E, golden["extrinsics_from_unnormalized_quat"], **TOL)


def test_decode_rejects_bad_input():
    with pytest.raises(ModelError, match=r"\[\.\.\., 9\]"):
        pose_encoding_to_extri_intri(torch.zeros(2, 8), HW)
    with pytest.raises(ModelError, match="positive"):
        pose_encoding_to_extri_intri(torch.zeros(2, 9), (0, 10))
