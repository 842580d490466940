"""Attention backends: flash4 falls back to SDPA where it cannot run; its adapter keeps the layout."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from vggt_uncertainty_ros.errors import ConfigError
from vggt_uncertainty_ros.model import VGGT
from vggt_uncertainty_ros.model.layers import Attention, select_attention
from vggt_uncertainty_ros.model.spec import BackboneSpec


def reference_flash(q, k, v, softmax_scale=None, causal=False):
    """The FlashAttention calling convention: [B, N, heads, head_dim] in and out, (out, lse) back."""
    assert not causal
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), scale=softmax_scale)
    return out.transpose(1, 2).contiguous(), torch.zeros(q.shape[:3])


def test_flash4_on_the_cpu_falls_back_to_sdpa_with_a_warning(caplog):
    model = VGGT("tiny").eval()
    images = torch.rand(1, 3, 3, 28, 42)
    with torch.inference_mode():
        before = model(images)["pose_enc"]
    with caplog.at_level(logging.WARNING):
        used = select_attention(model, "flash4", torch.device("cpu"), torch.float32)
    assert used == "sdpa" and "flash4 requested" in caplog.text
    assert all(m.impl == "sdpa" for m in model.modules() if isinstance(m, Attention))
    with torch.inference_mode():
        torch.testing.assert_close(model(images)["pose_enc"], before, rtol=0, atol=0)


def test_flash_layout_adapter_equals_sdpa_inside_the_model():
    torch.manual_seed(0)
    model = VGGT("tiny").eval()
    images = torch.rand(1, 3, 3, 28, 42)
    with torch.inference_mode():
        sdpa = model(images)["pose_enc"]
        layers = [m for m in model.modules() if isinstance(m, Attention)]
        for layer in layers:
            layer.impl, layer.flash = "flash4", reference_flash
        flash = model(images)["pose_enc"]
    torch.testing.assert_close(flash, sdpa, rtol=1e-5, atol=1e-5)


def test_flash4_without_a_kernel_is_an_error_not_a_silent_other_path():
    layer = Attention(16, 2)
    layer.impl = "flash4"
    with pytest.raises(ValueError, match="select_attention"):
        layer(torch.rand(1, 4, 16))


def test_backbone_spec_names_the_attention_backend():
    assert BackboneSpec().attention == "sdpa"
    assert BackboneSpec(attention="flash4").attention == "flash4"
    with pytest.raises(ConfigError, match="attention"):
        BackboneSpec(attention="xformers")
