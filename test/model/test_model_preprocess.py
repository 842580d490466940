"""Preprocessing is bit-identical to the official loader (golden_preprocess.safetensors)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vggt_uncertainty_ros.errors import DataError, ModelError
from vggt_uncertainty_ros.model import (
    intrinsics_to_original,
    preprocess_images,
    preprocess_images_with_transforms,
)

NAMES = ("img0_640x480.png", "img1_480x640.png", "img2_320x240_rgba.png")
CASES = [("crop_all3_u8", (0, 1, 2), "crop"), ("crop_img0_img2_u8", (0, 2), "crop"), ("pad_all3_u8", (0, 1, 2), "pad")]


@pytest.fixture(scope="module")
def golden(golden_dir):
    return load_file(str(golden_dir / "golden_preprocess.safetensors"))


@pytest.mark.parametrize(("key", "idx", "mode"), CASES)
@pytest.mark.parametrize("kind", ["path", "pil", "array"])
def test_bit_exact_against_official(golden, golden_dir, key, idx, mode, kind):
    paths = [golden_dir / "preprocess" / NAMES[i] for i in idx]
    if kind == "path":
        inputs = [str(p) for p in paths]
    elif kind == "pil":
        inputs = [Image.open(p) for p in paths]
    else:
        inputs = [np.asarray(Image.open(p)) for p in paths]  # HxWx3 and HxWx4 uint8
    out = preprocess_images(inputs, mode=mode)
    ref = golden[key].float().div(255)
    assert out.dtype == torch.float32
    assert torch.equal(out, ref)


def test_rgba_is_composited_on_white(golden_dir):
    rgba = np.asarray(Image.open(golden_dir / "preprocess" / NAMES[2]))
    assert (rgba[:, :80, 3] == 0).all()
    out = preprocess_images([rgba])
    assert torch.equal(out[0, :, :, :100], torch.ones_like(out[0, :, :, :100]))  # fully transparent -> white


def test_transforms_and_intrinsics_back_to_original():
    img = np.zeros((480, 640, 3), np.uint8)
    tall = np.zeros((1000, 500, 3), np.uint8)
    _, (t_img, t_tall) = preprocess_images_with_transforms([img, tall], mode="crop")
    assert t_img.output_hw == (518, 518) and t_img.scale_xy == (518 / 640, 392 / 480)
    assert t_img.offset_xy == (0.0, 63.0)  # padded 63 rows on top to match the cropped tall image
    assert t_tall.scale_xy == (518 / 500, 1036 / 1000) and t_tall.offset_xy == (0.0, -259.0)
    # a camera with the principal point at the model-input centre maps to the original centre
    k_model = np.array([[400.0, 0, 259.0], [0, 410.0, 259.0], [0, 0, 1]])
    k = intrinsics_to_original(k_model, t_img)
    assert k[0, 0] == pytest.approx(400 * 640 / 518) and k[1, 1] == pytest.approx(410 * 480 / 392)
    assert k[0, 2] == pytest.approx(320.0) and k[1, 2] == pytest.approx(240.0)
    kt = intrinsics_to_original(torch.tensor(k_model), t_tall)
    assert kt[1, 2].item() == pytest.approx((259.0 + 259.0) * 1000 / 1036)
    # pad mode: portrait image, longest side 518, padded left/right
    _, (t_pad,) = preprocess_images_with_transforms([tall], mode="pad")
    new_w = round(500 * (518 / 1000) / 14) * 14  # 252 (Python rounds 18.5 to even)
    assert t_pad.output_hw == (518, 518) and t_pad.scale_xy == (new_w / 500, 518 / 1000)
    assert t_pad.offset_xy == ((518 - new_w) // 2, 0.0)


def test_errors():
    with pytest.raises(ModelError, match="at least one"):
        preprocess_images([])
    with pytest.raises(ModelError, match="mode"):
        preprocess_images([np.zeros((14, 14, 3), np.uint8)], mode="stretch")
    with pytest.raises(DataError, match="uint8"):
        preprocess_images([np.zeros((14, 14, 3), np.float32)])
    with pytest.raises(DataError, match="no_such.png"):
        preprocess_images(["/nonexistent/no_such.png"])
