"""The backbone protocol: every family behind build_backbone, and heads bound to their family."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vggt_uncertainty_ros.errors import CheckpointError, ConfigError, InvalidWindowError
from vggt_uncertainty_ros.head import HeadMetadata, UncertaintyHead, save_head
from vggt_uncertainty_ros.model import backbone as bb
from vggt_uncertainty_ros.model.spec import BackboneSpec
from vggt_uncertainty_ros.online.estimator import WindowEstimator, build_estimator

FAMILIES = ("vggt", "vggt-omega")


def _images(n: int = 3, h: int = 48, w: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module", params=FAMILIES)
def backbone(request):
    return bb.build_backbone(BackboneSpec(name=request.param, device="cpu"), "cpu", torch.float32)


def test_every_family_keeps_the_protocol(backbone):
    assert isinstance(backbone, bb.Backbone)
    assert backbone.name in FAMILIES and backbone.feature_dim == 128
    ident = backbone.identity()
    assert isinstance(ident, str) and len(ident) == 16 and ident == backbone.identity()
    pred = backbone.predict(_images())
    assert isinstance(pred, bb.WindowPrediction)
    assert pred.T_0_i.shape == (3, 4, 4) and pred.T_0_i.dtype == np.float64
    assert pred.intrinsics.shape == (3, 3, 3) and pred.intrinsics.dtype == np.float64
    assert pred.features.shape == (3, 128) and pred.features.dtype == np.float32
    assert pred.valid.dtype == bool and pred.valid.all()
    np.testing.assert_array_equal(pred.T_0_i[0], np.eye(4))
    rot = pred.T_0_i[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.tile(np.eye(3), (3, 1, 1)), atol=1e-5)
    # intrinsics in pixels of the 64x48 input: principal point at its centre (no crop at 4:3)
    np.testing.assert_allclose(pred.intrinsics[:, :2, 2], np.tile([32.0, 24.0], (3, 1)), atol=1e-9)
    assert pred.aux["pose_enc"].shape == (3, 9)


def test_family_identities_differ():
    ids = {bb.build_backbone(BackboneSpec(name=n, device="cpu"), "cpu", torch.float32).identity() for n in FAMILIES}
    assert len(ids) == 2


def test_frame_ids_reuse_work_without_changing_predictions(backbone):
    frames = _images(5)
    plain = [backbone.predict(frames[s : s + 3]) for s in (0, 2)]
    cached = [backbone.predict(frames[s : s + 3], frame_ids=[10 + i for i in range(s, s + 3)]) for s in (0, 2)]
    for a, b in zip(plain, cached):
        np.testing.assert_allclose(b.T_0_i, a.T_0_i, atol=1e-5)
        np.testing.assert_allclose(b.features, a.features, rtol=1e-4, atol=1e-5)


def test_bad_windows_are_invalid_window_errors(backbone):
    with pytest.raises(InvalidWindowError):
        backbone.predict([])
    with pytest.raises(InvalidWindowError, match="same size"):
        backbone.predict(_images(1) + _images(1, h=32))
    with pytest.raises(InvalidWindowError, match="uint8"):
        backbone.predict([np.zeros((32, 32, 3), np.float32)])
    with pytest.raises(InvalidWindowError, match="frame ids"):
        backbone.predict(_images(2), frame_ids=[1])


def test_registry_and_prediction_checks(monkeypatch):
    class Fixed:
        name, feature_dim = "vggt", 4

        def identity(self) -> str:
            return "fixed"

        def predict(self, images, frame_ids=None):
            s = len(images)
            return bb.WindowPrediction(
                np.tile(np.eye(4), (s, 1, 1)),
                np.tile(np.eye(3), (s, 1, 1)),
                np.zeros((s, 4), np.float32),
                np.ones(s, bool),
            )

    monkeypatch.setitem(bb.BUILDERS, "vggt", lambda spec, device, dtype: Fixed())
    built = bb.build_backbone(BackboneSpec(), "cpu", torch.float32)
    assert isinstance(built, Fixed) and isinstance(built, bb.Backbone)
    est = WindowEstimator(built, None, "cpu", constant_sigma=0.1)
    out = est.estimate(_images(2))
    assert out.pose_enc is None and out.valid.all() and out.features.shape == (2, 4)
    monkeypatch.delitem(bb.BUILDERS, "vggt")
    with pytest.raises(ConfigError, match="no backbone builder"):
        bb.build_backbone(BackboneSpec(), "cpu", torch.float32)
    with pytest.raises(ValueError, match="T_0_i"):
        bb.WindowPrediction(np.zeros((2, 3, 4)), np.zeros((2, 3, 3)), np.zeros((2, 4)), np.ones(2, bool))


@pytest.mark.parametrize(
    ("name", "mode", "ok"),
    [
        ("vggt", "crop", True),
        ("vggt", "balanced", False),
        ("vggt-omega", "max_size", True),
        ("vggt-omega", "pad", False),
    ],
)
def test_preprocess_mode_must_fit_the_family(name, mode, ok):
    if ok:
        assert BackboneSpec(name=name, preprocess_mode=mode).resolved_preprocess_mode == mode
    else:
        with pytest.raises(ConfigError, match=f"does not apply to backbone '{name}'"):
            BackboneSpec(name=name, preprocess_mode=mode)
    assert BackboneSpec(name=name).resolved_preprocess_mode == {"vggt": "crop", "vggt-omega": "balanced"}[name]


def _head_file(tmp_path: Path, family: str, in_dim: int = 128) -> Path:
    torch.manual_seed(0)
    head = UncertaintyHead(in_dim, 16)
    meta = HeadMetadata.for_head(head, backbone="x", backbone_family=family)
    return save_head(tmp_path / f"head_{family}.safetensors", head, meta)


@pytest.mark.parametrize(("trained", "running"), [("vggt", "vggt-omega"), ("vggt-omega", "vggt")])
def test_a_head_is_refused_on_another_family(tmp_path, trained, running):
    path = _head_file(tmp_path, trained)
    with pytest.raises(CheckpointError) as info:
        build_estimator(BackboneSpec(name=running, device="cpu"), path)
    text = str(info.value)
    assert path.name in text and f"trained on backbone '{trained}'" in text and f"uses backbone '{running}'" in text
    # on its own family it loads (weights differ: a warning offline)
    est = build_estimator(BackboneSpec(name=trained, device="cpu"), path)
    assert est.backbone.name == trained and est.estimate(_images(2)).log_var.shape == (2, 6)


def test_an_old_head_without_family_is_a_vggt_head(tmp_path):
    assert HeadMetadata.from_json('{"in_dim": 128}').backbone_family == "vggt"


class _Unobserving:
    """A backbone whose frames 2 and 3 have no observable translation (geometric without parallax)."""

    name, feature_dim = "geometric", 4

    def __init__(self, t_valid: list[bool], t_norms: list[float]) -> None:
        self.t_valid, self.t_norms = np.array(t_valid), np.array(t_norms)

    def identity(self) -> str:
        return "unobserving"

    def predict(self, images, frame_ids=None):
        s = len(images)
        T = np.tile(np.eye(4), (s, 1, 1))
        T[:, 0, 3] = np.where(self.t_valid, self.t_norms, 0.0)
        return bb.WindowPrediction(
            T,
            np.tile(np.eye(3), (s, 1, 1)),
            np.zeros((s, 4), np.float32),
            np.ones(s, bool),
            aux={"translation_valid": self.t_valid},
        )


def test_unobserved_translation_gets_the_window_motion_as_sigma_and_is_counted():
    backbone = _Unobserving([True, True, False, False], [0.0, 0.2, 0.0, 0.0])
    est = WindowEstimator(backbone, None, "cpu", constant_sigma=(0.01, 0.003))
    out = est.estimate(_images(4))
    sigma_t = np.exp(0.5 * out.log_var[:, 3:])
    np.testing.assert_allclose(sigma_t[:2], 0.003)  # observed: the head's (here constant) σ
    np.testing.assert_allclose(sigma_t[2:], 0.2)  # unobserved: the window's motion (frame 1's 0.2)
    np.testing.assert_allclose(np.exp(0.5 * out.log_var[:, :3]), 0.01)  # rotation untouched
    assert out.translation_observed.tolist() == [True, True, False, False]
    assert est.frames_translation_unobserved == 2
    # no translation observed anywhere in the window: one backbone unit
    none_seen = WindowEstimator(_Unobserving([True, False, False, False], [0.0] * 4), None, "cpu", constant_sigma=0.1)
    np.testing.assert_allclose(np.exp(0.5 * none_seen.estimate(_images(4)).log_var[1:, 3:]), 1.0)
