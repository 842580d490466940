"""Full-size parity of our VGGT-Ω with the official code (``../shared/golden_omega``).

One full-size float32 model (1.1 B values, 4.4 GB) is built once for this module; its
*parameters* are filled by the golden ``fill.py`` and its buffers keep their official values
(RoPE periods, key-bias masks 1/0/1), as ``make_golden.py`` did. Tolerances: the README's.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch.testing import assert_close

from vggt_uncertainty_ros.model import VGGTOmega

pytestmark = [pytest.mark.golden, pytest.mark.slow]

GOLDEN_OMEGA = Path(__file__).resolve().parents[2].parent / "shared" / "golden_omega"
TOK = {"rtol": 1e-4, "atol": 1e-4}
POSE = {"rtol": 0.0, "atol": 1e-5}


@pytest.fixture(scope="module")
def golden():
    path = GOLDEN_OMEGA / "golden_omega_camera.safetensors"
    assert path.is_file(), f"golden fixtures not found at {path}"
    return load_file(str(path))


@pytest.fixture(scope="module")
def full_model(golden_fill):
    model = VGGTOmega("full", init="empty").eval()
    golden_fill.fill_({k: p.data for k, p in model.named_parameters()})
    yield model
    del model
    gc.collect()


def test_buffers_hold_official_values(full_model):
    periods = full_model.aggregator.rope_embed.periods
    assert_close(periods, 100.0 ** (torch.arange(16) / 16), rtol=1e-6, atol=0)
    mask = full_model.aggregator.frame_blocks[0].attn.qkv.bias_mask
    assert mask[:1024].eq(1).all() and mask[1024:2048].eq(0).all() and mask[2048:].eq(1).all()


@pytest.mark.parametrize("fixture", ["A", "B"])
@torch.no_grad()
def test_fixture(full_model, golden, fixture):
    images = golden[f"{fixture}_images"]
    out = full_model(images[None])
    assert out.camera_and_register_tokens.shape == (1, images.shape[0], 17, 2048)
    assert_close(out["camera_and_register_tokens"], golden[f"{fixture}_camera_and_register_tokens"], **TOK)
    assert_close(out.pose_enc, golden[f"{fixture}_pose_enc"], **POSE)
    assert_close(out.camera_features, golden[f"{fixture}_camera_and_register_tokens"][:, :, 0], **TOK)
    # frame 0 uses the first camera/register slot, the others the second
    assert not torch.allclose(out.camera_features[0, 0], out.camera_features[0, 1], atol=1e-2)
