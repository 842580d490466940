"""State-dict names and shapes equal the official checkpoint's aggregator + camera head rows."""

from __future__ import annotations

from vggt_uncertainty_ros.model import VGGT


def test_full_model_keys_and_shapes_equal_official(official_keys):
    model = VGGT("full", init="meta")
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ref = {k: shape for k, (shape, sub) in official_keys.items() if sub in ("aggregator", "camera_head")}
    assert len(ref) == 1279
    assert list(ours) == list(ref)  # same names, same order as the official state_dict
    assert ours == ref
    assert sum(v.numel() for v in model.state_dict().values()) == 1_125_286_930
    assert model.feature_dim == 2048


def test_official_key_list_has_only_known_extra_heads(official_keys):
    extra = {k.split(".", 1)[0] for k, (_, sub) in official_keys.items() if sub not in ("aggregator", "camera_head")}
    assert extra == {"point_head", "depth_head", "track_head"}


def test_tiny_uses_the_same_naming_scheme():
    tiny = VGGT("tiny").state_dict()
    full = VGGT("full", init="meta").state_dict()
    assert set(tiny) <= set(full)
    assert tiny["aggregator.camera_token"].shape == (1, 2, 1, 64)
