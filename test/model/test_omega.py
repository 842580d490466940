"""VGGT-Ω preprocessing and pose decoding equal to the official functions; tiny-model behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from torch.testing import assert_close

from vggt_uncertainty_ros.errors import ModelError
from vggt_uncertainty_ros.model import TokenCache, VGGTOmega, intrinsics_to_original
from vggt_uncertainty_ros.model.layers import set_attention_impl
from vggt_uncertainty_ros.model.omega import (
    encoding_to_camera,
    load_and_preprocess_images,
    load_and_preprocess_images_with_transforms,
)

HERE = Path(__file__).resolve().parent / "omega_reference"
IMAGES = ("img0_640x480.png", "img1_480x640.png", "img2_320x240_rgba.png", "wide_300x90.png", "tall_50x160.png")
CASES = [
    ("balanced_96_all", (0, 1, 2, 3, 4), "balanced", 96),
    ("max_size_64_all", (0, 1, 2, 3, 4), "max_size", 64),
    ("balanced_192_img0", (0,), "balanced", 192),
    ("max_size_64_wide_tall", (3, 4), "max_size", 64),
]


@pytest.fixture(scope="module")
def reference():
    return load_file(str(HERE / "omega_reference.safetensors"))


def _path(golden_dir: Path, i: int) -> Path:
    return (golden_dir / "preprocess" if i < 3 else HERE) / IMAGES[i]


@pytest.mark.golden
@pytest.mark.parametrize(("key", "idx", "mode", "res"), CASES)
@pytest.mark.parametrize("kind", ["path", "array"])
def test_preprocessing_equals_official(reference, golden_dir, key, idx, mode, res, kind):
    paths = [_path(golden_dir, i) for i in idx]
    inputs = [str(p) for p in paths] if kind == "path" else [np.asarray(Image.open(p)) for p in paths]
    out = load_and_preprocess_images(inputs, mode=mode, image_resolution=res)
    assert out.dtype == torch.float32
    assert torch.equal(out, reference[key].float().div(255))


def test_preprocessing_transforms_map_pixels(golden_dir):
    # a wide image is centre-cropped to aspect 0.5, then resized: check a pixel's mapping
    wide = np.zeros((90, 300, 3), np.uint8)
    wide[40:50, 145:155] = 255  # a white square at the centre
    out, (tf,) = load_and_preprocess_images_with_transforms([wide], mode="max_size", image_resolution=64)
    assert out.shape == (1, 3, 32, 64)
    assert tf.original_hw == (90, 300) and tf.output_hw == (32, 64)
    # crop keeps columns 60..240 (180 = 90 / 0.5): x_model = (x - 60) * 64 / 180
    assert tf.scale_xy == pytest.approx((64 / 180, 32 / 90))
    assert tf.offset_xy == pytest.approx((-60 * 64 / 180, 0.0))
    k_net = np.array([[50.0, 0, 32], [0, 50.0, 16], [0, 0, 1]])
    k = intrinsics_to_original(k_net, tf)
    assert k[0, 2] == pytest.approx(150.0) and k[1, 2] == pytest.approx(45.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"mode": "crop"}, "mode"), ({"image_resolution": 100}, "multiple"), ({"image_resolution": 0}, "multiple")],
)
def test_preprocessing_rejects_bad_settings(kwargs, match):
    with pytest.raises(ModelError, match=match):
        load_and_preprocess_images([np.zeros((32, 32, 3), np.uint8)], **kwargs)
    with pytest.raises(ModelError, match="at least one"):
        load_and_preprocess_images([])


@pytest.mark.golden
def test_pose_decoding_equals_official(reference):
    ext, intr = encoding_to_camera(reference["pose_enc"], (448, 592))
    assert_close(ext, reference["extrinsics"], rtol=0, atol=1e-6)
    assert_close(intr, reference["intrinsics"], rtol=1e-6, atol=1e-5)
    assert encoding_to_camera(reference["pose_enc"], (448, 592), build_intrinsics=False)[1] is None
    with pytest.raises(ModelError):
        encoding_to_camera(torch.zeros(1, 2, 7), (16, 16))


@pytest.fixture(scope="module")
def tiny():
    return VGGTOmega("tiny").eval()


@torch.no_grad()
def test_tiny_outputs_by_key_and_attribute(tiny):
    images = torch.rand(1, 3, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    out = tiny(images)
    cfg = tiny.config
    assert out.pose_enc.shape == out["pose_enc"].shape == (1, 3, 9)
    assert out.camera_and_register_tokens.shape == (1, 3, cfg.special_tokens, cfg.feature_dim)
    assert torch.equal(out.camera_features, out.camera_and_register_tokens[:, :, 0])
    assert out.extrinsics.shape == (1, 3, 3, 4) and out.intrinsics.shape == (1, 3, 3, 3)
    assert (out.pose_enc[..., 7:] >= 0.01).all()
    with pytest.raises(AttributeError):
        _ = out.no_such_key
    # a 4-D input is one sequence
    assert_close(tiny(images[0]).pose_enc, out.pose_enc)


@torch.no_grad()
def test_tiny_is_deterministic_and_reference_frame_matters(tiny):
    again = VGGTOmega("tiny").eval()
    for (k, a), b in zip(tiny.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    images = torch.rand(1, 3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = tiny(images)
    swapped = tiny(images[:, [1, 0, 2]])
    # the reference frame has its own camera/register tokens: swapping frames 0 and 1 changes outputs
    assert not torch.allclose(out.pose_enc[0, 0], swapped.pose_enc[0, 1], atol=1e-5)


@torch.no_grad()
def test_last_layer_shortcut_equals_full_global_block(tiny):
    agg = tiny.aggregator
    x = torch.randn(1, 3, 5 + 4, agg.cfg.embed_dim, generator=torch.Generator().manual_seed(2))
    blk = agg.inter_frame_blocks[-1]
    full = blk(x.reshape(1, -1, x.shape[-1])).view(x.shape)[:, :, :5]
    assert_close(agg._last_global(blk, x, 5), full, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_manual_attention_equals_sdpa():
    model = VGGTOmega("tiny").eval()
    images = torch.rand(1, 2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    fused = model(images).camera_and_register_tokens
    set_attention_impl(model, "manual")
    assert_close(model(images).camera_and_register_tokens, fused, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_token_cache_gives_the_same_outputs(tiny):
    frames = torch.rand(4, 3, 32, 48, generator=torch.Generator().manual_seed(4))
    cache = TokenCache(max_frames=8)
    first = tiny(frames[None, :3], frame_ids=[0, 1, 2], token_cache=cache)
    second = tiny(frames[None, 1:], frame_ids=[1, 2, 3], token_cache=cache)
    assert cache.hits == 2
    assert_close(first.pose_enc, tiny(frames[None, :3]).pose_enc, rtol=1e-5, atol=1e-6)
    assert_close(second.pose_enc, tiny(frames[None, 1:]).pose_enc, rtol=1e-5, atol=1e-6)


def test_bad_inputs_raise_model_errors(tiny):
    with pytest.raises(ModelError, match="multiple of the patch"):
        tiny(torch.rand(1, 2, 3, 30, 32))
    with pytest.raises(ModelError, match=r"\[B, S, 3, H, W\]"):
        tiny(torch.rand(2, 1, 32, 32))
    with pytest.raises(ModelError, match="frame id"):
        tiny(torch.rand(1, 2, 3, 32, 32), frame_ids=[0], token_cache=TokenCache())


@torch.no_grad()
def test_bf16_autocast_stays_close_to_float32():
    model = VGGTOmega("tiny").eval()
    images = torch.rand(1, 3, 3, 32, 48, generator=torch.Generator().manual_seed(5))
    ref = model(images)
    model.amp_dtype = torch.bfloat16
    out = model(images)
    assert out.pose_enc.dtype == torch.float32 and out.camera_features.dtype == torch.float32  # head in float32
    assert_close(out.camera_features, ref.camera_features, rtol=0.05, atol=0.05)
    assert_close(out.pose_enc, ref.pose_enc, rtol=0.02, atol=0.02)
    assert not torch.equal(out.camera_features, ref.camera_features)  # it did run in bf16


@torch.no_grad()
def test_batch_items_are_independent_and_one_frame_works(tiny):
    images = torch.rand(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    both = tiny(images)
    assert_close(both.pose_enc[1:], tiny(images[1:]).pose_enc, rtol=1e-5, atol=1e-6)
    assert tiny(images[:1, :1]).pose_enc.shape == (1, 1, 9)
