"""The tiny backbone: interface, determinism, token cache and frame-count consistency."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from vggt_uncertainty_ros.errors import ConfigError, ModelError
from vggt_uncertainty_ros.model import (
    VGGT,
    TokenCache,
    backbone_identity,
    load_backbone,
)
from vggt_uncertainty_ros.model.layers import set_attention_impl


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("tiny")


def _images(s, h=70, w=98, seed=0):
    return torch.rand((1, s, 3, h, w), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_forward_interface(tiny):
    out = tiny(_images(4))
    assert len(out["pose_enc_list"]) == 4
    assert all(p.shape == (1, 4, 9) for p in out["pose_enc_list"])
    assert out["pose_enc"] is out["pose_enc_list"][-1]
    assert out["camera_features"].shape == (1, 4, tiny.feature_dim) == (1, 4, 128)
    assert out["camera_trunk_features"].shape == (1, 4, 128)
    assert out["extrinsics"].shape == (1, 4, 3, 4)
    assert out["intrinsics"].shape == (1, 4, 3, 3)
    # the tiny init gives sensible cameras: finite positive focal lengths, principal point at the centre
    k = out["intrinsics"]
    assert torch.isfinite(k).all() and (k[..., 0, 0] > 0).all() and (k[..., 1, 1] > 0).all()
    assert_close(k[..., 0, 2], torch.full((1, 4), 49.0))
    assert_close(k[..., 1, 2], torch.full((1, 4), 35.0))
    assert not any(p.requires_grad for p in tiny.parameters())


def test_tiny_weights_are_deterministic_and_identity_tracks_them(tiny):
    other = load_backbone("tiny")
    assert all(torch.equal(a, b) for a, b in zip(tiny.state_dict().values(), other.state_dict().values()))
    ident = backbone_identity(tiny)
    assert ident == backbone_identity(other) and len(ident) == 16
    with torch.no_grad():
        other.aggregator.frame_blocks[1].mlp.fc2.weight[3, 5] += 1e-3
    assert backbone_identity(other) != ident


@torch.no_grad()
def test_token_cache_sliding_windows_equal_recompute(tiny):
    seq = _images(7, seed=3)[0]
    cache = TokenCache(max_frames=6)
    calls = []

    def spy(x):
        calls.append(x.shape[0])
        return tiny.aggregator.patch_tokens(x)

    for start in range(3):
        ids = list(range(start, start + 5))
        window = seq[start : start + 5].unsqueeze(0)
        plain = tiny(window, decode=False)
        patch = cache.get_or_compute(ids, window[0], spy)
        cached = tiny(window, frame_ids=ids, token_cache=cache, decode=False)
        assert_close(cached["camera_features"], plain["camera_features"], rtol=0, atol=1e-6)
        assert_close(cached["pose_enc"], plain["pose_enc"], rtol=0, atol=1e-6)
        assert patch.shape == (5, 5 * 7, 64)
    assert calls == [5, 1, 1]  # only new frames go through DINOv2
    assert len(cache) <= 6


@torch.no_grad()
def test_batch_items_are_independent_and_frame_count_changes_results(tiny):
    a, b = _images(3, seed=1), _images(3, seed=2)
    both = tiny(torch.cat((a, b)), decode=False)
    single = tiny(b, decode=False)
    assert_close(both["pose_enc"][1:], single["pose_enc"], rtol=1e-5, atol=1e-5)
    fewer = tiny(a[:, :2], decode=False)
    # global attention mixes frames: dropping frame 2 changes frame 1's estimate
    assert not torch.allclose(fewer["camera_features"][:, 1], both["camera_features"][:1, 1], atol=1e-4)


@torch.no_grad()
def test_sdpa_matches_manual_attention_tiny(tiny):
    x = _images(3, h=42, w=56)
    out = tiny(x, decode=False)
    set_attention_impl(tiny, "manual")
    try:
        ref = tiny(x, decode=False)
    finally:
        set_attention_impl(tiny, "sdpa")
    assert_close(out["pose_enc"], ref["pose_enc"], rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_last_layer_camera_only_path_equals_full_layer(tiny):
    # by default the last global block updates only the camera tokens; asking for the
    # whole last layer runs it over every token: the camera features must not change
    x = _images(3, h=42, w=56, seed=3)
    pruned = tiny(x, decode=False)
    full = tiny(x, keep_layers=(-1,), decode=False)
    last = full["aggregated_layers"][tiny.aggregator.depth - 1]
    assert_close(pruned["camera_features"], last[:, :, 0], rtol=1e-5, atol=1e-6)
    assert_close(full["camera_features"], last[:, :, 0], rtol=0, atol=0)
    assert_close(pruned["pose_enc"], full["pose_enc"], rtol=1e-5, atol=1e-6)


@torch.no_grad()
def test_sdpa_backend_preference_keeps_results(tiny):
    x = _images(3, h=42, w=56, seed=4)
    ref = tiny(x, decode=False)
    try:
        for name in ("math", "cudnn", "flash"):  # cuDNN/flash are CUDA-only or bf16-only: fall through
            tiny.set_sdpa_backend(name)
            assert_close(tiny(x, decode=False)["pose_enc"], ref["pose_enc"], rtol=1e-4, atol=1e-5)
        with pytest.raises(ModelError, match="unknown SDPA backend"):
            tiny.set_sdpa_backend("fa9")
    finally:
        tiny.set_sdpa_backend("auto")


def test_bad_inputs_raise(tiny):
    with pytest.raises(ModelError, match="multiple of the patch size"):
        tiny(torch.rand(1, 2, 3, 50, 56))
    with pytest.raises(ModelError, match=r"\[B, S, 3, H, W\]"):
        tiny(torch.rand(1, 2, 1, 56, 56))
    with pytest.raises(ModelError, match="frame id"):
        tiny(torch.rand(1, 2, 3, 56, 56), token_cache=TokenCache())
    with pytest.raises(ConfigError, match="unknown VGGT config"):
        VGGT("huge")
