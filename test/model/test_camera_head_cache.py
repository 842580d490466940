"""The camera head's input-independent first-iteration modulation is computed once and stays exact."""

from __future__ import annotations

import torch

from vggt_uncertainty_ros.model import VGGT


def _reference(head, tokens):
    """The head's forward with the first modulation recomputed every call (the official recipe)."""
    with torch.enable_grad():  # grad mode disables the cache
        return head(tokens).pose_enc_list[-1].detach()


def test_cached_first_modulation_equals_recomputing_it_and_follows_weight_changes():
    torch.manual_seed(0)
    head = VGGT("tiny").camera_head.eval()
    tokens = torch.randn(2, 5, head.token_norm.normalized_shape[0])
    with torch.inference_mode():
        cached = head(tokens).pose_enc_list[-1]
        again = head(tokens).pose_enc_list[-1]
    assert head._first_modulation is not None
    torch.testing.assert_close(cached, _reference(head, tokens), rtol=0, atol=0)
    torch.testing.assert_close(again, cached, rtol=0, atol=0)

    other = VGGT("tiny").camera_head.eval()
    with torch.no_grad():
        other.empty_pose_tokens.add_(1.0)
    head.load_state_dict(other.state_dict())  # in-place copy: the cache must notice
    with torch.inference_mode():
        after = head(tokens).pose_enc_list[-1]
    torch.testing.assert_close(after, _reference(other, tokens), rtol=0, atol=0)
    assert not torch.equal(after, cached)
