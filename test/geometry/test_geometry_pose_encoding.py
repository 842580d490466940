"""VGGT pose encoding against the golden fixture of the official implementation.

``data/golden_pose_enc.safetensors`` is a byte-identical copy of
``shared/golden/golden_pose_enc.safetensors`` (sha256 checked below), produced by the
official ``vggt/utils/pose_enc.py`` in float32; see that folder's README.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from vggt_uncertainty_ros.errors import GeometryError
from vggt_uncertainty_ros.geometry import (
    extri_intri_to_pose_encoding,
    pose_encoding_to_extri_intri,
    rotmat_to_quat,
)

pytestmark = pytest.mark.golden

GOLDEN = Path(__file__).parent / "data" / "golden_pose_enc.safetensors"
GOLDEN_SHA256 = "ad28ad94a2282a8349e2688b5d35dd01e5ca6e171322c509098876b6e7278ce3"
HW = (294, 518)
# float32 reference: compare relative to float32 resolution of O(1) poses / O(100 px) focals.
TOL = {"rtol": 1e-6, "atol": 1e-6}


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    assert hashlib.sha256(GOLDEN.read_bytes()).hexdigest() == GOLDEN_SHA256
    g = load_file(str(GOLDEN))
    assert tuple(int(v) for v in g["image_size_hw"]) == HW
    return g


def test_decode_numpy_float64(golden):
    E, K = pose_encoding_to_extri_intri(golden["pose_enc"].astype(np.float64), HW)
    assert E.dtype == np.float64 and E.shape == (2, 16, 3, 4) and K.shape == (2, 16, 3, 3)
    np.testing.assert_allclose(E, golden["extrinsics"], **TOL)
    np.testing.assert_allclose(K, golden["intrinsics"], **TOL)


def test_decode_unnormalised_quaternion(golden):
    enc = golden["pose_enc_unnormalized_quat"]
    E, _ = pose_encoding_to_extri_intri(enc, HW)
    np.testing.assert_allclose(E, golden["extrinsics_from_unnormalized_quat"], **TOL)


def test_encode_round_trip_standardises_quaternion(golden):
    E, K = golden["extrinsics"], golden["intrinsics"]
    enc = extri_intri_to_pose_encoding(E, K, HW)
    np.testing.assert_allclose(enc, golden["pose_enc_roundtrip"], **TOL)
    assert np.all(enc[..., 6] >= 0)
    # equal to the input encoding up to the quaternion sign
    src = golden["pose_enc"].copy()
    src[..., 3:7] *= np.where(src[..., 6:7] < 0, -1, 1)
    np.testing.assert_allclose(enc, src, rtol=1e-5, atol=2e-6)


def test_mat_to_quat(golden):
    R = golden["extrinsics"][..., :3]
    q = rotmat_to_quat(R)
    np.testing.assert_allclose(q, golden["mat_to_quat_of_extrinsics"], **TOL)


def test_identity_camera_closed_form(golden):
    # element [0, 0] is [0,0,0, 0,0,0,1, fov_h=1.0, fov_w=1.2]
    E, K = pose_encoding_to_extri_intri(golden["pose_enc"][0, 0].astype(np.float64), HW)
    np.testing.assert_allclose(E, np.eye(3, 4), atol=1e-7)
    h, w = HW
    expected = [[(w / 2) / np.tan(0.6), 0, w / 2], [0, (h / 2) / np.tan(0.5), h / 2], [0, 0, 1]]
    np.testing.assert_allclose(K, expected, rtol=1e-6)


def test_four_by_four_extrinsics_accepted():
    E = np.eye(4)
    E[:3, 3] = [1, 2, 3]
    enc = extri_intri_to_pose_encoding(E, np.diag([100.0, 100.0, 1.0]), (200, 200))
    np.testing.assert_allclose(enc, [1, 2, 3, 0, 0, 0, 1, np.pi / 2, np.pi / 2], atol=1e-15)


def test_bad_image_size():
    with pytest.raises(GeometryError, match="image_size_hw"):
        pose_encoding_to_extri_intri(np.zeros(9), (0, 10))
    with pytest.raises(GeometryError, match=r"pose_enc must have shape \[\.\.\., 9\]"):
        pose_encoding_to_extri_intri(np.zeros(8), (10, 10))
