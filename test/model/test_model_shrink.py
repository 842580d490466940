"""Frames shrunk on arrival give exactly the model input of the full-resolution frames (issue 14, item 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt_uncertainty_ros.errors import DataError, ModelError
from vggt_uncertainty_ros.model import intrinsics_to_original, preprocess_images_with_transforms, shrink_for_model


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.kron(base, np.ones((8, 8, 1), np.uint8))[:h, :w])  # texture, not noise


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("hw", [(720, 1280), (1200, 900), (2160, 3840), (100, 3000)])
def test_shrunk_frames_preprocess_to_the_same_tensor(mode, hw):
    image = _image(*hw)
    small = shrink_for_model(image, mode)
    assert small.shape[0] < hw[0] and small.shape[1] < hw[1] and small.dtype == np.uint8
    full_t, (full_tf,) = preprocess_images_with_transforms([image], mode)
    small_t, (small_tf,) = preprocess_images_with_transforms([small], mode)
    assert torch.equal(full_t, small_t)
    # intrinsics found on the shrunk frame map back to the original pixels by the size ratio
    K = np.array([[[400.0, 0.0, 259.0], [0.0, 410.0, 190.0], [0.0, 0.0, 1.0]]])
    K_small = intrinsics_to_original(K, small_tf)
    K_small[..., 0, :] *= hw[1] / small.shape[1]
    K_small[..., 1, :] *= hw[0] / small.shape[0]
    np.testing.assert_allclose(K_small, intrinsics_to_original(K, full_tf), rtol=1e-12)


def test_small_frames_are_kept_as_they_are():
    image = _image(48, 64)
    assert shrink_for_model(image) is image
    portrait = _image(640, 480)  # crop mode widens it to 518: no reduction
    assert shrink_for_model(portrait, "crop") is portrait


def test_bad_input():
    with pytest.raises(ModelError, match="mode"):
        shrink_for_model(_image(8, 8), "stretch")
    with pytest.raises(DataError, match="HxWx3 uint8"):
        shrink_for_model(np.zeros((8, 8), np.uint8))
